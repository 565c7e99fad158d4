/*
 * queue_internal.h - what queue.c (the spool, in the queue process) and
 * queue_client.c (the worker's view over its channel) share. Not for use
 * outside src/queue/.
 */
#ifndef SEALPOST_QUEUE_QUEUE_INTERNAL_H
#define SEALPOST_QUEUE_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/queue.h"

#define QUEUE_WRITE_BUF (64 * 1024)

struct event;
struct event_base;
struct pending_commit;
struct fsync_pool;

struct queue {
    int channel;                    /* >= 0: worker side, the queue is remote */
    struct event *channel_ev;       /* worker side: replies to commits */
    struct pending_commit *pending; /* worker side: commits sent, not answered */
    bool broken;                    /* worker side: the channel failed */
    bool broken_told;               /* worker side: on_broken has run */
    void (*on_broken)(void *arg);   /* worker side: told once when it fails */
    void *on_broken_arg;
    char *dir;
    int incoming_fd;
    int queue_fd;
    _Atomic unsigned counter;       /* queue ids are made by more than one thread */
    struct fsync_pool *fsync_pool;  /* group commits' fsyncs, made at first use */
    queue_notify_cb notify;
    void *notify_arg;
};

struct queue_msg {
    struct queue *q;
    char id[QUEUE_ID_LEN + 1];
    int fd;
    int error;
    size_t buffered;
    char buf[QUEUE_WRITE_BUF];
};

bool queue_id_valid(const char *name);

/* queue_client.c: the remote forms of queue_msg_new/commit/abort. */
struct queue_msg *queue_client_msg_new(struct queue *q, struct envelope *env);
void queue_client_commit(struct queue_msg *msg, queue_commit_cb cb, void *arg);
void queue_client_abort(struct queue_msg *msg);
void queue_client_close(struct queue *q);

#endif

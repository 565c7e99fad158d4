/*
 * commit_thread.h - the queue process's group commits, on a thread of
 * their own.
 *
 * The main thread reads workers' requests (creating message files for
 * NEW, queueing COMMITs) and hands the queued commits over as one group
 * whenever the commit thread is idle; the commit thread makes the group
 * durable (queue_commit_group: fsyncs, renames, directory fsync) while
 * the main thread goes on creating the next messages' files and
 * collecting the next group. When a group is done, the main thread gets
 * it back (done callback, on its event loop) and answers the workers.
 * So the answer to a COMMIT still comes only after its fsyncs, as
 * before; what changes is that waiting for the disk no longer stops the
 * queue from serving NEW requests.
 *
 * Trusts: its caller (the queue server), on the main thread only.
 */
#ifndef SEALPOST_QUEUE_COMMIT_THREAD_H
#define SEALPOST_QUEUE_COMMIT_THREAD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "queue/queue.h"

struct commit_entry {
    unsigned long channel;          /* the caller's name for who asked */
    struct queue_msg *msg;          /* freed by the commit */
    char id[QUEUE_ID_LEN + 1];
    bool ok;                        /* results, in the done callback */
    int error;
};

/* Runs on the main thread's event loop with a finished group. */
typedef void (*commit_done_cb)(const struct commit_entry *entries, size_t n, void *arg);

struct commit_thread;

/* NULL if the thread cannot be started (the caller commits in line). */
struct commit_thread *commit_thread_start(struct event_base *base, struct queue *q,
                                          commit_done_cb done, void *arg);
/* Queue a commit for the next group. */
void commit_thread_add(struct commit_thread *ct, unsigned long channel, struct queue_msg *msg);
/* Start a group with what is queued, if the thread is idle. */
void commit_thread_kick(struct commit_thread *ct);
/* Finish the group in flight and what is queued (done runs for each),
 * then stop the thread. */
void commit_thread_stop(struct commit_thread *ct);

#endif

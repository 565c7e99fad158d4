/*
 * pickup_internal.h - what pickup.c (taking maildrop files) and
 * pickup_milters.c (asking [queue] sendmail_milters about them) share.
 * Not for use outside src/queue/pickup*.c.
 *
 * Trusts: as pickup.h says: the kernel's word on who owns a file,
 * nothing in it.
 */
#ifndef SEALPOST_QUEUE_PICKUP_INTERNAL_H
#define SEALPOST_QUEUE_PICKUP_INTERNAL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "config/config.h"
#include "mail/maildrop_format.h"
#include "queue/queue.h"
#include "queue/queue_server.h"

#define IGNORED_MAX 64          /* entries that could not be moved aside */

struct pickup_pending;

struct pickup {
    const struct config *cfg;
    struct queue *q;
    struct queue_server *qs;    /* its recipient policy, as reloaded; the milters */
    struct event *timer;
    int dirfd, rejfd;
    DIR *dir;                   /* over a dup of dirfd, kept across rounds */
    struct maildrop_head *head;
    char *buf;                  /* MAILDROP_HEAD_MAX, then copy chunks */
    /* (dev, ino, ctime): a new file that reuses the inode is not ignored */
    struct { dev_t dev; ino_t ino; struct timespec ctime; } ignored[IGNORED_MAX];
    size_t next_ignored;
    /* files whose message is with the milters, or waits after a tempfail */
    struct pickup_pending *pending;
    size_t pending_count;
};

struct entry {
    const char *name;
    char logname[300];          /* the name as a log value */
    uid_t uid;
    struct stat lst;            /* the entry itself, not followed */
};

enum copy_result { COPY_OK, COPY_BAD_FILE, COPY_SPOOL_FAULT };

/* pickup.c */
void pickup_user_name(uid_t uid, char *out, size_t outsize);
/* Out of the maildrop, into maildrop-rejected/, logged. */
void pickup_reject(struct pickup *p, const struct entry *e, const char *reason);
/* The head into p->head, checked against the file; its length or 0. */
size_t pickup_read_head(struct pickup *p, int fd, const struct stat *st, char *why,
                        size_t whysize);
bool pickup_write_received(struct pickup *p, struct queue_msg *msg, uid_t uid);
enum copy_result pickup_copy_message(struct pickup *p, int fd, size_t hlen,
                                     struct queue_msg *msg, char *why, size_t whysize);
/* keep[i]/refused[i] for p->head's recipients; how many were refused. */
size_t pickup_check_rcpts(const struct pickup *p, bool *keep, const char **refused);
void pickup_bounce_refused(struct pickup *p, const struct entry *e, int fd, size_t hlen,
                           const bool *keep, const char **refused);
void pickup_log_pickup(const struct pickup *p, const struct entry *e, const char *id);
void pickup_remove_taken(struct pickup *p, struct entry *e, const char *id);

/* pickup_milters.c */
/* The file of st is with the milters or waits to be asked again. */
bool pickup_milters_busy(struct pickup *p, const struct stat *st);
/* Too many files with the milters: take no more this round. */
bool pickup_milters_full(const struct pickup *p);
/* Copy e's message (fd, head hlen) into msg and ask the milters; the
 * verdict finishes the file later. Takes fd and msg. false: the spool
 * failed (stop this round). */
bool pickup_milters_ask(struct pickup *p, struct entry *e, int fd, size_t hlen,
                        struct queue_msg *msg);
void pickup_milters_start(struct pickup *p);
void pickup_milters_free(struct pickup *p);

#endif

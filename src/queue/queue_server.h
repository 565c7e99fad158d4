/*
 * queue_server.h - the queue process's side of the worker channels:
 * creates message files for smtpd workers, passes them each one
 * writable fd, and commits or discards them on request; passes the
 * channel of each new delivery process on to the scheduler.
 *
 * Trusts: the master (control channel). Worker channels carry requests
 * from processes that parse internet input: every request is checked
 * (envelope parsed strictly, ids must be ones this channel was given);
 * a malformed request closes that channel, which ends the worker (the
 * master restarts it) and discards its unacknowledged messages.
 */
#ifndef SEALPOST_QUEUE_QUEUE_SERVER_H
#define SEALPOST_QUEUE_QUEUE_SERVER_H

#include <event2/event.h>

#include "config/config.h"
#include "mail/recipient.h"
#include "queue/queue.h"

struct queue_server;

/* Serve worker channels handed over on control (IPC_CHANNEL messages). */
struct queue_server *queue_server_new(struct event_base *base, struct queue *q, int control);
/* What NEW requests are checked against (mail/rcpt_policy.h); must be
 * set before the first worker channel is added. Takes recipients (and
 * replaces them when the master sends reloaded mailbox lists). */
void queue_server_set_policy(struct queue_server *qs, const struct config *cfg,
                             struct recipient_policy *recipients);
/* The recipient policy in force now (the last reloaded mailbox lists and
 * aliases), for the pickup's check of local submissions; main thread. */
const struct recipient_policy *queue_server_recipients(const struct queue_server *qs);
/* Expand the aliases of in's recipients into out (alias_expand.h) with
 * the current mailbox lists; safe from any thread (a DSN the scheduler
 * queues). arg is the queue_server. false + why: out is cleared. */
/* Mail from `sealpost sendmail` through [queue] sendmail_milters: the
 * gate's verdict (milter_gate.h: msg to commit, or NULL) goes to cb,
 * later, from the event loop; pickup.c is the one user. */
#define QUEUE_SERVER_PICKUP 0UL      /* the channel serial of pickup's jobs */
typedef void (*milter_gate_done_pickup_cb)(struct queue_msg *msg, const char *id, int outcome,
                                           const char *reply, void *arg);
void queue_server_on_pickup(struct queue_server *qs, milter_gate_done_pickup_cb cb, void *arg);
/* Some milter is to be asked about sendmail's mail (and pickup listens). */
bool queue_server_sendmail_milters(const struct queue_server *qs);
/* Ask them about msg (written, not committed); user: its sender's login. */
void queue_server_ask_milters(struct queue_server *qs, struct queue_msg *msg);

bool queue_server_expand(void *arg, const struct envelope *in, struct envelope *out,
                         char *why, size_t whysize);
/* Tell the master the queue can take mail (it waits for this at start). */
void queue_server_ready(struct queue_server *qs);
/* [submission] users from the master's snapshot (the queue's only copy
 * of the password hashes): parsed (before the sandbox, while the snapshot
 * is there; *out NULL without [submission] users), then handed over,
 * which starts the password check thread the first time. */
struct file_snapshot;
struct credentials;
bool queue_server_read_users(const struct config *cfg, const struct file_snapshot *files,
                             struct credentials **out, char *err, size_t errsize);
/* Takes c (NULL: nothing to do); false + err if the thread cannot start. */
bool queue_server_set_users(struct queue_server *qs, struct credentials *c, char *err,
                            size_t errsize);
void queue_server_free(struct queue_server *qs);

/* Where the channel to a new delivery process goes (IPC_DELIVERY_CHANNEL
 * from the master), and that to a new local delivery process of a slot
 * (IPC_LOCAL_CHANNEL; the slot is not checked here); cb owns the fd. */
typedef void (*queue_server_channel_cb)(int fd, void *arg);
typedef void (*queue_server_local_cb)(int32_t slot, int fd, void *arg);
void queue_server_on_delivery_channel(struct queue_server *qs, queue_server_channel_cb cb,
                                      queue_server_local_cb local_cb,
                                      void *arg);

#endif

/*
 * queue.h - the spool: where accepted messages live until delivered.
 *
 * Layout under the spool directory (docs/SPOOL.md):
 *   incoming/ID      being received; never delivered; purged at start
 *   queue/ID         committed: envelope + message, fsync'ed
 *   queue/ID.state   per-recipient delivery results (append-only)
 *
 * This is the queue process's own view. An smtpd worker never links it:
 * it asks the queue process over its channel (smtpd/queue_client.h) and
 * receives one writable descriptor per message, never a path.
 *
 * Guarantee: the commit callback reports success only after the message
 * file and the queue directory entry are on stable storage.
 */
#ifndef SEALPOST_QUEUE_QUEUE_H
#define SEALPOST_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mail/delivery_job.h"
#include "mail/envelope.h"

struct queue;
struct queue_msg;

/* Called when a commit finishes; ok=false means the message is gone and
 * the client must get a 4xx. */
typedef void (*queue_commit_cb)(struct queue_msg *msg, bool ok, void *arg);
/* Called for every committed message (the scheduler subscribes). */
typedef void (*queue_notify_cb)(const char *id, void *arg);

/* Open (creating) the spool and purge incoming/. NULL + err on failure. */
struct queue *queue_open(const char *spool_dir, char *err, size_t errsize);
void queue_close(struct queue *q);
void queue_set_notify(struct queue *q, queue_notify_cb cb, void *arg);

/*
 * Start a message: assigns env->id, creates incoming/ID and writes the
 * envelope. Returns NULL (errno set) when the spool cannot take it.
 */
struct queue_msg *queue_msg_new(struct queue *q, struct envelope *env);
const char *queue_msg_id(const struct queue_msg *msg);
/* Append message bytes (buffered). false once any write failed. */
bool queue_msg_write(struct queue_msg *msg, const void *data, size_t len);
/* errno of the first write failure, 0 if none. */
int queue_msg_error(const struct queue_msg *msg);
/*
 * Flush, fsync, move into queue/, fsync the directory, then call cb.
 * The callback may run before this returns (in the queue process), or
 * later from the event loop (in a worker, once the queue has answered).
 * The msg is freed after cb.
 */
void queue_msg_commit(struct queue_msg *msg, queue_commit_cb cb, void *arg);
/*
 * Group commit (queue process): make msgs[0..n) durable together - each
 * file fsync'ed and moved into queue/, then one fsync of queue/ for all -
 * so concurrent sessions share the directory flush. ok[i] and errors[i]
 * (errno) report each message; the messages are freed.
 */
void queue_commit_group(struct queue *q, struct queue_msg **msgs, size_t n, bool *ok,
                        int *errors);
/* queue_msg_commit without a callback, for the queue process's own
 * messages (bounces, TLS reports, pickup): the commit is done when this
 * returns; true when the message is durable. msg is freed. */
bool queue_msg_commit_now(struct queue_msg *msg);
/* Discard an uncommitted message. */
void queue_msg_abort(struct queue_msg *msg);
/* Write out buffered bytes (before the fd is shared with a worker). */
bool queue_msg_flush(struct queue_msg *msg);
/* The message file's descriptor (queue process side). */
int queue_msg_fd(const struct queue_msg *msg);
/* A new descriptor of the (flushed) message file that can only append:
 * what a worker gets, so it cannot touch the envelope. -1/errno. */
int queue_msg_open_append(const struct queue_msg *msg);
/* A new read-only descriptor of the (flushed) message file: what the
 * milter role gets. -1/errno. */
int queue_msg_open_read(const struct queue_msg *msg);
/*
 * Replace an uncommitted message's file with env (written as its
 * envelope, id kept) followed by len octets of content_fd from offset:
 * written to a new file, synced later by the commit like any other,
 * then renamed over the old one, so a worker's descriptor of the old
 * file reaches nothing any more. false/errno: the old file is kept.
 */
bool queue_msg_replace(struct queue_msg *msg, struct envelope *env, int content_fd,
                       off_t offset, uint64_t len);

/* --- the delivery side --- */

/* Call fn for every committed message id in the spool (startup scan). */
void queue_scan(struct queue *q, queue_notify_cb fn, void *arg);

/* Load a committed message with its recipient state. */
bool queue_load(struct queue *q, const char *id, struct queued_message *out,
                char *err, size_t errsize);
void queue_unload(struct queued_message *m);
/* Durably record the states m->state[rcpt_index[0..n)] (appends them to
 * ID.state with one write and one fsync). */
bool queue_record(struct queue *q, struct queued_message *m, const size_t *rcpt_index,
                  size_t n);
/* Durably note that a delay warning was sent for m. */
bool queue_record_warned(struct queue *q, struct queued_message *m);
/* The longest last-error text kept per recipient (`sealpost queue show`). */
#define QUEUE_ERROR_MAX 400
/* Remember "DSN TEXT" (TEXT alone when it is a reply line, which starts
 * with its code) as recipient i's last error (m->last_error), cut to
 * QUEUE_ERROR_MAX octets, every byte outside printable ASCII as '?'; it is
 * written with the recipient's next queue_record, unless it is the text
 * ID.state holds already (a destination that keeps saying the same thing
 * adds one line, not one per round). */
void queue_note_error(struct queued_message *m, size_t i, const char *dsn, const char *text);
/* Durably put the message on hold (hold=true) or release it: one line
 * appended to ID.state, fsync'ed; queue_load reports it in m->held. */
bool queue_record_hold(struct queue *q, const char *id, bool hold);
/* Spool ids of every committed message, sorted (malloc'ed; free it);
 * *count set. */
char (*queue_list_ids(struct queue *q, size_t *count))[QUEUE_ID_LEN + 1];
/* All recipients final: remove the message and its state. */
void queue_remove(struct queue *q, const char *id);

#endif

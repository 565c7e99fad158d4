/*
 * queue_admin.h - what the commands of `sealpost queue` do, carried out
 * by the queue process on the scheduler's thread (queue_control.h) and
 * answered in text (docs/OPERATIONS.md "Inspecting the queue"):
 *
 *   ok | fail REASON        first line: done, or refused (exit status 1)
 *   ...                     the output lines (list, show, what was done)
 *   .                       the end; a cut answer has none
 *
 * Every mutating command is logged (event=queue_admin action=...).
 *
 * Trusts: the spool (queue.h) and a parsed command (queue_command.h).
 */
#ifndef SEALPOST_QUEUE_QUEUE_ADMIN_H
#define SEALPOST_QUEUE_QUEUE_ADMIN_H

#include <stdbool.h>
#include <sys/types.h>

#include <event2/buffer.h>

#include "queue/queue.h"
#include "queue/queue_command.h"
#include "queue/scheduler.h"

/* The header bytes `show` prints at most. */
#define QUEUE_SHOW_HEADERS_MAX (64 * 1024)

/* Messages `list` and `flush` (all) look at per step: each step reads
 * that many envelopes from the spool on the scheduler's loop, which also
 * starts deliveries and takes their results, so a queue of 100,000
 * messages is walked in short steps with that work in between, never in
 * one go. */
#define QUEUE_ADMIN_STEP 200

struct queue_admin_walk;

/*
 * Carry out cmd (for client uid, logged) and append the answer to out:
 * NULL when the answer is complete. For list and flush (all), a walk
 * over the messages the spool holds now: call queue_admin_step until it
 * returns true (the answer is then complete), then queue_admin_walk_free.
 */
struct queue_admin_walk *queue_admin_run(struct scheduler *s, struct queue *q,
                                         const struct queue_cmd *cmd, long uid,
                                         struct evbuffer *out);
bool queue_admin_step(struct queue_admin_walk *w, struct evbuffer *out);
void queue_admin_walk_free(struct queue_admin_walk *w);

#endif

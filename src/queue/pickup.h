/*
 * pickup.h - the queue process takes the files `sealpost sendmail` left
 * in <spool>/maildrop/ (mail/maildrop_format.h) and queues each as a
 * normal message: at start, then every PICKUP_INTERVAL_MS.
 *
 * Trusts: the kernel's word on who owns a file (fstat), nothing in it.
 * Any local user can write into the maildrop (mode 1733), so every file
 * is opened without following links, must be a regular file with one
 * link and a bounded size, and is parsed strictly; one that fails is
 * moved to <spool>/maildrop-rejected/ and logged with its owner's uid,
 * never deleted silently. A file is removed only after its message is
 * committed (at-least-once: a crash between the two queues it twice).
 */
#ifndef SEALPOST_QUEUE_PICKUP_H
#define SEALPOST_QUEUE_PICKUP_H

#include <event2/event.h>

#include "config/config.h"
#include "queue/queue.h"
#include "queue/queue_server.h"

#define PICKUP_INTERVAL_MS   1000
#define PICKUP_BATCH         100        /* files per round; the rest wait for the next */
#define PICKUP_SCAN_MAX      1000       /* folder entries looked at per round */
/* A round stops taking files after this long: each commit waits for the
 * disk on the queue's main loop, which also serves the workers, so a
 * flood of local submissions may delay their commits by this much a
 * second, never more. */
#define PICKUP_ROUND_BUDGET_MS 100
#define PICKUP_STALE_SECONDS 86400      /* an unfinished ".tmp." file this old is moved aside */
#define MAILDROP_DIR          "maildrop"
#define MAILDROP_REJECTED_DIR "maildrop-rejected"

struct pickup;

/* NULL (logged) when the maildrop cannot be opened: the queue runs on
 * without local submission. */
struct pickup *pickup_start(struct event_base *base, const struct config *cfg,
                            struct queue *q, struct queue_server *qs);
void pickup_free(struct pickup *p);

#endif

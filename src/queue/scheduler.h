/*
 * scheduler.h - picks committed messages from the queue and delivers
 * them; retries failed recipients after cfg->delivery_retry seconds.
 *
 * Runs in its own thread so that file-system work (Maildir writes and
 * fsyncs) never stalls the SMTP event loop. scheduler_enqueue() is safe
 * to call from any thread. Trusts the config and the spool.
 */
#ifndef SEALPOST_QUEUE_SCHEDULER_H
#define SEALPOST_QUEUE_SCHEDULER_H

#include "config/config.h"
#include "queue/queue.h"

struct scheduler;

struct scheduler *scheduler_start(const struct config *cfg, struct queue *q);
/* A message is ready (just committed, or found at start-up). */
void scheduler_enqueue(const char *id, void *scheduler);
/* The channel to a (re)started delivery process (remote_client.h); takes
 * ownership of fd. Safe to call from any thread. */
void scheduler_set_delivery_channel(struct scheduler *s, int fd);
/* The same for the local delivery process of slot ([domain] owner,
 * config_local_owners); a slot the config does not have is refused (fd
 * closed, logged). Safe to call from any thread. */
void scheduler_set_local_channel(struct scheduler *s, int32_t slot, int fd);
/* The slot that stands for the LMTP delivery process (IPC_LMTP_CHANNEL;
 * refused like a bad slot when no [domain] delivers over LMTP). */
#define SCHEDULER_LMTP_SLOT (-1)

/* TLS-RPT: start the daily reports (tlsrpt_mail.h) now and hourly; call
 * once the spool is scanned and commits notify the scheduler, so a report
 * queued at start is never missed. No-op when [tlsrpt] is off. */
void scheduler_start_reports(struct scheduler *s);
/* The listening control socket (queue_control.h), served on the
 * scheduler's thread from then on; takes ownership of fd. Safe to call
 * from any thread. */
void scheduler_set_control(struct scheduler *s, int fd);

/* For queue_admin.c only, on the scheduler's thread (a control request):
 * whether a round of id is in progress; attempt every pending recipient
 * of id now (its job no longer held); keep id's job from running
 * (ID.state says held already); drop id's job (the message is gone). */
bool scheduler_in_delivery(const struct scheduler *s, const char *id);
void scheduler_retry_now(struct scheduler *s, const char *id);
void scheduler_set_held(struct scheduler *s, const char *id);
void scheduler_forget(struct scheduler *s, const char *id);

/* Finish the delivery in progress, then stop the thread. */
void scheduler_stop(struct scheduler *s);

#endif

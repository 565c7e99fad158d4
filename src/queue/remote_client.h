/*
 * remote_client.h - the queue process's side of remote delivery: hands
 * outbound jobs to the delivery process over a channel (util/ipc.h,
 * mail/remote_codec.h) and runs each job's done callback when the
 * result comes back.
 *
 * The delivery process is restarted by the master after a crash and
 * then arrives on a new channel (remote_client_set_channel). Jobs sent
 * on a channel that dies (EOF, a send error, a malformed result) end as
 * deferred with 4.3.0, so their recipients are retried on the normal
 * schedule: at-least-once, as everywhere in sealpost. Jobs submitted
 * while there is no channel wait for the next one.
 *
 * Trusts: nothing in a result beyond what remote_result_decode checked,
 * and a result must name a job sent on the same channel with the same
 * number of recipients. Runs on the scheduler thread's event base.
 */
#ifndef SEALPOST_QUEUE_REMOTE_CLIENT_H
#define SEALPOST_QUEUE_REMOTE_CLIENT_H

#include <event2/event.h>

#include "mail/delivery_job.h"
#include "mail/tlsrpt_codec.h"

struct remote_client;

/* spool: where the MTA-STS policy cache lives (sts_store.h); policies
 * the delivery process fetched are stored there, and handed to each new
 * delivery process before its first job. */
struct remote_client *remote_client_new(struct event_base *base, const char *spool);
/*
 * The same for a local delivery process ([domain] owner = USER): the
 * same job and result messages, log lines event=local_channel_* with
 * owner=USER, and a job submitted while that process is not running is
 * deferred with 4.3.0 at once instead of waiting for it (its restart may
 * be throttled for a long time; the recipient is retried on the local
 * schedule).
 */
struct remote_client *remote_client_new_local(struct event_base *base, const char *owner);
/* The same for the LMTP delivery process ([domain] deliver = lmtp:...):
 * log lines event=lmtp_channel_*, and a job submitted while it is not
 * running is deferred with 4.3.0 at once (retried on the local schedule). */
struct remote_client *remote_client_new_lmtp(struct event_base *base);
/* Receives each TLS-RPT record (IPC_TLSRPT_RECORD) once
 * tlsrpt_record_decode accepted it; a record it refuses is garbage and
 * drops the channel like a malformed result. */
typedef void (*remote_tlsrpt_cb)(struct tlsrpt_record *r, void *arg);
void remote_client_on_tlsrpt(struct remote_client *rc, remote_tlsrpt_cb cb, void *arg);

/* A new delivery process: its channel replaces the old one (whose jobs
 * are deferred) and the waiting jobs are sent. Takes ownership of fd. */
void remote_client_set_channel(struct remote_client *rc, int fd);
/* job->rcpt_count must be 1..REMOTE_JOB_MAX_RCPTS; job->msg->fd is lent to
 * the delivery process as a read-only duplicate. done runs exactly once,
 * later (or never, after remote_client_free). */
void remote_client_submit(struct remote_client *rc, struct outbound_job *job);
/* Close the channel; pending jobs never complete (their messages stay
 * queued and are retried after a restart). */
void remote_client_free(struct remote_client *rc);

#endif

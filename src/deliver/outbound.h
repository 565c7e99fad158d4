/*
 * outbound.h - remote delivery: per-destination queues, connection
 * limits and reuse, on top of dns.c (where does mail for a domain go) and
 * smtp_client.c (talk SMTP to it).
 *
 * A destination is a recipient domain, or the configured relayhost for
 * all remote mail. Each destination has at most
 * relay.destination_concurrency connections and all destinations together
 * at most relay.max_outbound_connections, so one slow destination never
 * starves the others. Trusts: the config; everything remote is handled by
 * the modules below it.
 */
#ifndef SEALPOST_DELIVER_OUTBOUND_H
#define SEALPOST_DELIVER_OUTBOUND_H

#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "deliver/smtp_client.h"
#include "queue/queue.h"

struct outbound;
struct outbound_job;

/*
 * results[i] is for job->rcpt_index[i]. relay is "host[addr]:port" of the
 * server that answered (or "" when none did); tls its TLS summary or NULL.
 */
typedef void (*outbound_done_cb)(struct outbound_job *job, const struct smtp_result *results,
                                 const char *relay, const char *tls);

struct outbound_job {
    const struct queued_message *msg;   /* stays valid until done runs */
    size_t *rcpt_index;                 /* recipients of msg going to destination */
    size_t rcpt_count;
    char destination[256];              /* lower-case domain, or "[literal]" */
    outbound_done_cb done;
    void *arg;
    bool dsn_passed;                    /* out: the next hop took NOTIFY/ORCPT */
    struct outbound_job *next;          /* private */
};

struct outbound *outbound_new(struct event_base *base, const struct config *cfg,
                              char *err, size_t errsize);
/* Queue a job; done runs exactly once, later. */
void outbound_submit(struct outbound *ob, struct outbound_job *job);
/* Run job->done with the same result r for every recipient (relay "" when
 * no server answered; no TLS). */
void outbound_job_finish_all(struct outbound_job *job, const struct smtp_result *r,
                             const char *relay);
/* Drop every connection; pending jobs never complete (their messages stay
 * queued and are retried after a restart). */
void outbound_free(struct outbound *ob);

#endif

/*
 * delivery_job.h - a delivery job and its results: what the queue asks
 * of remote delivery (this message, these recipients, this destination)
 * and what comes back (one SMTP outcome per recipient). The queue
 * process builds jobs from committed messages; the delivery process
 * rebuilds them from the channel (mail/remote_codec.h) and runs them.
 *
 * Trusts: nothing by itself; the codec checks what crosses the channel.
 */
#ifndef SEALPOST_MAIL_DELIVERY_JOB_H
#define SEALPOST_MAIL_DELIVERY_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"
#include "mail/smtp_result.h"

enum rcpt_status { RCPT_PENDING = 0, RCPT_DELIVERED, RCPT_FAILED };

struct rcpt_state {
    enum rcpt_status status;
    unsigned attempts;
    int64_t next_attempt;           /* unix seconds, for pending */
};

/* A committed message as the queue loaded it (queue_load), or as the
 * delivery process knows it from a job (no state there). */
struct queued_message {
    struct envelope env;
    struct rcpt_state *state;       /* env.rcpt_count entries */
    int fd;                         /* spool file, read-only */
    long body_offset;
    uint64_t body_size;
    bool warned;                    /* a delay warning (DSN) was sent */
    /* queue process only (ID.state, docs/SPOOL.md): */
    bool held;                      /* `sealpost queue hold`: no attempts */
    char **last_error;              /* per recipient, NULL or its last
                                       deferral or failure; NULL: none yet */
    bool *error_unsaved;            /* with last_error: not yet in ID.state */
};

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
    bool tls_required_no;               /* "TLS-Required: No" (RFC 8689 5), set by
                                           the delivery process: opportunistic */
    struct outbound_job *next;          /* private */
};

/* Run job->done with the same result r for every recipient (relay "" when
 * no server answered; no TLS). */
void outbound_job_finish_all(struct outbound_job *job, const struct smtp_result *r,
                             const char *relay);

#endif

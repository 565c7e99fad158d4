/*
 * scheduler.c - the delivery thread (see scheduler.h).
 *
 * The thread runs its own libevent loop: local recipients of domains the
 * queue user owns are delivered to Maildir on the spot, those of domains
 * with another [domain] owner are handed to that owner's local delivery
 * process, remote ones to the delivery process (both remote_client.c),
 * grouped by owner or destination, at most REMOTE_JOB_MAX_RCPTS to a
 * job. When every recipient of a round has an answer, failures
 * are reported in one DSN (bounce.c), and the round's results are made
 * durable with one append to ID.state (queue_record) - or not at all when
 * every recipient is final, since the message then leaves the queue. Retry
 * times live in the spool, so a restart keeps the schedule.
 *
 * Order of durable steps: DSN queued first, then the round's states
 * recorded (or the message removed). A crash in between repeats the DSN
 * and may repeat this round's deliveries (at-least-once), never loses
 * either.
 *
 * Log lines: addresses, the relay and TLS summary the delivery process
 * reports and every reply text come from outside (a client, a next hop,
 * a possibly subverted delivery process) and reach the log only through
 * log_quote() or log_value(), so none can add a field or put a raw
 * byte >= 0x80 into a line.
 */
#include "queue/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "queue/bounce.h"
#include "mail/maildir.h"
#include "mail/delivery_job.h"
#include "queue/queue_control.h"
#include "queue/remote_client.h"
#include "queue/tlsrpt_mail.h"
#include "queue/tlsrpt_store.h"
#include "mail/remote_codec.h"
#include "util/ascii.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

struct job {
    char id[QUEUE_ID_LEN + 1];
    time_t due;
    bool held;                      /* on hold (queue_admin.h): never run */
    bool force;                     /* flush/release: every pending recipient now */
    time_t arrival;                 /* once loaded, for the queue age metric; 0: new */
};

/* Per-recipient outcome of the current round, kept until the round ends. */
struct rcpt_round {
    bool changed;                   /* state to record when the round ends */
    bool failed;                    /* permanent failure this round */
    bool notify_success;            /* NOTIFY=SUCCESS: report delivered/relayed */
    bool relayed;                   /* handed to a next hop without DSN support */
    char status[16];
    char diagnostic[512];
    char remote[300];
};

struct remote_job;

/* One message being worked on. */
struct delivery {
    struct scheduler *s;
    struct queued_message m;
    struct rcpt_round *round;
    unsigned outstanding;           /* outbound jobs not yet done */
    struct remote_job *jobs;        /* those jobs, for scheduler_stop */
    struct delivery *next;
};

struct scheduler {
    const struct config *cfg;
    struct queue *queue;
    pthread_t thread;
    struct event_base *base;
    struct remote_client *remote;
    int wake_fd;                    /* eventfd: enqueue, new channel, or stop */
    struct event *wake_event, *timer;

    pthread_mutex_t lock;           /* protects incoming, new_channel(s) and stop */
    char (*incoming)[QUEUE_ID_LEN + 1];
    size_t incoming_count, incoming_alloc;
    int new_channel;                /* from a restarted delivery process, or -1 */
    int new_local[CONFIG_MAX_DOMAINS];  /* from restarted local processes, or -1 */
    struct remote_client *local[CONFIG_MAX_DOMAINS];   /* one per [domain] owner */
    size_t local_count;
    struct remote_client *lmtp;     /* [domain] deliver = lmtp: (NULL: none) */
    int new_lmtp;                   /* from a restarted lmtp process, or -1 */
    bool stop;
    bool reports_go;                /* scheduler_start_reports was called */

    struct tlsrpt_store *tlsrpt;    /* TLS-RPT records; NULL when [tlsrpt] is off */
    struct event *tlsrpt_timer;     /* the daily reports: at start, then hourly */

    struct job *jobs;               /* thread-private from here on */
    size_t count, alloc;
    struct delivery *active;

    int new_control;                /* the control socket (queue_control.h), or -1 */
    struct queue_control *control;  /* serves `sealpost queue` on this thread */
};

static void arm_timer(struct scheduler *s);

static bool is_active(const struct scheduler *s, const char *id)
{
    for (const struct delivery *d = s->active; d; d = d->next) {
        if (strcmp(d->m.env.id, id) == 0)
            return true;
    }
    return false;
}

static struct job *add_job(struct scheduler *s, const char *id, time_t due)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->jobs[i].id, id) == 0) {
            if (due < s->jobs[i].due)
                s->jobs[i].due = due;
            return &s->jobs[i];
        }
    }
    if (s->count == s->alloc) {
        s->alloc = s->alloc ? s->alloc * 2 : 64;
        s->jobs = xrealloc(s->jobs, s->alloc * sizeof(*s->jobs));
    }
    memset(&s->jobs[s->count], 0, sizeof(s->jobs[0]));
    snprintf(s->jobs[s->count].id, sizeof(s->jobs[0].id), "%s", id);
    s->jobs[s->count].due = due;
    return &s->jobs[s->count++];
}

void scheduler_enqueue(const char *id, void *arg)
{
    struct scheduler *s = arg;
    uint64_t one = 1;

    if (s->cfg->queue.hold)
        return;     /* [queue] hold = yes: mail stays queued */
    pthread_mutex_lock(&s->lock);
    if (s->incoming_count == s->incoming_alloc) {
        s->incoming_alloc = s->incoming_alloc ? s->incoming_alloc * 2 : 64;
        s->incoming = xrealloc(s->incoming, s->incoming_alloc * sizeof(*s->incoming));
    }
    snprintf(s->incoming[s->incoming_count++], QUEUE_ID_LEN + 1, "%s", id);
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* eventfd counter full: the thread is awake anyway */
    }
}

void scheduler_set_delivery_channel(struct scheduler *s, int fd)
{
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    if (s->new_channel >= 0)
        close(s->new_channel);      /* superseded before the thread saw it */
    s->new_channel = fd;
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* eventfd counter full: the thread is awake anyway */
    }
}

void scheduler_set_local_channel(struct scheduler *s, int32_t slot, int fd)
{
    uint64_t one = 1;

    if (slot == SCHEDULER_LMTP_SLOT && s->lmtp != NULL) {
        pthread_mutex_lock(&s->lock);
        if (s->new_lmtp >= 0)
            close(s->new_lmtp);
        s->new_lmtp = fd;
        pthread_mutex_unlock(&s->lock);
        if (write(s->wake_fd, &one, sizeof(one)) < 0) {
            /* eventfd counter full: the thread is awake anyway */
        }
        return;
    }
    if (slot < 0 || (size_t)slot >= s->local_count) {
        log_error("event=ipc_garbage peer=master reason=\"local slot %ld out of range\"",
                  (long)slot);
        close(fd);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->new_local[slot] >= 0)
        close(s->new_local[slot]);
    s->new_local[slot] = fd;
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* eventfd counter full: the thread is awake anyway */
    }
}

/* --- retry policy --- */

static unsigned retry_interval(const struct config *cfg, unsigned attempts, bool local)
{
    const struct relay_config *rc = &cfg->relay;
    unsigned base;

    if (local || rc->retry_count == 0)
        base = cfg->delivery_retry;
    else
        base = rc->retry[attempts - 1 < rc->retry_count ? attempts - 1 : rc->retry_count - 1];
    /* +-10% jitter so that deferred messages do not retry in lockstep */
    if (base >= 10)
        base = base - base / 10 + (unsigned)(random() % (base / 5 + 1));
    return base;
}

static unsigned lifetime(const struct config *cfg, const struct envelope *env)
{
    return env->from[0] ? cfg->relay.max_queue_lifetime : cfg->relay.bounce_lifetime;
}

/* --- recording results --- */

/* A recipient's new state: kept in memory now, written when the round
 * ends (record_round). */
static void record(struct delivery *d, size_t i, const struct rcpt_state *st)
{
    d->m.state[i] = *st;
    d->round[i].changed = true;
}

/* Every state changed this round, in one durable append. */
static void record_round(struct delivery *d)
{
    size_t *idx = xcalloc(d->m.env.rcpt_count, sizeof(*idx)), n = 0;

    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        if (d->round[i].changed)
            idx[n++] = i;
    }
    if (!queue_record(d->s->queue, &d->m, idx, n))
        log_error("event=state_write_failed id=%s error=\"%s\"", d->m.env.id, strerror(errno));
    /* on failure: go on in memory; at worst a duplicate after a restart */
    free(idx);
}

/* Room for log_quote() of a result text or a relay (at most 600 bytes;
 * longer ones are cut with "..."), and of a Maildir path. */
#define LOG_VALUE_MAX (4 * 600 + 8)
#define LOG_PATH_MAX (4 * 4096 + 8)

/* "<addr>" of recipient i as a log value. */
static const char *log_rcpt(char *out, size_t outsize, const struct delivery *d, size_t i)
{
    char angle[ADDR_PATH_MAX + 3];

    snprintf(angle, sizeof(angle), "<%s>", d->m.env.rcpts[i].addr);
    return log_value(out, outsize, angle);
}

/* What a NOTIFY=SUCCESS recipient gets told (RFC 3461 4.2). */
enum success_report {
    REPORT_NONE,                    /* the next hop took over DSN duties */
    REPORT_DELIVERED,               /* final delivery here (Maildir) */
    REPORT_RELAYED,                 /* next hop without DSN support */
};

/* The transport label of a result's relay (util/metrics.h). */
static enum metrics_transport transport_of(const char *relay)
{
    if (relay && strncmp(relay, "lmtp:", 5) == 0)
        return METRICS_TRANSPORT_LMTP;
    return relay && strcmp(relay, "maildir") == 0 ? METRICS_TRANSPORT_MAILDIR
                                                   : METRICS_TRANSPORT_SMTP;
}

/* path: the Maildir for a local delivery (relay "maildir"), else NULL. */
static void rcpt_delivered(struct delivery *d, size_t i, const char *relay, const char *path,
                           const char *tls, const char *reply, enum success_report report)
{
    struct rcpt_state st = d->m.state[i];
    time_t now = time(NULL);
    char qto[4 * ADDR_PATH_MAX + 16], qrelay[LOG_VALUE_MAX], qpath[LOG_PATH_MAX];
    char qtls[4 * 256 + 8], qreply[LOG_VALUE_MAX];

    if ((d->m.env.rcpts[i].notify & DSN_NOTIFY_SUCCESS) && report != REPORT_NONE) {
        d->round[i].notify_success = true;
        d->round[i].relayed = report == REPORT_RELAYED;
        snprintf(d->round[i].remote, sizeof(d->round[i].remote), "%s", relay);
    }
    st.status = RCPT_DELIVERED;
    st.attempts++;
    st.next_attempt = 0;
    record(d, i, &st);
    /* The latency first: whoever sees the delivery counted sees its latency. */
    metrics_observe(METRICS_H_DELIVERY_SECONDS,
                    now > d->m.env.arrival ? (uint64_t)(now - d->m.env.arrival) : 0);
    metrics_outcome(transport_of(relay), METRICS_OUTCOME_DELIVERED);
    tls = tls ? tls : "none";
    reply = reply ? reply : "";
    log_info("event=delivered id=%s to=%s relay=%s%s%s delay=%llds attempts=%u tls=%s "
             "status=sent reply=%s", d->m.env.id, log_rcpt(qto, sizeof(qto), d, i),
             log_value(qrelay, sizeof(qrelay), relay), path ? " path=" : "",
             path ? log_quote(qpath, sizeof(qpath), path, strlen(path)) : "",
             (long long)(now - d->m.env.arrival), st.attempts,
             log_quote(qtls, sizeof(qtls), tls, strlen(tls)),
             log_quote(qreply, sizeof(qreply), reply, strlen(reply)));
}

/* Permanent failure: reported and recorded when the round ends. */
static void rcpt_failed(struct delivery *d, size_t i, const char *status, const char *text,
                        const char *relay)
{
    struct rcpt_round *r = &d->round[i];
    char qto[4 * ADDR_PATH_MAX + 16], qrelay[LOG_VALUE_MAX], qtext[LOG_VALUE_MAX];
    char qdsn[4 * sizeof(r->status) + 8];

    r->failed = true;
    metrics_outcome(transport_of(relay), METRICS_OUTCOME_BOUNCED);
    snprintf(r->status, sizeof(r->status), "%s", status[0] ? status : "5.0.0");
    queue_note_error(&d->m, i, r->status, text);
    snprintf(r->diagnostic, sizeof(r->diagnostic), "%s", text);
    snprintf(r->remote, sizeof(r->remote), "%s", relay ? relay : "");
    log_info("event=bounced id=%s to=%s relay=%s dsn=%s status=bounced reply=%s",
             d->m.env.id, log_rcpt(qto, sizeof(qto), d, i),
             log_value(qrelay, sizeof(qrelay), relay && relay[0] ? relay : "none"),
             log_value(qdsn, sizeof(qdsn), r->status),
             log_quote(qtext, sizeof(qtext), text, strlen(text)));
}

static void rcpt_deferred(struct delivery *d, size_t i, const char *status, const char *text,
                          const char *relay, bool local)
{
    struct rcpt_state st = d->m.state[i];
    time_t now = time(NULL);
    char expired[600], qto[4 * ADDR_PATH_MAX + 16], qrelay[LOG_VALUE_MAX];
    char qdsn[4 * 16 + 8], qtext[LOG_VALUE_MAX];

    st.attempts++;
    if (now - d->m.env.arrival >= (time_t)lifetime(d->s->cfg, &d->m.env)) {
        snprintf(expired, sizeof(expired), "message expired after %llds in the queue; "
                 "last error: %s", (long long)(now - d->m.env.arrival), text);
        d->m.state[i].attempts = st.attempts;
        rcpt_failed(d, i, "4.4.7", expired, relay);
        return;
    }
    st.next_attempt = now + retry_interval(d->s->cfg, st.attempts, local);
    metrics_outcome(transport_of(relay), METRICS_OUTCOME_DEFERRED);
    queue_note_error(&d->m, i, status[0] ? status : "4.0.0", text);
    record(d, i, &st);
    snprintf(d->round[i].diagnostic, sizeof(d->round[i].diagnostic), "%s", text);
    log_info("event=deferred id=%s to=%s relay=%s dsn=%s attempts=%u retry_in=%llds "
             "status=deferred reply=%s", d->m.env.id, log_rcpt(qto, sizeof(qto), d, i),
             log_value(qrelay, sizeof(qrelay), relay && relay[0] ? relay : "none"),
             log_value(qdsn, sizeof(qdsn), status[0] ? status : "4.0.0"), st.attempts,
             (long long)(st.next_attempt - now), log_quote(qtext, sizeof(qtext), text,
                                                           strlen(text)));
}

/* --- a delivery round --- */

/* NOTIFY=SUCCESS recipients delivered (or relayed) this round. */
static void report_successes(struct delivery *d, time_t now)
{
    struct bounce_rcpt *b = xcalloc(d->m.env.rcpt_count, sizeof(*b));
    size_t nb = 0;
    char id[QUEUE_ID_LEN + 1], err[256];

    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        struct rcpt_round *r = &d->round[i];

        if (!r->notify_success)
            continue;
        b[nb].index = i;
        b[nb].action = r->relayed ? BOUNCE_RELAYED : BOUNCE_DELIVERED;
        b[nb].status = "2.0.0";
        b[nb].remote_mta = r->relayed ? r->remote : NULL;
        b[nb].last_attempt = now;
        nb++;
    }
    if (nb && bounce_queue(d->s->queue, d->s->cfg, &d->m, b, nb, id, err, sizeof(err)))
        log_info("event=success_dsn id=%s dsn_id=%s rcpts=%zu", d->m.env.id, id, nb);
    free(b);
}

/* Once per message: a delay DSN for the recipients still pending after
 * relay.bounce_after_warning (RFC 3464 Action: delayed). */
static void maybe_warn(struct delivery *d, time_t now)
{
    const struct config *cfg = d->s->cfg;
    struct bounce_rcpt *b;
    size_t nb = 0;
    char id[QUEUE_ID_LEN + 1], err[256];

    if (cfg->relay.bounce_after_warning == 0 || d->m.warned || !d->m.env.from[0] ||
        now - d->m.env.arrival < (time_t)cfg->relay.bounce_after_warning)
        return;
    b = xcalloc(d->m.env.rcpt_count, sizeof(*b));
    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        if (d->m.state[i].status != RCPT_PENDING)
            continue;
        b[nb].index = i;
        b[nb].action = BOUNCE_DELAYED;
        b[nb].status = "4.0.0";
        b[nb].diagnostic = d->round[i].diagnostic[0] ? d->round[i].diagnostic : NULL;
        b[nb].last_attempt = now;
        nb++;
    }
    if (nb && bounce_queue(d->s->queue, cfg, &d->m, b, nb, id, err, sizeof(err)))
        log_info("event=delay_warning id=%s dsn_id=%s rcpts=%zu", d->m.env.id, id, nb);
    if (nb)
        queue_record_warned(d->s->queue, &d->m);
    free(b);
}

static void round_finish(struct delivery *d)
{
    struct scheduler *s = d->s;
    struct bounce_rcpt *b = xcalloc(d->m.env.rcpt_count, sizeof(*b));
    size_t nb = 0;
    time_t next = 0, now = time(NULL);
    bool all_final = true;
    char bounce_id[QUEUE_ID_LEN + 1], err[256];

    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        if (!d->round[i].failed)
            continue;
        b[nb].index = i;
        b[nb].action = BOUNCE_FAILED;
        b[nb].status = d->round[i].status;
        b[nb].remote_mta = d->round[i].remote[0] ? d->round[i].remote : NULL;
        b[nb].diagnostic = d->round[i].diagnostic;
        b[nb].last_attempt = now;
        nb++;
    }
    if (nb) {
        if (bounce_queue(s->queue, s->cfg, &d->m, b, nb, bounce_id, err, sizeof(err)))
            log_info("event=dsn id=%s dsn_id=%s rcpts=%zu", d->m.env.id, bounce_id, nb);
        else
            log_info("event=dsn_skipped id=%s reason=\"%s\"", d->m.env.id, err);
        for (size_t k = 0; k < nb; k++) {
            struct rcpt_state st = d->m.state[b[k].index];
            st.status = RCPT_FAILED;
            st.next_attempt = 0;
            record(d, b[k].index, &st);
        }
    }
    free(b);
    report_successes(d, now);
    maybe_warn(d, now);
    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        if (d->m.state[i].status != RCPT_PENDING)
            continue;
        all_final = false;
        if (next == 0 || d->m.state[i].next_attempt < next)
            next = (time_t)d->m.state[i].next_attempt;
    }
    if (all_final) {
        /* No state to write: the message itself goes. */
        queue_remove(s->queue, d->m.env.id);
        log_info("event=removed id=%s", d->m.env.id);
    } else {
        record_round(d);
        add_job(s, d->m.env.id, next)->arrival = d->m.env.arrival;
    }
    for (struct delivery **p = &s->active; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    queue_unload(&d->m);
    free(d->round);
    free(d);
    arm_timer(s);
}

struct remote_job {
    struct outbound_job job;        /* first: outbound hands this pointer back */
    struct delivery *d;
    struct remote_job *next;
};

static void remote_job_free(struct delivery *d, struct remote_job *rj)
{
    for (struct remote_job **p = &d->jobs; *p; p = &(*p)->next) {
        if (*p == rj) {
            *p = rj->next;
            break;
        }
    }
    free(rj->job.rcpt_index);
    free(rj);
}

static void remote_done(struct outbound_job *job, const struct smtp_result *results,
                        const char *relay, const char *tls)
{
    struct remote_job *rj = (struct remote_job *)job;
    struct delivery *d = rj->d;

    for (size_t k = 0; k < job->rcpt_count; k++) {
        size_t i = job->rcpt_index[k];
        const struct smtp_result *r = &results[k];

        if (r->outcome == SMTP_DELIVERED)
            rcpt_delivered(d, i, relay, NULL, tls, r->text,
                           job->dsn_passed ? REPORT_NONE : REPORT_RELAYED);
        else if (r->outcome == SMTP_FAILED)
            rcpt_failed(d, i, r->dsn, r->text, relay);
        else
            rcpt_deferred(d, i, r->dsn, r->text, relay, false);
    }
    remote_job_free(d, rj);
    if (--d->outstanding == 0)
        round_finish(d);
}

static const char *domain_of(const char *addr);

/* The LMTP process's answers (RFC 2033: one per recipient): delivered,
 * bounced on a 5xx (the DSN carries the LMTP server's reply), deferred on
 * the local retry schedule otherwise. */
static void lmtp_done(struct outbound_job *job, const struct smtp_result *results,
                      const char *relay, const char *tls)
{
    struct remote_job *rj = (struct remote_job *)job;
    struct delivery *d = rj->d;

    (void)tls;
    for (size_t k = 0; k < job->rcpt_count; k++) {
        size_t i = job->rcpt_index[k];
        const struct smtp_result *r = &results[k];

        if (r->outcome == SMTP_DELIVERED)
            rcpt_delivered(d, i, relay, NULL, NULL, r->text, REPORT_DELIVERED);
        else if (r->outcome == SMTP_FAILED)
            rcpt_failed(d, i, r->dsn, r->text, relay);
        else
            rcpt_deferred(d, i, r->dsn[0] == '4' ? r->dsn : "4.3.0", r->text, relay, true);
    }
    remote_job_free(d, rj);
    if (--d->outstanding == 0)
        round_finish(d);
}

/* Hand the due LMTP recipients to the lmtp process, one job per domain
 * (one LMTP target) of at most REMOTE_JOB_MAX_RCPTS recipients. */
static void submit_lmtp(struct delivery *d, bool *due)
{
    size_t n = d->m.env.rcpt_count;

    for (size_t i = 0; i < n; i++) {
        struct remote_job *rj;
        const char *dom;

        if (!due[i])
            continue;
        dom = domain_of(d->m.env.rcpts[i].addr);
        rj = xcalloc(1, sizeof(*rj));
        rj->d = d;
        rj->job.msg = &d->m;
        rj->job.rcpt_index = xcalloc(REMOTE_JOB_MAX_RCPTS, sizeof(size_t));
        snprintf(rj->job.destination, sizeof(rj->job.destination), "%s", dom);
        for (char *p = rj->job.destination; *p; p++)
            *p = ascii_lower((unsigned char)*p);
        for (size_t k = i; k < n && rj->job.rcpt_count < REMOTE_JOB_MAX_RCPTS; k++) {
            if (due[k] && strcasecmp(domain_of(d->m.env.rcpts[k].addr), dom) == 0) {
                rj->job.rcpt_index[rj->job.rcpt_count++] = k;
                due[k] = false;
            }
        }
        rj->job.done = lmtp_done;
        rj->next = d->jobs;
        d->jobs = rj;
        d->outstanding++;
        remote_client_submit(d->s->lmtp, &rj->job);
    }
}

/* A local process's answers: delivered, or else deferred (a Maildir
 * that cannot be written is never a reason to bounce, as in the queue's
 * own deliveries). */
static void local_done(struct outbound_job *job, const struct smtp_result *results,
                       const char *relay, const char *tls)
{
    struct remote_job *rj = (struct remote_job *)job;
    struct delivery *d = rj->d;

    (void)relay;
    (void)tls;
    for (size_t k = 0; k < job->rcpt_count; k++) {
        size_t i = job->rcpt_index[k];
        const struct envelope_rcpt *r = &d->m.env.rcpts[i];
        char path[4096], err[512];

        if (results[k].outcome == SMTP_DELIVERED &&
            maildir_path_for(d->s->cfg, r->addr, path, sizeof(path), err, sizeof(err)))
            rcpt_delivered(d, i, "maildir", path, NULL, NULL, REPORT_DELIVERED);
        else if (results[k].outcome == SMTP_DELIVERED)
            rcpt_delivered(d, i, "maildir", NULL, NULL, NULL, REPORT_DELIVERED);
        else
            rcpt_deferred(d, i, results[k].dsn[0] == '4' ? results[k].dsn : "4.2.0",
                          results[k].text, "maildir", true);
    }
    remote_job_free(d, rj);
    if (--d->outstanding == 0)
        round_finish(d);
}

/* Hand the recipients marked with slot k in owner[] to local process k,
 * at most REMOTE_JOB_MAX_RCPTS to a job. */
static void submit_local(struct delivery *d, int *owner)
{
    size_t n = d->m.env.rcpt_count;

    for (size_t i = 0; i < n; i++) {
        struct remote_job *rj;
        int slot = owner[i];

        if (slot < 0)
            continue;
        rj = xcalloc(1, sizeof(*rj));
        rj->d = d;
        rj->job.msg = &d->m;
        rj->job.rcpt_index = xcalloc(REMOTE_JOB_MAX_RCPTS, sizeof(size_t));
        snprintf(rj->job.destination, sizeof(rj->job.destination), "maildir");
        for (size_t k = i; k < n && rj->job.rcpt_count < REMOTE_JOB_MAX_RCPTS; k++) {
            if (owner[k] == slot) {
                rj->job.rcpt_index[rj->job.rcpt_count++] = k;
                owner[k] = -1;
            }
        }
        rj->job.done = local_done;
        rj->next = d->jobs;
        d->jobs = rj;
        d->outstanding++;
        remote_client_submit(d->s->local[slot], &rj->job);
    }
}

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : "";
}

/* Into the Maildir here when the queue user owns it; else *slot says
 * which local process delivers (and nothing happens here). */
static void deliver_local(struct delivery *d, size_t i, int *slot)
{
    const struct envelope_rcpt *r = &d->m.env.rcpts[i];
    const struct domain_config *dc = NULL;
    char path[4096], err[512];

    *slot = -1;
    if (maildir_target_for(d->s->cfg, r->addr, path, sizeof(path), &dc, err, sizeof(err))) {
        *slot = config_owner_slot(d->s->cfg, dc);
        if (*slot >= 0)
            return;
    }
    if (dc && maildir_deliver(path, d->s->cfg->hostname, d->m.env.from, r->addr, d->m.fd,
                              d->m.body_offset, d->m.body_size, err, sizeof(err))) {
        rcpt_delivered(d, i, "maildir", path, NULL, NULL, REPORT_DELIVERED);
        return;
    }
    rcpt_deferred(d, i, "4.2.0", err, "maildir", true);
}

/* Group the due remote recipients by destination and hand them out. */
static void submit_remote(struct delivery *d, bool *due)
{
    size_t n = d->m.env.rcpt_count;

    for (size_t i = 0; i < n; i++) {
        struct remote_job *rj;
        char dest[256];

        if (!due[i])
            continue;
        snprintf(dest, sizeof(dest), "%s", domain_of(d->m.env.rcpts[i].addr));
        for (char *p = dest; *p; p++)
            *p = ascii_lower((unsigned char)*p);
        rj = xcalloc(1, sizeof(*rj));
        rj->d = d;
        rj->job.msg = &d->m;
        rj->job.rcpt_index = xcalloc(REMOTE_JOB_MAX_RCPTS, sizeof(size_t));
        snprintf(rj->job.destination, sizeof(rj->job.destination), "%s", dest);
        for (size_t k = i; k < n && rj->job.rcpt_count < REMOTE_JOB_MAX_RCPTS; k++) {
            if (due[k] && strcasecmp(domain_of(d->m.env.rcpts[k].addr), dest) == 0) {
                rj->job.rcpt_index[rj->job.rcpt_count++] = k;
                due[k] = false;
            }
        }
        rj->job.done = remote_done;
        rj->next = d->jobs;
        d->jobs = rj;
        d->outstanding++;
        remote_client_submit(d->s->remote, &rj->job);
    }
}

static void deliver_message(struct scheduler *s, const char *id, bool force)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    char err[256];
    time_t now = time(NULL);
    bool *remote_due, *lmtp_due;
    int *local_slot;
    const struct domain_config *dc;

    if (!queue_load(s->queue, id, &d->m, err, sizeof(err))) {
        if (strcmp(err, "open: No such file or directory") != 0)
            log_error("event=queue_load_failed id=%s error=\"%s\"", id, err);
        free(d);
        return;
    }
    if (d->m.held) {            /* sealpost queue hold: wait for release */
        struct job *held = add_job(s, id, 0);

        held->held = true;
        held->arrival = d->m.env.arrival;
        queue_unload(&d->m);
        free(d);
        return;
    }
    d->s = s;
    d->round = xcalloc(d->m.env.rcpt_count, sizeof(*d->round));
    d->next = s->active;
    s->active = d;
    remote_due = xcalloc(d->m.env.rcpt_count, sizeof(bool));
    lmtp_due = xcalloc(d->m.env.rcpt_count, sizeof(bool));
    local_slot = xcalloc(d->m.env.rcpt_count, sizeof(int));
    d->outstanding = 1;         /* held until every job is submitted */
    for (size_t i = 0; i < d->m.env.rcpt_count; i++) {
        local_slot[i] = -1;
        if (d->m.state[i].status != RCPT_PENDING || (d->m.state[i].next_attempt > now && !force))
            continue;
        dc = config_find_domain(s->cfg, domain_of(d->m.env.rcpts[i].addr));
        if (dc != NULL && dc->deliver != NULL && s->lmtp != NULL)
            lmtp_due[i] = true;
        else if (dc != NULL)
            deliver_local(d, i, &local_slot[i]);
        else
            remote_due[i] = true;
    }
    submit_local(d, local_slot);
    submit_remote(d, remote_due);
    submit_lmtp(d, lmtp_due);
    free(lmtp_due);
    free(local_slot);
    free(remote_due);
    if (--d->outstanding == 0)
        round_finish(d);
}

/* --- the loop --- */

static void run_due(struct scheduler *s)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < s->count;) {
        if (s->jobs[i].held || s->jobs[i].due > now || is_active(s, s->jobs[i].id)) {
            i++;
            continue;
        }
        struct job job = s->jobs[i];
        s->jobs[i] = s->jobs[--s->count];
        deliver_message(s, job.id, job.force);
        i = 0;      /* deliver_message may have added jobs: rescan */
    }
    arm_timer(s);
}

/* The queue gauges (util/metrics.h): messages waiting or in delivery,
 * and the arrival of the oldest one loaded so far (a new message is not
 * older than one that has been tried). */
static void publish_queue_gauges(const struct scheduler *s)
{
    int64_t n = 0, oldest = 0;

    for (size_t i = 0; i < s->count; i++) {
        if (is_active(s, s->jobs[i].id))
            continue;
        n++;
        if (s->jobs[i].arrival > 0 && (oldest == 0 || s->jobs[i].arrival < oldest))
            oldest = s->jobs[i].arrival;
    }
    for (const struct delivery *d = s->active; d; d = d->next) {
        n++;
        if (oldest == 0 || d->m.env.arrival < oldest)
            oldest = d->m.env.arrival;
    }
    if (n > 0 && oldest == 0)
        oldest = time(NULL);
    metrics_gauge_set(METRICS_G_QUEUE_MESSAGES, n);
    metrics_gauge_set(METRICS_G_QUEUE_OLDEST_ARRIVAL, oldest);
}

static void arm_timer(struct scheduler *s)
{
    time_t now = time(NULL), due = 0;
    struct timeval tv = { 0, 0 };
    bool found = false;

    for (size_t i = 0; i < s->count; i++) {
        if (s->jobs[i].held || is_active(s, s->jobs[i].id))
            continue;       /* held; or rescheduled when its round ends */
        if (!found || s->jobs[i].due < due)
            due = s->jobs[i].due;
        found = true;
    }
    if (metrics_self != NULL)
        publish_queue_gauges(s);
    evtimer_del(s->timer);
    if (!found)
        return;
    if (due > now)
        tv.tv_sec = due - now;
    evtimer_add(s->timer, &tv);
}

/* --- TLS-RPT (tlsrpt_store.h, tlsrpt_mail.h) --- */

static void tlsrpt_record_cb(struct tlsrpt_record *r, void *arg)
{
    struct scheduler *s = arg;

    tlsrpt_store_append(s->tlsrpt, r, time(NULL));
}

#define TLSRPT_CHECK_SLACK 5    /* seconds after the full hour */

/* Report completed days, then look again just after the next full hour
 * (UTC), so a day is reported minutes after its midnight. */
static void tlsrpt_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    time_t now = time(NULL);
    struct timeval tv = { 3600 - now % 3600 + TLSRPT_CHECK_SLACK, 0 };

    (void)fd;
    (void)what;
    tlsrpt_mail_run(s->queue, s->cfg, now);
    evtimer_add(s->tlsrpt_timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_due(arg);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    uint64_t n;
    bool stop, reports;
    int channel, local[CONFIG_MAX_DOMAINS], control, lmtp;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0) {
        /* spurious wakeup */
    }
    pthread_mutex_lock(&s->lock);
    stop = s->stop;
    channel = s->new_channel;
    s->new_channel = -1;
    for (size_t k = 0; k < s->local_count; k++) {
        local[k] = s->new_local[k];
        s->new_local[k] = -1;
    }
    lmtp = s->new_lmtp;
    s->new_lmtp = -1;
    reports = s->reports_go;
    s->reports_go = false;
    control = s->new_control;
    s->new_control = -1;
    for (size_t i = 0; i < s->incoming_count; i++)
        add_job(s, s->incoming[i], 0);
    s->incoming_count = 0;
    pthread_mutex_unlock(&s->lock);
    if (channel >= 0)
        remote_client_set_channel(s->remote, channel);
    for (size_t k = 0; k < s->local_count; k++) {
        if (local[k] >= 0)
            remote_client_set_channel(s->local[k], local[k]);
    }
    if (lmtp >= 0)
        remote_client_set_channel(s->lmtp, lmtp);
    if (control >= 0 && s->control == NULL)
        s->control = queue_control_new(s->base, control, s, s->queue);
    else if (control >= 0)
        close(control);
    if (reports && s->tlsrpt_timer != NULL) {
        struct timeval now = { 0, 0 };

        evtimer_add(s->tlsrpt_timer, &now);
    }
    if (stop) {
        event_base_loopbreak(s->base);
        return;
    }
    run_due(s);
}

static void *run(void *arg)
{
    struct scheduler *s = arg;

    event_base_dispatch(s->base);
    return NULL;
}

/* One client per local delivery process ([domain] owner); their channels
 * come from the master as the processes start. */
static void start_local_clients(struct scheduler *s)
{
    const char *owners[CONFIG_MAX_DOMAINS];

    s->local_count = config_local_owners(s->cfg, owners);
    for (size_t k = 0; k < CONFIG_MAX_DOMAINS; k++)
        s->new_local[k] = -1;
    for (size_t k = 0; k < s->local_count; k++)
        s->local[k] = remote_client_new_local(s->base, owners[k]);
    s->new_lmtp = -1;
    if (config_uses_lmtp(s->cfg))
        s->lmtp = remote_client_new_lmtp(s->base);
}

struct scheduler *scheduler_start(const struct config *cfg, struct queue *q)
{
    struct scheduler *s = xcalloc(1, sizeof(*s));

    s->cfg = cfg;
    s->queue = q;
    s->new_channel = -1;
    s->new_control = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->base = event_base_new();
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->base == NULL || s->wake_fd < 0)
        fatal("event=scheduler_start_failed error=\"%s\"", strerror(errno));
    s->wake_event = event_new(s->base, s->wake_fd, EV_READ | EV_PERSIST, wake_cb, s);
    s->timer = evtimer_new(s->base, timer_cb, s);
    event_add(s->wake_event, NULL);
    /* Always: even a server that relays for nobody sends DSNs to remote
     * senders. */
    s->remote = remote_client_new(s->base, cfg->spool);
    start_local_clients(s);
    if (cfg->tlsrpt.enabled) {
        s->tlsrpt = tlsrpt_store_new(cfg->spool, cfg->tlsrpt.max_domains);
        remote_client_on_tlsrpt(s->remote, tlsrpt_record_cb, s);
        s->tlsrpt_timer = evtimer_new(s->base, tlsrpt_timer_cb, s);
    }
    if (pthread_create(&s->thread, NULL, run, s) != 0)
        fatal("event=scheduler_start_failed error=\"%s\"", strerror(errno));
    return s;
}

void scheduler_start_reports(struct scheduler *s)
{
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    s->reports_go = true;
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* the thread is awake anyway */
    }
}

void scheduler_stop(struct scheduler *s)
{
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* the thread is awake anyway */
    }
    pthread_join(s->thread, NULL);
    queue_control_free(s->control);
    if (s->new_control >= 0)
        close(s->new_control);
    remote_client_free(s->remote);
    if (s->new_channel >= 0)
        close(s->new_channel);
    for (size_t k = 0; k < s->local_count; k++) {
        remote_client_free(s->local[k]);
        if (s->new_local[k] >= 0)
            close(s->new_local[k]);
    }
    remote_client_free(s->lmtp);
    if (s->new_lmtp >= 0)
        close(s->new_lmtp);
    while (s->active) {         /* rounds cut short: retried after restart */
        struct delivery *d = s->active;
        s->active = d->next;
        while (d->jobs)
            remote_job_free(d, d->jobs);
        queue_unload(&d->m);
        free(d->round);
        free(d);
    }
    event_free(s->wake_event);
    event_free(s->timer);
    if (s->tlsrpt_timer)
        event_free(s->tlsrpt_timer);
    tlsrpt_store_free(s->tlsrpt);
    event_base_free(s->base);
    close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    free(s->incoming);
    free(s->jobs);
    free(s);
}

/* --- `sealpost queue` (queue_control.h): on the scheduler's thread --- */

void scheduler_set_control(struct scheduler *s, int fd)
{
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    if (s->new_control >= 0)
        close(s->new_control);
    s->new_control = fd;
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* the thread is awake anyway */
    }
}

bool scheduler_in_delivery(const struct scheduler *s, const char *id)
{
    return is_active(s, id);
}

void scheduler_retry_now(struct scheduler *s, const char *id)
{
    struct job *j = add_job(s, id, 0);

    j->due = 0;
    j->held = false;
    j->force = true;
    arm_timer(s);           /* runs once this callback has returned */
}

void scheduler_set_held(struct scheduler *s, const char *id)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->jobs[i].id, id) == 0)
            s->jobs[i].held = true;
    }
    arm_timer(s);
}

void scheduler_forget(struct scheduler *s, const char *id)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->jobs[i].id, id) == 0) {
            s->jobs[i] = s->jobs[--s->count];
            break;
        }
    }
    arm_timer(s);
}

/*
 * remote_client.c - outbound jobs sent to the delivery process, results
 * read back (see remote_client.h).
 *
 * Jobs in flight are kept in a small hash table by job id; a job id is
 * never reused, so a late result for a job of a dead channel can never
 * be taken for a newer one. Jobs are sent without blocking: when the
 * channel is full they stay in the waiting list, in order, and go out
 * when it has room again, so a busy delivery process never stalls the
 * queue's commits and local deliveries.
 */
#include "queue/remote_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/remote_codec.h"
#include "queue/sts_store.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BUCKETS 4096

struct in_flight {
    uint64_t id;
    struct outbound_job *job;
    struct in_flight *next;
};

struct remote_client {
    struct event_base *base;
    const char *peer;                   /* "delivery" or "local", for the log */
    char owner[48];                     /* " owner=USER" (local) or "" */
    bool defer_unconnected;             /* local: no process -> 4.3.0 at once */
    int channel;                        /* -1: no delivery process yet */
    struct event *read_ev;
    struct event *write_ev;             /* armed while the channel is full */
    bool bye;                           /* the delivery process is stopping */
    uint64_t next_id;
    struct in_flight *table[BUCKETS];
    size_t in_flight;
    struct outbound_job *wait_head, *wait_tail;   /* no channel yet */
    bool local;                         /* a local delivery process's channel */
    struct sts_store *sts;              /* NULL: the cache folder could not be opened */
    remote_tlsrpt_cb on_tlsrpt;         /* NULL: records are read and dropped */
    void *tlsrpt_arg;
    char buf[IPC_MAX_PAYLOAD];
};

static struct in_flight **bucket(struct remote_client *rc, uint64_t id)
{
    return &rc->table[id % BUCKETS];
}

static struct outbound_job *take(struct remote_client *rc, uint64_t id)
{
    for (struct in_flight **p = bucket(rc, id); *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct in_flight *f = *p;
            struct outbound_job *job = f->job;

            *p = f->next;
            free(f);
            rc->in_flight--;
            return job;
        }
    }
    return NULL;
}

static void defer_job(struct outbound_job *job, const char *why)
{
    struct smtp_result r = { .outcome = SMTP_DEFERRED, .dsn = "4.3.0" };

    snprintf(r.text, sizeof(r.text), "%s", why);
    outbound_job_finish_all(job, &r, "");
}

/* The channel is unusable: every job sent on it is retried later. An
 * orderly stop (the delivery process said goodbye) is no warning. */
static void drop_channel(struct remote_client *rc, const char *why)
{
    if (rc->channel < 0)
        return;
    if (rc->bye)
        log_info("event=%s_channel_closed%s reason=\"%s process stopped\" "
                 "jobs_deferred=%zu", rc->peer, rc->owner, rc->peer, rc->in_flight);
    else
        log_warn("event=%s_channel_closed%s reason=\"%s\" jobs_deferred=%zu", rc->peer,
                 rc->owner, why, rc->in_flight);
    rc->bye = false;
    event_free(rc->read_ev);
    rc->read_ev = NULL;
    event_free(rc->write_ev);
    rc->write_ev = NULL;
    close(rc->channel);
    rc->channel = -1;
    for (size_t b = 0; b < BUCKETS; b++) {
        while (rc->table[b]) {
            struct in_flight *f = rc->table[b];

            rc->table[b] = f->next;
            rc->in_flight--;
            defer_job(f->job, strcmp(rc->peer, "lmtp") == 0
                      ? "LMTP delivery process stopped before it reported a result"
                      : rc->defer_unconnected
                      ? "local delivery process stopped before it reported a result"
                      : "delivery process stopped before it reported a result");
            free(f);
        }
    }
}

static void handle_result(struct remote_client *rc, size_t len)
{
    static struct remote_result_msg res;     /* large: not on the stack */
    struct outbound_job *job;
    char err[128];

    if (!remote_result_decode(rc->buf, len, &res, err, sizeof(err))) {
        log_error("event=ipc_garbage peer=%s%s reason=\"%s\"", rc->peer, rc->owner, err);
        drop_channel(rc, "malformed result");
        return;
    }
    job = take(rc, res.job_id);
    if (job == NULL || job->rcpt_count != res.count) {
        log_error("event=ipc_garbage peer=%s%s reason=\"result for an unknown job\"",
                  rc->peer, rc->owner);
        if (job)
            defer_job(job, "delivery process sent a malformed result");
        drop_channel(rc, "result for an unknown job");
        return;
    }
    job->dsn_passed = res.dsn_passed;
    job->done(job, res.results, res.relay, res.tls[0] ? res.tls : NULL);
}

/* An MTA-STS policy the delivery process fetched: checked, then kept. A
 * refused record is logged, not fatal (the policy came from the net). */
static void store_policy(struct remote_client *rc, size_t len)
{
    char err[200];

    if (rc->sts == NULL)
        return;
    if (!sts_store_put(rc->sts, rc->buf, len, err, sizeof(err)))
        log_warn("event=sts_cache_refused reason=\"%s\"", err);
}

static void handle_tlsrpt(struct remote_client *rc, size_t len)
{
    static struct tlsrpt_record rec;         /* 12 KiB: not on the stack */
    char err[128];

    if (!tlsrpt_record_decode(rc->buf, len, &rec, err, sizeof(err))) {
        log_error("event=ipc_garbage peer=delivery reason=\"tlsrpt record: %s\"", err);
        drop_channel(rc, "malformed TLS-RPT record");
        return;
    }
    if (rc->on_tlsrpt)
        rc->on_tlsrpt(&rec, rc->tlsrpt_arg);
}

void remote_client_on_tlsrpt(struct remote_client *rc, remote_tlsrpt_cb cb, void *arg)
{
    rc->on_tlsrpt = cb;
    rc->tlsrpt_arg = arg;
}

/* Why a channel that did not deliver a result is dropped, for the log. */
static const char *drop_reason(const struct remote_client *rc, enum ipc_status st)
{
    if (st == IPC_EOF)
        return strcmp(rc->peer, "lmtp") == 0 ? "LMTP delivery process gone"
             : rc->defer_unconnected ? "local delivery process gone" : "delivery process gone";
    return st == IPC_ERROR ? "channel error" : "unexpected message";
}

static void channel_read(evutil_socket_t fd, short what, void *arg)
{
    struct remote_client *rc = arg;

    (void)what;
    while (rc->channel == fd) {
        enum ipc_type type;
        size_t len;
        int passed;
        enum ipc_status st = ipc_recv(fd, &type, rc->buf, sizeof(rc->buf), &len, false,
                                      &passed);

        if (st == IPC_AGAIN)
            return;
        if (st == IPC_OK && type == IPC_REMOTE_BYE && len == 0) {
            rc->bye = true;
            continue;
        }
        /* Only the delivery process fetches policies and reports on TLS;
         * from a local delivery process these records are garbage. */
        if (st == IPC_OK && type == IPC_STS_STORE && !rc->local) {
            store_policy(rc, len);
            continue;
        }
        if (st == IPC_OK && type == IPC_TLSRPT_RECORD && !rc->local) {
            handle_tlsrpt(rc, len);
            continue;
        }
        if (st != IPC_OK || type != IPC_REMOTE_RESULT) {
            if (st == IPC_OK || st == IPC_GARBAGE)
                log_error("event=ipc_garbage peer=%s%s type=%d", rc->peer, rc->owner,
                          st == IPC_OK ? (int)type : -1);
            drop_channel(rc, drop_reason(rc, st));
            return;
        }
        handle_result(rc, len);
    }
}

/* false: not sent, errno EAGAIN when the channel is full, else it broke. */
static bool send_job(struct remote_client *rc, struct outbound_job *job)
{
    const struct queued_message *m = job->msg;
    struct in_flight *f;
    size_t len;
    uint64_t id = ++rc->next_id;

    if (!remote_job_encode(id, job->destination, &m->env, job->rcpt_index, job->rcpt_count,
                           m->body_offset, m->body_size, rc->buf, sizeof(rc->buf), &len)) {
        /* Cannot happen within the documented bounds; never lose the job. */
        log_error("event=remote_job_too_large id=%s rcpts=%zu", m->env.id, job->rcpt_count);
        defer_job(job, "internal error: delivery job does not fit a message");
        return true;
    }
    if (!ipc_try_send(rc->channel, IPC_REMOTE_JOB, rc->buf, len, m->fd)) {
        rc->next_id--;                  /* never seen by the other side */
        return false;
    }
    if (rc->defer_unconnected)
        log_debug("event=local_job_sent id=%s%s job=%llu rcpts=%zu", m->env.id, rc->owner,
                  (unsigned long long)id, job->rcpt_count);
    f = xcalloc(1, sizeof(*f));
    f->id = id;
    f->job = job;
    f->next = *bucket(rc, id);
    *bucket(rc, id) = f;
    rc->in_flight++;
    return true;
}

static void enqueue_waiting(struct remote_client *rc, struct outbound_job *job)
{
    job->next = NULL;
    if (rc->wait_tail)
        rc->wait_tail->next = job;
    else
        rc->wait_head = job;
    rc->wait_tail = job;
}

/* Send what waits, in order, as long as there is a channel. */
static void send_waiting(struct remote_client *rc)
{
    while (rc->wait_head && rc->channel >= 0) {
        struct outbound_job *job = rc->wait_head;

        rc->wait_head = job->next;
        if (rc->wait_head == NULL)
            rc->wait_tail = NULL;
        if (!send_job(rc, job)) {
            int e = errno;

            /* Back to the front: it goes out when there is room, or on
             * the next channel. */
            job->next = rc->wait_head;
            rc->wait_head = job;
            if (rc->wait_tail == NULL)
                rc->wait_tail = job;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                event_add(rc->write_ev, NULL);
                return;
            }
            drop_channel(rc, strerror(e));
        }
    }
}

static void channel_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_waiting(arg);
}

void remote_client_submit(struct remote_client *rc, struct outbound_job *job)
{
    if (rc->channel < 0 && rc->defer_unconnected) {
        defer_job(job, strcmp(rc->peer, "lmtp") == 0 ? "LMTP delivery process not running"
                                                    : "local delivery process not running");
        return;
    }
    enqueue_waiting(rc, job);
    send_waiting(rc);
}

void remote_client_set_channel(struct remote_client *rc, int fd)
{
    drop_channel(rc, "replaced by a new delivery process");
    /* The policy cache first, so that it is in place before any job. */
    if (rc->sts != NULL) {
        int n = sts_store_send_all(rc->sts, fd);
        if (n > 0)
            log_info("event=sts_cache_sent policies=%d", n);
    }
    evutil_make_socket_nonblocking(fd);
    rc->channel = fd;
    rc->read_ev = event_new(rc->base, fd, EV_READ | EV_PERSIST, channel_read, rc);
    rc->write_ev = event_new(rc->base, fd, EV_WRITE, channel_writable, rc);
    event_add(rc->read_ev, NULL);
    log_info("event=%s_channel_ready%s waiting_jobs=%s", rc->peer, rc->owner,
             rc->wait_head ? "yes" : "no");
    send_waiting(rc);
}

/* What both kinds of client start with. */
static struct remote_client *client_new(struct event_base *base, const char *peer)
{
    struct remote_client *rc = xcalloc(1, sizeof(*rc));

    rc->base = base;
    rc->channel = -1;
    rc->peer = peer;
    return rc;
}

struct remote_client *remote_client_new(struct event_base *base, const char *spool)
{
    struct remote_client *rc = client_new(base, "delivery");
    char err[300];

    rc->sts = sts_store_open(spool, err, sizeof(err));
    if (rc->sts == NULL)
        log_warn("event=sts_cache_unavailable reason=\"%s\"", err);
    return rc;
}

struct remote_client *remote_client_new_local(struct event_base *base, const char *owner)
{
    struct remote_client *rc = client_new(base, "local");
    char q[4 * 33 + 8];

    rc->defer_unconnected = true;
    rc->local = true;
    snprintf(rc->owner, sizeof(rc->owner), " owner=%s", log_value(q, sizeof(q), owner));
    return rc;
}

struct remote_client *remote_client_new_lmtp(struct event_base *base)
{
    struct remote_client *rc = client_new(base, "lmtp");

    rc->defer_unconnected = true;
    rc->local = true;               /* no MTA-STS or TLS-RPT records either */
    return rc;
}

void remote_client_free(struct remote_client *rc)
{
    if (rc == NULL)
        return;
    if (rc->read_ev)
        event_free(rc->read_ev);
    if (rc->write_ev)
        event_free(rc->write_ev);
    if (rc->channel >= 0)
        close(rc->channel);
    sts_store_close(rc->sts);
    for (size_t b = 0; b < BUCKETS; b++) {
        while (rc->table[b]) {
            struct in_flight *f = rc->table[b];

            rc->table[b] = f->next;
            free(f);
        }
    }
    free(rc);
}

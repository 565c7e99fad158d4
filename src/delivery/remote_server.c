/*
 * remote_server.c - the delivery process's job loop (see remote_server.h).
 *
 * Jobs are read as soon as they arrive and results are written without
 * ever blocking (a result that does not fit the channel waits in a list
 * until it does): the queue's scheduler may block while sending a job,
 * so this side must never block while sending a result, or the two
 * could wait on each other for ever.
 */
#include "delivery/remote_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery/outbound.h"
#include "mail/remote_codec.h"
#include "mail/sts_codec.h"
#include "mail/tls_required.h"
#include "mail/tlsrpt_codec.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

struct served_job {
    struct outbound_job job;            /* first: outbound hands this pointer back */
    struct remote_server *rs;
    uint64_t id;
    struct queued_message msg;          /* env, fd, body offset and size */
    size_t rcpt_index[REMOTE_JOB_MAX_RCPTS];
    struct served_job *prev, *next;     /* every job, for remote_server_free */
};

struct pending_result {
    enum ipc_type type;                 /* IPC_REMOTE_RESULT, IPC_STS_STORE or
                                           IPC_TLSRPT_RECORD */
    size_t len;
    struct pending_result *next;
    char data[];
};

struct remote_server {
    struct event_base *base;
    struct outbound *outbound;
    int channel;
    struct event *read_ev, *write_ev;
    struct served_job *jobs;
    struct pending_result *out_head, *out_tail;
    char buf[IPC_MAX_PAYLOAD];
};

static void stop(struct remote_server *rs, const char *why)
{
    log_info("event=delivery_stopping reason=\"%s\"", why);
    event_del(rs->read_ev);
    event_del(rs->write_ev);
    event_base_loopexit(rs->base, NULL);
}

/* Write queued results until the channel is full. */
static void flush_results(struct remote_server *rs)
{
    while (rs->out_head) {
        struct pending_result *p = rs->out_head;

        if (!ipc_try_send(rs->channel, p->type, p->data, p->len, -1)) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(rs->write_ev, NULL);
                return;
            }
            stop(rs, "queue channel broken");
            return;
        }
        rs->out_head = p->next;
        if (rs->out_head == NULL)
            rs->out_tail = NULL;
        free(p);
    }
}

static void channel_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_results(arg);
}

static void job_free(struct served_job *sj)
{
    struct remote_server *rs = sj->rs;

    if (sj->prev)
        sj->prev->next = sj->next;
    else
        rs->jobs = sj->next;
    if (sj->next)
        sj->next->prev = sj->prev;
    close(sj->msg.fd);
    envelope_clear(&sj->msg.env);
    free(sj);
}

/* Queue one message for the queue, in order, and write what fits. */
static void queue_message(struct remote_server *rs, enum ipc_type type, const void *data,
                          size_t len)
{
    struct pending_result *p = xmalloc(sizeof(*p) + len);

    p->type = type;
    p->len = len;
    p->next = NULL;
    memcpy(p->data, data, len);
    if (rs->out_tail)
        rs->out_tail->next = p;
    else
        rs->out_head = p;
    rs->out_tail = p;
    flush_results(rs);
}

static void job_done(struct outbound_job *job, const struct smtp_result *results,
                     const char *relay, const char *tls)
{
    struct served_job *sj = (struct served_job *)job;
    struct remote_server *rs = sj->rs;
    static struct remote_result_msg r;       /* large: not on the stack */
    size_t len;

    memset(&r, 0, sizeof(r));
    r.job_id = sj->id;
    r.dsn_passed = job->dsn_passed;
    snprintf(r.relay, sizeof(r.relay), "%s", relay ? relay : "");
    snprintf(r.tls, sizeof(r.tls), "%s", tls ? tls : "");
    r.count = job->rcpt_count;
    memcpy(r.results, results, job->rcpt_count * sizeof(*results));
    len = remote_result_encode(&r, rs->buf, sizeof(rs->buf));
    job_free(sj);
    if (len == 0)
        fatal("event=remote_result_too_large");     /* bounded by construction */
    queue_message(rs, IPC_REMOTE_RESULT, rs->buf, len);
}

/* A TLS-RPT record (tlsrpt_note.h) for the queue, in order with the
 * results. */
static void tlsrpt_emit(const struct tlsrpt_record *r, void *arg)
{
    static char buf[IPC_MAX_PAYLOAD];   /* not rs->buf: this may run in any callback */
    struct remote_server *rs = arg;
    size_t len = tlsrpt_record_encode(r, buf, sizeof(buf));

    if (len == 0) {                     /* bounded by construction: never */
        log_error("event=tlsrpt_record_dropped reason=\"does not encode\"");
        return;
    }
    queue_message(rs, IPC_TLSRPT_RECORD, buf, len);
}

/* An MTA-STS policy was fetched: the queue keeps it under the spool. */
static void store_policy(const struct sts_record *rec, void *arg)
{
    struct remote_server *rs = arg;
    size_t len = sts_record_encode(rec, rs->buf, sizeof(rs->buf));

    if (len == 0 || rs->channel < 0)
        return;                         /* checked fields: cannot happen */
    queue_message(rs, IPC_STS_STORE, rs->buf, len);
}

/* RFC 8689 5: "TLS-Required: No" in the header, without REQUIRETLS. */
static bool wants_no_tls_policy(const struct queued_message *m)
{
    static char head[TLS_REQUIRED_SCAN_MAX];
    size_t want = m->body_size < sizeof(head) ? (size_t)m->body_size : sizeof(head);
    ssize_t n;

    if (m->env.requiretls || want == 0)
        return false;
    n = pread(m->fd, head, want, (off_t)m->body_offset);
    return n > 0 && tls_required_no(head, (size_t)n);
}

static void take_job(struct remote_server *rs, size_t len, int fd)
{
    static struct remote_job_msg m;          /* large: not on the stack */
    struct served_job *sj;
    char err[256];

    if (fd < 0 || !remote_job_decode(rs->buf, len, &m, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"%s\"",
              fd < 0 ? "job without a message file" : err);
    sj = xcalloc(1, sizeof(*sj));
    sj->rs = rs;
    sj->id = m.job_id;
    sj->msg.env = m.env;                    /* takes over the recipients */
    sj->msg.fd = fd;
    sj->msg.body_offset = (long)m.body_offset;
    sj->msg.body_size = m.body_size;
    for (size_t i = 0; i < m.env.rcpt_count; i++)
        sj->rcpt_index[i] = i;
    sj->job.msg = &sj->msg;
    sj->job.rcpt_index = sj->rcpt_index;
    sj->job.rcpt_count = m.env.rcpt_count;
    memcpy(sj->job.destination, m.destination, sizeof(sj->job.destination));
    sj->job.tls_required_no = wants_no_tls_policy(&sj->msg);
    if (sj->job.tls_required_no)
        log_info("event=tls_required_no id=%s destination=%s action=\"recipient TLS policies "
                 "(DANE, MTA-STS) do not apply: opportunistic TLS\"", sj->msg.env.id,
                 sj->job.destination);
    sj->job.done = job_done;
    sj->next = rs->jobs;
    if (rs->jobs)
        rs->jobs->prev = sj;
    rs->jobs = sj;
    outbound_submit(rs->outbound, &sj->job);
}

/* A cached MTA-STS policy from the queue (checked there, and again here). */
static void take_policy(struct remote_server *rs, size_t len)
{
    char err[200];

    if (!outbound_sts_load(rs->outbound, rs->buf, len, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"bad MTA-STS cache record: %s\"", err);
}

static void channel_read(evutil_socket_t fd, short what, void *arg)
{
    struct remote_server *rs = arg;

    (void)what;
    for (;;) {
        enum ipc_type type;
        size_t len;
        int passed;
        enum ipc_status st = ipc_recv(fd, &type, rs->buf, sizeof(rs->buf), &len, true,
                                      &passed);

        if (st == IPC_AGAIN)
            return;
        if (st == IPC_EOF || st == IPC_ERROR) {
            stop(rs, st == IPC_EOF ? "queue closed the channel" : strerror(errno));
            return;
        }
        if (st == IPC_OK && type == IPC_STS_CACHE && passed < 0) {
            take_policy(rs, len);
            continue;
        }
        if (st != IPC_OK || type != IPC_REMOTE_JOB)
            fatal("event=ipc_garbage peer=queue type=%d", st == IPC_OK ? (int)type : -1);
        take_job(rs, len, passed);
    }
}

struct remote_server *remote_server_new(struct event_base *base, const struct config *cfg,
                                        char *err, size_t errsize)
{
    struct remote_server *rs = xcalloc(1, sizeof(*rs));

    rs->base = base;
    rs->channel = -1;
    rs->outbound = outbound_new(base, cfg, err, errsize);
    if (rs->outbound == NULL) {
        free(rs);
        return NULL;
    }
    outbound_set_sts_store(rs->outbound, store_policy, rs);
    outbound_set_tlsrpt(rs->outbound, tlsrpt_emit, rs);
    return rs;
}

void remote_server_set_relay_credentials(struct remote_server *rs,
                                         const struct relay_credentials *rc)
{
    outbound_set_relay_credentials(rs->outbound, rc);
}

void remote_server_start(struct remote_server *rs, int channel)
{
    rs->channel = channel;
    outbound_start(rs->outbound);
    evutil_make_socket_nonblocking(channel);
    rs->read_ev = event_new(rs->base, channel, EV_READ | EV_PERSIST, channel_read, rs);
    rs->write_ev = event_new(rs->base, channel, EV_WRITE, channel_writable, rs);
    event_add(rs->read_ev, NULL);
}

void remote_server_free(struct remote_server *rs)
{
    if (rs == NULL)
        return;
    outbound_free(rs->outbound);        /* jobs never complete: the queue retries them */
    while (rs->jobs)
        job_free(rs->jobs);
    while (rs->out_head) {
        struct pending_result *p = rs->out_head;

        rs->out_head = p->next;
        free(p);
    }
    if (rs->read_ev)
        event_free(rs->read_ev);
    if (rs->write_ev)
        event_free(rs->write_ev);
    if (rs->channel >= 0) {
        /* Tell the queue this is an orderly stop (best effort: it retries
         * the jobs left either way). */
        ipc_try_send(rs->channel, IPC_REMOTE_BYE, NULL, 0, -1);
        close(rs->channel);
    }
    free(rs);
}

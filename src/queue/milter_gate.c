/*
 * milter_gate.c - the queue's end of the milter channels (see
 * milter_gate.h).
 *
 * Jobs (messages at commit, checks at connect/MAIL/RCPT) go out in the
 * order they came, each to the milter process with the fewest in hand;
 * each process answers its own in order, the processes in any order, so
 * an answer is matched by job id and process. A job waits here (unsent)
 * while no milter process is up, and at most MILTER_GATE_DEADLINE
 * seconds in all; a job that was sent on a channel that then broke is
 * not sent again (the message may be what broke it): the default action
 * decides it.
 *
 * Trusts: the queue's own spool; nothing the milter role sends, which is
 * decoded and checked here before it touches a message.
 */
#define _GNU_SOURCE 1              /* F_GET_SEALS */
#include "queue/milter_gate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mail/address.h"
#include "mail/envelope.h"
#include "mail/milter_check.h"
#include "mail/milter_codec.h"
#include "util/ipc.h"
#include "util/ipc_outq.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MAX_QUEUED_JOBS 100000
#define TIMER_SECONDS 5

struct gate_job {
    uint64_t id;
    struct queue_msg *msg;          /* NULL: a check (milter_check.h) */
    int stage;                      /* enum milter_when */
    char *check;                    /* a check's payload for the role, with id */
    size_t check_len;
    uint64_t asker;                 /* a check's id on the worker's channel */
    char listener[CONFIG_NAME_MAX];
    char auth_user[256];
    char auth_type[AUTH_MECH_NAME_MAX + 1];
    bool tls;
    bool sent;
    int via;                        /* the milter process it was sent to, once sent */
    unsigned long channel;
    time_t asked;
    struct gate_job *next;
};

struct milter_gate {
    struct event_base *base;
    const struct config *cfg;
    struct queue *q;
    milter_gate_done_cb done;
    void *arg;
    milter_gate_check_cb check_done;
    void *check_arg;
    struct gate_channel {           /* one per milter process ([server] milter_processes) */
        struct milter_gate *g;
        int slot;
        int fd;                     /* -1: none now */
        struct event *read_ev;
        struct ipc_outq *out;
        size_t in_flight;           /* jobs sent, not answered */
    } ch[CONFIG_MAX_MILTER_PROCS];
    struct event *timer;
    struct gate_job *jobs, **tail;
    uint64_t next_id;
    char buf[IPC_MAX_PAYLOAD];
};

bool milter_gate_wanted(const struct milter_gate *g, const char *listener)
{
    return config_milters_at(g->cfg, listener, MILTER_AT_DATA);
}

/* The listener's milters of that stage could not be asked: the first
 * whose default_action is not accept decides; all accept: go on. */
static enum milter_gate_outcome fallback(const struct milter_gate *g, const char *listener,
                                         int stage, char *reply, size_t size)
{
    size_t n;
    char *const *names = config_milters_for(g->cfg, listener, &n);

    for (size_t i = 0; i < n; i++) {
        const struct milter_config *m = config_find_milter(g->cfg, names[i]);

        if (m == NULL || m->stage != stage || m->default_action == MILTER_ACTION_ACCEPT)
            continue;
        snprintf(reply, size, "%s", m->default_action == MILTER_ACTION_REJECT
                     ? "550 5.7.1 Content filter unavailable, message refused"
                     : "451 4.3.5 Content filter unavailable - try again later");
        return MILTER_GATE_REFUSE;
    }
    return MILTER_GATE_COMMIT;
}

/* Take job out of the list (it must be in it). */
static void unlink_job(struct milter_gate *g, struct gate_job *job)
{
    struct gate_job **pp = &g->jobs;

    while (*pp != job)
        pp = &(*pp)->next;
    *pp = job->next;
    if (g->tail == &job->next)
        g->tail = pp;
    if (job->sent)
        g->ch[job->via].in_flight--;
}

/* Answer a check and free it: verdict with reply (4xx/5xx, else ""). */
static void finish_check(struct milter_gate *g, struct gate_job *job,
                         enum milter_result_verdict verdict, const char *reply,
                         const char *milter)
{
    struct milter_result_msg *r = xcalloc(1, sizeof(*r));

    r->job_id = job->asker;
    r->verdict = verdict;
    snprintf(r->reply, sizeof(r->reply), "%s", reply);
    snprintf(r->milter, sizeof(r->milter), "%s", milter);
    unlink_job(g, job);
    g->check_done(job->channel, r, g->check_arg);
    free(r);
    free(job->check);
    free(job);
}

/* Finish job with an outcome and free it. */
static void finish(struct milter_gate *g, struct gate_job *job, enum milter_gate_outcome o,
                   const char *reply)
{
    struct queue_msg *msg = job->msg;
    unsigned long channel = job->channel;
    char id[QUEUE_ID_LEN + 1];

    memcpy(id, queue_msg_id(msg), sizeof(id));
    unlink_job(g, job);
    free(job);
    if (o != MILTER_GATE_COMMIT) {
        queue_msg_abort(msg);
        msg = NULL;
    }
    g->done(msg, id, o, reply, channel, g->arg);
}

static void finish_by_default(struct milter_gate *g, struct gate_job *job, const char *why)
{
    char reply[MILTER_CODEC_REPLY_MAX + 1] = "";
    enum milter_gate_outcome o = fallback(g, job->listener, job->stage, reply, sizeof(reply));

    log_warn("event=milter_unavailable id=%s stage=%s listener=%s reason=\"%s\" action=%s",
             job->msg ? queue_msg_id(job->msg) : "-", milter_check_stage_name(job->stage),
             job->listener, why,
             o == MILTER_GATE_COMMIT ? "accept" : reply[0] == '4' ? "tempfail" : "reject");
    if (job->msg == NULL)
        finish_check(g, job, o == MILTER_GATE_COMMIT ? MILTER_RESULT_ACCEPT
                             : reply[0] == '4' ? MILTER_RESULT_TEMPFAIL : MILTER_RESULT_REJECT,
                     reply, "");
    else
        finish(g, job, o, reply);
}

static void close_channel(struct gate_channel *c, const char *why)
{
    struct milter_gate *g = c->g;

    if (c->fd < 0)
        return;
    log_warn("event=milter_channel_closed slot=%d reason=\"%s\"", c->slot, why);
    event_free(c->read_ev);
    ipc_outq_free(c->out);
    close(c->fd);
    c->read_ev = NULL;
    c->out = NULL;
    c->fd = -1;
    /* What the process had may be what broke it: not sent again. */
    for (struct gate_job *j = g->jobs, *next; j; j = next) {
        next = j->next;
        if (j->sent && j->via == c->slot)
            finish_by_default(g, j, why);
    }
}

static void outq_failed(int err, void *arg)
{
    close_channel(arg, strerror(err));
}

/* The milter process with the fewest jobs in hand, or NULL when none
 * is up. */
static struct gate_channel *pick_channel(struct milter_gate *g)
{
    struct gate_channel *best = NULL;

    for (size_t i = 0; i < CONFIG_MAX_MILTER_PROCS; i++) {
        struct gate_channel *c = &g->ch[i];

        if (c->fd >= 0 && (best == NULL || c->in_flight < best->in_flight))
            best = c;
    }
    return best;
}

static void mark_sent(struct gate_job *job, struct gate_channel *c)
{
    job->sent = true;
    job->via = c->slot;
    c->in_flight++;
}

/* Hand job to the least busy milter process; false when it stays here
 * (no process up) or was finished (it could not be handed over). */
static bool send_job(struct milter_gate *g, struct gate_job *job)
{
    struct gate_channel *c = pick_channel(g);
    struct milter_job_msg m;
    char payload[1024];
    size_t len;
    int fd;
    bool ok;

    if (c == NULL)
        return false;
    if (job->msg == NULL) {             /* a check: no file */
        if (!ipc_outq_send(c->out, IPC_MILTER_CHECK, job->check, job->check_len, -1)) {
            close_channel(c, strerror(errno));
            return false;
        }
        mark_sent(job, c);
        return true;
    }
    memset(&m, 0, sizeof(m));
    m.job_id = job->id;
    snprintf(m.listener, sizeof(m.listener), "%s", job->listener);
    snprintf(m.auth_user, sizeof(m.auth_user), "%s", job->auth_user);
    snprintf(m.auth_type, sizeof(m.auth_type), "%s", job->auth_type);
    m.tls = job->tls;
    len = milter_job_encode(&m, payload, sizeof(payload));
    if (len == 0 || !queue_msg_flush(job->msg) || (fd = queue_msg_open_read(job->msg)) < 0) {
        finish_by_default(g, job, "cannot hand the message over");
        return false;
    }
    ok = ipc_outq_send(c->out, IPC_MILTER_JOB, payload, len, fd);
    close(fd);
    if (!ok) {
        close_channel(c, strerror(errno));
        return false;
    }
    mark_sent(job, c);
    return true;
}

/* ---- the result: checked, then applied ------------------------------- */

/* "<" addr ">" parsed as an SMTP path into its canonical text. */
static bool parse_address(const char *addr, bool utf8, bool allow_null, char *out,
                          size_t size)
{
    char path[ADDR_PATH_MAX + 3];
    struct mailbox mb;
    size_t used;
    int n = snprintf(path, sizeof(path), "<%s>", addr);

    if (n < 0 || (size_t)n >= sizeof(path) ||
        address_parse_path(path, (size_t)n, utf8, &mb, &used) != ADDR_OK ||
        used != (size_t)n || (mb.is_null && !allow_null) || mb.is_bare_postmaster)
        return false;
    mailbox_format(&mb, out, size);
    return true;
}

static bool listed(const char (*list)[ADDR_PATH_MAX + 1], size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], addr) == 0)
            return true;
    return false;
}

/* env with the result's sender and recipient changes into out. */
static bool edit_envelope(const struct envelope *env, struct milter_result_msg *r,
                          struct envelope *out, char *why, size_t size)
{
    char addr[ADDR_PATH_MAX + 1];

    *out = *env;
    out->rcpts = NULL;
    out->rcpt_count = out->rcpt_alloc = out->rcpt_bytes = 0;
    if (r->change_from) {
        if (!parse_address(r->from, env->smtputf8, true, addr, sizeof(addr))) {
            snprintf(why, size, "bad new sender");
            return false;
        }
        snprintf(out->from, sizeof(out->from), "%s", addr);
    }
    for (size_t i = 0; i < r->delete_count; i++) {
        if (!parse_address(r->del[i], env->smtputf8, false, addr, sizeof(addr))) {
            snprintf(why, size, "bad recipient to delete");
            return false;
        }
        snprintf(r->del[i], sizeof(r->del[i]), "%s", addr);
    }
    for (size_t i = 0; i < env->rcpt_count; i++)
        if (!listed(r->del, r->delete_count, env->rcpts[i].addr))
            envelope_add_rcpt(out, env->rcpts[i].addr, env->rcpts[i].notify,
                              env->rcpts[i].orcpt);
    for (size_t i = 0; i < r->add_count; i++) {
        bool present = false;

        if (!parse_address(r->add[i], env->smtputf8, false, addr, sizeof(addr))) {
            snprintf(why, size, "bad recipient to add");
            return false;
        }
        for (size_t k = 0; k < out->rcpt_count && !present; k++)
            present = strcasecmp(out->rcpts[k].addr, addr) == 0;
        if (!present)
            envelope_add_rcpt(out, addr, 0, "");
    }
    return true;
}

/* The new message: at most max octets, CRLF line ends only, no NUL,
 * ending with CRLF. *len set. */
static bool content_sane(int fd, uint64_t max, uint64_t *len, char *why, size_t size)
{
    char buf[16384];
    char prev = '\n';
    off_t off = 0;
    ssize_t n;
    int seals = fcntl(fd, F_GET_SEALS);
    const int needed = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;

    /* sealed: what is checked here is what gets copied */
    if (seals < 0 || (seals & needed) != needed) {
        snprintf(why, size, "new message is not a sealed memory file");
        return false;
    }

    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];

            if (c == '\0' || (c == '\n' && prev != '\r') || (prev == '\r' && c != '\n')) {
                snprintf(why, size, "new message has a NUL or a bare CR or LF");
                return false;
            }
            prev = c;
        }
        off += n;
        if ((uint64_t)off > max) {
            snprintf(why, size, "new message is over max_message_size");
            return false;
        }
    }
    if (n < 0 || (off > 0 && prev != '\n')) {
        snprintf(why, size, n < 0 ? "cannot read the new message"
                                  : "new message does not end with CRLF");
        return false;
    }
    *len = (uint64_t)off;
    return true;
}

/* Rewrite job's message as r says (content: the new message, or -1). */
static bool apply(struct milter_gate *g, struct gate_job *job, struct milter_result_msg *r,
                  int content, char *why, size_t size)
{
    struct envelope env, edited;
    long body_offset;
    uint64_t len = 0, whole;
    int fd = queue_msg_open_read(job->msg);
    FILE *fp = fd < 0 ? NULL : fdopen(dup(fd), "r");
    char err[160];
    bool ok;

    envelope_init(&env);
    if (fp == NULL || !envelope_read(fp, &env, &body_offset, err, sizeof(err))) {
        snprintf(why, size, "cannot read the spool file back");
        ok = false;
    } else if (!edit_envelope(&env, r, &edited, why, size)) {
        ok = false;
    } else {
        whole = (uint64_t)lseek(fd, 0, SEEK_END);
        ok = content < 0 || content_sane(content, g->cfg->max_message_size, &len, why, size);
        if (ok && edited.rcpt_count == 0) {
            snprintf(why, size, "no recipient left");
            ok = false;
        } else if (ok) {
            ok = content >= 0 ? queue_msg_replace(job->msg, &edited, content, 0, len)
                              : queue_msg_replace(job->msg, &edited, fd, body_offset,
                                                  whole - (uint64_t)body_offset);
            if (!ok)
                snprintf(why, size, "cannot write the spool file: %s", strerror(errno));
        }
        envelope_clear(&edited);
    }
    if (fp)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    envelope_clear(&env);
    return ok;
}

static bool needs_rewrite(const struct milter_result_msg *r)
{
    return r->content || r->change_from || r->add_count || r->delete_count;
}

/* A check's answer: a verdict and its reply, nothing else. */
static void take_check_result(struct milter_gate *g, struct gate_job *job,
                              const struct milter_result_msg *r)
{
    char q[4 * MILTER_CODEC_REPLY_MAX + 8];

    if (needs_rewrite(r) || r->quarantine) {
        finish_by_default(g, job, "changes in the answer to a check");
        return;
    }
    if (r->verdict != MILTER_RESULT_ACCEPT)
        log_info("event=milter_refused id=- stage=%s milter=%s verdict=%s reply=%s",
                 milter_check_stage_name(job->stage), r->milter[0] ? r->milter : "-",
                 r->verdict == MILTER_RESULT_DISCARD ? "discard"
                 : r->verdict == MILTER_RESULT_TEMPFAIL ? "tempfail" : "reject",
                 log_quote(q, sizeof(q), r->reply, strlen(r->reply)));
    finish_check(g, job, r->verdict, r->reply, r->milter);
}

static void take_result(struct milter_gate *g, struct gate_job *job,
                        struct milter_result_msg *r, int content)
{
    char why[200], q[4 * MILTER_CODEC_REPLY_MAX + 8];
    const char *id;

    if (job->msg == NULL) {
        take_check_result(g, job, r);
        return;
    }
    id = queue_msg_id(job->msg);

    if (r->verdict == MILTER_RESULT_REJECT || r->verdict == MILTER_RESULT_TEMPFAIL) {
        log_info("event=milter_refused id=%s milter=%s reply=%s", id,
                 r->milter[0] ? r->milter : "-", log_quote(q, sizeof(q), r->reply,
                                                            strlen(r->reply)));
        finish(g, job, MILTER_GATE_REFUSE, r->reply);
        return;
    }
    if (r->verdict == MILTER_RESULT_DISCARD) {
        log_info("event=milter_discarded id=%s milter=%s", id, r->milter[0] ? r->milter : "-");
        finish(g, job, MILTER_GATE_DISCARD, "");
        return;
    }
    if (needs_rewrite(r) && !apply(g, job, r, content, why, sizeof(why))) {
        log_error("event=milter_result_refused id=%s milter=%s reason=\"%s\"", id,
                  r->milter[0] ? r->milter : "-", why);
        if (strcmp(why, "no recipient left") == 0)
            finish(g, job, MILTER_GATE_DISCARD, "");
        else
            finish(g, job, MILTER_GATE_REFUSE,
                   "451 4.3.5 Content filter answer not usable - try again later");
        return;
    }
    if (r->quarantine && !queue_record_hold(g->q, id, true)) {
        finish(g, job, MILTER_GATE_REFUSE, "451 4.3.0 Error: queue file write error");
        return;
    }
    if (r->quarantine || needs_rewrite(r))
        log_info("event=milter_changed id=%s milter=%s rewritten=%s from=%s added=%zu "
                 "deleted=%zu quarantine=%s", id, r->milter[0] ? r->milter : "-",
                 r->content ? "yes" : "no", r->change_from ? "yes" : "no", r->add_count,
                 r->delete_count, r->quarantine
                     ? log_quote(q, sizeof(q), r->reason, strlen(r->reason)) : "no");
    finish(g, job, MILTER_GATE_COMMIT, "");
}

/* One message from the role; false: the channel was closed. */
static bool read_result(struct gate_channel *c)
{
    struct milter_gate *g = c->g;
    static struct milter_result_msg r;      /* large: not on the stack */
    enum ipc_type type;
    size_t len;
    int passed = -1;
    char err[160];
    const char *why = NULL;
    enum ipc_status st = ipc_recv(c->fd, &type, g->buf, sizeof(g->buf), &len, true, &passed);
    struct gate_job *job;

    if (st == IPC_AGAIN)
        return false;
    if (st != IPC_OK) {
        close_channel(c, st == IPC_EOF ? "milter role gone" : "garbage");
        return false;
    }
    if (type != IPC_MILTER_RESULT)
        why = "unexpected message";
    else if (!milter_result_decode(g->buf, len, &r, err, sizeof(err)))
        why = err;
    else if (r.content != (passed >= 0))
        why = "content and descriptor disagree";
    if (why) {
        char q[4 * sizeof(err) + 8];

        if (passed >= 0)
            close(passed);
        log_error("event=ipc_garbage peer=milter slot=%d reason=%s", c->slot,
                  log_quote(q, sizeof(q), why, strlen(why)));
        close_channel(c, "garbage");
        return false;
    }
    for (job = g->jobs; job && job->id != r.job_id; job = job->next)
        ;
    if (job == NULL || !job->sent || job->via != c->slot) {
        /* a job that ran out of time here (older ids) is answered late */
        if (passed >= 0)
            close(passed);
        if (r.job_id < g->next_id && (job == NULL))
            return true;
        close_channel(c, "answer to no job");
        return false;
    }
    take_result(g, job, &r, passed);
    if (passed >= 0)
        close(passed);
    return true;
}

static void channel_read(evutil_socket_t fd, short what, void *arg)
{
    struct gate_channel *c = arg;

    (void)fd;
    (void)what;
    while (c->fd >= 0 && read_result(c))
        ;
}

/* Jobs past the deadline get the default action. */
static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct milter_gate *g = arg;
    struct timeval tv = { TIMER_SECONDS, 0 };
    time_t now = time(NULL);

    (void)fd;
    (void)what;
    for (struct gate_job *j = g->jobs, *next; j; j = next) {
        next = j->next;
        if (now - j->asked >= MILTER_GATE_DEADLINE)
            finish_by_default(g, j, "no answer in time");
    }
    if (g->jobs)
        evtimer_add(g->timer, &tv);
}

void milter_gate_set_channel(struct milter_gate *g, int slot, int fd)
{
    struct gate_channel *c;

    if (slot < 0 || slot >= CONFIG_MAX_MILTER_PROCS) {
        log_error("event=milter_channel_refused slot=%d reason=\"no such slot\"", slot);
        close(fd);
        return;
    }
    c = &g->ch[slot];
    close_channel(c, "replaced");
    c->fd = fd;
    evutil_make_socket_nonblocking(fd);
    c->out = ipc_outq_new(g->base, fd, MAX_QUEUED_JOBS, outq_failed, c);
    c->read_ev = event_new(g->base, fd, EV_READ | EV_PERSIST, channel_read, c);
    event_add(c->read_ev, NULL);
    log_info("event=milter_channel status=up slot=%d", slot);
    for (struct gate_job *j = g->jobs, *next; j; j = next) {
        next = j->next;
        if (!j->sent && !send_job(g, j) && pick_channel(g) == NULL)
            break;
    }
}

/* job (id, listener, what to ask filled) joins the queue and goes to a
 * milter process if one is up. */
static void enqueue(struct milter_gate *g, struct gate_job *job, unsigned long channel)
{
    struct timeval tv = { TIMER_SECONDS, 0 };

    job->channel = channel;
    job->asked = time(NULL);
    *g->tail = job;
    g->tail = &job->next;
    if (!evtimer_pending(g->timer, NULL))
        evtimer_add(g->timer, &tv);
    send_job(g, job);
}

/* Only both: a user without a mechanism (or the reverse) is none. */
static void set_auth(char *user, size_t usize, char *type, size_t tsize,
                     const char *auth_user, const char *auth_type)
{
    bool both = auth_user && auth_user[0] && auth_type && auth_type[0];

    snprintf(user, usize, "%s", both ? auth_user : "");
    snprintf(type, tsize, "%s", both ? auth_type : "");
}

void milter_gate_ask(struct milter_gate *g, struct queue_msg *msg, const char *listener,
                     const char *auth_user, const char *auth_type, bool tls,
                     unsigned long channel)
{
    struct gate_job *job = xcalloc(1, sizeof(*job));

    job->id = g->next_id++;
    job->msg = msg;
    snprintf(job->listener, sizeof(job->listener), "%s", listener);
    set_auth(job->auth_user, sizeof(job->auth_user), job->auth_type, sizeof(job->auth_type),
             auth_user, auth_type);
    job->tls = tls;
    enqueue(g, job, channel);
}

bool milter_gate_check(struct milter_gate *g, const struct milter_check *c,
                       const char *auth_user, const char *auth_type, unsigned long channel)
{
    struct gate_job *job = xcalloc(1, sizeof(*job));
    static struct milter_check out;     /* large: not on the stack */

    out = *c;
    out.id = g->next_id;
    set_auth(out.auth_user, sizeof(out.auth_user), out.auth_type, sizeof(out.auth_type),
             auth_user, auth_type);
    out.facts.auth_token[0] = '\0';
    job->check = milter_check_encode(&out, &job->check_len);
    if (job->check == NULL) {
        free(job);
        return false;
    }
    job->id = g->next_id++;
    job->stage = c->stage;
    job->asker = c->id;
    snprintf(job->listener, sizeof(job->listener), "%s", c->facts.listener);
    enqueue(g, job, channel);
    return true;
}

void milter_gate_on_check(struct milter_gate *g, milter_gate_check_cb cb, void *arg)
{
    g->check_done = cb;
    g->check_arg = arg;
}

struct milter_gate *milter_gate_new(struct event_base *base, const struct config *cfg,
                                    struct queue *q, milter_gate_done_cb done, void *arg)
{
    struct milter_gate *g = xcalloc(1, sizeof(*g));

    g->base = base;
    g->cfg = cfg;
    g->q = q;
    g->done = done;
    g->arg = arg;
    for (int i = 0; i < CONFIG_MAX_MILTER_PROCS; i++)
        g->ch[i] = (struct gate_channel){ .g = g, .slot = i, .fd = -1 };
    g->tail = &g->jobs;
    g->next_id = 1;
    g->timer = evtimer_new(base, timer_fired, g);
    return g;
}

void milter_gate_free(struct milter_gate *g)
{
    if (g == NULL)
        return;
    while (g->jobs)
        finish_by_default(g, g->jobs, "queue stopping");
    for (int i = 0; i < CONFIG_MAX_MILTER_PROCS; i++)
        close_channel(&g->ch[i], "queue stopping");
    event_free(g->timer);
    free(g);
}

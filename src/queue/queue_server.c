/*
 * queue_server.c - worker channels in the queue process (see
 * queue_server.h). NEW and ABORT are handled to completion before the
 * next request is read; COMMITs are collected and handed to the commit
 * thread as a group (commit_thread.h), and each is answered only when
 * its group comes back, i.e. after the fsyncs. Answers never block the
 * queue: each channel has its own bounded output queue (ipc_outq.h), so
 * a worker that is slow to read costs its own channel at most.
 */
#include "queue/queue_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/alias_expand.h"
#include "mail/credentials.h"
#include "queue/auth_verifier.h"
#include "queue/commit_thread.h"
#include "mail/milter_check.h"
#include "queue/milter_gate.h"
#include "queue/scheduler.h"
#include "mail/queue_request.h"
#include "mail/rcpt_policy.h"
#include "util/ipc.h"
#include "util/ipc_outq.h"
#include "util/snapshot.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Messages one worker may have open at once: one per session in DATA, so
 * this is far above any max_connections; the table grows as needed. */
#define MAX_OPEN_PER_CHANNEL 100000
/* Answers waiting for a worker to read them: each answers one request,
 * so a worker that reads its answers never comes near this. */
#define MAX_QUEUED_ANSWERS 100000

struct open_msg {
    struct queue_msg *msg;
    char id[QUEUE_ID_LEN + 1];
    /* what the milters hear about the session (milter_gate.h) */
    char listener[CONFIG_NAME_MAX];
    char user[SASL_USER_MAX + 1];
    char auth_type[AUTH_MECH_NAME_MAX + 1];
    bool tls;
};

/* An SMTP AUTH this channel's worker got: its token stands for the user
 * in later NEW requests (queue_request.h). */
struct auth_grant {
    char token[AUTH_TOKEN_LEN + 1];
    char user[SASL_USER_MAX + 1];
    char mechanism[AUTH_MECH_NAME_MAX + 1];
    time_t granted;
};

#define AUTH_GRANTS_PER_CHANNEL 4096    /* authenticated sessions a worker holds */
#define AUTH_GRANT_SECONDS (24 * 3600)  /* a token outlives no session longer */

struct channel {
    struct queue_server *qs;
    unsigned long serial;           /* names the channel in a pending batch */
    int fd;
    int slot;
    struct event *ev;
    struct ipc_outq *out;           /* answers to the worker */
    struct open_msg *open;
    size_t open_alloc;
    struct auth_grant *grants;      /* AUTH_GRANTS_PER_CHANNEL, allocated at the first */
    struct channel *next;
};


struct queue_server {
    struct event_base *base;
    struct queue *queue;
    int control;
    struct event *control_ev;
    struct channel *channels;
    unsigned long next_serial;
    struct event *flush_ev;         /* runs after every ready channel was read */
    struct commit_thread *commits;  /* group commits (commit_thread.h) */
    struct milter_gate *milters;    /* NULL: no listener has milters */
    queue_server_channel_cb on_delivery;
    void *on_delivery_arg;
    queue_server_local_cb on_local;
    const struct config *cfg;       /* for the policy re-check of NEW */
    struct recipient_policy *recipients;    /* ours: replaced on reload */
    struct auth_verifier *auth;     /* NULL: no [submission] users, no AUTH */
    /* recipients is replaced on the main thread (a reload) and read by
     * the scheduler's thread too (queue_server_expand, for DSNs) */
    pthread_rwlock_t policy_lock;
    /* the verdict on mail from sealpost sendmail (pickup.c) */
    milter_gate_done_pickup_cb pickup_done;
    void *pickup_arg;
};

static void channel_close(struct channel *ch, const char *why)
{
    struct queue_server *qs = ch->qs;
    unsigned dropped = 0;

    for (size_t i = 0; i < ch->open_alloc; i++) {
        if (ch->open[i].msg) {
            queue_msg_abort(ch->open[i].msg);
            dropped++;
        }
    }
    free(ch->open);
    if (ch->grants)
        explicit_bzero(ch->grants, AUTH_GRANTS_PER_CHANNEL * sizeof(*ch->grants));
    free(ch->grants);
    log_info("event=channel_closed slot=%d reason=%s unacknowledged_dropped=%u", ch->slot, why,
             dropped);
    for (struct channel **p = &qs->channels; *p; p = &(*p)->next) {
        if (*p == ch) {
            *p = ch->next;
            break;
        }
    }
    event_free(ch->ev);
    ipc_outq_free(ch->out);
    close(ch->fd);
    free(ch);
}

/* A queued answer could not be sent: the worker's channel is gone. */
static void answer_failed(int err, void *arg)
{
    struct channel *ch = arg;

    log_error("event=ipc_failed peer=smtpd slot=%d error=\"%s\" action=close_channel",
              ch->slot, strerror(err));
    channel_close(ch, "send_failed");
}

/* Answer the worker; false (and the caller closes the channel) when the
 * answer can never be sent. */
static bool answer(struct channel *ch, enum ipc_type type, const void *payload, size_t len,
                   int fd_to_pass)
{
    if (ipc_outq_send(ch->out, type, payload, len, fd_to_pass))
        return true;
    log_error("event=ipc_failed peer=smtpd slot=%d error=\"%s\"", ch->slot, strerror(errno));
    return false;
}

static struct open_msg *find_open(struct channel *ch, const char *payload, size_t len)
{
    if (len != QUEUE_ID_LEN)
        return NULL;
    for (size_t i = 0; i < ch->open_alloc; i++) {
        if (ch->open[i].msg && memcmp(ch->open[i].id, payload, QUEUE_ID_LEN) == 0)
            return &ch->open[i];
    }
    return NULL;
}

static bool reply_errno(struct channel *ch, enum ipc_type type, int e)
{
    int32_t v = e ? e : EIO;

    return answer(ch, type, &v, sizeof(v), -1);
}

/*
 * The queue is the authority over the envelope: a worker's NEW passes
 * the same recipient policy the worker applied (mail/rcpt_policy.h), or
 * the message is refused. A worker that follows the policy never sees
 * this, except across a reload that removed a mailbox meanwhile.
 */
/* The grant a token of this channel's stands for, or NULL. */
static const struct auth_grant *granted(const struct channel *ch, const char *token)
{
    time_t now = time(NULL);

    for (size_t i = 0; ch->grants && i < AUTH_GRANTS_PER_CHANNEL; i++) {
        const struct auth_grant *g = &ch->grants[i];
        if (g->token[0] && now - g->granted < AUTH_GRANT_SECONDS &&
            strcmp(g->token, token) == 0)
            return g;
    }
    return NULL;
}

/* The user a token of this channel's stands for, or NULL. */
static const char *granted_user(const struct channel *ch, const char *token)
{
    const struct auth_grant *g = granted(ch, token);

    return g ? g->user : NULL;
}

/* Remember a grant in the free (or oldest) place. */
static void grant(struct channel *ch, const char *token, const char *user,
                  const char *mechanism)
{
    struct auth_grant *oldest;

    if (ch->grants == NULL)
        ch->grants = xcalloc(AUTH_GRANTS_PER_CHANNEL, sizeof(*ch->grants));
    oldest = &ch->grants[0];
    for (size_t i = 0; i < AUTH_GRANTS_PER_CHANNEL; i++) {
        if (ch->grants[i].token[0] == '\0') {
            oldest = &ch->grants[i];
            break;
        }
        if (ch->grants[i].granted < oldest->granted)
            oldest = &ch->grants[i];
    }
    snprintf(oldest->token, sizeof(oldest->token), "%s", token);
    snprintf(oldest->user, sizeof(oldest->user), "%s", user);
    snprintf(oldest->mechanism, sizeof(oldest->mechanism), "%s", mechanism ? mechanism : "");
    oldest->granted = time(NULL);
}

static bool envelope_allowed(struct channel *ch, const struct queue_request_facts *facts,
                             const struct envelope *env)
{
    const struct queue_server *qs = ch->qs;
    const struct listener_config *lc = NULL;
    const char *user = NULL;
    struct rcpt_context ctx;
    char why[160], quoted[200], reason[200];

    for (size_t i = 0; i < qs->cfg->listener_count && !lc; i++) {
        if (strcmp(qs->cfg->listeners[i].name, facts->listener) == 0)
            lc = &qs->cfg->listeners[i];
    }
    if (facts->auth_token[0] && (user = granted_user(ch, facts->auth_token)) == NULL) {
        snprintf(why, sizeof(why), "unknown AUTH token");
    } else if (lc == NULL) {
        snprintf(why, sizeof(why), "no such listener");
    } else if (lc->role == ROLE_SUBMISSION && user == NULL) {
        snprintf(why, sizeof(why), "submission without AUTH");
    } else {
        ctx = (struct rcpt_context){ qs->cfg, qs->recipients, lc, env->client, facts->tls,
                                     user };
        if (rcpt_policy_check_envelope(&ctx, env, why, sizeof(why)))
            return true;
    }
    log_error("event=policy_refused slot=%d client=%s reason=%s", ch->slot,
              log_quote(quoted, sizeof(quoted), env->client, strlen(env->client)),
              log_quote(reason, sizeof(reason), why, strlen(why)));
    return false;
}

/* The queue, not the worker, turns aliases into their targets
 * (mail/alias_expand.h); env is replaced. false: refused (logged). */
static bool expand_aliases(struct channel *ch, struct envelope *env)
{
    struct envelope out;
    char why[ADDR_PATH_MAX + 128], quoted[sizeof(why) * 4 + 8];

    if (alias_expand_envelope(ch->qs->recipients, ch->qs->cfg->max_alias_recipients, env,
                              &out, why, sizeof(why))) {
        envelope_clear(env);
        *env = out;
        return true;
    }
    log_error("event=policy_refused slot=%d reason=%s", ch->slot,
              log_quote(quoted, sizeof(quoted), why, strlen(why)));
    return false;
}

/* false: the channel is broken or the worker misbehaved. */
static bool handle_new(struct channel *ch, const char *payload, size_t len)
{
    struct open_msg *slot = NULL;
    struct envelope env;
    struct queue_request_facts facts;
    struct queue_msg *msg;
    char err[128];
    int lent;
    bool sent;

    for (size_t i = 0; i < ch->open_alloc && !slot; i++) {
        if (ch->open[i].msg == NULL)
            slot = &ch->open[i];
    }
    if (slot == NULL && ch->open_alloc >= MAX_OPEN_PER_CHANNEL)
        return reply_errno(ch, IPC_MSG_NEW_FAIL, EAGAIN);   /* that client gets a 451 */
    if (slot == NULL) {
        size_t old = ch->open_alloc, grown = old ? old * 2 : 64;

        ch->open = xrealloc(ch->open, grown * sizeof(*ch->open));
        memset(ch->open + old, 0, (grown - old) * sizeof(*ch->open));
        ch->open_alloc = grown;
        slot = &ch->open[old];
    }
    if (!queue_request_decode(payload, len, &facts, &env, err, sizeof(err))) {
        log_error("event=ipc_garbage slot=%d reason=\"new message: %s\"", ch->slot, err);
        return false;
    }
    if (!envelope_allowed(ch, &facts, &env) || !expand_aliases(ch, &env)) {
        envelope_clear(&env);
        return reply_errno(ch, IPC_MSG_NEW_FAIL, EPERM);
    }
    msg = queue_msg_new(ch->qs->queue, &env);
    envelope_clear(&env);
    if (msg == NULL)
        return reply_errno(ch, IPC_MSG_NEW_FAIL, errno);
    if (!queue_msg_flush(msg)) {
        int e = queue_msg_error(msg);
        queue_msg_abort(msg);
        return reply_errno(ch, IPC_MSG_NEW_FAIL, e);
    }
    /* The worker gets its own descriptor, append-only: it can add the
     * message after the envelope the queue wrote, never rewrite it. */
    if ((lent = queue_msg_open_append(msg)) < 0) {
        int e = errno;
        queue_msg_abort(msg);
        return reply_errno(ch, IPC_MSG_NEW_FAIL, e);
    }
    slot->msg = msg;
    memcpy(slot->id, queue_msg_id(msg), sizeof(slot->id));
    snprintf(slot->listener, sizeof(slot->listener), "%s", facts.listener);
    {
        const struct auth_grant *g = facts.auth_token[0] ? granted(ch, facts.auth_token)
                                                         : NULL;

        snprintf(slot->user, sizeof(slot->user), "%s", g ? g->user : "");
        snprintf(slot->auth_type, sizeof(slot->auth_type), "%s", g ? g->mechanism : "");
    }
    slot->tls = facts.tls;
    sent = answer(ch, IPC_MSG_NEW_OK, slot->id, QUEUE_ID_LEN, lent);
    close(lent);
    return sent;
}

static struct channel *channel_by_serial(struct queue_server *qs, unsigned long serial)
{
    for (struct channel *ch = qs->channels; ch; ch = ch->next) {
        if (ch->serial == serial)
            return ch;
    }
    return NULL;
}

/* Answer every commit of a finished group: the queue has made them
 * durable (or failed) with one round of fsyncs. */
static void group_done(const struct commit_entry *e, size_t n, void *arg)
{
    struct queue_server *qs = arg;

    for (size_t i = 0; i < n; i++) {
        struct channel *ch = channel_by_serial(qs, e[i].channel);
        char payload[sizeof(int32_t) + QUEUE_ID_LEN];
        int32_t err = e[i].error ? e[i].error : EIO;

        bool sent;

        if (ch == NULL)
            continue;           /* the worker is gone; its client never saw a 250 */
        if (e[i].ok) {
            sent = answer(ch, IPC_MSG_COMMIT_OK, e[i].id, QUEUE_ID_LEN, -1);
        } else {
            memcpy(payload, &err, sizeof(err));
            memcpy(payload + sizeof(err), e[i].id, QUEUE_ID_LEN);
            sent = answer(ch, IPC_MSG_COMMIT_FAIL, payload, sizeof(payload), -1);
        }
        /* Committed but unanswered: on disk, delivered; the client did not
         * see its 250 and may send it again (at least once). */
        if (!sent)
            channel_close(ch, "send_failed");
    }
}

/* After every ready channel was read: hand the commits over as a group. */
static void start_group(evutil_socket_t fd, short what, void *arg)
{
    struct queue_server *qs = arg;

    (void)fd;
    (void)what;
    commit_thread_kick(qs->commits);
}

static bool handle_commit(struct channel *ch, const char *payload, size_t len)
{
    struct queue_server *qs = ch->qs;
    struct open_msg *om = find_open(ch, payload, len);

    if (om == NULL)
        return false;
    if (qs->milters && milter_gate_wanted(qs->milters, om->listener)) {
        milter_gate_ask(qs->milters, om->msg, om->listener, om->user, om->auth_type, om->tls,
                        ch->serial);
        om->msg = NULL;         /* the gate owns it now (milters_done) */
        return true;
    }
    commit_thread_add(qs->commits, ch->serial, om->msg);
    om->msg = NULL;             /* the commit thread owns it now */
    event_active(qs->flush_ev, EV_TIMEOUT, 0);
    return true;
}

/* The milters' verdict on a message (milter_gate.h). */
static void milters_done(struct queue_msg *msg, const char *id,
                         enum milter_gate_outcome outcome, const char *reply,
                         unsigned long serial, void *arg)
{
    struct queue_server *qs = arg;
    struct channel *ch;
    char payload[QUEUE_ID_LEN + 600];
    int n;

    if (serial == QUEUE_SERVER_PICKUP) {     /* mail from sealpost sendmail */
        if (qs->pickup_done)
            qs->pickup_done(msg, id, outcome, reply, qs->pickup_arg);
        else if (msg)
            queue_msg_abort(msg);       /* stopping: the maildrop file stays */
        return;
    }
    if (outcome == MILTER_GATE_COMMIT) {
        commit_thread_add(qs->commits, serial, msg);
        event_active(qs->flush_ev, EV_TIMEOUT, 0);
        return;
    }
    if ((ch = channel_by_serial(qs, serial)) == NULL)
        return;                 /* the worker is gone */
    if (outcome == MILTER_GATE_DISCARD) {
        if (!answer(ch, IPC_MSG_COMMIT_OK, id, QUEUE_ID_LEN, -1))
            channel_close(ch, "send_failed");
        return;
    }
    n = snprintf(payload, sizeof(payload), "%s%s", id, reply);
    if (n < 0 || (size_t)n >= sizeof(payload) ||
        !answer(ch, IPC_MSG_COMMIT_REFUSED, payload, (size_t)n, -1))
        channel_close(ch, "send_failed");
}

/* Answer a worker's milter check (its id, verdict and reply); false:
 * the channel must be closed. */
static bool answer_check(struct channel *ch, const struct milter_result_msg *r)
{
    char payload[MILTER_CODEC_REPLY_MAX + 200];
    size_t n = milter_result_encode(r, payload, sizeof(payload));

    return n != 0 && answer(ch, IPC_MILTER_VERDICT, payload, n, -1);
}

static void check_done(unsigned long serial, const struct milter_result_msg *r, void *arg)
{
    struct channel *ch = channel_by_serial(arg, serial);

    if (ch && !answer_check(ch, r))     /* no channel: the worker is gone */
        channel_close(ch, "send_failed");
}

/*
 * A milter check at connect, MAIL or RCPT (mail/milter_check.h). The
 * worker names no user: the queue gives the milters the user its token
 * stands for. A listener with no milter at that stage (a worker that
 * asks anyway) is answered "accept" at once; an AUTH token the queue no
 * longer knows gets a tempfail. false: the worker misbehaved.
 */
static bool handle_milter_check(struct channel *ch, const char *payload, size_t len)
{
    static struct milter_check c;       /* large: not on the stack */
    struct milter_result_msg *r;
    const struct auth_grant *g = NULL;
    char err[160];
    bool ok;

    if (!milter_check_decode(payload, len, &c, err, sizeof(err)) || c.auth_user[0]) {
        /* Answered with a tempfail when it can be: what the worker sent
         * may come from a client's bytes this check is stricter about,
         * and one session's oddity must not cut every session off. */
        uint64_t id;

        log_error("event=milter_check_refused slot=%d reason=\"%s\"", ch->slot,
                  c.auth_user[0] ? "names a user" : err);
        envelope_clear(&c.env);
        if (!milter_check_peek_id(payload, len, &id))
            return false;
        r = xcalloc(1, sizeof(*r));
        r->job_id = id;
        r->verdict = MILTER_RESULT_TEMPFAIL;
        snprintf(r->reply, sizeof(r->reply), "451 4.3.0 Error: cannot ask the content "
                 "filter, try again later");
        ok = answer_check(ch, r);
        free(r);
        return ok;
    }
    if (c.facts.auth_token[0])
        g = granted(ch, c.facts.auth_token);
    if (ch->qs->milters && config_milters_at(ch->qs->cfg, c.facts.listener, c.stage) &&
        (g || !c.facts.auth_token[0]) &&
        milter_gate_check(ch->qs->milters, &c, g ? g->user : NULL, g ? g->mechanism : NULL,
                          ch->serial)) {
        envelope_clear(&c.env);
        return true;            /* answered by check_done */
    }
    r = xcalloc(1, sizeof(*r));
    r->job_id = c.id;
    if (c.facts.auth_token[0] && g == NULL) {
        r->verdict = MILTER_RESULT_TEMPFAIL;
        snprintf(r->reply, sizeof(r->reply), "451 4.7.0 Error: session no longer known, "
                 "try again later");
    }
    ok = answer_check(ch, r);
    free(r);
    envelope_clear(&c.env);
    return ok;
}

static bool handle_abort(struct channel *ch, const char *payload, size_t len)
{
    struct open_msg *om = find_open(ch, payload, len);

    if (om == NULL)
        return false;
    queue_msg_abort(om->msg);
    om->msg = NULL;
    return true;
}

/* SMTP AUTH: the verifier answers later (auth_answered). Without users,
 * or a request that does not decode, the worker misbehaved. */
static bool handle_auth(struct channel *ch, const char *payload, size_t len)
{
    struct auth_request req;

    if (ch->qs->auth == NULL || !auth_request_decode(payload, len, &req))
        return false;
    auth_verifier_check(ch->qs->auth, ch->serial, &req);
    explicit_bzero(&req, sizeof(req));
    return true;
}

/* The verifier's verdict for a channel's request. */
static void auth_answered(unsigned long serial, const struct auth_answer *ans,
                          const char *user, const char *mechanism, void *arg)
{
    struct queue_server *qs = arg;
    struct channel *ch = channel_by_serial(qs, serial);
    char q[4 * SASL_USER_MAX + 8];

    if (ch == NULL)
        return;                 /* the worker is gone */
    if (ans->verdict == AUTH_OK) {
        grant(ch, ans->token, user, mechanism);
        log_info("event=auth_granted slot=%d user=%s mechanism=%s", ch->slot,
                 log_value(q, sizeof(q), user), mechanism);
    }
    if (!answer(ch, IPC_AUTH_RESULT, ans, sizeof(*ans), -1))
        channel_close(ch, "send_failed");
}

/* Handle one request; false when the channel was closed. */
static bool channel_request(struct channel *ch)
{
    static char payload[IPC_MAX_PAYLOAD];
    enum ipc_type type;
    size_t len;
    int passed;
    enum ipc_status st;
    bool ok;

    st = ipc_recv(ch->fd, &type, payload, sizeof(payload), &len, false, &passed);
    if (st == IPC_AGAIN)
        return false;
    if (st != IPC_OK) {
        channel_close(ch, st == IPC_EOF ? "worker_gone" : "garbage");
        return false;
    }
    switch (type) {
    case IPC_MSG_NEW:    ok = handle_new(ch, payload, len);    break;
    case IPC_MSG_COMMIT: ok = handle_commit(ch, payload, len); break;
    case IPC_MSG_ABORT:  ok = handle_abort(ch, payload, len);  break;
    case IPC_AUTH_CHECK: ok = handle_auth(ch, payload, len);   break;
    case IPC_MILTER_CHECK: ok = handle_milter_check(ch, payload, len); break;
    default:             ok = false;                           break;
    }
    if (!ok) {
        log_error("event=ipc_garbage slot=%d type=%d action=close_channel", ch->slot, (int)type);
        channel_close(ch, "garbage");
    }
    return ok;
}

/* Everything a worker has sent so far; commits wait for the group flush. */
static void channel_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    while (channel_request(arg))
        ;
}

static void add_channel(struct queue_server *qs, int fd, int slot)
{
    struct channel *ch = xcalloc(1, sizeof(*ch));

    evutil_make_socket_nonblocking(fd);
    ch->qs = qs;
    ch->serial = ++qs->next_serial;
    ch->fd = fd;
    ch->slot = slot;
    ch->ev = event_new(qs->base, fd, EV_READ | EV_PERSIST, channel_read, ch);
    ch->out = ipc_outq_new(qs->base, fd, MAX_QUEUED_ANSWERS, answer_failed, ch);
    event_add(ch->ev, NULL);
    ch->next = qs->channels;
    qs->channels = ch;
}

static void mailboxes_reloaded(struct queue_server *qs, int fd);

static void control_read(evutil_socket_t fd, short what, void *arg)
{
    struct queue_server *qs = arg;
    enum ipc_type type;
    char payload[64];
    size_t len;
    int passed;
    enum ipc_status st = ipc_recv(fd, &type, payload, sizeof(payload), &len, true, &passed);
    int32_t slot;

    (void)what;
    if (st == IPC_AGAIN)
        return;
    if (st == IPC_EOF)
        fatal("event=master_gone action=exit");
    if (st == IPC_OK && type == IPC_MAILBOXES && len == 0 && passed >= 0 && qs->cfg) {
        mailboxes_reloaded(qs, passed);
        return;
    }
    if (st == IPC_OK && type == IPC_DELIVERY_CHANNEL && len == 0 && passed >= 0 &&
        qs->on_delivery) {
        qs->on_delivery(passed, qs->on_delivery_arg);
        return;
    }
    if (st == IPC_OK && type == IPC_LOCAL_CHANNEL && len == sizeof(slot) && passed >= 0 &&
        qs->on_local) {
        memcpy(&slot, payload, sizeof(slot));
        qs->on_local(slot, passed, qs->on_delivery_arg);
        return;
    }
    if (st == IPC_OK && type == IPC_MILTER_CHANNEL && len == sizeof(slot) && passed >= 0 &&
        qs->milters) {
        memcpy(&slot, payload, sizeof(slot));
        milter_gate_set_channel(qs->milters, slot, passed);
        return;
    }
    if (st == IPC_OK && type == IPC_LMTP_CHANNEL && len == 0 && passed >= 0 &&
        qs->on_local) {
        qs->on_local(SCHEDULER_LMTP_SLOT, passed, qs->on_delivery_arg);
        return;
    }
    if (st != IPC_OK || type != IPC_CHANNEL || len != sizeof(slot) || passed < 0)
        fatal("event=ipc_garbage peer=master");
    memcpy(&slot, payload, sizeof(slot));
    add_channel(qs, passed, slot);
}

const struct recipient_policy *queue_server_recipients(const struct queue_server *qs)
{
    return qs->recipients;
}

void queue_server_on_pickup(struct queue_server *qs, milter_gate_done_pickup_cb cb, void *arg)
{
    qs->pickup_done = cb;
    qs->pickup_arg = arg;
}

bool queue_server_sendmail_milters(const struct queue_server *qs)
{
    return qs->milters && qs->pickup_done &&
           milter_gate_wanted(qs->milters, CONFIG_SENDMAIL_MILTERS);
}

void queue_server_ask_milters(struct queue_server *qs, struct queue_msg *msg)
{
    milter_gate_ask(qs->milters, msg, CONFIG_SENDMAIL_MILTERS, NULL, NULL, false,
                    QUEUE_SERVER_PICKUP);
}

bool queue_server_expand(void *arg, const struct envelope *in, struct envelope *out,
                         char *why, size_t whysize)
{
    struct queue_server *qs = arg;
    bool ok = false;

    pthread_rwlock_rdlock(&qs->policy_lock);
    if (qs->recipients)
        ok = alias_expand_envelope(qs->recipients, qs->cfg->max_alias_recipients, in, out,
                                   why, whysize);
    else
        snprintf(why, whysize, "no mailbox lists");
    pthread_rwlock_unlock(&qs->policy_lock);
    return ok;
}

void queue_server_set_policy(struct queue_server *qs, const struct config *cfg,
                             struct recipient_policy *recipients)
{
    /* the scheduler thread may be expanding a DSN's envelope with the old one */
    pthread_rwlock_wrlock(&qs->policy_lock);
    recipient_policy_free(qs->recipients);
    qs->cfg = cfg;
    qs->recipients = recipients;
    pthread_rwlock_unlock(&qs->policy_lock);
    if (qs->milters == NULL && cfg && config_uses_milters(cfg))
    {
        qs->milters = milter_gate_new(qs->base, cfg, qs->queue, milters_done, qs);
        milter_gate_on_check(qs->milters, check_done, qs);
    }
}

bool queue_server_read_users(const struct config *cfg, const struct file_snapshot *files,
                             struct credentials **out, char *err, size_t errsize)
{
    const char *path = cfg->submission.users;
    const struct snapshot_file *f;

    *out = NULL;
    if (path == NULL)
        return true;
    if ((f = snapshot_find(files, path)) == NULL) {
        snprintf(err, errsize, "%s: not in the snapshot", path);
        return false;
    }
    *out = credentials_parse((const char *)f->data, f->len, err, errsize);
    return *out != NULL;
}

bool queue_server_set_users(struct queue_server *qs, struct credentials *c, char *err,
                            size_t errsize)
{
    if (c == NULL)
        return true;
    if (qs->auth == NULL)
        qs->auth = auth_verifier_new(qs->base, &qs->cfg->submission, auth_answered, qs);
    if (qs->auth == NULL) {
        credentials_free(c);
        snprintf(err, errsize, "cannot start the password check thread");
        return false;
    }
    auth_verifier_set_users(qs->auth, c);
    log_info("event=auth_users count=%zu", credentials_count(c));
    return true;
}

/* SIGHUP at the master: the mailbox lists the new workers get, as a
 * sealed snapshot. A bad one keeps the old lists. */
static void mailboxes_reloaded(struct queue_server *qs, int fd)
{
    char err[512];
    struct file_snapshot *files = snapshot_from_fd(fd, err, sizeof(err));
    struct recipient_policy *rp = NULL;
    struct credentials *users = NULL;

    close(fd);
    if (files)
        rp = recipient_policy_new(qs->cfg, files, err, sizeof(err));
    if (rp && (!queue_server_read_users(qs->cfg, files, &users, err, sizeof(err)) ||
               !queue_server_set_users(qs, users, err, sizeof(err)))) {
        recipient_policy_free(rp);
        rp = NULL;
    }
    snapshot_free(files);
    if (rp == NULL) {
        log_error("event=reload role=queue what=mailboxes status=failed keeping=old "
                  "error=\"%s\"", err);
        return;
    }
    queue_server_set_policy(qs, qs->cfg, rp);
    log_info("event=reload role=queue what=mailboxes status=ok");
}

void queue_server_on_delivery_channel(struct queue_server *qs, queue_server_channel_cb cb,
                                      queue_server_local_cb local_cb,
                                      void *arg)
{
    qs->on_delivery = cb;
    qs->on_delivery_arg = arg;
    qs->on_local = local_cb;
}

struct queue_server *queue_server_new(struct event_base *base, struct queue *q, int control)
{
    struct queue_server *qs = xcalloc(1, sizeof(*qs));

    qs->base = base;
    qs->queue = q;
    qs->control = control;
    pthread_rwlock_init(&qs->policy_lock, NULL);
    evutil_make_socket_nonblocking(control);
    qs->control_ev = event_new(base, control, EV_READ | EV_PERSIST, control_read, qs);
    event_add(qs->control_ev, NULL);
    qs->flush_ev = event_new(base, -1, 0, start_group, qs);
    qs->commits = commit_thread_start(base, q, group_done, qs);
    if (qs->commits == NULL)
        fatal("event=start_failed role=queue error=\"commit thread\"");
    return qs;
}

void queue_server_ready(struct queue_server *qs)
{
    if (!ipc_send(qs->control, IPC_QUEUE_READY, NULL, 0, -1))
        fatal("event=ipc_failed peer=master error=\"%s\"", strerror(errno));
}

void queue_server_free(struct queue_server *qs)
{
    if (qs == NULL)
        return;
    milter_gate_free(qs->milters);     /* what waits for milters: default action */
    commit_thread_stop(qs->commits);   /* answers what it commits */
    while (qs->channels)
        channel_close(qs->channels, "shutdown");
    event_free(qs->flush_ev);
    event_free(qs->control_ev);
    auth_verifier_free(qs->auth);
    recipient_policy_free(qs->recipients);
    pthread_rwlock_destroy(&qs->policy_lock);
    free(qs);
}

/*
 * queue_client.c - the smtpd worker's side of the queue channel (see
 * queue_client.h).
 *
 * Starts (NEW) are answered in the order they were sent, so waiting
 * starts form a FIFO; commits are answered by queue id, in whatever
 * order their groups finish. Requests go out through a bounded,
 * non-blocking output queue. A timer breaks the channel when the oldest
 * request has waited REPLY_TIMEOUT: a queue that stopped answering must
 * not hold sessions forever.
 *
 * Trusts: the queue process only as far as util/ipc.c checks its
 * messages; anything unexpected breaks the channel (never the worker).
 */
#include "smtpd/queue_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mail/milter_check.h"
#include "mail/milter_codec.h"
#include "mail/sasl.h"
#include "util/fd_writer.h"
#include "util/ipc.h"
#include "util/ipc_outq.h"
#include "util/log.h"
#include "util/xalloc.h"

#define REPLY_TIMEOUT 120           /* seconds the queue may take to answer */
#define TIMER_PERIOD 5              /* seconds between checks while requests wait */
#define MAX_QUEUED_REQUESTS 100000  /* requests waiting for room on the channel */

struct incoming_request {
    struct queue_link *link;
    struct envelope *env;
    incoming_ready_cb cb;
    void *arg;
    bool cancelled;
    time_t sent;
    struct incoming_request *next;
};

struct incoming_msg {
    struct queue_link *link;
    char id[QUEUE_ID_LEN + 1];
    char refusal[MILTER_CODEC_REPLY_MAX + 1];   /* a milter's reply, or "" */
    struct fd_writer out;
};

enum commit_state { COMMIT_WAITING, COMMIT_OK, COMMIT_FAILED };

struct pending_commit {
    struct incoming_msg *msg;
    incoming_commit_cb cb;
    void *arg;
    enum commit_state state;
    time_t sent;
    struct pending_commit *next;
};

struct auth_pending {
    uint32_t id;
    auth_answer_cb cb;
    void *arg;
    bool cancelled;
    time_t sent;
    struct auth_pending *next;
};

/* A milter check (mail/milter_check.h) waiting for its verdict. */
struct milter_pending {
    uint64_t id;
    milter_answer_cb cb;
    void *arg;
    bool cancelled;
    bool answered;                  /* verdict and reply hold the answer */
    enum milter_result_verdict verdict;
    char reply[MILTER_CODEC_REPLY_MAX + 1];
    time_t sent;
    struct milter_pending *next;
};

struct queue_link {
    int channel;
    struct milter_pending *checks;  /* milter checks waiting for the queue */
    uint64_t next_check_id;
    struct auth_pending *auths;     /* AUTH checks waiting for the queue */
    uint32_t next_auth_id;
    struct event *channel_ev;
    struct event *timer;
    struct ipc_outq *out;
    struct incoming_request *starts, **starts_tail;
    struct pending_commit *pending;
    bool broken, broken_told;
    bool gone;                      /* the queue's end closed */
    void (*on_broken)(void *arg, bool queue_gone);
    void *on_broken_arg;
};

static void channel_readable(evutil_socket_t fd, short what, void *arg);

/*
 * The channel can no longer be trusted to be in step: everything waiting
 * fails, later requests fail, the worker is told - all from the event
 * loop, not inside whichever session's call found the fault. The queue
 * may have committed a message whose answer is lost; its client then
 * sends it again (at least once, never lost).
 */
static void channel_broken(struct queue_link *link, const char *why, bool gone)
{
    if (link->broken)
        return;
    link->broken = true;
    link->gone = gone;
    if (gone)   /* the master logs the queue's death and restarts it */
        log_warn("event=queue_gone error=\"%s\" action=refuse_mail", why);
    else
        log_error("event=ipc_failed peer=queue error=\"%s\" action=retire", why);
    event_del(link->channel_ev);
    event_del(link->timer);
    for (struct pending_commit *p = link->pending; p; p = p->next) {
        if (p->state == COMMIT_WAITING) {
            p->msg->out.error = EIO;
            p->state = COMMIT_FAILED;
        }
    }
    event_active(link->channel_ev, EV_READ, 0);
}

/* A write to a closed peer: the queue is gone. */
static bool peer_closed(int err)
{
    return err == EPIPE || err == ECONNRESET || err == ENOTCONN;
}

static void outq_failed(int err, void *arg)
{
    channel_broken(arg, strerror(err), peer_closed(err));
}

static bool send_request(struct queue_link *link, enum ipc_type type, const void *payload,
                         size_t len)
{
    if (link->broken)
        return false;
    if (!ipc_outq_send(link->out, type, payload, len, -1)) {
        channel_broken(link, errno == ENOBUFS ? "queue does not read" : strerror(errno),
                       peer_closed(errno));
        return false;
    }
    return true;
}

/* Arm the answer timer while anything waits. */
static void watch(struct queue_link *link)
{
    struct timeval tv = { TIMER_PERIOD, 0 };

    if (!link->broken && !evtimer_pending(link->timer, NULL))
        evtimer_add(link->timer, &tv);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct queue_link *link = arg;
    time_t now = time(NULL), oldest = now;

    (void)fd;
    (void)what;
    if (link->starts)
        oldest = link->starts->sent;
    for (struct auth_pending *a = link->auths; a; a = a->next)
        if (a->sent < oldest)
            oldest = a->sent;
    for (struct milter_pending *m = link->checks; m; m = m->next)
        if (!m->answered && m->sent < oldest)
            oldest = m->sent;
    for (struct pending_commit *p = link->pending; p; p = p->next) {
        if (p->state == COMMIT_WAITING && p->sent < oldest)
            oldest = p->sent;
    }
    if (now - oldest >= REPLY_TIMEOUT) {
        channel_broken(link, "no answer", false);
        return;
    }
    if (link->starts || link->pending || link->auths || link->checks)
        watch(link);
}

struct queue_link *queue_link_new(int channel, struct event_base *base)
{
    struct queue_link *link = xcalloc(1, sizeof(*link));

    evutil_make_socket_nonblocking(channel);
    link->channel = channel;
    link->starts_tail = &link->starts;
    link->channel_ev = event_new(base, channel, EV_READ | EV_PERSIST, channel_readable, link);
    link->timer = evtimer_new(base, timer_fired, link);
    link->out = ipc_outq_new(base, channel, MAX_QUEUED_REQUESTS, outq_failed, link);
    event_add(link->channel_ev, NULL);
    return link;
}

void queue_link_on_broken(struct queue_link *link, void (*cb)(void *arg, bool queue_gone),
                          void *arg)
{
    link->on_broken = cb;
    link->on_broken_arg = arg;
}

bool queue_link_up(const struct queue_link *link)
{
    return !link->broken;
}

static void msg_free(struct incoming_msg *msg)
{
    if (msg->out.fd >= 0)
        close(msg->out.fd);
    free(msg);
}

void queue_link_free(struct queue_link *link)
{
    if (link == NULL)
        return;
    while (link->pending) {
        struct pending_commit *p = link->pending;
        link->pending = p->next;
        msg_free(p->msg);
        free(p);
    }
    while (link->starts) {
        struct incoming_request *r = link->starts;
        link->starts = r->next;
        free(r);
    }
    while (link->auths) {
        struct auth_pending *a = link->auths;
        link->auths = a->next;
        free(a);
    }
    while (link->checks) {
        struct milter_pending *m = link->checks;
        link->checks = m->next;
        free(m);
    }
    ipc_outq_free(link->out);
    event_free(link->timer);
    event_free(link->channel_ev);
    close(link->channel);
    free(link);
}

/* --- answers --- */

static bool id_payload(const char *p, size_t len, char *id)
{
    if (len != QUEUE_ID_LEN)
        return false;
    memcpy(id, p, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    return queue_id_valid(id);
}

/* The oldest start is answered: a file (fd >= 0) or an errno. */
static void start_answered(struct queue_link *link, enum ipc_type type, const char *payload,
                           size_t len, int fd)
{
    struct incoming_request *req = link->starts;
    struct incoming_msg *msg;
    char id[QUEUE_ID_LEN + 1];
    int32_t e = EIO;

    if (req == NULL || (type == IPC_MSG_NEW_OK && (fd < 0 || !id_payload(payload, len, id))) ||
        (type == IPC_MSG_NEW_FAIL && (fd >= 0 || len != sizeof(e)))) {
        if (fd >= 0)
            close(fd);
        channel_broken(link, "bad answer to a new message", false);
        return;
    }
    link->starts = req->next;
    if (link->starts == NULL)
        link->starts_tail = &link->starts;
    if (type == IPC_MSG_NEW_FAIL) {
        memcpy(&e, payload, sizeof(e));
        if (!req->cancelled)
            req->cb(NULL, e > 0 ? e : EIO, req->arg);
        free(req);
        return;
    }
    if (req->cancelled) {           /* the session left meanwhile */
        close(fd);
        send_request(link, IPC_MSG_ABORT, id, QUEUE_ID_LEN);
        free(req);
        return;
    }
    msg = xcalloc(1, sizeof(*msg));
    msg->link = link;
    memcpy(msg->id, id, sizeof(msg->id));
    memcpy(req->env->id, id, sizeof(req->env->id));
    fd_writer_init(&msg->out, fd);
    req->cb(msg, 0, req->arg);
    free(req);
}

static void commit_answered(struct queue_link *link, enum ipc_type type, const char *payload,
                            size_t len)
{
    char id[QUEUE_ID_LEN + 1];
    int32_t e;

    for (struct pending_commit *p = link->pending; p; p = p->next) {
        if (p->state != COMMIT_WAITING)
            continue;
        if (type == IPC_MSG_COMMIT_OK && id_payload(payload, len, id) &&
            strcmp(id, p->msg->id) == 0) {
            p->state = COMMIT_OK;
            return;
        }
        if (type == IPC_MSG_COMMIT_FAIL && len == sizeof(e) + QUEUE_ID_LEN &&
            memcmp(payload + sizeof(e), p->msg->id, QUEUE_ID_LEN) == 0) {
            memcpy(&e, payload, sizeof(e));
            p->msg->out.error = e > 0 ? e : EIO;
            p->state = COMMIT_FAILED;
            return;
        }
        if (type == IPC_MSG_COMMIT_REFUSED && len > QUEUE_ID_LEN &&
            len - QUEUE_ID_LEN <= MILTER_CODEC_REPLY_MAX &&
            memcmp(payload, p->msg->id, QUEUE_ID_LEN) == 0) {
            char *reply = p->msg->refusal;

            memcpy(reply, payload + QUEUE_ID_LEN, len - QUEUE_ID_LEN);
            reply[len - QUEUE_ID_LEN] = '\0';
            if (!milter_reply_valid(reply, reply[0] == '4')) {
                reply[0] = '\0';
                break;
            }
            p->msg->out.error = EPERM;
            p->state = COMMIT_FAILED;
            return;
        }
    }
    channel_broken(link, "answer to no pending commit", false);
}

/* Run the callbacks of answered commits, in the order they were sent. */
static void dispatch_commits(struct queue_link *link)
{
    struct pending_commit **pp = &link->pending;

    while (*pp) {
        struct pending_commit *p = *pp;

        if (p->state == COMMIT_WAITING) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        close(p->msg->out.fd);
        p->msg->out.fd = -1;
        p->cb(p->msg, p->state == COMMIT_OK, p->arg);
        free(p->msg);
        free(p);
    }
}

/* The answer to the AUTH check of its id (any order). */
static void auth_answered(struct queue_link *link, const char *payload, size_t len)
{
    struct auth_answer ans;

    if (!auth_answer_decode(payload, len, &ans)) {
        channel_broken(link, "malformed AUTH answer", false);
        return;
    }
    for (struct auth_pending **pp = &link->auths; *pp; pp = &(*pp)->next) {
        struct auth_pending *a = *pp;

        if (a->id != ans.id)
            continue;
        *pp = a->next;
        if (!a->cancelled)
            a->cb(&ans, a->arg);
        free(a);
        return;
    }
    channel_broken(link, "answer to no pending AUTH", false);
}

/* The verdict of the milter check of its id (any order); run later by
 * dispatch_checks. */
static void check_answered(struct queue_link *link, const char *payload, size_t len)
{
    static struct milter_result_msg r;      /* large: not on the stack */
    char err[120];

    if (!milter_result_decode(payload, len, &r, err, sizeof(err)) || r.content ||
        r.quarantine || r.change_from || r.add_count || r.delete_count) {
        channel_broken(link, "malformed milter verdict", false);
        return;
    }
    for (struct milter_pending *m = link->checks; m; m = m->next) {
        if (m->id != r.job_id || m->answered)
            continue;
        m->answered = true;
        m->verdict = r.verdict;
        memcpy(m->reply, r.reply, sizeof(m->reply));
        return;
    }
    channel_broken(link, "verdict for no pending milter check", false);
}

/* Run the callbacks of answered checks. */
static void dispatch_checks(struct queue_link *link)
{
    struct milter_pending **pp = &link->checks;

    while (*pp) {
        struct milter_pending *m = *pp;

        if (!m->answered) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        if (!m->cancelled)
            m->cb(m->verdict, m->reply, m->arg);
        free(m);
        pp = &link->checks;         /* a callback may have changed the list */
    }
}

/* After a fault: fail every start still waiting, then tell the worker. */
static void fail_everything(struct queue_link *link)
{
    struct auth_answer tempfail = { 0, AUTH_TEMPFAIL, "" };

    while (link->auths) {
        struct auth_pending *a = link->auths;

        link->auths = a->next;
        if (!a->cancelled)
            a->cb(&tempfail, a->arg);
        free(a);
    }
    while (link->starts) {
        struct incoming_request *req = link->starts;

        link->starts = req->next;
        if (!req->cancelled)
            req->cb(NULL, EIO, req->arg);
        free(req);
    }
    link->starts_tail = &link->starts;
    for (struct milter_pending *m = link->checks; m; m = m->next) {
        if (!m->answered) {
            m->answered = true;
            m->verdict = MILTER_RESULT_TEMPFAIL;
            snprintf(m->reply, sizeof(m->reply), "451 4.3.0 Error: mail queue unavailable, "
                     "try again later");
        }
    }
    dispatch_checks(link);
    dispatch_commits(link);
    if (link->on_broken && !link->broken_told) {
        link->broken_told = true;
        link->on_broken(link->on_broken_arg, link->gone);
    }
}

/* Read one message if there is one: false when there is none now. */
static bool read_one(struct queue_link *link, enum ipc_type *type, char *payload, size_t size,
                     size_t *len, int *fd)
{
    enum ipc_status st;

    if (link->broken)
        return false;
    st = ipc_recv(link->channel, type, payload, size, len, true, fd);
    if (st == IPC_AGAIN)
        return false;
    if (st != IPC_OK) {
        channel_broken(link, st == IPC_EOF     ? "closed"
                             : st == IPC_ERROR ? strerror(errno) : "malformed",
                       st == IPC_EOF || (st == IPC_ERROR && peer_closed(errno)));
        return false;
    }
    return true;
}

static void channel_readable(evutil_socket_t fd, short what, void *arg)
{
    struct queue_link *link = arg;
    enum ipc_type type;
    /* the longest answer: a milter verdict with its reply and name */
    char payload[2 * MILTER_CODEC_REPLY_MAX + 256];
    size_t len;
    int passed;

    (void)fd;
    (void)what;
    while (read_one(link, &type, payload, sizeof(payload), &len, &passed)) {
        if (type == IPC_MSG_NEW_OK || type == IPC_MSG_NEW_FAIL) {
            start_answered(link, type, payload, len, passed);
        } else if ((type == IPC_MSG_COMMIT_OK || type == IPC_MSG_COMMIT_FAIL ||
                    type == IPC_MSG_COMMIT_REFUSED) && passed < 0) {
            commit_answered(link, type, payload, len);
        } else if (type == IPC_AUTH_RESULT && passed < 0) {
            auth_answered(link, payload, len);
        } else if (type == IPC_MILTER_VERDICT && passed < 0) {
            check_answered(link, payload, len);
        } else {
            if (passed >= 0)
                close(passed);
            channel_broken(link, "unexpected message", false);
        }
    }
    if (link->broken) {
        fail_everything(link);
    } else {
        dispatch_checks(link);
        dispatch_commits(link);
    }
}

/* --- requests --- */

struct incoming_request *incoming_start(struct queue_link *link, struct envelope *env,
                                        const struct queue_request_facts *facts,
                                        incoming_ready_cb cb, void *arg)
{
    struct incoming_request *req = xcalloc(1, sizeof(*req));
    size_t len = 0;
    char *payload;

    req->link = link;
    req->env = env;
    req->cb = cb;
    req->arg = arg;
    req->sent = time(NULL);
    *link->starts_tail = req;
    link->starts_tail = &req->next;
    memset(env->id, '0', QUEUE_ID_LEN);     /* placeholder; the queue assigns it */
    env->id[QUEUE_ID_LEN] = '\0';
    payload = queue_request_encode(facts, env, &len);
    if (payload == NULL)
        channel_broken(link, "envelope too large for the channel", false);
    else
        send_request(link, IPC_MSG_NEW, payload, len);
    free(payload);
    if (link->broken)
        event_active(link->channel_ev, EV_READ, 0);     /* fails it from the loop */
    watch(link);
    return req;
}

void incoming_cancel(struct incoming_request *req)
{
    req->cancelled = true;
}

const char *incoming_refusal(const struct incoming_msg *msg)
{
    return msg->refusal;
}

const char *incoming_id(const struct incoming_msg *msg)
{
    return msg->id;
}

bool incoming_write(struct incoming_msg *msg, const void *data, size_t len)
{
    return fd_writer_write(&msg->out, data, len);
}

int incoming_error(const struct incoming_msg *msg)
{
    return msg->out.error;
}

void incoming_commit(struct incoming_msg *msg, incoming_commit_cb cb, void *arg)
{
    struct queue_link *link = msg->link;
    struct pending_commit *p, **tail;

    if (!fd_writer_flush(&msg->out) ||
        !send_request(link, IPC_MSG_COMMIT, msg->id, QUEUE_ID_LEN)) {
        /* The queue still holds the file: tell it to drop it. */
        send_request(link, IPC_MSG_ABORT, msg->id, QUEUE_ID_LEN);
        if (msg->out.error == 0)
            msg->out.error = EIO;
        close(msg->out.fd);
        msg->out.fd = -1;
        cb(msg, false, arg);
        free(msg);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->msg = msg;
    p->cb = cb;
    p->arg = arg;
    p->sent = time(NULL);
    for (tail = &link->pending; *tail; tail = &(*tail)->next)
        ;
    *tail = p;
    watch(link);
}

void incoming_abort(struct incoming_msg *msg)
{
    send_request(msg->link, IPC_MSG_ABORT, msg->id, QUEUE_ID_LEN);
    msg_free(msg);
}

struct auth_pending *auth_start(struct queue_link *link, const char *client,
                                enum auth_mechanism mechanism, struct sasl_creds *creds,
                                auth_answer_cb cb, void *arg)
{
    struct auth_pending *a = xcalloc(1, sizeof(*a));
    struct auth_request req;

    a->id = ++link->next_auth_id;
    a->cb = cb;
    a->arg = arg;
    a->sent = time(NULL);
    a->next = link->auths;
    link->auths = a;
    memset(&req, 0, sizeof(req));
    req.id = a->id;
    req.mechanism = (uint32_t)mechanism;
    snprintf(req.client, sizeof(req.client), "%s", client);
    snprintf(req.user, sizeof(req.user), "%s", creds->user);
    snprintf(req.password, sizeof(req.password), "%s", creds->password);
    sasl_creds_wipe(creds);
    send_request(link, IPC_AUTH_CHECK, &req, sizeof(req));
    explicit_bzero(&req, sizeof(req));
    if (link->broken)
        event_active(link->channel_ev, EV_READ, 0);     /* fails it from the loop */
    watch(link);
    return a;
}

void auth_cancel(struct auth_pending *p)
{
    p->cancelled = true;
}

struct milter_pending *milter_check_start(struct queue_link *link, struct milter_check *c,
                                          milter_answer_cb cb, void *arg)
{
    struct milter_pending *m = xcalloc(1, sizeof(*m));
    size_t len = 0;
    char *payload;

    m->id = ++link->next_check_id;
    m->cb = cb;
    m->arg = arg;
    m->sent = time(NULL);
    m->next = link->checks;
    link->checks = m;
    c->id = m->id;
    payload = milter_check_encode(c, &len);
    if (payload == NULL) {          /* cannot happen: one recipient at most */
        m->answered = true;
        m->verdict = MILTER_RESULT_TEMPFAIL;
        snprintf(m->reply, sizeof(m->reply), "451 4.3.0 Error: internal error");
    } else {
        send_request(link, IPC_MILTER_CHECK, payload, len);
        free(payload);
    }
    event_active(link->channel_ev, EV_READ, 0);   /* answered or failed from the loop */
    watch(link);
    return m;
}

void milter_check_cancel(struct milter_pending *p)
{
    p->cancelled = true;
}

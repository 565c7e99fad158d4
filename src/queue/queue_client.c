/*
 * queue_client.c - the smtpd worker's side of the queue (see queue.h,
 * queue_connect). The worker never opens a spool file: it asks the queue
 * process for a new message and receives one writable descriptor; it
 * writes the message into it and asks for a commit.
 *
 * Starting a message waits for the queue's answer (a file create, fast).
 * A commit does not: the request is sent and the session waits in its
 * commit state while the event loop serves other sessions; the answer
 * arrives on the channel and runs the callback. That lets the queue
 * commit many messages with one round of fsyncs (group commit).
 *
 * Trusts: the queue process only as far as ipc.c checks its messages.
 * Anything unexpected on the channel, a failed send or no answer breaks
 * the channel, never the worker: every commit still waiting fails (its
 * session answers 451 4.3.0, the message is not acknowledged), every
 * later request fails the same way, and the worker is told (on_broken)
 * so that it stops accepting and the master replaces it once its other
 * sessions have ended.
 */
#include "queue/queue_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "privsep/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

#define REPLY_TIMEOUT_MS (120 * 1000)

enum commit_state { COMMIT_WAITING, COMMIT_OK, COMMIT_FAILED };

struct pending_commit {
    struct queue_msg *msg;
    queue_commit_cb cb;
    void *arg;
    enum commit_state state;
    struct pending_commit *next;
};

static void channel_readable(evutil_socket_t fd, short what, void *arg);
static void dispatch(struct queue *q);

/*
 * The channel can no longer be trusted to be in step: fail what waits,
 * refuse what comes, tell the worker. The queue may have committed a
 * message whose answer is lost; its client then sends it again (at
 * least once, never lost).
 */
static void channel_broken(struct queue *q, const char *why)
{
    if (q->broken)
        return;
    q->broken = true;
    log_error("event=ipc_failed peer=queue error=\"%s\" action=retire", why);
    event_del(q->channel_ev);
    for (struct pending_commit *p = q->pending; p; p = p->next) {
        if (p->state == COMMIT_WAITING) {
            p->msg->error = EIO;
            p->state = COMMIT_FAILED;
        }
    }
    /* The callbacks run from the event loop, not inside whichever
     * session's call found the fault. */
    event_active(q->channel_ev, EV_READ, 0);
}

void queue_on_broken(struct queue *q, void (*cb)(void *arg), void *arg)
{
    q->on_broken = cb;
    q->on_broken_arg = arg;
}

struct queue *queue_connect(int channel, struct event_base *base)
{
    struct queue *q = xcalloc(1, sizeof(*q));

    evutil_make_socket_nonblocking(channel);
    q->channel = channel;
    q->incoming_fd = q->queue_fd = -1;
    q->channel_ev = event_new(base, channel, EV_READ | EV_PERSIST, channel_readable, q);
    event_add(q->channel_ev, NULL);
    return q;
}

void queue_client_close(struct queue *q)
{
    while (q->pending) {
        struct pending_commit *p = q->pending;
        q->pending = p->next;
        close(p->msg->fd);
        free(p->msg);
        free(p);
    }
    event_free(q->channel_ev);
    close(q->channel);
    free(q);
}

static bool id_payload(const char *p, size_t len, char *id)
{
    if (len != QUEUE_ID_LEN)
        return false;
    memcpy(id, p, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    return queue_id_valid(id);
}

/* A commit answer: mark its pending entry. */
static void commit_answered(struct queue *q, enum ipc_type type, const char *payload,
                            size_t len)
{
    char id[QUEUE_ID_LEN + 1];
    int32_t e;

    for (struct pending_commit *p = q->pending; p; p = p->next) {
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
            p->msg->error = e > 0 ? e : EIO;
            p->state = COMMIT_FAILED;
            return;
        }
    }
    channel_broken(q, "answer to no pending commit");
}

/* Run the callbacks of answered commits, in the order they were sent. */
static void dispatch(struct queue *q)
{
    struct pending_commit **pp = &q->pending;

    while (*pp) {
        struct pending_commit *p = *pp;

        if (p->state == COMMIT_WAITING) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        close(p->msg->fd);
        p->cb(p->msg, p->state == COMMIT_OK, p->arg);
        free(p->msg);
        free(p);
    }
}

/* Read one message if there is one: false when the channel is empty or
 * broken. */
static bool read_one(struct queue *q, enum ipc_type *type, char *payload, size_t size,
                     size_t *len, int *fd)
{
    enum ipc_status st;

    if (q->broken)
        return false;
    st = ipc_recv(q->channel, type, payload, size, len, true, fd);
    if (st == IPC_AGAIN)
        return false;
    if (st != IPC_OK) {
        channel_broken(q, st == IPC_ERROR ? strerror(errno) : "closed or malformed");
        return false;
    }
    return true;
}

static void channel_readable(evutil_socket_t fd, short what, void *arg)
{
    struct queue *q = arg;
    enum ipc_type type;
    char payload[64];
    size_t len;
    int passed;

    (void)fd;
    (void)what;
    if (q->broken) {
        dispatch(q);
        if (q->on_broken && !q->broken_told) {
            q->broken_told = true;
            q->on_broken(q->on_broken_arg);
        }
        return;
    }
    while (read_one(q, &type, payload, sizeof(payload), &len, &passed)) {
        if (passed >= 0 || (type != IPC_MSG_COMMIT_OK && type != IPC_MSG_COMMIT_FAIL)) {
            if (passed >= 0)
                close(passed);
            channel_broken(q, "unexpected message");
            return;
        }
        commit_answered(q, type, payload, len);
    }
    dispatch(q);
}

/* Wait for the answer to a NEW request; commit answers that arrive first
 * are noted and dispatched later from the event loop. IPC_NONE when the
 * channel broke. */
static enum ipc_type wait_new_answer(struct queue *q, char *payload, size_t size, size_t *len,
                                     int *fd)
{
    enum ipc_type type;

    while (!q->broken) {
        struct pollfd pfd = { q->channel, POLLIN, 0 };
        int n = poll(&pfd, 1, REPLY_TIMEOUT_MS);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            channel_broken(q, "no answer");
            break;
        }
        if (!read_one(q, &type, payload, size, len, fd))
            continue;
        if (type == IPC_MSG_COMMIT_OK || type == IPC_MSG_COMMIT_FAIL) {
            if (*fd >= 0) {
                close(*fd);
                *fd = -1;
                channel_broken(q, "descriptor with a commit answer");
                break;
            }
            commit_answered(q, type, payload, *len);
            event_active(q->channel_ev, EV_READ, 0);    /* dispatch soon */
            continue;
        }
        return type;
    }
    return IPC_NONE;
}

struct queue_msg *queue_client_msg_new(struct queue *q, struct envelope *env)
{
    char reply[64], id[QUEUE_ID_LEN + 1];
    size_t len = 0, tlen;
    int fd = -1;
    char *text;
    enum ipc_type type;
    bool sent;
    struct queue_msg *msg;

    if (q->broken) {
        errno = EIO;
        return NULL;
    }
    memset(env->id, '0', QUEUE_ID_LEN);     /* placeholder; the queue assigns it */
    env->id[QUEUE_ID_LEN] = '\0';
    text = envelope_serialize(env, &tlen);
    sent = ipc_send(q->channel, IPC_MSG_NEW, text, tlen, -1);
    free(text);
    if (!sent) {
        channel_broken(q, strerror(errno));
        errno = EIO;
        return NULL;
    }
    type = wait_new_answer(q, reply, sizeof(reply), &len, &fd);
    if (type == IPC_MSG_NEW_FAIL && len == sizeof(int32_t) && fd < 0) {
        int32_t e;
        memcpy(&e, reply, sizeof(e));
        errno = e > 0 ? e : EIO;
        return NULL;
    }
    if (type != IPC_MSG_NEW_OK || fd < 0 || !id_payload(reply, len, id)) {
        if (fd >= 0)
            close(fd);
        channel_broken(q, type == IPC_NONE ? "no answer to a new message" : "bad answer");
        errno = EIO;
        return NULL;
    }
    msg = xmalloc(sizeof(*msg));
    msg->q = q;
    msg->fd = fd;
    msg->error = 0;
    msg->buffered = 0;
    memcpy(msg->id, id, sizeof(msg->id));
    memcpy(env->id, id, sizeof(env->id));
    return msg;
}

/* Ask the queue to drop an uncommitted file (nothing to ask once the
 * channel is broken: the queue drops what a closed channel left). */
static void send_abort(struct queue *q, const char *id)
{
    if (!q->broken && !ipc_send(q->channel, IPC_MSG_ABORT, id, QUEUE_ID_LEN, -1))
        channel_broken(q, strerror(errno));
}

void queue_client_commit(struct queue_msg *msg, queue_commit_cb cb, void *arg)
{
    struct queue *q = msg->q;
    struct pending_commit *p, **tail;

    if (q->broken || !queue_msg_flush(msg)) {
        /* The queue still holds the file: tell it to drop it. */
        send_abort(q, msg->id);
        if (q->broken)
            msg->error = EIO;
        close(msg->fd);
        cb(msg, false, arg);
        free(msg);
        return;
    }
    if (!ipc_send(q->channel, IPC_MSG_COMMIT, msg->id, QUEUE_ID_LEN, -1)) {
        channel_broken(q, strerror(errno));
        msg->error = EIO;
        close(msg->fd);
        cb(msg, false, arg);
        free(msg);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->msg = msg;
    p->cb = cb;
    p->arg = arg;
    for (tail = &q->pending; *tail; tail = &(*tail)->next)
        ;
    *tail = p;
}

void queue_client_abort(struct queue_msg *msg)
{
    send_abort(msg->q, msg->id);
    close(msg->fd);
    free(msg);
}

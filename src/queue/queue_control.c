/*
 * queue_control.c - the control socket server (see queue_control.h).
 *
 * Trusts: nothing a client sends: one line, bounded, parsed by
 * queue_cmd_parse; anything else gets a "fail" answer and the close.
 */
#define _GNU_SOURCE 1
#include "queue/queue_control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "queue/queue_admin.h"
#include "queue/queue_command.h"
#include "util/log.h"
#include "util/xalloc.h"

struct control_conn {
    struct queue_control *c;
    struct bufferevent *bev;
    long uid;                       /* the client's, from SO_PEERCRED; -1 unknown */
    bool answered;                  /* close once the answer is out */
    struct queue_admin_walk *walk;  /* list / flush all in progress */
    struct event *step_ev;          /* the walk's next step, after other events */
};

/* A walk pauses while this much of its answer waits for the client. */
#define CONTROL_OUT_HIGH (256 * 1024)

struct queue_control {
    struct event_base *base;
    struct event *accept_ev;
    int fd;
    struct scheduler *s;
    struct queue *q;
    struct control_conn *conns[QUEUE_CONTROL_MAX_CLIENTS];
    bool paused;                    /* every slot taken: accept_ev not added */
};

static void conn_free(struct control_conn *cc)
{
    struct queue_control *c = cc->c;

    for (size_t i = 0; i < QUEUE_CONTROL_MAX_CLIENTS; i++) {
        if (c->conns[i] == cc)
            c->conns[i] = NULL;
    }
    bufferevent_free(cc->bev);
    queue_admin_walk_free(cc->walk);
    if (cc->step_ev)
        event_free(cc->step_ev);
    free(cc);
    if (c->paused) {
        c->paused = false;
        event_add(c->accept_ev, NULL);
    }
}

static void answer_fail(struct control_conn *cc, const char *reason)
{
    evbuffer_add_printf(bufferevent_get_output(cc->bev), "fail %s\n.\n", reason);
}

/* One step of a walk; the next one after the events that came meanwhile
 * (a zero timer), or, while the client has not read enough of the
 * answer, once it has (write_cb). */
static void walk_step(evutil_socket_t fd, short what, void *arg)
{
    struct control_conn *cc = arg;
    struct evbuffer *out = bufferevent_get_output(cc->bev);
    struct timeval now = { 0, 0 };

    (void)fd;
    (void)what;
    if (cc->walk == NULL || evbuffer_get_length(out) > CONTROL_OUT_HIGH)
        return;
    if (queue_admin_step(cc->walk, out)) {
        queue_admin_walk_free(cc->walk);
        cc->walk = NULL;
        return;                         /* write_cb closes once it is out */
    }
    evtimer_add(cc->step_ev, &now);
}

/* The command line, parsed and carried out; the answer goes out, then
 * the connection closes (write_cb). */
static void run_line(struct control_conn *cc, const char *line, size_t len)
{
    struct queue_cmd cmd;
    char err[160];

    bufferevent_disable(cc->bev, EV_READ);
    cc->answered = true;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (!queue_cmd_parse(line, len, &cmd, err, sizeof(err))) {
        log_info("event=queue_admin_refused uid=%ld reason=\"%s\"", cc->uid, err);
        answer_fail(cc, err);
        return;
    }
    cc->walk = queue_admin_run(cc->c->s, cc->c->q, &cmd, cc->uid,
                               bufferevent_get_output(cc->bev));
    if (cc->walk == NULL)
        return;
    cc->step_ev = evtimer_new(cc->c->base, walk_step, cc);
    if (cc->step_ev == NULL) {
        queue_admin_walk_free(cc->walk);
        cc->walk = NULL;
        answer_fail(cc, "out of memory");
        return;
    }
    walk_step(-1, 0, cc);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct control_conn *cc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr eol;
    char line[QUEUE_CMD_LINE_MAX + 2];

    if (cc->answered)
        return;
    eol = evbuffer_search(in, "\n", 1, NULL);
    if (eol.pos < 0) {
        if (evbuffer_get_length(in) > QUEUE_CMD_LINE_MAX + 1) {
            log_info("event=queue_admin_refused uid=%ld reason=\"command line too long\"",
                     cc->uid);
            bufferevent_disable(bev, EV_READ);
            cc->answered = true;
            answer_fail(cc, "command line too long");
        }
        return;
    }
    if ((size_t)eol.pos > QUEUE_CMD_LINE_MAX + 1) {
        bufferevent_disable(bev, EV_READ);
        cc->answered = true;
        answer_fail(cc, "command line too long");
        return;
    }
    evbuffer_remove(in, line, (size_t)eol.pos + 1);
    run_line(cc, line, (size_t)eol.pos);
}

/* Input left unread when a socket closes makes the kernel reset the
 * connection, and the client may lose its answer with it: what a client
 * sent past its line (at most CONTROL_DRAIN_MAX octets) is read away. */
#define CONTROL_DRAIN_MAX (64 * 1024)

static void drain(int fd)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;

    while (total < CONTROL_DRAIN_MAX && (n = read(fd, buf, sizeof(buf))) > 0)
        total += (size_t)n;
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct control_conn *cc = arg;

    if (!cc->answered)
        return;
    if (cc->walk) {                     /* the client caught up: go on */
        if (!evtimer_pending(cc->step_ev, NULL))
            walk_step(-1, 0, cc);
        return;
    }
    drain(bufferevent_getfd(bev));
    conn_free(cc);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct control_conn *cc = arg;

    (void)bev;
    if (what & BEV_EVENT_TIMEOUT)
        log_info("event=queue_admin_timeout uid=%ld", cc->uid);
    conn_free(cc);      /* EOF, error or timeout: nothing more to do */
}

static long peer_uid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
        return -1;
    return (long)cred.uid;
}

/* A free slot, or -1: busy. */
static int free_slot(const struct queue_control *c)
{
    for (int i = 0; i < QUEUE_CONTROL_MAX_CLIENTS; i++) {
        if (c->conns[i] == NULL)
            return i;
    }
    return -1;
}

static void serve(struct queue_control *c, int fd, int slot)
{
    struct control_conn *cc = xcalloc(1, sizeof(*cc));
    struct timeval tv = { QUEUE_CONTROL_TIMEOUT, 0 };

    cc->c = c;
    cc->uid = peer_uid(fd);
    cc->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cc->bev == NULL) {
        close(fd);
        free(cc);
        return;
    }
    c->conns[slot] = cc;
    bufferevent_setcb(cc->bev, read_cb, write_cb, event_cb, cc);
    bufferevent_set_timeouts(cc->bev, &tv, &tv);
    bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

/* At most QUEUE_CONTROL_MAX_CLIENTS at a time: when all slots are taken
 * the listening socket is not watched, and further clients wait in its
 * backlog until a connection ends (conn_free watches it again). */
static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct queue_control *c = arg;

    (void)what;
    for (int n = 0; n < QUEUE_CONTROL_MAX_CLIENTS; n++) {
        int slot = free_slot(c), fd;

        if (slot < 0) {
            event_del(c->accept_ev);
            c->paused = true;
            return;
        }
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_error("event=queue_control_accept_failed error=\"%s\"", strerror(errno));
            return;
        }
        serve(c, fd, slot);
    }
}

struct queue_control *queue_control_new(struct event_base *base, int fd, struct scheduler *s,
                                        struct queue *q)
{
    struct queue_control *c = xcalloc(1, sizeof(*c));
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        log_error("event=queue_control_failed error=\"%s\"", strerror(errno));
    c->base = base;
    c->fd = fd;
    c->s = s;
    c->q = q;
    c->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, c);
    event_add(c->accept_ev, NULL);
    return c;
}

void queue_control_free(struct queue_control *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < QUEUE_CONTROL_MAX_CLIENTS; i++) {
        if (c->conns[i])
            conn_free(c->conns[i]);
    }
    event_free(c->accept_ev);
    close(c->fd);
    free(c);
}

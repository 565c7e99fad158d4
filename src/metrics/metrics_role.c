/*
 * metrics_role.c - the metrics role (see metrics_role.h).
 *
 * At start it reads every role's metric block from its channel (the
 * master sends each as a read-only descriptor, IPC_METRICS_BLOCK, then
 * closes its end) and maps them read-only; then it drops to its user,
 * chroots into spool/empty and runs under the smtpd seccomp list and
 * Landlock rules: no files, no new sockets. Each scrape sums the blocks
 * (metrics_render.h).
 *
 * HTTP (evhttp): GET /metrics answers 200; another path 404, another
 * method 405; a request line plus headers longer than
 * [metrics] max_request_size, or any request body, is refused by evhttp
 * with 4xx/close; a connection silent for [metrics] timeout is closed.
 *
 * At most [metrics] max_connections are open at once (libevent 2.1's
 * evhttp has no cap, and no public way to hand it a socket accepted
 * elsewhere: evhttp_get_request is internal). evhttp accepts through
 * its own evconnlistener; evhttp_set_bevcb makes every connection's
 * bufferevent here (make_bev), which counts it open, and right after
 * evhttp's accept callback (adopt_pending) the connection gets a close
 * callback that counts it closed. At the cap, evhttp's listener is
 * disabled and a second event on the same socket (refuse_cb) accepts
 * each new connection, writes a fixed 503 and closes it, rather than
 * leaving it in the kernel's backlog: a flood of idle connections then
 * costs one accept and close each and never fills the backlog with stale
 * connections the next scrape would queue behind, and a scrape refused
 * while the cap is full fails at once (Prometheus records it down) and
 * succeeds at its next interval instead of hanging until its timeout.
 * When a connection closes (evhttp closes idle ones after [metrics]
 * timeout), evhttp's listener takes over again. Refusals are counted
 * (sealpost_metrics_connections_refused_total) and logged at most once
 * a minute.
 *
 * Trusts: the master for the descriptors (checked: sealed size, header);
 * nothing from the network - it parses only what evhttp hands it, and
 * answers only with the numbers.
 */
#define _GNU_SOURCE 1              /* accept4 */
#include "metrics/metrics_role.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "metrics/metrics_render.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

/* Blocks one master can send: itself, queue, delivery, every worker
 * slot, every local process, this role; with room to spare. */
#define METRICS_MAX_BLOCKS 256

/* Descriptors the role needs besides its connections (stdio, channel,
 * listening socket, event base, a refused connection): max_connections
 * is lowered to fit RLIMIT_NOFILE minus these. */
#define METRICS_FD_RESERVE 32
/* Connections refuse_cb accepts and closes per wake-up: the loop serves
 * its other events between batches. */
#define METRICS_REFUSE_BATCH 64
/* At most one log line about refused connections per this many seconds. */
#define METRICS_REFUSE_LOG_INTERVAL 60

struct metrics_state {
    const struct metrics_block *blocks[METRICS_MAX_BLOCKS];
    size_t count;
    const struct config *cfg;
    struct evhttp *http;
    struct evconnlistener *listener;    /* evhttp's, on ROLE_FD_METRICS_LISTEN */
    struct event *refuser;              /* the same socket, while at the cap */
    struct event *adopt;                /* activated by make_bev */
    struct event *accept_pause;         /* after an accept error other than EAGAIN */
    struct bufferevent **pending;       /* made by make_bev, not adopted yet */
    size_t pending_count;
    unsigned open;                      /* connections evhttp holds */
    unsigned cap;                       /* max_connections, fitted to the fd limit */
    bool at_cap;                        /* refuser on, evhttp's listener off */
    bool stopping;                      /* cleanup: evhttp_free closes them all */
    uint64_t refused_unlogged;          /* refusals since the last log line */
    time_t next_refuse_log;
};

/* A 4xx with a one-line body; the connection closes after it. (Not
 * evhttp_send_error, which drops the headers set here.) */
static void refuse(struct evhttp_request *req, int code, const char *reason)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();

    metrics_add(METRICS_C_HTTP + 1, 1);
    evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    if (body != NULL)
        evbuffer_add_printf(body, "%d %s\n", code, reason);
    evhttp_send_reply(req, code, reason, body);
    if (body != NULL)
        evbuffer_free(body);
}

static bool is_metrics_path(const char *uri)
{
    static const char path[] = "/metrics";
    size_t n = sizeof(path) - 1;

    return uri != NULL && strncmp(uri, path, n) == 0 && (uri[n] == '\0' || uri[n] == '?');
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct metrics_state *st = arg;
    struct evbuffer *body;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        refuse(req, 405, "Method Not Allowed");
        return;
    }
    if (!is_metrics_path(evhttp_request_get_uri(req))) {
        refuse(req, 404, "Not Found");
        return;
    }
    body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    metrics_add(METRICS_C_HTTP, 1);
    metrics_render(body, st->cfg, st->blocks, st->count, time(NULL));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* Every block the master sends, until it closes its end. */
static void receive_blocks(struct metrics_state *st)
{
    char why[256];

    for (;;) {
        enum ipc_type type;
        char payload[8];
        size_t len;
        int fd = -1;
        const struct metrics_block *b;
        enum ipc_status rs = ipc_recv(ROLE_FD_CHANNEL, &type, payload, sizeof(payload), &len,
                                      true, &fd);

        if (rs == IPC_EOF)
            break;
        if (rs != IPC_OK || type != IPC_METRICS_BLOCK || fd < 0 || len != 0 ||
            st->count == METRICS_MAX_BLOCKS)
            fatal("event=start_failed role=metrics error=\"unexpected message from the master\"");
        b = metrics_attach(fd, false, why, sizeof(why));
        close(fd);
        if (b == NULL)
            fatal("event=start_failed role=metrics error=\"%s\"", why);
        st->blocks[st->count++] = b;
    }
    close(ROLE_FD_CHANNEL);
}

/* --- the connection cap (see the header) --- */

static void enter_cap(struct metrics_state *st)
{
    st->at_cap = true;
    evconnlistener_disable(st->listener);
    event_add(st->refuser, NULL);
}

static void leave_cap(struct metrics_state *st)
{
    st->at_cap = false;
    event_del(st->refuser);
    if (!evtimer_pending(st->accept_pause, NULL))
        evconnlistener_enable(st->listener);
}

static void conn_gone(struct metrics_state *st)
{
    if (st->open > 0)
        st->open--;
    if (st->at_cap && st->open < st->cap && !st->stopping)
        leave_cap(st);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn_gone(arg);
}

/* evhttp's bufferevent factory: called once per accepted connection,
 * just before evhttp wraps it. The extra reference keeps it valid until
 * adopt_pending, whatever evhttp does with it meanwhile. */
static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    struct metrics_state *st = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    /* NULL: evhttp makes its own, uncounted (out of memory only); the
     * pending list cannot fill (open <= cap: the listener stops at it). */
    if (bev == NULL || st->pending_count >= st->cap)
        return bev;
    bufferevent_incref(bev);
    st->pending[st->pending_count++] = bev;
    event_active(st->adopt, EV_TIMEOUT, 0);
    if (++st->open >= st->cap && !st->at_cap)
        enter_cap(st);
    return bev;
}

/* evhttp has wrapped each pending bufferevent in its connection, which is
 * the bufferevent's callback argument (libevent 2.1's http.c; checked
 * both ways): give it the close callback that counts it closed. A
 * bufferevent evhttp has freed already (a failed setup) has no callbacks
 * left: count it closed now. */
static void adopt_pending(struct metrics_state *st)
{
    for (size_t i = 0; i < st->pending_count; i++) {
        struct bufferevent *bev = st->pending[i];
        void *arg = NULL;
        struct evhttp_connection *evcon;

        bufferevent_getcb(bev, NULL, NULL, NULL, &arg);
        evcon = arg;
        if (evcon != NULL && evhttp_connection_get_bufferevent(evcon) == bev &&
            evhttp_connection_get_server(evcon) == st->http)
            evhttp_connection_set_closecb(evcon, conn_closed, st);
        else
            conn_gone(st);
        bufferevent_decref(bev);
    }
    st->pending_count = 0;
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    adopt_pending(arg);
}

static void log_refused(struct metrics_state *st, unsigned n)
{
    time_t now = time(NULL);

    st->refused_unlogged += n;
    if (now < st->next_refuse_log)
        return;
    log_warn("event=metrics_connections_refused refused=%" PRIu64 " max_connections=%u "
             "log_every=%ds", st->refused_unlogged, st->cap, METRICS_REFUSE_LOG_INTERVAL);
    st->refused_unlogged = 0;
    st->next_refuse_log = now + METRICS_REFUSE_LOG_INTERVAL;
}

/* After an accept error other than "nothing to accept" (EMFILE and the
 * like) the socket stays readable: pause instead of spinning. */
static void pause_accepting(struct metrics_state *st)
{
    struct timeval pause = { 0, 100000 };

    if (errno == EINVAL) {          /* the master shut the socket down: stopping */
        evconnlistener_disable(st->listener);
        event_del(st->refuser);
        return;
    }
    log_error("event=accept_failed role=metrics error=\"%s\" action=pause_100ms",
              strerror(errno));
    evconnlistener_disable(st->listener);
    event_del(st->refuser);
    evtimer_add(st->accept_pause, &pause);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct metrics_state *st = arg;

    (void)fd;
    (void)what;
    if (st->at_cap)
        event_add(st->refuser, NULL);
    else
        evconnlistener_enable(st->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    pause_accepting(arg);
}

/* At the cap: accept, answer 503 (best effort: the socket is fresh, the
 * line fits its buffer), close; nothing is read. */
static void refuse_cb(evutil_socket_t fd, short what, void *arg)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                               "Content-Length: 0\r\n\r\n";
    struct metrics_state *st = arg;
    unsigned n = 0;

    (void)what;
    for (int i = 0; i < METRICS_REFUSE_BATCH; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pause_accepting(st);
            break;
        }
        if (send(c, busy, sizeof(busy) - 1, MSG_NOSIGNAL) < 0) {
            /* nothing to do: it is closed anyway */
        }
        close(c);
        n++;
    }
    if (n > 0) {
        metrics_add(METRICS_C_HTTP_CONN_REFUSED, n);
        log_refused(st, n);
    }
}

/* max_connections, lowered so that the connections and the role's own
 * descriptors fit RLIMIT_NOFILE (the master raised it to the hard limit). */
static unsigned fitted_cap(unsigned wanted)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= (rlim_t)wanted + METRICS_FD_RESERVE)
        return wanted;
    if (rl.rlim_cur <= METRICS_FD_RESERVE + 1)
        return 1;
    log_warn("event=metrics_limit_lowered max_connections=%u now=%u reason=\"RLIMIT_NOFILE "
             "%llu\"", wanted, (unsigned)(rl.rlim_cur - METRICS_FD_RESERVE),
             (unsigned long long)rl.rlim_cur);
    return (unsigned)(rl.rlim_cur - METRICS_FD_RESERVE);
}

static void start_cap(struct metrics_state *st, struct event_base *base,
                      struct evhttp_bound_socket *bound)
{
    st->cap = fitted_cap(st->cfg->metrics.max_connections);
    st->pending = xcalloc(st->cap, sizeof(*st->pending));
    st->listener = evhttp_bound_socket_get_listener(bound);
    st->refuser = event_new(base, ROLE_FD_METRICS_LISTEN, EV_READ | EV_PERSIST, refuse_cb, st);
    st->adopt = event_new(base, -1, 0, adopt_cb, st);
    st->accept_pause = evtimer_new(base, accept_resume, st);
    if (st->listener == NULL || st->refuser == NULL || st->adopt == NULL ||
        st->accept_pause == NULL)
        fatal("event=start_failed role=metrics error=\"connection limit events\"");
    evconnlistener_set_error_cb(st->listener, accept_error_cb);
    evhttp_set_bevcb(st->http, make_bev, st);
}

static void metrics_prepare(struct role_ctx *ctx)
{
    struct metrics_state *st = xcalloc(1, sizeof(*st));

    ctx->state = st;
    st->cfg = ctx->cfg;
    receive_blocks(st);
}

static void metrics_start(struct role_ctx *ctx)
{
    struct metrics_state *st = ctx->state;
    const struct metrics_config *mc = &ctx->cfg->metrics;
    struct evhttp_bound_socket *bound;

    st->http = evhttp_new(ctx->base);
    if (st->http == NULL)
        fatal("event=start_failed role=metrics error=\"evhttp_new\"");
    /* Every method reaches request_cb, which answers 405 itself (counted). */
    evhttp_set_allowed_methods(st->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(st->http, (ev_ssize_t)mc->max_request_size);
    evhttp_set_max_body_size(st->http, 0);
    evhttp_set_timeout(st->http, (int)mc->timeout);
    evhttp_set_gencb(st->http, request_cb, st);
    bound = evhttp_accept_socket_with_handle(st->http, ROLE_FD_METRICS_LISTEN);
    if (bound == NULL)
        fatal("event=start_failed role=metrics error=\"cannot serve the listening socket\"");
    start_cap(st, ctx->base, bound);
    log_info("event=metrics_ready blocks=%zu address=%s max_connections=%u", st->count,
             mc->addresses[0].text, st->cap);
}

static void metrics_cleanup(struct role_ctx *ctx)
{
    struct metrics_state *st = ctx->state;

    st->stopping = true;        /* evhttp_free closes every connection */
    if (st->pending_count > 0)
        adopt_pending(st);
    if (st->refuser)
        event_free(st->refuser);
    if (st->adopt)
        event_free(st->adopt);
    if (st->accept_pause)
        event_free(st->accept_pause);
    if (st->http)
        evhttp_free(st->http);
    free(st->pending);
    for (size_t i = 0; i < st->count; i++)
        metrics_detach(st->blocks[i]);
    free(st);
    ctx->state = NULL;
}

const struct role_ops role_metrics_ops = {
    .name = "metrics",
    .sandbox = SANDBOX_METRICS,
    .prepare = metrics_prepare,
    .start = metrics_start,
    .cleanup = metrics_cleanup,
};

/*
 * server.c - listening sockets, connection limits (total and per client
 * IP address), and graceful shutdown (see server.h).
 *
 * A connection over a limit gets "421 4.7.0" written straight to the
 * socket and is closed without a session being created.
 */
#include "smtpd/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "smtpd/conn_limits.h"
#include "smtpd/session.h"
#include "util/log.h"
#include "util/xalloc.h"

static void peer_ip(const struct sockaddr *sa, char *out, size_t size)
{
    if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)size);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
}

static void refuse(struct server *srv, evutil_socket_t fd, const char *ip, const char *why)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many connections%s\r\n",
                     srv->cfg->hostname, why);

    log_info("event=connection_refused client=%s reason=%s", ip,
             why[0] ? "per_ip_limit" : "connection_limit");
    /* Best effort: the socket is fresh, the line fits in its buffer. */
    if (write(fd, line, (size_t)n) < 0) {
        /* nothing to do */
    }
    evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct server *srv = arg;
    const struct listener_config *lc = NULL;
    char ip[INET6_ADDRSTRLEN];
    struct conn_key key;

    for (size_t i = 0; i < srv->listener_count; i++) {
        if (srv->listeners[i] == l)
            lc = srv->listener_cfg[i];
    }
    peer_ip(sa, ip, sizeof(ip));
    if (srv->shutting_down || lc == NULL) {
        evutil_closesocket(fd);
        return;
    }
    conn_key_from_text(ip, srv->cfg->per_ip_ipv6_prefix, &key);
    switch (conn_limits_admit(srv->limits, srv->slot, &key, srv->cfg->max_connections,
                              srv->cfg->max_connections_per_ip)) {
    case CONN_TOO_MANY:
        refuse(srv, fd, ip, "");
        return;
    case CONN_TOO_MANY_FROM_IP:
        refuse(srv, fd, ip, " from your address");
        return;
    case CONN_ADMIT:
        break;
    }
    session_start(srv, lc, fd, sa, (socklen_t)salen);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < srv->listener_count; i++)
        evconnlistener_enable(srv->listeners[i]);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct server *srv = arg;
    struct timeval pause = { 0, 100000 };

    if (errno == EINVAL) {
        /* The master shut the listening socket down (stopping): quiet. */
        evconnlistener_disable(l);
        return;
    }
    /* EMFILE and friends: the socket stays readable, so pause accepting
     * briefly instead of spinning, then try again. */
    log_error("event=accept_failed error=\"%s\" action=pause_100ms", strerror(errno));
    for (size_t i = 0; i < srv->listener_count; i++)
        evconnlistener_disable(srv->listeners[i]);
    if (srv->accept_pause == NULL)
        srv->accept_pause = evtimer_new(srv->base, accept_resume, srv);
    evtimer_add(srv->accept_pause, &pause);
}

/* A server restarted right after a crash can find its old children still
 * dying with the socket open: wait up to 5 s for the address. */
static bool bind_retrying(int fd, const struct listen_address *la)
{
    for (int tries = 0;; tries++) {
        if (bind(fd, (const struct sockaddr *)&la->addr, la->addrlen) == 0)
            return true;
        if (errno != EADDRINUSE || tries == 50)
            return false;
        usleep(100 * 1000);
    }
}

bool server_open_sockets(const struct config *cfg, struct listen_socket *out, size_t max,
                         size_t *count, char *err, size_t errsize)
{
    *count = 0;
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct listener_config *lc = &cfg->listeners[i];

        for (size_t a = 0; a < lc->address_count; a++) {
            const struct listen_address *la = &lc->addresses[a];
            int one = 1, fd;

            if (*count == max) {
                snprintf(err, errsize, "too many listening addresses");
                return false;
            }
            fd = socket(la->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
                (la->addr.ss_family == AF_INET6 &&
                 setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
                !bind_retrying(fd, la) ||
                listen(fd, 1024) < 0) {
                snprintf(err, errsize, "listener %s: cannot listen on %s: %s", lc->name,
                         la->text, strerror(errno));
                if (fd >= 0)
                    close(fd);
                return false;
            }
            out[*count].fd = fd;
            out[*count].listener = lc;
            out[*count].text = la->text;
            (*count)++;
        }
    }
    return true;
}

void server_listen_sockets(struct server *srv, const struct listen_socket *socks, size_t count)
{
    for (size_t i = 0; i < count && i < SERVER_MAX_SOCKETS; i++) {
        /* The worker's copy of the master's socket: closed when the worker
         * stops listening, so a restarted server can bind again. */
        struct evconnlistener *l = evconnlistener_new(
            srv->base, accept_cb, srv, LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1,
            socks[i].fd);

        if (l == NULL)
            fatal("event=listen_failed address=%s", socks[i].text);
        evconnlistener_set_error_cb(l, accept_error_cb);
        srv->listener_cfg[srv->listener_count] = socks[i].listener;
        srv->listeners[srv->listener_count++] = l;
        log_debug("event=listen listener=%s address=%s", socks[i].listener->name, socks[i].text);
    }
}

static void check_drained(struct server *srv)
{
    if (srv->shutting_down && srv->sessions == NULL && srv->on_drained) {
        void (*cb)(struct server *) = srv->on_drained;

        srv->on_drained = NULL;
        cb(srv);
    }
}

void server_session_gone(struct server *srv, const char *ip)
{
    struct conn_key key;

    /* The same text and prefix as at accept, hence the same key. */
    conn_key_from_text(ip, srv->cfg->per_ip_ipv6_prefix, &key);
    conn_limits_release(srv->limits, srv->slot, &key);
    srv->connections--;
    /* Idle again: give freed session memory back to the system (glibc
     * keeps it otherwise, and a connection storm would leave the worker
     * at its peak size). */
    if (srv->connections == 0)
        malloc_trim(0);
    check_drained(srv);
}

static void shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    log_info("event=shutdown_timeout sessions_left=%u", srv->connections);
    for (struct session *s = srv->sessions, *next; s; s = next) {
        next = session_next(s);
        session_shutdown_hard(s);
    }
}

static void stop_listening(struct server *srv)
{
    if (srv->accept_pause)
        evtimer_del(srv->accept_pause);
    for (size_t i = 0; i < srv->listener_count; i++) {
        evconnlistener_free(srv->listeners[i]);
        srv->listeners[i] = NULL;
    }
    srv->listener_count = 0;
}

void server_shutdown(struct server *srv)
{
    struct timeval tv = { .tv_sec = srv->cfg->shutdown_timeout, .tv_usec = 0 };

    if (srv->shutting_down && !srv->retiring)
        return;
    srv->shutting_down = true;
    srv->retiring = false;
    stop_listening(srv);
    log_info("event=shutdown_begin sessions=%u grace=%us", srv->connections,
             srv->cfg->shutdown_timeout);
    for (struct session *s = srv->sessions, *next; s; s = next) {
        next = session_next(s);
        session_shutdown_soft(s);
    }
    if (srv->shutdown_timer == NULL)
        srv->shutdown_timer = evtimer_new(srv->base, shutdown_timer_cb, srv);
    evtimer_add(srv->shutdown_timer, &tv);
    check_drained(srv);
}

void server_retire(struct server *srv)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    srv->retiring = true;
    stop_listening(srv);
    log_info("event=retire sessions=%u", srv->connections);
    check_drained(srv);
}

static void no_queue_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    log_warn("event=retire reason=\"no new queue channel after %ds\"",
             SERVER_NO_QUEUE_MAX_WAIT);
    server_retire(arg);
}

void server_no_queue(struct server *srv)
{
    struct timeval tv = { SERVER_NO_QUEUE_MAX_WAIT, 0 };

    if (srv->shutting_down || srv->no_queue_timer)
        return;
    log_info("event=no_queue sessions=%u action=\"421/451 4.3.0 until replaced\"",
             srv->connections);
    srv->no_queue_timer = evtimer_new(srv->base, no_queue_timeout, srv);
    evtimer_add(srv->no_queue_timer, &tv);
}

void server_free(struct server *srv)
{
    if (srv->no_queue_timer)
        event_free(srv->no_queue_timer);
    stop_listening(srv);
    if (srv->accept_pause)
        event_free(srv->accept_pause);
    if (srv->shutdown_timer)
        event_free(srv->shutdown_timer);
}

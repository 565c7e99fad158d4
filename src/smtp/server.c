/*
 * server.c - listening sockets, connection limits (total and per client
 * IP address), and graceful shutdown (see server.h).
 *
 * A connection over a limit gets "421 4.7.0" written straight to the
 * socket and is closed without a session being created.
 */
#include "smtp/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "smtp/session.h"
#include "util/log.h"
#include "util/xalloc.h"

#define IP_TABLE_BUCKETS 1024

struct ip_entry {
    char ip[INET6_ADDRSTRLEN];
    unsigned count;
    struct ip_entry *next;
};

struct ip_table {
    struct ip_entry *buckets[IP_TABLE_BUCKETS];
};

static unsigned ip_hash(const char *ip)
{
    unsigned h = 2166136261u;

    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % IP_TABLE_BUCKETS;
}

static struct ip_entry **ip_find(struct ip_table *t, const char *ip)
{
    struct ip_entry **e = &t->buckets[ip_hash(ip)];

    while (*e && strcmp((*e)->ip, ip) != 0)
        e = &(*e)->next;
    return e;
}

static unsigned ip_count(struct ip_table *t, const char *ip)
{
    struct ip_entry **e = ip_find(t, ip);

    return *e ? (*e)->count : 0;
}

static void ip_add(struct ip_table *t, const char *ip)
{
    struct ip_entry **e = ip_find(t, ip);

    if (*e == NULL) {
        *e = xcalloc(1, sizeof(**e));
        snprintf((*e)->ip, sizeof((*e)->ip), "%s", ip);
    }
    (*e)->count++;
}

static void ip_remove(struct ip_table *t, const char *ip)
{
    struct ip_entry **e = ip_find(t, ip), *dead;

    if (*e == NULL)
        return;
    if (--(*e)->count == 0) {
        dead = *e;
        *e = dead->next;
        free(dead);
    }
}

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

    for (size_t i = 0; i < srv->listener_count; i++) {
        if (srv->listeners[i] == l)
            lc = srv->listener_cfg[i];
    }
    peer_ip(sa, ip, sizeof(ip));
    if (srv->shutting_down || lc == NULL) {
        evutil_closesocket(fd);
        return;
    }
    if (srv->connections >= srv->cfg->max_connections) {
        refuse(srv, fd, ip, "");
        return;
    }
    if (ip_count(srv->per_ip, ip) >= srv->cfg->max_connections_per_ip) {
        refuse(srv, fd, ip, " from your address");
        return;
    }
    ip_add(srv->per_ip, ip);
    session_start(srv, lc, fd, sa, (socklen_t)salen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: log and keep listening; libevent retries. */
    log_error("event=accept_failed error=\"%s\"", strerror(errno));
}

bool server_listen(struct server *srv, char *err, size_t errsize)
{
    const struct config *cfg = srv->cfg;

    srv->per_ip = xcalloc(1, sizeof(*srv->per_ip));
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct listener_config *lc = &cfg->listeners[i];

        for (size_t a = 0; a < lc->address_count; a++) {
            const struct listen_address *la = &lc->addresses[a];
            struct evconnlistener *l = evconnlistener_new_bind(
                srv->base, accept_cb, srv,
                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                    (la->addr.ss_family == AF_INET6 ? LEV_OPT_BIND_IPV6ONLY : 0),
                1024, (const struct sockaddr *)&la->addr, (int)la->addrlen);

            if (l == NULL) {
                snprintf(err, errsize, "listener %s: cannot listen on %s: %s", lc->name,
                         la->text, strerror(errno));
                return false;
            }
            evconnlistener_set_error_cb(l, accept_error_cb);
            srv->listener_cfg[srv->listener_count] = lc;
            srv->listeners[srv->listener_count++] = l;
            log_info("event=listen listener=%s address=%s", lc->name, la->text);
        }
    }
    return true;
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
    ip_remove(srv->per_ip, ip);
    srv->connections--;
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

void server_shutdown(struct server *srv)
{
    struct timeval tv = { .tv_sec = srv->cfg->shutdown_timeout, .tv_usec = 0 };

    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    for (size_t i = 0; i < srv->listener_count; i++) {
        evconnlistener_free(srv->listeners[i]);
        srv->listeners[i] = NULL;
    }
    srv->listener_count = 0;
    log_info("event=shutdown_begin sessions=%u grace=%us", srv->connections,
             srv->cfg->shutdown_timeout);
    for (struct session *s = srv->sessions, *next; s; s = next) {
        next = session_next(s);
        session_shutdown_soft(s);
    }
    srv->shutdown_timer = evtimer_new(srv->base, shutdown_timer_cb, srv);
    evtimer_add(srv->shutdown_timer, &tv);
    check_drained(srv);
}

void server_free(struct server *srv)
{
    for (size_t i = 0; i < srv->listener_count; i++)
        evconnlistener_free(srv->listeners[i]);
    if (srv->shutdown_timer)
        event_free(srv->shutdown_timer);
    if (srv->per_ip) {
        for (size_t b = 0; b < IP_TABLE_BUCKETS; b++) {
            for (struct ip_entry *e = srv->per_ip->buckets[b], *n; e; e = n) {
                n = e->next;
                free(e);
            }
        }
        free(srv->per_ip);
    }
}

/*
 * server.h - the SMTP listening side: sockets, connection limits and the
 * set of live sessions, graceful shutdown.
 *
 * Trusts: the config. Everything a client sends is handled in session*.c.
 */
#ifndef SEALPOST_SMTP_SERVER_H
#define SEALPOST_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "policy/recipient.h"
#include "queue/queue.h"

struct session;
struct ip_table;
struct tls_server;

struct server {
    struct event_base *base;
    const struct config *cfg;
    struct queue *queue;
    struct recipient_policy *recipients;
    struct tls_server *tls;         /* NULL when no certificate is configured */
    struct evconnlistener *listeners[CONFIG_MAX_LISTENERS * CONFIG_MAX_ADDRESSES];
    const struct listener_config *listener_cfg[CONFIG_MAX_LISTENERS * CONFIG_MAX_ADDRESSES];
    size_t listener_count;
    struct ip_table *per_ip;
    unsigned connections;
    unsigned long long session_counter;
    bool shutting_down;
    struct session *sessions;       /* doubly linked list of live sessions */
    struct event *shutdown_timer;
    void (*on_drained)(struct server *srv);  /* last session gone in shutdown */
};

/* Bind every configured listener. false + err on failure. */
bool server_listen(struct server *srv, char *err, size_t errsize);

/*
 * Stop accepting. Idle sessions get 421 4.3.2 at their next command,
 * sessions in a transaction may finish it; after cfg->shutdown_timeout
 * every remaining session gets 421 4.3.2 and is closed. on_drained runs
 * once no session is left.
 */
void server_shutdown(struct server *srv);
void server_free(struct server *srv);

/* Called by a session once it has unlinked itself from srv->sessions. */
void server_session_gone(struct server *srv, const char *ip);

#endif

/*
 * server.h - the SMTP listening side: sockets, connection limits and the
 * set of live sessions, graceful shutdown.
 *
 * Trusts: the config. Everything a client sends is handled in session*.c.
 */
#ifndef SEALPOST_SMTPD_SERVER_H
#define SEALPOST_SMTPD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "mail/recipient.h"
#include "smtpd/queue_client.h"

struct session;
struct conn_limits;
struct tls_server;

#define SERVER_MAX_SOCKETS (CONFIG_MAX_LISTENERS * CONFIG_MAX_ADDRESSES)

/* A listening socket opened by the master, inherited by the workers. */
struct listen_socket {
    int fd;
    const struct listener_config *listener;
    const char *text;
};

struct server {
    struct event_base *base;
    const struct config *cfg;
    struct queue_link *queue;
    struct recipient_policy *recipients;
    struct tls_server *tls;         /* NULL when no certificate is configured */
    struct evconnlistener *listeners[SERVER_MAX_SOCKETS];
    const struct listener_config *listener_cfg[SERVER_MAX_SOCKETS];
    size_t listener_count;
    struct conn_limits *limits;     /* shared by all workers */
    unsigned slot;                  /* this worker's row in limits */
    unsigned connections;           /* sessions in this worker */
    unsigned long long session_counter;
    bool shutting_down;
    bool retiring;                  /* no 421: sessions end on their own */
    struct session *sessions;       /* doubly linked list of live sessions */
    struct event *shutdown_timer;
    struct event *accept_pause;     /* out of descriptors: accept again soon */
    struct event *no_queue_timer;   /* server_no_queue: retire if not replaced */
    void (*on_drained)(struct server *srv);  /* last session gone in shutdown */
};

/* Master: create, bind and listen on every configured address. */
bool server_open_sockets(const struct config *cfg, struct listen_socket *out, size_t max,
                         size_t *count, char *err, size_t errsize);
/* Worker: accept on the inherited sockets. */
void server_listen_sockets(struct server *srv, const struct listen_socket *socks, size_t count);

/*
 * Stop accepting. Idle sessions get 421 4.3.2 at their next command,
 * sessions in a transaction may finish it; after cfg->shutdown_timeout
 * every remaining session gets 421 4.3.2 and is closed. on_drained runs
 * once no session is left.
 */
void server_shutdown(struct server *srv);
/* After a reload: stop accepting, let every session end on its own (no
 * 421), then on_drained. */
void server_retire(struct server *srv);
/*
 * The queue process is gone: keep accepting, but every new session gets
 * 421 4.3.0 and every MAIL, DATA and BDAT 451 4.3.0 (session*.c ask
 * queue_link_up), until the master, once a new queue is ready, stops
 * this worker and starts one with a channel to it. If that has not
 * happened after SERVER_NO_QUEUE_MAX_WAIT seconds (the queue may have
 * dropped only this worker's channel), the worker retires itself.
 */
#define SERVER_NO_QUEUE_MAX_WAIT 300
void server_no_queue(struct server *srv);
void server_free(struct server *srv);

/* Called by a session once it has unlinked itself from srv->sessions. */
void server_session_gone(struct server *srv, const char *ip);

#endif

/*
 * session.h - one SMTP server session (RFC 5321) on an accepted socket.
 *
 * Everything the session reads comes from an untrusted client. The
 * session hands message bytes to the queue through queue_msg_* only.
 */
#ifndef SEALPOST_SMTPD_SESSION_H
#define SEALPOST_SMTPD_SESSION_H

#include <sys/socket.h>

#include <event2/util.h>

struct server;
struct session;
struct listener_config;

/* Take over fd (non-blocking) and send the greeting. */
void session_start(struct server *srv, const struct listener_config *lc,
                   evutil_socket_t fd, const struct sockaddr *sa, socklen_t salen);

/* Graceful shutdown: close now if idle, else at the end of the transaction. */
void session_shutdown_soft(struct session *s);
/* Shutdown grace over: 421 4.3.2 and close (after a pending commit). */
void session_shutdown_hard(struct session *s);

struct session *session_next(struct session *s);

#endif

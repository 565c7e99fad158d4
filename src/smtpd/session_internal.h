/*
 * session_internal.h - state shared by session.c (I/O and lifecycle),
 * session_cmds.c (command handlers) and session_data.c (DATA and BDAT).
 * Not for use outside src/smtp/.
 *
 * Session state lives as long as the connection; transaction state is
 * born at MAIL and dies at RSET, EHLO, commit or failure.
 */
#ifndef SEALPOST_SMTPD_SESSION_INTERNAL_H
#define SEALPOST_SMTPD_SESSION_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>

#include "config/config.h"
#include "mail/auth_codec.h"
#include "mail/rcpt_policy.h"
#include "mail/sasl.h"
#include "smtpd/command.h"
#include "smtpd/data_decoder.h"
#include "smtpd/queue_client.h"
#include "smtpd/server.h"
#include "smtpd/session.h"

enum session_state {
    ST_COMMAND,         /* reading command lines */
    ST_SKIP_LINE,       /* discarding the rest of an overlong line */
    ST_DATA,            /* reading the DATA stream */
    ST_BDAT,            /* reading a BDAT chunk */
    ST_COMMIT,          /* waiting for the queue: the message file, or the commit */
    ST_STARTTLS,        /* "220 Ready to start TLS" queued, not yet sent */
    ST_TLS_HANDSHAKE,   /* TLS handshake in progress */
    ST_CLOSING,         /* final reply queued; close when flushed (or at close_timer) */
    ST_LINGER,          /* final reply sent, write side shut: discarding input */
};

struct transaction {
    struct mail_args mail;
    struct envelope env;            /* recipients accumulate here */
    struct incoming_msg *msg;       /* open spool file, from DATA/BDAT on */
    struct incoming_request *opening;   /* asked the queue for the file */
    void (*opened)(struct session *s, const char *err);    /* then this */
    struct data_decoder dec;
    uint64_t msg_bytes;             /* decoded message octets */
    bool too_big;
    bool bdat;                      /* transaction uses BDAT */
    uint64_t chunk_remaining;
    bool chunk_last;
    /* BDAT chunk that must be read and thrown away, then answered with
     * this reply (an error): NULL when the chunk is accepted. */
    const char *chunk_reply;
    /* Authenticated submission: the header section being scanned for
     * RFC 6409 8.3 (Date, Message-ID) and the From: check; NULL on MX. */
    struct header_scan *hdr;
    bool discard;                   /* a milter said DISCARD at MAIL or RCPT */
    /* The RCPT a milter is being asked about (session_milter.c). */
    struct rcpt_args asking;
    char asking_addr[ADDR_PATH_MAX + 1];
};

struct session {
    struct server *srv;
    const struct config *cfg;
    const struct listener_config *listener;
    struct bufferevent *bev;
    struct event *close_timer;      /* frees a closing session, whatever the socket does */
    struct session *prev, *next;

    char id[24];
    char client_ip[INET6_ADDRSTRLEN];
    unsigned client_port;
    time_t started;

    enum session_state state;
    bool helo_seen;
    bool esmtp;
    char helo[256];
    bool tls;
    char tls_summary[256];          /* tls_summary() of the handshake */
    bool shutdown_soft;             /* close at the next idle point */
    bool processing;                /* inside process_input */
    bool client_gone;               /* freed once the commit finishes */
    bool peer_gone;                 /* reset, error or write timeout: nothing more to send */
    bool free_pending;              /* ended inside process_input: freed when it returns */
    bool input_paused;              /* replies over max_output_buffer: not reading */
    bool backpressure_logged;

    unsigned errors;
    unsigned long commands, messages, rcpts, rejected;

    /* SMTP AUTH (session_auth.c) */
    enum auth_step { AUTH_STEP_NONE, AUTH_STEP_PLAIN, AUTH_STEP_LOGIN_USER,
                     AUTH_STEP_LOGIN_PASSWORD } auth_step;
    struct sasl_creds *creds;       /* while a response is awaited; wiped */
    struct auth_pending *auth_req;  /* while the queue checks the password */
    bool authenticated;
    char auth_user[SASL_USER_MAX + 1];
    enum auth_mechanism auth_mech;  /* of the check asked last */
    char auth_token[AUTH_TOKEN_LEN + 1];

    struct transaction *tx;

    /* Milters asked at connect, MAIL or RCPT (session_milter.c) */
    struct milter_pending *milter_req;  /* while the queue asks them */
    void (*milter_then)(struct session *s, enum milter_result_verdict v, const char *reply);
    bool greeting_refused;          /* 554 greeting: only QUIT works (RFC 5321 3.1) */
    bool milter_discard;            /* DISCARD at connect: every message is dropped */
};

/* session.c */
/* The facts recipient decisions depend on (mail/rcpt_policy.h). */
void session_rcpt_context(const struct session *s, struct rcpt_context *ctx);
/* The session facts a request to the queue carries: listener, TLS, the
 * AUTH token. */
void session_request_facts(const struct session *s, struct queue_request_facts *facts);
/* The transaction (s->tx) so far into env: client, HELO, the sender and
 * its MAIL parameters. */
void session_tx_envelope(const struct session *s, struct envelope *env);
void session_reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A 4xx/5xx reply that counts towards max_errors. */
void session_reply_error(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void session_close(struct session *s);           /* after final reply */
void session_set_timeout(struct session *s, unsigned seconds);
void session_tx_reset(struct session *s);
void session_resume(struct session *s);          /* after async commit */
/* After "220 Ready to start TLS": discard pending input, hand the socket
 * to TLS once the reply is flushed (RFC 3207 4, CVE-2011-0411). */
void session_starttls(struct session *s);

/* The reply while the queue process is gone (server_no_queue), to MAIL,
 * DATA, BDAT and a commit: the transaction cannot be queued; the
 * session may go on (RSET, NOOP, QUIT; MAIL again later). */
#define SESSION_NO_QUEUE_REPLY "451 4.3.0 Error: mail queue unavailable, try again later"

/* session_cmds.c */
void session_dispatch(struct session *s, const char *line, size_t len);

/* session_auth.c: SMTP AUTH (RFC 4954) on submission listeners, the
 * password checked by the queue process. */
bool session_auth_offered(const struct session *s);
void session_auth_command(struct session *s, const char *args, size_t len);
/* A client line while a SASL response is awaited (auth_step set). */
void session_auth_response(struct session *s, const char *line, size_t len);
/* Forget a pending exchange (the session ends or resets). */
void session_auth_drop(struct session *s);

/* session_milter.c: the listener's milters of a stage (connect, MAIL,
 * RCPT) asked through the queue. The session reads no input (ST_COMMIT)
 * until then(s, verdict, reply) runs from the event loop; reply is the
 * milter's "CODE X.Y.Z text" for reject and tempfail. At MAIL the
 * transaction (s->tx) exists already; at RCPT rcpt is the recipient. */
bool session_milters_at(const struct session *s, enum milter_when when);
void session_milter_ask(struct session *s, enum milter_when when,
                        const struct envelope_rcpt *rcpt,
                        void (*then)(struct session *s, enum milter_result_verdict v,
                                     const char *reply));
/* Forget a pending question (the session ends). */
void session_milter_drop(struct session *s);

/* session_data.c */
/* Ask the queue for the message file; the session waits (ST_COMMIT, no
 * input read) until then(s, err) runs from the event loop: err NULL when
 * the file is open and the Received header written, else the 4xx reply. */
void session_data_open(struct session *s, void (*then)(struct session *s, const char *err));
void session_data_input(struct session *s, struct evbuffer *in);
void session_bdat_input(struct session *s, struct evbuffer *in);
void session_bdat_chunk_done(struct session *s);

#endif

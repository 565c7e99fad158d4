/*
 * smtp_client_internal.h - state shared by the SMTP client's files:
 * smtp_client.c (I/O plumbing, callbacks, close), smtp_client_open.c
 * (connect, greeting, EHLO, STARTTLS) and smtp_client_tx.c (MAIL, RCPT,
 * DATA, RSET). Not for use outside src/deliver/smtp_client*.c.
 *
 * Rule that keeps the code reentrancy-free: the caller's callbacks run
 * only from notify_cb (a deferred event), never from inside a bufferevent
 * callback or an API call, and nothing touches the connection after a
 * callback returns. So the caller may free or reuse the connection from
 * any callback.
 */
#ifndef SEALPOST_DELIVERY_SMTP_CLIENT_INTERNAL_H
#define SEALPOST_DELIVERY_SMTP_CLIENT_INTERNAL_H

#include <event2/bufferevent.h>

#include "delivery/smtp_client.h"
#include "delivery/smtp_reply.h"

#define SMTP_BODY_CHUNK      (64 * 1024)    /* bytes read from the spool per pread */
#define SMTP_OUT_HIGH_WATER  (256 * 1024)   /* stop queueing body data above this */
#define SMTP_OUT_LOW_WATER   (64 * 1024)    /* write callback: queue more below this */
#define SMTP_IN_HIGH_WATER   (64 * 1024)    /* input held at most before reading pauses */
#define SMTP_QUIT_WAIT       5u             /* seconds to wait for the 221 to QUIT */

enum conn_state {
    CS_CONNECTING,          /* non-blocking connect() in progress */
    CS_GREETING,            /* waiting for the 220 */
    CS_EHLO,
    CS_HELO,                /* EHLO was refused with 5xx */
    CS_STARTTLS,            /* STARTTLS sent, waiting for 220 */
    CS_TLS_HANDSHAKE,
    CS_AUTH,                /* AUTH PLAIN, or LOGIN's password, sent: waiting for 235 */
    CS_AUTH_USER,           /* AUTH LOGIN sent: waiting for the 334 for the user */
    CS_AUTH_PASS,           /* LOGIN's user sent: waiting for the 334 for the password */
    CS_READY,               /* idle and clean: may carry a transaction */
    CS_TX,                  /* a transaction is in progress (struct smtp_tx) */
    CS_QUIT,                /* closing: QUIT sent, waiting for 221 or EOF */
    CS_DEAD,                /* no usable connection (failed open, or lost) */
};

enum tx_phase {
    TX_MAIL,                /* waiting for the MAIL reply */
    TX_RCPT,                /* waiting for RCPT reply rcpt_reply */
    TX_DATA,                /* waiting for the DATA reply */
    TX_BODY,                /* streaming the message */
    TX_DOT,                 /* final dot queued; waiting for the reply */
    TX_RSET,                /* waiting for the RSET reply */
};

enum rcpt_state { RCPT_PENDING = 0, RCPT_ACCEPTED, RCPT_DONE };

enum pending_notify {
    NOTIFY_NONE = 0, NOTIFY_READY, NOTIFY_OPEN_FAILED, NOTIFY_SENT,
    NOTIFY_LOST,            /* an idle connection died: the caller's lost_cb */
};

struct smtp_tx {
    struct smtp_transaction t;  /* env and rcpt_index stay the caller's */
    smtp_send_cb cb;
    void *arg;
    struct smtp_result *results;
    enum rcpt_state *state;
    size_t *order;              /* order[k]: result index of the k-th RCPT sent */
    size_t planned;             /* RCPTs to send (recipients that passed the checks) */
    size_t accepted;            /* RCPT_ACCEPTED count */
    size_t rcpt_sent;           /* RCPTs sent so far */
    size_t rcpt_reply;          /* k of the RCPT whose reply is next */
    bool pipelined;
    bool mail_failed;
    enum tx_phase phase;
    uint64_t body_sent;         /* spool bytes queued so far */
    struct dot_stuffer ds;
    char *chunk;                /* SMTP_BODY_CHUNK bytes read from the spool */
    char *stuffed;              /* 2 * SMTP_BODY_CHUNK bytes after dot-stuffing */
    bool done_timer;            /* data_done timer armed */
};

/* One host's TLS security, owned by the connection (smtp_host_tls copied). */
struct conn_host_tls {
    enum host_tls mode;
    enum dnssec_status mx_dnssec;
    struct tlsa_record *tlsa;   /* own copy */
    size_t tlsa_count;
    bool tlsa_at_canon;         /* TLSA base = the host's canon_name */
    X509_STORE *pkix_store;     /* own reference */
    char why[300];
    char dsn[8];
    bool sts_mx;                /* matches an MTA-STS policy (smtp_host_tls) */
    bool report_only;           /* MTA-STS testing: verify, log, never refuse */
    char verify_name[256];      /* PKIX reference identity, "" = the host name */
};

struct smtp_conn {
    struct event_base *base;
    struct smtp_client_config cfg;
    char helo_name[256];
    struct dns_host *hosts;     /* own copy */
    struct conn_host_tls *host_tls;  /* one per host */
    size_t host_count, host_i, addr_i;
    bool skip_starttls;         /* this attempt: the TLS handshake failed before */

    enum conn_state state;
    evutil_socket_t connect_fd;
    struct event *connect_ev;   /* non-blocking connect, with the connect timeout */
    struct bufferevent *bev;
    struct event *timer;        /* the timeout of the current step */
    struct event *notify_ev;    /* runs the caller's callback, deferred */
    enum pending_notify pending;

    char peer[320];             /* "name[ip]:port" */
    bool tls;
    enum tls_auth auth;         /* how this connection's TLS was verified */
    long verify_error;          /* X509_V_ERR_* of the failed handshake, else 0 */
    bool attempt_reported;      /* on_attempt ran for this address */
    char tls_summary[256];
    struct smtp_caps caps;
    struct smtp_reply *reply;   /* the reply being read */
    /* Replies the server owes: one per command sent (the greeting
     * counts as one), one for the end of data once the body starts.
     * Input while it is 0, or left over when it drops to 0, belongs to
     * no command: a protocol error (smtp_client.c read_cb). */
    unsigned awaiting;

    smtp_conn_ready_cb ready_cb;
    void *ready_arg;
    smtp_conn_lost_cb lost_cb;  /* smtp_conn_watch_idle() */
    void *lost_arg;
    struct smtp_result last_err; /* why the last address failed */
    char dead_reason[512];      /* why the connection is unusable (CS_DEAD) */

    struct smtp_tx *tx;
};

/* smtp_client.c */
struct smtp_conn *conn_new(struct event_base *base, const struct smtp_client_config *cfg);
void conn_arm_timer(struct smtp_conn *c, unsigned seconds);
void conn_disarm_timer(struct smtp_conn *c);
void conn_attach(struct smtp_conn *c, struct bufferevent *bev);
void conn_drop(struct smtp_conn *c, bool send_quit);
void conn_dead(struct smtp_conn *c, const char *reason);
void conn_notify(struct smtp_conn *c, enum pending_notify what);
void result_set(struct smtp_result *res, enum smtp_outcome outcome, int code, const char *dsn,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void result_from_reply(struct smtp_result *res, const struct smtp_reply *r);
/* snprintf that is meant to truncate (keeps -Wformat-truncation quiet). */
void text_fmt(char *out, size_t outsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_send_line(struct smtp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtp_client_tls_summary(SSL *ssl, char *out, size_t outsize);

/* smtp_client_open.c */
const struct conn_host_tls *conn_host(const struct smtp_conn *c);
bool conn_tls_required(const struct smtp_conn *c);
void open_attempt_failed(struct smtp_conn *c, int code, const char *dsn, const char *text,
                         bool send_quit);
void open_ready(struct smtp_conn *c);
void conn_free_host_tls(struct smtp_conn *c);
void open_start(struct smtp_conn *c);
void open_reply(struct smtp_conn *c, const struct smtp_reply *r);
void open_io_error(struct smtp_conn *c, const char *what);
void open_protocol_error(struct smtp_conn *c, const char *text);
void open_tls_done(struct smtp_conn *c, bool ok, const char *reason);
const char *open_phase_name(enum conn_state st);

/* smtp_client_auth.c: AUTH to a smart host (cfg.auth), after the EHLO
 * inside TLS; ends in open_ready or open_attempt_failed. */
void open_auth_start(struct smtp_conn *c);
void open_auth_reply(struct smtp_conn *c, const struct smtp_reply *r);

/* smtp_client_tx.c */
void tx_reply(struct smtp_conn *c, const struct smtp_reply *r);
void tx_io_error(struct smtp_conn *c, const char *what);
void tx_protocol_error(struct smtp_conn *c, const char *text);
void tx_writable(struct smtp_conn *c);
void tx_free(struct smtp_tx *tx);

#endif

/*
 * smtp_client.h - asynchronous SMTP client (RFC 5321) for outbound
 * delivery, on the caller's libevent loop.
 *
 * A connection tries the given hosts and addresses in order until one
 * greets with 220, says EHLO (HELO if EHLO is refused), and upgrades with
 * STARTTLS whenever the server offers it (opportunistic, unless the
 * host's smtp_host_tls asks for DANE, PKIX or mandatory TLS). Then any number of
 * transactions can be sent on it (connection reuse), each with MAIL,
 * every RCPT and DATA pipelined when the server offers PIPELINING.
 *
 * Trusts: nothing the server says; replies are parsed with bounded
 * buffers, and a reply line over 512 octets or a reply of over 100 lines
 * ends the connection. The conversation is followed strictly: every
 * reply must answer a command sent, in order; a reply that answers
 * nothing (an extra one, or bytes while idle) or does not fit its
 * command (anything but 354 or 4xx/5xx to DATA, a 3xx to MAIL or RCPT)
 * is a protocol error: the transaction's recipients are deferred with
 * 4.5.0 and the connection is dropped. A recipient is delivered only by
 * a 2xx to the end of data, read after the whole body went out.
 *
 * The process must ignore SIGPIPE (sealpost's main() does). Implemented
 * in smtp_client.c (plumbing), smtp_client_open.c (connect, EHLO,
 * STARTTLS), smtp_client_tx.c (transactions), smtp_reply.c (parsers).
 */
#ifndef SEALPOST_DELIVERY_SMTP_CLIENT_H
#define SEALPOST_DELIVERY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "delivery/dns.h"
#include "delivery/tls_decide.h"
#include "delivery/tlsa.h"
#include "mail/relay_credentials.h"
#include "mail/smtp_result.h"
#include "mail/envelope.h"

/* RFC 5321 4.5.3.2 defaults, in seconds; tests shorten them. A field
 * left 0 gets its default. */
struct smtp_client_timeouts {
    unsigned connect;           /* default 30 */
    unsigned greeting;          /* 300 */
    unsigned command;           /* EHLO, STARTTLS, MAIL, RCPT, RSET: 300 */
    unsigned data_init;         /* reply to DATA: 120 */
    unsigned data_block;        /* each write of message data: 180 */
    unsigned data_done;         /* reply after the final dot: 600 */
};

/*
 * What became of TLS with one host (TLS-RPT, RFC 8460): reported once
 * per host tried, when the client knows. Connections that never reach
 * the TLS question (connect failures, refused greetings) and cleartext
 * by choice (HOST_TLS_CLEARTEXT) are not reported; neither is the
 * cleartext retry after a failed opportunistic handshake (the failure
 * was reported).
 */
enum smtp_attempt_tls {
    ATTEMPT_TLS_OK = 0,         /* TLS up, authenticated as the host's mode asks */
    ATTEMPT_NO_STARTTLS,        /* STARTTLS not offered, or refused */
    ATTEMPT_TLS_FAILED,         /* the handshake failed (verify_error: why, if 0 not
                                   a verification failure) */
    ATTEMPT_NOT_AUTHENTICATED,  /* handshake done, but DANE/PKIX did not authenticate */
    ATTEMPT_HOST_SKIPPED,       /* HOST_TLS_DEFER: no connection made */
};

struct smtp_attempt {
    size_t host_index;          /* into the hosts given to smtp_conn_open_secure */
    const char *host;           /* the MX host name */
    const char *ip;             /* receiving address, "" when none was tried */
    const char *local_ip;       /* sending address, "" when unknown */
    enum smtp_attempt_tls outcome;
    long verify_error;          /* X509_V_ERR_* for ATTEMPT_TLS_FAILED, else 0 */
};

/* Runs synchronously inside the client: it may record, but must not call
 * any smtp_conn_* function. */
typedef void (*smtp_attempt_cb)(const struct smtp_attempt *a, void *arg);

struct smtp_client_config {
    const char *helo_name;
    SSL_CTX *tls_ctx;           /* from smtp_client_tls_ctx_new(); NULL: never STARTTLS */
    struct smtp_client_timeouts timeouts;
    /* false (default): opportunistic TLS; a server without STARTTLS, a
     * refused STARTTLS, or a failed handshake (then the same address is
     * tried again without STARTTLS) still gets the mail in cleartext.
     * true (for DANE / MTA-STS): each of those makes that address fail
     * with "TLS is required but ..." and the next one is tried. */
    bool require_tls;
    /* NULL: not reported. Set per connection (the config is copied). */
    smtp_attempt_cb on_attempt;
    void *attempt_arg;
    /* A smart host ([relay] relayhost_tls, relayhost_credentials).
     * implicit_tls: the TLS handshake comes first, then the greeting
     * (RFC 8314); a failed handshake fails the address (no cleartext
     * retry). auth: log in with AUTH PLAIN (LOGIN when only LOGIN is
     * offered, RFC 4954) after the EHLO inside TLS, and only when that
     * TLS authenticated the server (the host's mode is PKIX, DANE or
     * fingerprint and it verified); otherwise, or when the server offers
     * neither mechanism, the address fails with 4.7.x and nothing is
     * sent. A refused AUTH defers (5xx as 4.7.8) and is logged at level
     * error. The credentials are the caller's and must outlive every
     * connection opened with them; the password is never logged. */
    bool implicit_tls;
    const struct relay_credentials *auth;
};

/*
 * The TLS security of one host (outbound.c decides it with tls_decide()).
 * HOST_TLS_DEFER: the host is skipped (no connection), its why/dsn is
 * the attempt's error. DANE: TLS is mandatory and the server must match
 * one of tlsa[0..tlsa_count) (OpenSSL's DANE verifier; DANE-EE ignores
 * names and expiry, DANE-TA checks the host name); PKIX: mandatory, the
 * chain must verify against pkix_store with the host name as reference
 * identity. Failing either, or no STARTTLS, fails that address with
 * 4.7.5 and the next one is tried: never cleartext, never unverified.
 */
struct smtp_host_tls {
    enum host_tls mode;
    enum dnssec_status mx_dnssec;       /* for REQUIRETLS (RFC 8689 4.2) */
    const struct tlsa_record *tlsa;     /* copied by smtp_conn_open_secure */
    size_t tlsa_count;
    bool tlsa_at_canon;                 /* the records are the CNAME-expanded name's
                                           (dns_host.canon_name): it is the SNI and
                                           the first reference name */
    X509_STORE *pkix_store;             /* the connection takes a reference */
    const char *why;                    /* HOST_TLS_DEFER */
    const char *dsn;
    /* MTA-STS (RFC 8461): sts_mx says the host matches the destination's
     * policy (logged as event=sts_session per TLS outcome, and PKIX then
     * counts for REQUIRETLS even when the MX lookup was insecure);
     * report_only (policy mode testing) verifies PKIX and logs the
     * outcome, but a failure (no STARTTLS, a certificate that does not
     * verify) does not stop delivery. */
    bool sts_mx;
    bool report_only;
    /* PKIX: the reference identity instead of the host name (the
     * configured relayhost name, for a smart host with credentials);
     * NULL or "": the host name. Copied. */
    const char *verify_name;
};

/* A client TLS context (TLS 1.2+, DANE enabled; verification is set per
 * connection: none for opportunistic TLS). */
SSL_CTX *smtp_client_tls_ctx_new(void);
void smtp_client_timeouts_default(struct smtp_client_timeouts *t);

/*
 * text for a remote reply is the reply as sent, code first, control
 * bytes replaced by '?': "550 5.1.1 <b@x>: user unknown" (the peer is
 * smtp_conn_peer()). Local reasons name the peer themselves:
 * "connect to mx1.example.test[192.0.2.1]:25: Connection refused",
 * "host mx1...[...]:25 refused to talk to me: 421 4.3.2 busy",
 * "conversation with ... timed out while sending RCPT TO",
 * "lost connection with ... while sending message body",
 * "TLS is required but ...". A failed open is always SMTP_DEFERRED,
 * its dsn then has class 4 even when the greeting was a 5xx.
 */

struct smtp_conn;

/* conn is NULL when every host failed; err then says why (deferral,
 * the error of the last address tried). */
typedef void (*smtp_conn_ready_cb)(struct smtp_conn *conn, const struct smtp_result *err,
                                   void *arg);

/*
 * Connect to hosts[0..host_count) in order (each of its addresses in
 * order), skipping to the next on connection failure, timeout, or a
 * non-220 greeting. The callback runs exactly once, later.
 * hosts and cfg are copied (cfg->tls_ctx gets a reference of its own);
 * the caller may free them when this returns. Callbacks never run
 * inside an API call, so the caller may use or close the connection
 * from any callback.
 */
struct smtp_conn *smtp_conn_open(struct event_base *base, const struct smtp_client_config *cfg,
                                  const struct dns_host *hosts, size_t host_count,
                                  smtp_conn_ready_cb cb, void *arg);
/* The same with a TLS security per host (host_tls[i] for hosts[i]; NULL:
 * every host opportunistic). Everything is copied. */
struct smtp_conn *smtp_conn_open_secure(struct event_base *base,
                                        const struct smtp_client_config *cfg,
                                        const struct dns_host *hosts,
                                        const struct smtp_host_tls *host_tls,
                                        size_t host_count, smtp_conn_ready_cb cb, void *arg);

/* One message to send on an open connection. env, rcpt_index and
 * msg_fd must stay valid until the callback has run (or close). */
struct smtp_transaction {
    const struct envelope *env;         /* from, body, smtputf8, requiretls, ret, envid */
    const size_t *rcpt_index;           /* which env->rcpts to send */
    size_t rcpt_count;
    int msg_fd;                         /* spool file */
    off_t body_offset;
    uint64_t body_size;
};

/*
 * results[i] is for env->rcpts[rcpt_index[i]]; the array lives until
 * the callback returns. connection_ok says whether the connection may
 * carry another transaction (false after a timeout, a lost connection,
 * a 421, a protocol error, or an abort mid-DATA); either way the caller ends with
 * smtp_conn_close().
 */
typedef void (*smtp_send_cb)(struct smtp_conn *conn, const struct smtp_result *results,
                             size_t count, bool connection_ok, void *arg);

/*
 * Send one transaction (one at a time per connection: a second call
 * before the callback is a programming error and fatal). Checks first,
 * without sending: message larger
 * than the server's SIZE -> SMTP_FAILED 5.3.4; SMTPUTF8 message to a
 * server without SMTPUTF8 -> SMTP_FAILED 5.6.7; REQUIRETLS message
 * (RFC 8689 4.2) without TLS verified by DANE or PKIX to an MX from a
 * DNSSEC-secure lookup -> SMTP_FAILED 5.7.10, to a server without
 * REQUIRETLS -> SMTP_FAILED 5.7.30.
 * DSN parameters are passed on when the server offers DSN.
 * The callback runs exactly once, later.
 */
void smtp_conn_send(struct smtp_conn *conn, const struct smtp_transaction *tx,
                    smtp_send_cb cb, void *arg);

/* Is conn open, idle and clean, i.e. may smtp_conn_send be called on
 * it with a chance of success? False once it was lost (the server hung
 * up, or sent something while idle). */
bool smtp_conn_ready(const struct smtp_conn *conn);

/*
 * Runs (later, at most once per loss) when conn is lost while idle:
 * open and ready, no transaction in progress and no callback pending,
 * and the server hangs up, fails, or sends anything unasked (a 421
 * before it hangs up, or a stray reply). The callback should close the
 * connection. Losses during a transaction are reported by smtp_send_cb
 * (connection_ok false) instead.
 */
typedef void (*smtp_conn_lost_cb)(struct smtp_conn *conn, void *arg);
void smtp_conn_watch_idle(struct smtp_conn *conn, smtp_conn_lost_cb cb, void *arg);

/* Free at once, without QUIT; no callback runs afterwards. Also valid on
 * the handle smtp_conn_open returned before its ready callback ran (the
 * attempt is then abandoned). For shutting down. */
void smtp_conn_abort(struct smtp_conn *conn);

/* QUIT (best effort) and free; no callback runs after this. An idle
 * connection sends QUIT and lingers on the event base until the 221,
 * EOF, or SMTP_QUIT_WAIT (5 s) seconds; any other is dropped at once. */
void smtp_conn_close(struct smtp_conn *conn);

/* "mx1.example.test[127.0.0.20]:25" */
const char *smtp_conn_peer(const struct smtp_conn *conn);
/* Did the server offer DSN (RFC 3461), i.e. were NOTIFY/ORCPT passed on? */
bool smtp_conn_offers_dsn(const struct smtp_conn *conn);
/* TLS summary ("TLSv1.3 with cipher ...") or NULL in cleartext. */
const char *smtp_conn_tls(const struct smtp_conn *conn);

#endif

/*
 * smtp_client.c - plumbing of the outbound SMTP client (see
 * smtp_client.h): the client TLS context, bufferevent callbacks that
 * read bounded replies and route them to the connection phase
 * (smtp_client_open.c) or the transaction (smtp_client_tx.c), timers,
 * the deferred delivery of the caller's callbacks, and closing.
 *
 * Trusts: the caller's config and envelope; nothing the server sends.
 * Replies are parsed within SMTP_REPLY_LINE_MAX octets per line and
 * SMTP_REPLY_LINES_MAX lines; input held is capped by a read watermark.
 * Input is matched to commands (c->awaiting): bytes when no reply is
 * owed, or left over after the last reply owed, are a protocol error
 * (while idle: the connection is lost, and the caller told).
 * Never calls the caller back from inside a libevent callback of the
 * connection, so the caller may free the connection from a callback.
 */
#include "delivery/smtp_client_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls/tls_server.h"
#include "util/log.h"
#include "util/xalloc.h"

static void conn_free(struct smtp_conn *c);

void smtp_client_timeouts_default(struct smtp_client_timeouts *t)
{
    t->connect = 30;
    t->greeting = 300;
    t->command = 300;
    t->data_init = 120;
    t->data_block = 180;
    t->data_done = 600;
}

SSL_CTX *smtp_client_tls_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Opportunistic (RFC 7435): any encryption beats cleartext, so by
     * default the peer's certificate is recorded but not verified; DANE
     * and PKIX hosts turn verification on per connection (start_tls). */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_dane_enable(ctx) <= 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

/*
 * The client's view of a finished handshake, in tls_summary()'s words
 * but about the peer's certificate and signature:
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
 *  key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256"
 */
void smtp_client_tls_summary(SSL *ssl, char *out, size_t outsize)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int alg_bits = 0, bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
    int group = SSL_get_negotiated_group(ssl), digest = NID_undef;
    const char *group_name = group ? OBJ_nid2sn(group) : NULL;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    char sig[96];

    tls_key_description(cert ? X509_get0_pubkey(cert) : NULL,
                        SSL_version(ssl) >= TLS1_3_VERSION, sig, sizeof(sig));
    SSL_get_peer_signature_nid(ssl, &digest);
    snprintf(out, outsize,
             "%s with cipher %s (%d/%d bits) key-exchange %s server-signature %s%s%s",
             SSL_get_version(ssl), cipher ? SSL_CIPHER_get_name(cipher) : "none", bits,
             alg_bits, group_name ? group_name : "unknown", sig,
             digest != NID_undef ? " server-digest " : "",
             digest != NID_undef ? OBJ_nid2sn(digest) : "");
}

const char *smtp_conn_peer(const struct smtp_conn *c)
{
    return c->peer;
}

const char *smtp_conn_tls(const struct smtp_conn *c)
{
    return c->tls ? c->tls_summary : NULL;
}

void result_set(struct smtp_result *res, enum smtp_outcome outcome, int code, const char *dsn,
                const char *fmt, ...)
{
    va_list ap;

    res->outcome = outcome;
    res->code = code;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
}

void text_fmt(char *out, size_t outsize, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, outsize, fmt, ap);
    va_end(ap);
}

void result_from_reply(struct smtp_result *res, const struct smtp_reply *r)
{
    switch (r->code / 100) {
    case 2:
        res->outcome = SMTP_DELIVERED;
        break;
    case 5:
        res->outcome = SMTP_FAILED;
        break;
    default:
        res->outcome = SMTP_DEFERRED;   /* 4xx, or a 3xx out of place */
        break;
    }
    res->code = r->code;
    if (r->code / 100 == 3)
        snprintf(res->dsn, sizeof(res->dsn), "4.5.0");
    else
        snprintf(res->dsn, sizeof(res->dsn), "%s", r->dsn);
    smtp_reply_format(r, res->text, sizeof(res->text));
}

void conn_send_line(struct smtp_conn *c, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    va_list ap;

    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
    c->awaiting++;
}

void conn_arm_timer(struct smtp_conn *c, unsigned seconds)
{
    struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

    evtimer_add(c->timer, &tv);
}

void conn_disarm_timer(struct smtp_conn *c)
{
    evtimer_del(c->timer);
}

/* Close the socket now. send_quit: on a cleartext connection with
 * nothing queued, say QUIT without waiting (best effort, never blocks). */
void conn_drop(struct smtp_conn *c, bool send_quit)
{
    if (c->connect_ev) {
        event_free(c->connect_ev);
        c->connect_ev = NULL;
        evutil_closesocket(c->connect_fd);
        c->connect_fd = -1;
    }
    if (c->bev) {
        evutil_socket_t fd = bufferevent_getfd(c->bev);

        /* Never into a TLS stream (established or mid-handshake). */
        if (send_quit && fd >= 0 && bufferevent_openssl_get_ssl(c->bev) == NULL &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            (void)send(fd, "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    conn_disarm_timer(c);
    smtp_reply_init(c->reply);
    c->awaiting = 0;
}

void conn_dead(struct smtp_conn *c, const char *reason)
{
    char q[600];

    log_info("event=smtp_conn_lost peer=%s reason=%s", c->peer,
             log_quote(q, sizeof(q), reason, strlen(reason)));
    snprintf(c->dead_reason, sizeof(c->dead_reason), "%s", reason);
    conn_drop(c, false);
    c->state = CS_DEAD;
}

void conn_notify(struct smtp_conn *c, enum pending_notify what)
{
    c->pending = what;
    event_active(c->notify_ev, EV_TIMEOUT, 0);
}

/* The only place the caller's callbacks run; c is not touched after. */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_conn *c = arg;
    enum pending_notify pending = c->pending;

    (void)fd;
    (void)what;
    c->pending = NOTIFY_NONE;
    if (pending == NOTIFY_READY) {
        smtp_conn_ready_cb cb = c->ready_cb;

        c->ready_cb = NULL;
        cb(c, NULL, c->ready_arg);
    } else if (pending == NOTIFY_OPEN_FAILED) {
        smtp_conn_ready_cb cb = c->ready_cb;
        void *cb_arg = c->ready_arg;
        struct smtp_result res = c->last_err;

        conn_free(c);
        cb(NULL, &res, cb_arg);
    } else if (pending == NOTIFY_LOST) {
        smtp_conn_lost_cb cb = c->lost_cb;

        c->lost_cb = NULL;
        cb(c, c->lost_arg);
    } else if (pending == NOTIFY_SENT) {
        struct smtp_tx *tx = c->tx;
        bool ok = c->state == CS_READY;

        c->tx = NULL;
        tx->cb(c, tx->results, tx->t.rcpt_count, ok, tx->arg);
        tx_free(tx);
    }
}

static const char *phase_name(const struct smtp_conn *c)
{
    if (c->state != CS_TX || c->tx == NULL)
        return open_phase_name(c->state);
    switch (c->tx->phase) {
    case TX_MAIL:
        return "sending MAIL FROM";
    case TX_RCPT:
        return "sending RCPT TO";
    case TX_DATA:
        return "sending DATA";
    case TX_BODY:
        return "sending message body";
    case TX_DOT:
        return "sending end of data";
    case TX_RSET:
        return "sending RSET";
    }
    return "in a transaction";
}

/* An idle connection died: tell the caller, unless a callback is
 * still to run (that one reports the state). */
static void conn_lost_idle(struct smtp_conn *c, const char *text)
{
    conn_dead(c, text);
    if (c->lost_cb != NULL && c->tx == NULL && c->pending == NOTIFY_NONE)
        conn_notify(c, NOTIFY_LOST);
}

/* EOF, error, timeout or a malformed reply: the connection is unusable. */
static void conn_failure(struct smtp_conn *c, const char *text)
{
    switch (c->state) {
    case CS_TX:
        tx_io_error(c, text);
        break;
    case CS_QUIT:
        conn_free(c);
        break;
    case CS_READY:
        conn_lost_idle(c, text);
        break;
    case CS_DEAD:
        break;
    default:
        open_io_error(c, text);
        break;
    }
}

/* The server is out of step with the commands sent. */
static void protocol_error(struct smtp_conn *c, const char *text)
{
    switch (c->state) {
    case CS_TX:
        tx_protocol_error(c, text);
        break;
    case CS_READY:
    case CS_QUIT:
    case CS_DEAD:
        conn_failure(c, text);
        break;
    default:
        open_protocol_error(c, text);
        break;
    }
}

/* Input that answers no command. While idle the connection is lost (a
 * 421 before the server hangs up is the polite form of that); anywhere
 * else the conversation is out of step. */
static void unexpected_input(struct smtp_conn *c, struct evbuffer *in)
{
    char text[600], head[3] = { 0, 0, 0 };

    evbuffer_copyout(in, head, sizeof(head));
    if (c->state == CS_READY && memcmp(head, "421", 3) == 0)
        snprintf(text, sizeof(text), "host %s closed the connection while idle (421)",
                 c->peer);
    else
        snprintf(text, sizeof(text), "protocol error: unexpected data from %s while %s",
                 c->peer, phase_name(c));
    protocol_error(c, text);
}

/*
 * A reply is complete: one fewer is owed. Input left over when none is
 * owed any more answers nothing: a protocol error, before the reply is
 * acted on (it may be a stray one itself). The exception is the 220 to
 * STARTTLS, whose leftovers start_tls() discards (RFC 3207 injection).
 */
static bool reply_in_step(struct smtp_conn *c, struct evbuffer *in)
{
    char text[600];

    if (c->awaiting > 0)
        c->awaiting--;
    if (c->awaiting > 0 || evbuffer_get_length(in) == 0 ||
        (c->state == CS_STARTTLS && c->reply->code == 220))
        return true;
    snprintf(text, sizeof(text), "protocol error: unexpected extra reply from %s while %s",
             c->peer, phase_name(c));
    protocol_error(c, text);
    return false;
}

static void reply_done(struct smtp_conn *c)
{
    char text[SMTP_REPLY_LINE_MAX], q[SMTP_REPLY_LINE_MAX + 64];

    smtp_reply_format(c->reply, text, sizeof(text));
    log_debug("event=smtp_reply peer=%s state=%d reply=%s", c->peer, (int)c->state,
              log_quote(q, sizeof(q), text, strlen(text)));
    if (c->state == CS_TX)
        tx_reply(c, c->reply);
    else
        open_reply(c, c->reply);
    smtp_reply_init(c->reply);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_conn *c = arg;
    char text[600];

    while (c->bev == bev) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t len = evbuffer_get_length(in), want, used = 0;
        enum smtp_reply_status st;
        const char *p;

        if (len == 0)
            return;
        if (c->awaiting == 0) {
            unexpected_input(c, in);
            return;                 /* the connection is gone (c may be) */
        }
        want = len < SMTP_REPLY_LINE_MAX ? len : SMTP_REPLY_LINE_MAX;
        p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        st = smtp_reply_parse(c->reply, p, want, &used);
        evbuffer_drain(in, used);
        if (st == REPLY_NEED_MORE)
            return;
        if (st == REPLY_CONTINUE)
            continue;
        if (c->state == CS_QUIT) {
            conn_free(c);           /* the 221, or whatever else: done */
            return;
        }
        if (st != REPLY_DONE) {
            snprintf(text, sizeof(text), "protocol error with %s while %s: %s", c->peer,
                     phase_name(c), smtp_reply_status_text(st));
            conn_failure(c, text);
            continue;               /* c->bev is no longer bev */
        }
        if (!reply_in_step(c, in))
            return;                 /* the connection is gone (c may be) */
        reply_done(c);
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_conn *c = arg;

    (void)bev;
    if (c->state == CS_TX)
        tx_writable(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_conn *c = arg;
    char text[600], reason[256] = "";
    int err = EVUTIL_SOCKET_ERROR();

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == CS_TLS_HANDSHAKE)
            open_tls_done(c, true, NULL);
        return;
    }
    if (c->state == CS_TLS_HANDSHAKE) {
        unsigned long e = bufferevent_get_openssl_error(c->bev);
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        enum host_tls mode = conn_host(c)->mode;
        long vr = ssl && host_tls_authenticates(mode) ? SSL_get_verify_result(ssl) : X509_V_OK;

        c->verify_error = vr;
        if (vr != X509_V_OK)
            snprintf(reason, sizeof(reason), "certificate verification failed: %s%s",
                     X509_verify_cert_error_string(vr),
                     vr != X509_V_ERR_DANE_NO_MATCH ? ""
                     : mode == HOST_TLS_FINGERPRINT ? " (no fingerprint matches)"
                                                     : " (no TLSA record matches)");
        else if (e)
            tls_error_string(e, reason, sizeof(reason));
        else if (what & BEV_EVENT_EOF)
            snprintf(reason, sizeof(reason), "connection closed by the server");
        else
            snprintf(reason, sizeof(reason), "%s", evutil_socket_error_to_string(err));
        while (bufferevent_get_openssl_error(c->bev))
            ;
        open_tls_done(c, false, reason);
        return;
    }
    if ((what & BEV_EVENT_ERROR) && !(what & BEV_EVENT_EOF)) {
        unsigned long e = c->tls ? bufferevent_get_openssl_error(c->bev) : 0;

        if (e)
            tls_error_string(e, reason, sizeof(reason));
        else
            snprintf(reason, sizeof(reason), "%s", evutil_socket_error_to_string(err));
        text_fmt(text, sizeof(text), "lost connection with %s while %s: %s", c->peer,
                 phase_name(c), reason);
    } else {
        snprintf(text, sizeof(text), "lost connection with %s while %s", c->peer,
                 phase_name(c));
    }
    conn_failure(c, text);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_conn *c = arg;
    char text[600];

    (void)fd;
    (void)what;
    if (c->state == CS_TLS_HANDSHAKE) {
        open_tls_done(c, false, "handshake timed out");
        return;
    }
    snprintf(text, sizeof(text), "conversation with %s timed out while %s", c->peer,
             phase_name(c));
    conn_failure(c, text);
}

void conn_attach(struct smtp_conn *c, struct bufferevent *bev)
{
    c->bev = bev;
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(bev, EV_READ, 0, SMTP_IN_HIGH_WATER);
    bufferevent_setwatermark(bev, EV_WRITE, SMTP_OUT_LOW_WATER, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void default_zero_timeouts(struct smtp_client_timeouts *t)
{
    struct smtp_client_timeouts d;

    smtp_client_timeouts_default(&d);
    t->connect = t->connect ? t->connect : d.connect;
    t->greeting = t->greeting ? t->greeting : d.greeting;
    t->command = t->command ? t->command : d.command;
    t->data_init = t->data_init ? t->data_init : d.data_init;
    t->data_block = t->data_block ? t->data_block : d.data_block;
    t->data_done = t->data_done ? t->data_done : d.data_done;
}

struct smtp_conn *conn_new(struct event_base *base, const struct smtp_client_config *cfg)
{
    struct smtp_conn *c = xcalloc(1, sizeof(*c));

    c->base = base;
    c->cfg = *cfg;
    snprintf(c->helo_name, sizeof(c->helo_name), "%s",
             cfg->helo_name && cfg->helo_name[0] ? cfg->helo_name : "localhost");
    c->cfg.helo_name = c->helo_name;
    default_zero_timeouts(&c->cfg.timeouts);
    if (c->cfg.tls_ctx)
        SSL_CTX_up_ref(c->cfg.tls_ctx);
    c->connect_fd = -1;
    c->timer = evtimer_new(base, timer_cb, c);
    c->notify_ev = event_new(base, -1, 0, notify_cb, c);
    if (c->timer == NULL || c->notify_ev == NULL)
        fatal("smtp client: cannot create events");
    c->reply = xmalloc(sizeof(*c->reply));
    smtp_reply_init(c->reply);
    c->state = CS_DEAD;
    return c;
}

static void conn_free(struct smtp_conn *c)
{
    conn_drop(c, false);
    event_free(c->timer);
    event_free(c->notify_ev);
    if (c->tx)
        tx_free(c->tx);
    if (c->cfg.tls_ctx)
        SSL_CTX_free(c->cfg.tls_ctx);
    conn_free_host_tls(c);
    free(c->hosts);
    free(c->reply);
    free(c);
}

bool smtp_conn_offers_dsn(const struct smtp_conn *c)
{
    return c->caps.dsn;
}

bool smtp_conn_ready(const struct smtp_conn *c)
{
    return c->state == CS_READY && c->bev != NULL && c->tx == NULL;
}

void smtp_conn_watch_idle(struct smtp_conn *c, smtp_conn_lost_cb cb, void *arg)
{
    c->lost_cb = cb;
    c->lost_arg = arg;
}

/* No callback may run after close or abort: cancel what is pending. */
static void cancel_callbacks(struct smtp_conn *c)
{
    event_del(c->notify_ev);
    c->pending = NOTIFY_NONE;
    c->ready_cb = NULL;
    c->lost_cb = NULL;
    if (c->tx) {
        tx_free(c->tx);
        c->tx = NULL;
    }
}

void smtp_conn_abort(struct smtp_conn *c)
{
    if (c == NULL)
        return;
    cancel_callbacks(c);
    conn_free(c);
}

void smtp_conn_close(struct smtp_conn *c)
{
    if (c == NULL)
        return;
    cancel_callbacks(c);
    if (c->state != CS_READY || c->bev == NULL) {
        conn_free(c);       /* mid-transaction or lost: just hang up */
        return;
    }
    conn_send_line(c, "QUIT");
    c->state = CS_QUIT;
    conn_arm_timer(c, c->cfg.timeouts.command < SMTP_QUIT_WAIT ? c->cfg.timeouts.command
                                                               : SMTP_QUIT_WAIT);
}

/*
 * session.c - SMTP session lifecycle and I/O: greeting, reading command
 * lines, replies, timeouts, closing (see session.h).
 *
 * Trusts nothing the client sends. Command lines must end in CRLF; a
 * bare CR or LF in a command line is an error (RFC 5321 2.3.8), never a
 * line end. Input is processed strictly in order, one command at a time,
 * so pipelined commands (RFC 2920) are answered in order; while a commit
 * is pending no further input is read or executed.
 *
 * Memory per session is bounded whatever the client does: input is read
 * up to SESSION_INPUT_HIGH_WATER, and once max_output_buffer octets of
 * replies are queued (a client that pipelines and never reads) no more
 * input is read or executed until the client has read them down to half
 * of that (backpressure); a client that reads nothing at all is dropped
 * after the write timeout. Every session ends in session_free(), which
 * logs event=disconnect and releases the connection slots: a peer that is
 * gone (reset, error, TLS EOF, write timeout) is freed at once with its
 * queued replies dropped, and a closing session is freed by its own timer
 * (close_timeout) if its last replies cannot be flushed.
 */
#include "smtpd/session_internal.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtpd/line_reader.h"
#include "tls/tls_server.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

/* The longest command line max_line_length allows (config_settings.c):
 * process_command_line copies one into a buffer of this size. */
#define SESSION_LINE_MAX 65536
_Static_assert(SESSION_LINE_MAX == CONFIG_MAX_LINE_LENGTH,
               "the line buffer holds the longest line the config allows");

/* Input held per session at most; reading pauses above this. */
#define SESSION_INPUT_HIGH_WATER (256 * 1024)

static void read_cb(struct bufferevent *bev, void *arg);
static void session_free(struct session *s);
static void session_end(struct session *s);
static bool process_input(struct session *s);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void vreply(struct session *s, const char *fmt, va_list ap)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);

    evbuffer_add_vprintf(out, fmt, ap);
    evbuffer_add(out, "\r\n", 2);
}

void session_reply(struct session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(s, fmt, ap);
    va_end(ap);
}

void session_reply_error(struct session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(s, fmt, ap);
    va_end(ap);
    if (++s->errors >= s->cfg->max_errors && s->state != ST_CLOSING) {
        log_info("event=too_many_errors session=%s client=%s errors=%u",
                 s->id, s->client_ip, s->errors);
        session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
        session_close(s);
    }
}

void session_set_timeout(struct session *s, unsigned seconds)
{
    struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void session_tx_reset(struct session *s)
{
    struct transaction *tx = s->tx;

    if (tx == NULL)
        return;
    if (tx->opening)
        incoming_cancel(tx->opening);
    if (tx->msg)
        incoming_abort(tx->msg);
    envelope_clear(&tx->env);
    free(tx->hdr);
    free(tx);
    s->tx = NULL;
}

/* The connection in the metrics (util/metrics.h): by listener, and
 * how it ended up: cleartext, after STARTTLS, or TLS from the start. */
static void count_connection(const struct session *s)
{
    enum metrics_conn_tls t = !s->tls ? METRICS_CONN_PLAIN
                            : s->listener->tls == LTLS_IMPLICIT ? METRICS_CONN_IMPLICIT
                            : METRICS_CONN_STARTTLS;

    for (size_t i = 0; i < s->cfg->listener_count; i++) {
        if (&s->cfg->listeners[i] == s->listener)
            metrics_connection(i, t);
    }
}

static void session_free(struct session *s)
{
    count_connection(s);
    log_info("event=disconnect session=%s client=%s duration=%lds commands=%lu "
             "messages=%lu rcpts=%lu rejected=%lu errors=%u",
             s->id, s->client_ip, (long)(time(NULL) - s->started), s->commands,
             s->messages, s->rcpts, s->rejected, s->errors);
    session_tx_reset(s);
    session_auth_drop(s);
    session_milter_drop(s);
    explicit_bzero(s->auth_token, sizeof(s->auth_token));
    if (s->bev && s->tls && !s->peer_gone) {
        /* Say goodbye in TLS too (close_notify): libevent frees the SSL
         * without it, and clients then see an unexpected EOF. The output
         * is flushed here, so the alert goes straight to the socket. */
        SSL_shutdown(bufferevent_openssl_get_ssl(s->bev));
        ERR_clear_error();      /* a failed goodbye must not blame the next session */
    }
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->close_timer)
        event_free(s->close_timer);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    server_session_gone(s->srv, s->client_ip);
    free(s);
}

/*
 * End the session from a callback that may run inside process_input (a
 * TLS write error is reported while a reply is being queued): then it is
 * freed when process_input returns, else now. A commit in flight holds
 * the session: it is freed when the commit completes.
 */
static void session_end(struct session *s)
{
    if (s->state == ST_COMMIT) {
        s->client_gone = true;
        s->peer_gone = true;
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    if (s->processing) {
        s->free_pending = true;
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    session_free(s);
}

/* close_timeout after session_close(): the last replies were not
 * flushed (a client that does not read, a peer libevent stopped writing
 * to) or the linger never ended. Runs from the event loop, never inside
 * process_input. */
static void close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    log_info("event=close_timeout session=%s client=%s state=%d queued=%zu", s->id,
             s->client_ip, s->state, evbuffer_get_length(bufferevent_get_output(s->bev)));
    s->peer_gone = true;
    session_free(s);
}

void session_close(struct session *s)
{
    struct timeval tv = { .tv_sec = s->cfg->close_timeout, .tv_usec = 0 };

    s->state = ST_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
    /* Bounded whatever the socket does; armed once, never pushed back. */
    if (!evtimer_pending(s->close_timer, NULL))
        evtimer_add(s->close_timer, &tv);
    /* write_cb frees the session once the final reply is flushed. */
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        bufferevent_trigger(s->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void format_peer(struct session *s, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, s->client_ip, sizeof(s->client_ip));
        s->client_port = ntohs(in6->sin6_port);
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, s->client_ip, sizeof(s->client_ip));
        s->client_port = ntohs(in4->sin_port);
    }
}

static struct bufferevent *tls_bufferevent(struct session *s, evutil_socket_t fd)
{
    SSL *ssl = tls_server_ssl_new(s->srv->tls);
    struct bufferevent *bev;

    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(s->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Paused input resumes once the queued replies are down to this. */
static size_t output_low_water(const struct session *s)
{
    return (size_t)(s->cfg->max_output_buffer / 2);
}

static void attach(struct session *s, struct bufferevent *bev)
{
    s->bev = bev;
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
    bufferevent_setwatermark(bev, EV_READ, 0, SESSION_INPUT_HIGH_WATER);
    /* write_cb runs whenever the output is at or below this after a write */
    bufferevent_setwatermark(bev, EV_WRITE, output_low_water(s), 0);
    session_set_timeout(s, s->cfg->command_timeout);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* The connect-stage milters' verdict: the greeting (RFC 5321 3.1). A
 * refusal is a 554 greeting, after which only QUIT works; a tempfail is
 * a 421 and the end. The milter's enhanced code and text are kept. */
static void connect_verdict(struct session *s, enum milter_result_verdict v, const char *reply)
{
    const char *text = strlen(reply) > 4 ? reply + 4 : "5.7.1 Access denied";
    char q[4 * MILTER_CODEC_REPLY_MAX + 8];

    if (v == MILTER_RESULT_DISCARD)
        s->milter_discard = true;
    if (v == MILTER_RESULT_ACCEPT || v == MILTER_RESULT_DISCARD) {
        session_reply(s, "220 %s ESMTP sealpost", s->cfg->hostname);
        return;
    }
    log_info("event=milter_refused session=%s client=%s stage=connect reply=%s", s->id,
             s->client_ip, log_quote(q, sizeof(q), reply, strlen(reply)));
    if (v == MILTER_RESULT_TEMPFAIL) {
        session_reply(s, "421 %s", text);
        session_close(s);
        return;
    }
    s->greeting_refused = true;
    s->rejected++;
    session_reply(s, "554 %s", text);
}

/* Without a queue no mail can be taken: say so at once (RFC 5321 3.1:
 * 421 instead of the greeting), after the handshake on a TLS-first
 * listener, so that the client reads it. */
static void greet(struct session *s)
{
    if (!queue_link_up(s->srv->queue)) {
        log_info("event=no_queue session=%s client=%s reply=421", s->id, s->client_ip);
        session_reply(s, "421 4.3.0 %s Service not available: mail queue unavailable, "
                         "try again later", s->cfg->hostname);
        session_close(s);
        return;
    }
    if (session_milters_at(s, MILTER_AT_CONNECT)) {
        session_milter_ask(s, MILTER_AT_CONNECT, NULL, connect_verdict);
        return;
    }
    session_reply(s, "220 %s ESMTP sealpost", s->cfg->hostname);
}

void session_start(struct server *srv, const struct listener_config *lc,
                   evutil_socket_t fd, const struct sockaddr *sa, socklen_t salen)
{
    struct session *s = xcalloc(1, sizeof(*s));
    bool implicit = lc->tls == LTLS_IMPLICIT && srv->tls != NULL;
    struct bufferevent *bev;

    (void)salen;
    s->srv = srv;
    s->cfg = srv->cfg;
    s->listener = lc;
    s->started = time(NULL);
    snprintf(s->id, sizeof(s->id), "%u.%llx", srv->slot, ++srv->session_counter);
    format_peer(s, sa);
    /* Replies are written whole: do not let Nagle hold the one after a
     * TLS 1.3 handshake back for the client's delayed ACK (~40 ms). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    srv->connections++;     /* server_session_gone() undoes this and the per-IP count */
    s->close_timer = evtimer_new(srv->base, close_timer_cb, s);
    bev = NULL;
    if (s->close_timer)
        bev = implicit ? tls_bufferevent(s, fd)
                       : bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        log_error("event=session_failed client=%s error=\"cannot create bufferevent\"",
                  s->client_ip);
        evutil_closesocket(fd);
        if (s->close_timer)
            event_free(s->close_timer);
        server_session_gone(srv, s->client_ip);
        free(s);
        return;
    }
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    log_info("event=connect session=%s client=%s port=%u listener=%s%s",
             s->id, s->client_ip, s->client_port, lc->name, implicit ? " tls=implicit" : "");
    attach(s, bev);
    if (implicit)
        s->state = ST_TLS_HANDSHAKE;    /* greeting after the handshake */
    else
        greet(s);
}

void session_starttls(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t pending = evbuffer_get_length(in);

    if (pending) {
        log_info("event=starttls_discard session=%s client=%s bytes=%zu "
                 "reason=\"data pipelined after STARTTLS\"", s->id, s->client_ip, pending);
        evbuffer_drain(in, pending);
    }
    bufferevent_disable(s->bev, EV_READ);
    s->state = ST_STARTTLS;
}

/* The 220 for STARTTLS is on the wire: move the socket under TLS. */
static void starttls_switch(struct session *s)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    struct bufferevent *bev;

    /* Detach the fd so that freeing the plain bufferevent keeps it open;
     * whatever the kernel still holds goes to the TLS handshake, never
     * to the command parser. */
    bufferevent_setfd(s->bev, -1);
    bufferevent_free(s->bev);
    s->bev = NULL;
    bev = tls_bufferevent(s, fd);
    if (bev == NULL) {
        log_error("event=tls_failed session=%s client=%s reason=\"cannot create TLS state\"",
                  s->id, s->client_ip);
        evutil_closesocket(fd);
        session_free(s);
        return;
    }
    s->state = ST_TLS_HANDSHAKE;
    attach(s, bev);
}

static void tls_established(struct session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

    tls_summary(ssl, s->tls_summary, sizeof(s->tls_summary));
    log_info("event=tls session=%s client=%s resumed=%d %s", s->id, s->client_ip,
             SSL_session_reused(ssl), s->tls_summary);
    s->tls = true;
    metrics_tls(METRICS_DIR_INBOUND, SSL_version(ssl));
    /* RFC 3207 4.2: forget everything learned before TLS. */
    session_tx_reset(s);
    s->helo_seen = false;
    s->esmtp = false;
    s->helo[0] = '\0';
    s->state = ST_COMMAND;
    if (s->listener->tls == LTLS_IMPLICIT)
        greet(s);
}

static void tls_failed(struct session *s, short what)
{
    char reason[256] = "connection closed during handshake";
    unsigned long e = bufferevent_get_openssl_error(s->bev);

    if (what & BEV_EVENT_TIMEOUT)
        snprintf(reason, sizeof(reason), "handshake timeout");
    else if (e)
        tls_error_string(e, reason, sizeof(reason));
    while (bufferevent_get_openssl_error(s->bev))
        ;
    log_info("event=tls_failed session=%s client=%s reason=\"%s\"", s->id, s->client_ip, reason);
    session_free(s);
}

/* Read and execute one command line; false when more input is needed. */
static bool process_command_line(struct session *s, struct evbuffer *in)
{
    size_t max = s->cfg->max_line_length, avail = evbuffer_get_length(in);
    size_t want = avail < max ? avail : max, line_len = 0, consumed = 0;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
    enum line_status st = line_scan(p, want, max, &line_len, &consumed);
    char line[SESSION_LINE_MAX + 1];
    bool bare_lf;

    switch (st) {
    case LINE_NEED_MORE:
        return false;
    case LINE_TOO_LONG:
        evbuffer_drain(in, consumed);
        if (p[consumed - 1] != '\n')
            s->state = ST_SKIP_LINE;
        session_auth_drop(s);       /* an AUTH exchange ends with it (RFC 4954 4) */
        session_reply_error(s, "500 5.5.2 Error: command line too long (max %zu octets)", max);
        return true;
    case LINE_BAD_NEWLINE:
        bare_lf = consumed < 2 || p[consumed - 2] != '\r';
        evbuffer_drain(in, consumed);
        if (bare_lf) {
            /* Where this line ends is ambiguous (a filter in front may
             * have seen a line end here, we do not): never guess, close. */
            log_info("event=bare_lf session=%s client=%s action=close", s->id, s->client_ip);
            session_reply(s, "500 5.5.2 Error: bare LF in command line; lines must end "
                             "with CRLF; closing connection");
            session_close(s);
            return true;
        }
        session_reply_error(s, "500 5.5.2 Error: bare CR in command line; "
                               "lines must end with CRLF");
        return true;
    case LINE_OK:
        break;
    }
    memcpy(line, p, line_len);
    line[line_len] = '\0';
    evbuffer_drain(in, consumed);
    s->commands++;
    session_dispatch(s, line, line_len);
    return true;
}

static void skip_line(struct session *s, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
    int found = 0;
    size_t n = line_skip_to_lf(p, avail, &found);

    evbuffer_drain(in, n);
    if (found)
        s->state = ST_COMMAND;
}

/* States in which client input is read and executed. */
static bool reading_state(const struct session *s)
{
    return s->state == ST_COMMAND || s->state == ST_SKIP_LINE || s->state == ST_DATA ||
           s->state == ST_BDAT;
}

/* Backpressure: the client is not reading its replies. Stop reading and
 * executing its input until write_cb sees the output drained to
 * output_low_water(); the write timeout drops a client that never reads. */
static bool output_full(struct session *s)
{
    size_t queued = evbuffer_get_length(bufferevent_get_output(s->bev));

    if (!s->input_paused && queued < s->cfg->max_output_buffer)
        return false;
    if (!s->backpressure_logged) {
        log_info("event=backpressure session=%s client=%s queued=%zu", s->id, s->client_ip,
                 queued);
        s->backpressure_logged = true;
    }
    s->input_paused = true;
    bufferevent_disable(s->bev, EV_READ);
    return true;
}

/* Execute buffered input in order. False when the session was freed. */
static bool process_input(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);

    s->processing = true;
    /* Other states: ST_COMMIT lets input wait, closing states drop it. */
    while (evbuffer_get_length(in) > 0 && !s->free_pending && reading_state(s) &&
           !output_full(s)) {
        if (s->state == ST_COMMAND) {
            if (!process_command_line(s, in))
                break;
        } else if (s->state == ST_SKIP_LINE) {
            skip_line(s, in);
        } else if (s->state == ST_DATA) {
            session_data_input(s, in);
        } else {
            session_bdat_input(s, in);
        }
    }
    s->processing = false;
    if (s->free_pending) {
        session_free(s);
        return false;
    }
    return true;
}

void session_resume(struct session *s)
{
    if (s->client_gone) {
        session_end(s);
        return;
    }
    if (s->shutdown_soft && s->state == ST_COMMAND && s->tx == NULL) {
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->cfg->hostname);
        session_close(s);
        return;
    }
    if (!s->processing)
        process_input(s);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    if (s->state == ST_LINGER) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    /* Nested (TLS reads while a reply is written): the running loop
     * takes the new input. */
    if (!s->processing)
        process_input(s);
}

/*
 * The final reply is flushed. Closing now while the client's pipelined
 * input is still unread would make the kernel send a reset, and the
 * client could lose that reply in transit. So (cleartext only) shut our
 * write side, then read and drop input until the client closes or
 * SESSION_LINGER seconds pass. TLS sessions end with close_notify instead.
 */
#define SESSION_LINGER 2

static void linger(struct session *s)
{
    struct timeval tv = { SESSION_LINGER, 0 };

    if (s->tls || shutdown(bufferevent_getfd(s->bev), SHUT_WR) < 0) {
        session_end(s);
        return;
    }
    s->state = ST_LINGER;
    evbuffer_drain(bufferevent_get_input(s->bev),
                   evbuffer_get_length(bufferevent_get_input(s->bev)));
    bufferevent_set_timeouts(s->bev, &tv, NULL);
    bufferevent_enable(s->bev, EV_READ);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    size_t queued = evbuffer_get_length(bufferevent_get_output(bev));

    if (s->free_pending)
        return;
    if (s->input_paused && queued <= output_low_water(s)) {
        s->input_paused = false;
        if (reading_state(s)) {
            bufferevent_enable(s->bev, EV_READ);
            if (!s->processing)
                process_input(s);   /* may free the session */
            return;
        }
    }
    if (queued != 0)
        return;
    if (s->state == ST_CLOSING)
        linger(s);
    else if (s->state == ST_STARTTLS)
        starttls_switch(s);
}

/* The client is gone or does not read: EOF, error, reset, write timeout. */
static void peer_lost(struct session *s, short what)
{
    const char *why = (what & BEV_EVENT_TIMEOUT) ? "write_timeout"
                      : (what & BEV_EVENT_EOF)   ? "eof"
                                                 : "error";

    if (what & BEV_EVENT_TIMEOUT)
        log_info("event=timeout session=%s client=%s state=%d waiting=write queued=%zu", s->id,
                 s->client_ip, s->state, evbuffer_get_length(bufferevent_get_output(s->bev)));
    if (s->tx && s->tx->msg)
        log_info("event=lost_transaction session=%s client=%s reason=%s", s->id, s->client_ip,
                 why);
    /* A cleartext client that half-closed after its last command still
     * gets the replies already queued for it (close_timeout bounds the
     * wait). Under TLS libevent has stopped writing when it reports EOF,
     * and after an error or a write timeout nobody takes the replies:
     * drop them and free the session now. */
    if ((what & BEV_EVENT_EOF) && !s->tls &&
        evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) {
        session_tx_reset(s);
        session_close(s);
        return;
    }
    s->peer_gone = true;
    session_end(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;

    (void)bev;
    if (s->free_pending)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        tls_established(s);
        return;
    }
    if (s->state == ST_TLS_HANDSHAKE || s->state == ST_STARTTLS) {
        tls_failed(s, what);
        return;
    }
    if (s->state == ST_COMMIT) {
        if (what & BEV_EVENT_TIMEOUT) {
            bufferevent_enable(s->bev, EV_READ | EV_WRITE);
            return;
        }
        session_end(s);             /* freed when the commit completes */
        return;
    }
    if (s->state == ST_CLOSING || s->state == ST_LINGER) {
        /* The client closed, the linger time is up, or the last replies
         * cannot be sent (reset, write timeout): done either way. */
        s->peer_gone = true;
        session_end(s);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        log_info("event=timeout session=%s client=%s state=%d", s->id, s->client_ip, s->state);
        session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
        session_close(s);
        return;
    }
    peer_lost(s, what);
}

void session_shutdown_soft(struct session *s)
{
    s->shutdown_soft = true;
    if (s->state == ST_COMMAND && s->tx == NULL && !s->processing) {
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->cfg->hostname);
        session_close(s);
    }
}

/* Runs from the shutdown timer, never inside process_input. */
void session_shutdown_hard(struct session *s)
{
    if (s->state == ST_COMMIT) {
        s->shutdown_soft = true;    /* 421 once the commit is answered */
        return;
    }
    /* Closing or lingering: the grace is over. Not yet in TLS: no channel
     * to say 421 on. Not reading its replies: a 421 would never arrive. */
    if (s->state == ST_CLOSING || s->state == ST_LINGER || s->state == ST_TLS_HANDSHAKE ||
        s->state == ST_STARTTLS || s->input_paused) {
        s->peer_gone = true;
        session_free(s);
        return;
    }
    session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                  s->cfg->hostname);
    session_close(s);
}

void session_request_facts(const struct session *s, struct queue_request_facts *facts)
{
    memset(facts, 0, sizeof(*facts));
    facts->tls = s->tls;
    snprintf(facts->listener, sizeof(facts->listener), "%s", s->listener->name);
    if (s->authenticated)
        memcpy(facts->auth_token, s->auth_token, sizeof(facts->auth_token));
}

void session_tx_envelope(const struct session *s, struct envelope *env)
{
    const struct transaction *tx = s->tx;

    snprintf(env->client, sizeof(env->client), "%s", s->client_ip);
    snprintf(env->helo, sizeof(env->helo), "%s", s->helo);
    mailbox_format(&tx->mail.from, env->from, sizeof(env->from));
    env->body = tx->mail.body;
    env->smtputf8 = tx->mail.smtputf8;
    env->requiretls = tx->mail.requiretls;
    env->ret = tx->mail.ret;
    snprintf(env->envid, sizeof(env->envid), "%s", tx->mail.envid);
}

void session_rcpt_context(const struct session *s, struct rcpt_context *ctx)
{
    ctx->cfg = s->cfg;
    ctx->recipients = s->srv->recipients;
    ctx->listener = s->listener;
    ctx->client_ip = s->client_ip;
    ctx->auth_user = s->authenticated ? s->auth_user : NULL;
    ctx->tls = s->tls;
}

struct session *session_next(struct session *s)
{
    return s->next;
}

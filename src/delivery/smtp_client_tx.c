/*
 * smtp_client_tx.c - one mail transaction on an open connection: local
 * checks (SIZE, SMTPUTF8, REQUIRETLS), MAIL, RCPT, DATA (pipelined as one
 * group with PIPELINING, RFC 2920, else one command at a time), the
 * message streamed from the spool with dot-stuffing, and RSET whenever
 * a transaction ends without the final reply, so the connection stays
 * usable for the next message.
 *
 * Strict about the conversation: only 354 to DATA leads to the body, and
 * only a 2xx to the end of data, read once the whole body is written,
 * delivers. A reply that fits no command (2xx or a 3xx other than 354 to
 * DATA, 3xx to MAIL, RCPT, RSET or the end of data, or one that answers
 * nothing, see smtp_client.c) is a protocol error: every recipient sent
 * is deferred with 4.5.0 (earlier replies of the same transaction may
 * have been out of step too) and the connection is dropped, never
 * reused.
 *
 * Trusts: the envelope (validated when the message was received), yet
 * refuses control characters in anything it puts on a command line;
 * nothing the server says. Reads the spool only through the caller's
 * descriptor with pread(), SMTP_BODY_CHUNK bytes at a time, and queues
 * no more than SMTP_OUT_HIGH_WATER bytes of output.
 */
#include "delivery/smtp_client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "util/log.h"
#include "util/xalloc.h"

void tx_free(struct smtp_tx *tx)
{
    if (tx == NULL)
        return;
    free(tx->results);
    free(tx->state);
    free(tx->order);
    free(tx->chunk);
    free(tx->stuffed);
    free(tx);
}

static const struct envelope_rcpt *tx_rcpt(const struct smtp_tx *tx, size_t i)
{
    return &tx->t.env->rcpts[tx->t.rcpt_index[i]];
}

/* Nothing below 0x20 and no DEL: these go on a command line. */
static bool line_safe(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/* Decide every recipient still open (pending or accepted). */
static void decide_open(struct smtp_tx *tx, enum smtp_outcome outcome, int code,
                        const char *dsn, const char *text)
{
    for (size_t i = 0; i < tx->t.rcpt_count; i++) {
        if (tx->state[i] == RCPT_DONE)
            continue;
        result_set(&tx->results[i], outcome, code, dsn, "%s", text);
        tx->state[i] = RCPT_DONE;
    }
    tx->accepted = 0;
}

/* Decide every recipient still open by reply r. Only the reply to the
 * end of data (final) can deliver: a 2xx anywhere else defers (4.5.0). */
static void decide_open_by_reply(struct smtp_tx *tx, const struct smtp_reply *r, bool final)
{
    for (size_t i = 0; i < tx->t.rcpt_count; i++) {
        if (tx->state[i] == RCPT_DONE)
            continue;
        result_from_reply(&tx->results[i], r);
        if (!final && tx->results[i].outcome == SMTP_DELIVERED) {
            tx->results[i].outcome = SMTP_DEFERRED;
            snprintf(tx->results[i].dsn, sizeof(tx->results[i].dsn), "4.5.0");
        }
        tx->state[i] = RCPT_DONE;
    }
    tx->accepted = 0;
}

/* The transaction is over; clean: the connection may carry another. */
static void tx_finish(struct smtp_conn *c, bool clean, const char *why)
{
    struct smtp_tx *tx = c->tx;

    decide_open(tx, SMTP_DEFERRED, 0, "4.4.2", why ? why : "transaction did not complete");
    if (clean) {
        c->state = CS_READY;
        conn_disarm_timer(c);
    } else {
        conn_dead(c, why ? why : "connection not reusable");
    }
    free(tx->chunk);
    free(tx->stuffed);
    tx->chunk = tx->stuffed = NULL;
    conn_notify(c, NOTIFY_SENT);
}

void tx_io_error(struct smtp_conn *c, const char *text)
{
    decide_open(c->tx, SMTP_DEFERRED, 0, "4.4.2", text);
    tx_finish(c, false, text);
}

void tx_protocol_error(struct smtp_conn *c, const char *text)
{
    struct smtp_tx *tx = c->tx;

    /* Every recipient that went (or was to go) on the wire: a reply
     * that decided one may have been out of step as well. Those refused
     * by the local checks keep their result. */
    for (size_t k = 0; k < tx->planned; k++) {
        size_t i = tx->order[k];

        result_set(&tx->results[i], SMTP_DEFERRED, 0, "4.5.0", "%s", text);
        tx->state[i] = RCPT_DONE;
    }
    tx->accepted = 0;
    tx_finish(c, false, text);
}

/* r does not fit the command it answers. */
static void unexpected_reply(struct smtp_conn *c, const struct smtp_reply *r, const char *to)
{
    char text[SMTP_REPLY_LINE_MAX + 400], reply[SMTP_REPLY_LINE_MAX];

    smtp_reply_format(r, reply, sizeof(reply));
    snprintf(text, sizeof(text), "protocol error: unexpected reply to %s from %s: %s", to,
             c->peer, reply);
    tx_protocol_error(c, text);
}

static void tx_local_error(struct smtp_conn *c, const char *text)
{
    char q[1200];

    log_error("event=smtp_local_error peer=%s reason=%s", c->peer,
              log_quote(q, sizeof(q), text, strlen(text)));
    decide_open(c->tx, SMTP_DEFERRED, 0, "4.3.0", text);
    tx_finish(c, false, text);      /* drops the socket: no final dot is sent */
}

/* 421: the server is closing; everything open gets that reply. */
static void server_closing(struct smtp_conn *c, const struct smtp_reply *r)
{
    char text[SMTP_REPLY_LINE_MAX + 400], reply[SMTP_REPLY_LINE_MAX];

    smtp_reply_format(r, reply, sizeof(reply));
    snprintf(text, sizeof(text), "host %s is closing the connection: %s", c->peer, reply);
    decide_open_by_reply(c->tx, r, false);
    tx_finish(c, false, text);
}

static void send_rset(struct smtp_conn *c)
{
    conn_send_line(c, "RSET");
    c->tx->phase = TX_RSET;
    conn_arm_timer(c, c->cfg.timeouts.command);
}

static void send_mail(struct smtp_conn *c)
{
    const struct envelope *env = c->tx->t.env;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const struct smtp_caps *caps = &c->caps;

    evbuffer_add_printf(out, "MAIL FROM:<%s>", env->from);
    if (caps->size)
        evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long)c->tx->t.body_size);
    if (env->body == BODY_8BITMIME && caps->eightbitmime)
        evbuffer_add_printf(out, " BODY=8BITMIME");
    if (env->smtputf8)
        evbuffer_add_printf(out, " SMTPUTF8");
    if (env->requiretls)
        evbuffer_add_printf(out, " REQUIRETLS");
    if (caps->dsn && env->ret != DSN_RET_UNSPECIFIED)
        evbuffer_add_printf(out, " RET=%s", env->ret == DSN_RET_FULL ? "FULL" : "HDRS");
    if (caps->dsn && env->envid[0])
        evbuffer_add_printf(out, " ENVID=%s", env->envid);
    evbuffer_add(out, "\r\n", 2);
    c->awaiting++;
}

static void send_rcpt(struct smtp_conn *c, size_t i)
{
    const struct envelope_rcpt *rc = tx_rcpt(c->tx, i);
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out, "RCPT TO:<%s>", rc->addr);
    if (c->caps.dsn && rc->notify) {
        if (rc->notify & DSN_NOTIFY_NEVER) {
            evbuffer_add_printf(out, " NOTIFY=NEVER");
        } else {
            const char *sep = " NOTIFY=";

            if (rc->notify & DSN_NOTIFY_SUCCESS) {
                evbuffer_add_printf(out, "%sSUCCESS", sep);
                sep = ",";
            }
            if (rc->notify & DSN_NOTIFY_FAILURE) {
                evbuffer_add_printf(out, "%sFAILURE", sep);
                sep = ",";
            }
            if (rc->notify & DSN_NOTIFY_DELAY)
                evbuffer_add_printf(out, "%sDELAY", sep);
        }
    }
    if (c->caps.dsn && rc->orcpt[0])
        evbuffer_add_printf(out, " ORCPT=%s", rc->orcpt);
    evbuffer_add(out, "\r\n", 2);
    c->awaiting++;
}

/*
 * The checks done without sending anything. Returns false when the
 * transaction is already decided (results filled).
 */
static bool requiretls_allowed(struct smtp_conn *c, struct smtp_tx *tx)
{
    char text[600];

    switch (tls_decide_requiretls(c->tls ? c->auth : TLS_AUTH_NONE, conn_host(c)->mx_dnssec,
                                  conn_host(c)->sts_mx, c->caps.requiretls)) {
    case REQUIRETLS_OK:
        return true;
    case REQUIRETLS_NOT_AUTHENTICATED:
        snprintf(text, sizeof(text), "REQUIRETLS is required, but %s %s (RFC 8689: needs "
                 "TLS verified by DANE, or PKIX by a verify policy, to an MX from a "
                 "DNSSEC-secure lookup, or PKIX for an MX matched by an MTA-STS policy)",
                 !c->tls ? "there is no TLS with host" : "TLS is not authenticated with host",
                 c->peer);
        decide_open(tx, SMTP_FAILED, 0, "5.7.10", text);
        return false;
    case REQUIRETLS_NOT_OFFERED:
        break;
    }
    snprintf(text, sizeof(text), "REQUIRETLS is required, but REQUIRETLS is not offered "
             "by host %s", c->peer);
    decide_open(tx, SMTP_FAILED, 0, "5.7.30", text);
    return false;
}

static bool tx_precheck(struct smtp_conn *c, struct smtp_tx *tx)
{
    const struct envelope *env = tx->t.env;
    char text[600];

    if (c->state != CS_READY) {
        decide_open(tx, SMTP_DEFERRED, 0, "4.4.2",
                    c->dead_reason[0] ? c->dead_reason : "connection is not usable");
        return false;
    }
    if (c->caps.size && c->caps.size_max > 0 && tx->t.body_size > c->caps.size_max) {
        snprintf(text, sizeof(text), "message size %llu exceeds size limit %llu of host %s",
                 (unsigned long long)tx->t.body_size, (unsigned long long)c->caps.size_max,
                 c->peer);
        decide_open(tx, SMTP_FAILED, 0, "5.3.4", text);
        return false;
    }
    if (env->smtputf8 && !c->caps.smtputf8) {
        snprintf(text, sizeof(text), "SMTPUTF8 is required, but was not offered by host %s",
                 c->peer);
        decide_open(tx, SMTP_FAILED, 0, "5.6.7", text);
        return false;
    }
    if (env->requiretls && !requiretls_allowed(c, tx))
        return false;
    if (tx->t.body_offset < 0 ||
        tx->t.body_size > (uint64_t)INT64_MAX - (uint64_t)tx->t.body_offset) {
        decide_open(tx, SMTP_DEFERRED, 0, "4.3.0", "message offset or size out of range");
        return false;
    }
    if (!line_safe(env->from) || !line_safe(env->envid)) {
        decide_open(tx, SMTP_FAILED, 0, "5.1.7", "invalid sender or ENVID in the envelope");
        return false;
    }
    for (size_t i = 0; i < tx->t.rcpt_count; i++) {
        const struct envelope_rcpt *rc = tx_rcpt(tx, i);

        if (!line_safe(rc->addr) || !line_safe(rc->orcpt)) {
            result_set(&tx->results[i], SMTP_FAILED, 0, "5.1.3",
                       "invalid recipient or ORCPT in the envelope");
            tx->state[i] = RCPT_DONE;
            continue;
        }
        tx->order[tx->planned++] = i;
    }
    return tx->planned > 0;
}

static void tx_start(struct smtp_conn *c)
{
    struct smtp_tx *tx = c->tx;

    tx->pipelined = c->caps.pipelining;
    c->state = CS_TX;
    tx->phase = TX_MAIL;
    send_mail(c);
    if (tx->pipelined) {
        for (size_t k = 0; k < tx->planned; k++)
            send_rcpt(c, tx->order[k]);
        conn_send_line(c, "DATA");
        tx->rcpt_sent = tx->planned;
    }
    conn_arm_timer(c, c->cfg.timeouts.command);
}

void smtp_conn_send(struct smtp_conn *c, const struct smtp_transaction *t,
                    smtp_send_cb cb, void *arg)
{
    struct smtp_tx *tx;
    size_t n = t->rcpt_count;

    if (c->tx != NULL)
        fatal("smtp client: a transaction is already in progress with %s", c->peer);
    for (size_t i = 0; i < n; i++) {
        if (t->rcpt_index[i] >= t->env->rcpt_count)
            fatal("smtp client: recipient index %zu out of range", t->rcpt_index[i]);
    }
    tx = xcalloc(1, sizeof(*tx));
    tx->t = *t;
    tx->cb = cb;
    tx->arg = arg;
    tx->results = xcalloc(n ? n : 1, sizeof(*tx->results));
    tx->state = xcalloc(n ? n : 1, sizeof(*tx->state));
    tx->order = xcalloc(n ? n : 1, sizeof(*tx->order));
    c->tx = tx;
    if (n == 0 || !tx_precheck(c, tx)) {
        conn_notify(c, NOTIFY_SENT);
        return;
    }
    tx_start(c);
}

/* Queue message data up to the high water mark; the write callback
 * comes back for more. The last chunk is followed by the final dot. */
static void body_fill(struct smtp_conn *c)
{
    struct smtp_tx *tx = c->tx;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char text[300], end[DOT_STUFF_END_MAX];

    while (tx->body_sent < tx->t.body_size && evbuffer_get_length(out) < SMTP_OUT_HIGH_WATER) {
        uint64_t left = tx->t.body_size - tx->body_sent;
        size_t want = left < SMTP_BODY_CHUNK ? (size_t)left : SMTP_BODY_CHUNK;
        ssize_t n = pread(tx->t.msg_fd, tx->chunk, want,
                          tx->t.body_offset + (off_t)tx->body_sent);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(text, sizeof(text), "cannot read message: %s",
                     n < 0 ? strerror(errno) : "file is shorter than its recorded size");
            tx_local_error(c, text);
            return;
        }
        evbuffer_add(out, tx->stuffed, dot_stuff(&tx->ds, tx->chunk, (size_t)n, tx->stuffed));
        tx->body_sent += (uint64_t)n;
    }
    if (tx->body_sent < tx->t.body_size)
        return;
    evbuffer_add(out, end, dot_stuff_end(&tx->ds, end));
    tx->phase = TX_DOT;
    free(tx->chunk);
    free(tx->stuffed);
    tx->chunk = tx->stuffed = NULL;
}

static void body_start(struct smtp_conn *c)
{
    struct smtp_tx *tx = c->tx;

    tx->chunk = xmalloc(SMTP_BODY_CHUNK);
    tx->stuffed = xmalloc(2 * SMTP_BODY_CHUNK);
    dot_stuff_init(&tx->ds);
    tx->phase = TX_BODY;
    c->awaiting = 1;            /* the reply to the end of data */
    conn_arm_timer(c, c->cfg.timeouts.data_block);
    body_fill(c);
}

void tx_writable(struct smtp_conn *c)
{
    struct smtp_tx *tx = c->tx;

    if (tx->phase == TX_BODY) {
        conn_arm_timer(c, c->cfg.timeouts.data_block);     /* progress */
        body_fill(c);
    } else if (tx->phase == TX_DOT && !tx->done_timer) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
            conn_arm_timer(c, c->cfg.timeouts.data_block);
        } else {
            /* The final dot is out: now the server has data_done. */
            tx->done_timer = true;
            conn_arm_timer(c, c->cfg.timeouts.data_done);
        }
    }
}

static void reply_mail(struct smtp_conn *c, const struct smtp_reply *r)
{
    struct smtp_tx *tx = c->tx;

    if (r->code / 100 == 3) {
        unexpected_reply(c, r, "MAIL FROM");
        return;
    }
    tx->phase = TX_RCPT;
    if (r->code / 100 != 2) {
        /* Every recipient gets the reply; with PIPELINING the RCPT and
         * DATA replies still come and are read, then ignored. */
        tx->mail_failed = true;
        decide_open_by_reply(tx, r, false);
        if (!tx->pipelined)
            tx_finish(c, true, NULL);
        return;
    }
    if (!tx->pipelined)
        send_rcpt(c, tx->order[tx->rcpt_sent++]);
}

static void reply_rcpt(struct smtp_conn *c, const struct smtp_reply *r)
{
    struct smtp_tx *tx = c->tx;
    size_t i;

    if (r->code / 100 == 3) {
        unexpected_reply(c, r, "RCPT TO");
        return;
    }
    i = tx->order[tx->rcpt_reply++];
    if (!tx->mail_failed) {
        if (r->code / 100 == 2) {
            tx->state[i] = RCPT_ACCEPTED;
            tx->accepted++;
        } else {
            result_from_reply(&tx->results[i], r);
            tx->state[i] = RCPT_DONE;
        }
    }
    if (tx->rcpt_reply < tx->planned) {
        if (!tx->pipelined)
            send_rcpt(c, tx->order[tx->rcpt_sent++]);
        return;
    }
    if (tx->pipelined) {
        tx->phase = TX_DATA;        /* DATA went with the group */
        conn_arm_timer(c, c->cfg.timeouts.data_init);
    } else if (tx->accepted > 0) {
        conn_send_line(c, "DATA");
        tx->phase = TX_DATA;
        conn_arm_timer(c, c->cfg.timeouts.data_init);
    } else {
        send_rset(c);
    }
}

static void reply_data(struct smtp_conn *c, const struct smtp_reply *r)
{
    struct smtp_tx *tx = c->tx;
    char text[400];

    if (r->code == 354 && tx->accepted > 0) {
        body_start(c);
        return;
    }
    if (r->code == 354) {
        /* RFC 2920 3.1: DATA without a valid recipient must be refused.
         * There is no clean way out of DATA: hang up. */
        snprintf(text, sizeof(text), "host %s accepted DATA without recipients", c->peer);
        tx_finish(c, false, text);
        return;
    }
    if (r->code / 100 != 4 && r->code / 100 != 5) {
        /* A 2xx here would count a message delivered that never went. */
        unexpected_reply(c, r, "DATA");
        return;
    }
    /* With no accepted recipient this is the expected 503/554: ignore. */
    if (tx->accepted > 0)
        decide_open_by_reply(tx, r, false);
    send_rset(c);
}

/* A reply while the message is still being sent: the server gave up. */
static void reply_early(struct smtp_conn *c, const struct smtp_reply *r)
{
    char text[SMTP_REPLY_LINE_MAX + 400], reply[SMTP_REPLY_LINE_MAX];

    smtp_reply_format(r, reply, sizeof(reply));
    snprintf(text, sizeof(text), "host %s replied before the end of data: %s", c->peer, reply);
    if (r->code / 100 == 2)
        decide_open(c->tx, SMTP_DEFERRED, r->code, "4.5.0", text);
    else
        decide_open_by_reply(c->tx, r, false);
    tx_finish(c, false, text);
}

/* The reply to the end of data: final only when the whole body is out
 * (a reply read before that was sent before the server had the dot). */
static void reply_dot(struct smtp_conn *c, const struct smtp_reply *r)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        reply_early(c, r);
        return;
    }
    if (r->code / 100 == 3) {
        unexpected_reply(c, r, "the end of data");
        return;
    }
    decide_open_by_reply(c->tx, r, true);
    tx_finish(c, true, NULL);
}

void tx_reply(struct smtp_conn *c, const struct smtp_reply *r)
{
    struct smtp_tx *tx = c->tx;

    if (r->code == 421 && tx->phase != TX_BODY) {
        server_closing(c, r);
        return;
    }
    conn_arm_timer(c, c->cfg.timeouts.command);
    switch (tx->phase) {
    case TX_MAIL:
        reply_mail(c, r);
        break;
    case TX_RCPT:
        reply_rcpt(c, r);
        break;
    case TX_DATA:
        reply_data(c, r);
        break;
    case TX_BODY:
        reply_early(c, r);
        break;
    case TX_DOT:
        reply_dot(c, r);
        break;
    case TX_RSET:
        if (r->code / 100 == 2)
            tx_finish(c, true, NULL);
        else if (r->code / 100 == 3)
            unexpected_reply(c, r, "RSET");
        else
            tx_finish(c, false, "RSET was refused");
        break;
    }
}

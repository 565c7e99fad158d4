/*
 * session_data.c - message content: DATA (dot-stuffed, ends at CRLF.CRLF)
 * and BDAT chunks (RFC 3030), streamed through the data decoder into the
 * spool file; the final verdict and the commit.
 *
 * Trusts nothing in the message. Never holds a message in memory: bytes
 * go from the input buffer through a bounded scratch buffer to the
 * spool. The 250 reply is sent only from the commit callback, i.e. after
 * the queue has made the message durable.
 *
 * Authenticated submission only (never MX): the bytes pass through the
 * header scanner (mail/header_fields.h) on their way to the spool, which
 * adds Date and Message-ID where the header section ends if it lacks
 * them (RFC 6409 8.3), and at the end of the message the From: addresses
 * are checked against the sender map like the envelope sender (553 5.7.1).
 */
#include "smtpd/session_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "mail/header_fields.h"
#include "mail/mailbox_list.h"
#include "mail/milter_codec.h"
#include "mail/received.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DECODE_CHUNK 16384

static void write_received(struct session *s);
static void start_header_scan(struct session *s);

/* The queue answered: the file is ours (msg), or err says why not. */
static void data_opened(struct incoming_msg *msg, int err, void *arg)
{
    struct session *s = arg;
    struct transaction *tx = s->tx;
    const char *reply = NULL;

    tx->opening = NULL;
    tx->msg = msg;
    if (s->client_gone) {
        s->state = ST_COMMAND;      /* waits for nothing now: */
        session_resume(s);          /* frees the session, and drops msg */
        return;
    }
    if (msg == NULL && !queue_link_up(s->srv->queue)) {
        log_info("event=no_queue session=%s reply=451", s->id);
        reply = SESSION_NO_QUEUE_REPLY;
    } else if (msg == NULL) {
        log_error("event=queue_file_error session=%s error=\"%s\"", s->id, strerror(err));
        reply = err == ENOSPC || err == EDQUOT
                    ? "452 4.3.1 Error: insufficient system storage"
                    : "451 4.3.0 Error: queue file write error";
    } else {
        write_received(s);
        start_header_scan(s);
    }
    tx->opened(s, reply);
    session_resume(s);
}

void session_data_open(struct session *s, void (*then)(struct session *s, const char *err))
{
    struct transaction *tx = s->tx;
    struct envelope *env = &tx->env;
    struct queue_request_facts facts;
    struct rcpt_context ctx;

    env->arrival = time(NULL);
    session_tx_envelope(s, env);
    session_rcpt_context(s, &ctx);
    env->dsn_content_withheld = rcpt_context_cleartext(&ctx);
    session_request_facts(s, &facts);
    tx->opened = then;
    s->state = ST_COMMIT;           /* no input is read until the answer */
    tx->opening = incoming_start(s->srv->queue, env, &facts, data_opened, s);
}

/* The trace header every message starts with (RFC 5321 4.4). */
static void write_received(struct session *s)
{
    struct transaction *tx = s->tx;
    struct envelope *env = &tx->env;
    struct received_info ri;
    char header[2048];
    size_t hlen;

    memset(&ri, 0, sizeof(ri));
    ri.helo = s->helo;
    ri.client_ip = s->client_ip;
    ri.hostname = s->cfg->hostname;
    ri.queue_id = env->id;
    ri.single_rcpt = env->rcpt_count == 1 ? env->rcpts[0].addr : NULL;
    ri.esmtp = s->esmtp;
    ri.tls = s->tls;
    ri.auth = s->authenticated;
    ri.tls_summary = s->tls ? s->tls_summary : NULL;
    ri.smtputf8 = tx->mail.smtputf8;
    ri.hide_client_ip = s->authenticated && !s->cfg->submission.received_client_ip;
    ri.when = env->arrival;
    hlen = received_format(&ri, header, sizeof(header));
    if (hlen)
        incoming_write(tx->msg, header, hlen);
    log_info("event=data session=%s id=%s rcpts=%zu", s->id, env->id, env->rcpt_count);
}

/* The scanner's output: the spool. */
static void header_sink_spool(void *arg, const char *data, size_t len)
{
    struct session *s = arg;

    incoming_write(s->tx->msg, data, len);
}

/* The header section ends: add the Date and Message-ID it lacks. They
 * are not counted in tx->msg_bytes (the client's size, which the limit
 * is about), like the Received header. */
static void header_end_add(void *arg, const struct header_scan *h)
{
    struct session *s = arg;
    uint64_t nonce = 0;
    char fields[1024];
    size_t n;

    if ((h->seen & (HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID)) ==
        (HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID))
        return;
    if (RAND_bytes((unsigned char *)&nonce, sizeof(nonce)) != 1)
        nonce = (uint64_t)time(NULL) ^ ((uint64_t)s->messages << 32);
    n = header_format_missing(h, fields, sizeof(fields), time(NULL), s->tx->env.id, nonce,
                              s->cfg->hostname);
    if (n)
        incoming_write(s->tx->msg, fields, n);
    log_info("event=header_added session=%s id=%s date=%s message_id=%s", s->id,
             s->tx->env.id, h->seen & HEADER_HAS_DATE ? "no" : "yes",
             h->seen & HEADER_HAS_MESSAGE_ID ? "no" : "yes");
}

/* Authenticated submission: the message goes through the header scanner. */
static void start_header_scan(struct session *s)
{
    if (!s->authenticated || s->listener->role != ROLE_SUBMISSION)
        return;
    s->tx->hdr = xmalloc(sizeof(*s->tx->hdr));
    header_scan_init(s->tx->hdr, header_sink_spool, header_end_add, s);
}

/* Feed input bytes through the decoder into the spool. Returns the
 * number of input bytes consumed. */
static size_t decode_into_spool(struct session *s, const char *in, size_t len)
{
    struct transaction *tx = s->tx;
    char out[DECODE_CHUNK + 2];
    size_t done = 0;

    while (done < len && !tx->dec.done) {
        size_t n = len - done < DECODE_CHUNK ? len - done : DECODE_CHUNK;
        size_t out_len = 0, used;

        used = data_decoder_feed(&tx->dec, in + done, n, out, &out_len);
        done += used;
        tx->msg_bytes += out_len;
        if (tx->msg_bytes > s->cfg->max_message_size)
            tx->too_big = true;
        if (!tx->too_big && out_len) {
            if (tx->hdr)
                header_scan_feed(tx->hdr, out, out_len);
            else
                incoming_write(tx->msg, out, out_len);
        }
    }
    return done;
}

static void commit_done(struct incoming_msg *msg, bool ok, void *arg)
{
    struct session *s = arg;
    const char *id = incoming_id(msg);

    s->tx->msg = NULL;              /* the queue frees it after this call */
    if (ok) {
        s->messages++;
        log_info("event=commit session=%s id=%s size=%llu rcpts=%zu", s->id, id,
                 (unsigned long long)s->tx->msg_bytes, s->tx->env.rcpt_count);
        if (!s->client_gone)
            session_reply(s, "250 2.0.0 Ok: queued as %s", id);
    } else if (!s->client_gone) {
        int err = incoming_error(msg);

        if (incoming_refusal(msg)[0]) {
            char q[4 * MILTER_CODEC_REPLY_MAX + 8];

            log_info("event=milter_refused session=%s id=%s reply=%s", s->id, id,
                     log_quote(q, sizeof(q), incoming_refusal(msg),
                               strlen(incoming_refusal(msg))));
            session_reply(s, "%s", incoming_refusal(msg));
        } else if (err == ENOSPC || err == EDQUOT)
            session_reply(s, "452 4.3.1 Error: insufficient system storage");
        else if (!queue_link_up(s->srv->queue)) {
            log_info("event=no_queue session=%s id=%s reply=451", s->id, id);
            session_reply(s, SESSION_NO_QUEUE_REPLY);
        }
        else
            session_reply(s, "451 4.3.0 Error: queue file write error");
    }
    session_tx_reset(s);
    s->state = ST_COMMAND;
    if (!s->client_gone)
        session_set_timeout(s, s->cfg->command_timeout);
    session_resume(s);
}

struct from_check {
    struct rcpt_context ctx;
    char refused[ADDR_PATH_MAX + 1];
};

static bool from_address_allowed(void *arg, const char *addr)
{
    struct from_check *fc = arg;

    if (rcpt_policy_sender_allowed(&fc->ctx, addr))
        return true;
    snprintf(fc->refused, sizeof(fc->refused), "%s", addr);
    return false;
}

/* An address fit to be echoed in a reply: printable ASCII. */
static bool reply_safe(const char *a)
{
    for (; *a; a++)
        if ((unsigned char)*a < 0x20 || (unsigned char)*a > 0x7e)
            return false;
    return true;
}

/* Submission: every From: address must be one the user may send as
 * ([submission] senders, the rule of the envelope sender). The reply
 * when not, or NULL. A message without From: has nothing to check. */
static const char *from_verdict(struct session *s, char *buf, size_t size)
{
    const struct header_scan *h = s->tx->hdr;
    struct from_check fc;
    char err[100], qu[4 * SASL_USER_MAX + 8], qf[4 * ADDR_PATH_MAX + 8];
    int n;

    if (h == NULL || h->from_fields == 0)
        return NULL;
    session_rcpt_context(s, &fc.ctx);
    fc.refused[0] = '\0';
    snprintf(err, sizeof(err), "longer than %d octets", HEADER_FROM_MAX);
    n = h->from_overflow ? -1 : mailbox_list_parse(h->from, h->from_len, from_address_allowed,
                                                   &fc, err, sizeof(err));
    if (n > 0)
        return NULL;
    if (n == -2 && reply_safe(fc.refused))
        snprintf(buf, size, "553 5.7.1 <%s>: From: header address rejected: not owned by "
                            "the authenticated user", fc.refused);
    else if (n == -2)
        snprintf(buf, size, "553 5.7.1 Error: From: header address rejected: not owned by "
                            "the authenticated user");
    else
        snprintf(buf, size, "553 5.7.1 Error: cannot check the From: header: %s",
                 n == 0 ? "it names no address" : err);
    log_info("event=from_refused session=%s user=%s from=%s reason=\"%s\"", s->id,
             log_value(qu, sizeof(qu), s->auth_user), log_value(qf, sizeof(qf), fc.refused),
             n == -2 ? "not owned" : n == 0 ? "no address" : err);
    return buf;
}

/* What is wrong with a fully received message, or NULL if nothing. */
static const char *message_verdict(struct session *s, char *buf, size_t size)
{
    struct transaction *tx = s->tx;
    int err = incoming_error(tx->msg);

    if (tx->too_big)
        return "552 5.3.4 Error: message size exceeds fixed limit";
    if (tx->dec.flags & DATA_BAD_NEWLINE)
        return "550 5.6.0 Error: message contains bare CR or LF; "
               "lines must end with CRLF (RFC 5321 2.3.8)";
    if (tx->dec.flags & DATA_NUL)
        return "550 5.6.0 Error: message contains a NUL octet (RFC 5322 2.3)";
    if (tx->dec.flags & DATA_LINE_TOO_LONG) {
        snprintf(buf, size, "550 5.6.0 Error: message has a line longer than %zu octets",
                 s->cfg->max_text_line_length);
        return buf;
    }
    if (from_verdict(s, buf, size))
        return buf;
    if (err == ENOSPC || err == EDQUOT)
        return "452 4.3.1 Error: insufficient system storage";
    if (err)
        return "451 4.3.0 Error: queue file write error";
    return NULL;
}

/* End of message (DATA end or BDAT LAST): reject or commit. */
static void message_complete(struct session *s)
{
    char buf[512];
    const char *reject;

    if (s->tx->hdr && !s->tx->too_big)
        header_scan_finish(s->tx->hdr);     /* headers-only: the added fields go last */
    reject = message_verdict(s, buf, sizeof(buf));

    if (reject) {
        log_info("event=message_rejected session=%s id=%s reply=\"%.40s\"", s->id,
                 incoming_id(s->tx->msg), reject);
        session_tx_reset(s);
        s->state = ST_COMMAND;
        session_set_timeout(s, s->cfg->command_timeout);
        session_reply_error(s, "%s", reject);
        return;
    }
    if (s->tx->discard || s->milter_discard) {
        /* A milter said DISCARD at connect, MAIL or RCPT: the client
         * gets its 250, nothing is kept (what Postfix and Sendmail do). */
        log_info("event=milter_discarded session=%s id=%s rcpts=%zu", s->id,
                 incoming_id(s->tx->msg), s->tx->env.rcpt_count);
        session_reply(s, "250 2.0.0 Ok: queued as %s", incoming_id(s->tx->msg));
        session_tx_reset(s);
        s->state = ST_COMMAND;
        session_set_timeout(s, s->cfg->command_timeout);
        return;
    }
    s->state = ST_COMMIT;
    incoming_commit(s->tx->msg, commit_done, s);
}

void session_data_input(struct session *s, struct evbuffer *in)
{
    struct evbuffer_iovec vec[8];
    int nvec = evbuffer_peek(in, -1, NULL, vec, 8);
    size_t consumed = 0;

    for (int i = 0; i < nvec && i < 8 && !s->tx->dec.done; i++)
        consumed += decode_into_spool(s, vec[i].iov_base, vec[i].iov_len);
    evbuffer_drain(in, consumed);
    if (s->tx->dec.done)
        message_complete(s);
}

void session_bdat_input(struct session *s, struct evbuffer *in)
{
    struct transaction *tx = s->tx;
    struct evbuffer_iovec vec[8];
    size_t want = evbuffer_get_length(in);
    int nvec;

    if (want > tx->chunk_remaining)
        want = tx->chunk_remaining;
    if (tx->chunk_reply) {
        evbuffer_drain(in, want);
    } else {
        nvec = evbuffer_peek(in, (ev_ssize_t)want, NULL, vec, 8);
        size_t left = want, used = 0;
        for (int i = 0; i < nvec && i < 8 && left; i++) {
            size_t n = vec[i].iov_len < left ? vec[i].iov_len : left;
            used += decode_into_spool(s, vec[i].iov_base, n);
            left -= n;
        }
        want = used;
        evbuffer_drain(in, used);
    }
    tx->chunk_remaining -= want;
    if (tx->chunk_remaining == 0)
        session_bdat_chunk_done(s);
}

void session_bdat_chunk_done(struct session *s)
{
    struct transaction *tx = s->tx;
    char tail[2];
    size_t tail_len = 0;

    if (tx->chunk_reply) {
        const char *reply = tx->chunk_reply;

        session_tx_reset(s);        /* RFC 3030: a failed chunk fails the transaction */
        s->state = ST_COMMAND;
        session_set_timeout(s, s->cfg->command_timeout);
        session_reply_error(s, "%s", reply);
        return;
    }
    if (!tx->chunk_last) {
        s->state = ST_COMMAND;
        session_set_timeout(s, s->cfg->command_timeout);
        session_reply(s, "250 2.0.0 %llu octets received",
                      (unsigned long long)tx->msg_bytes);
        return;
    }
    data_decoder_finish(&tx->dec, tail, &tail_len);
    if (tail_len && !tx->too_big && tx->hdr)
        header_scan_feed(tx->hdr, tail, tail_len);
    else if (tail_len && !tx->too_big)
        incoming_write(tx->msg, tail, tail_len);
    tx->msg_bytes += tail_len;
    message_complete(s);
}

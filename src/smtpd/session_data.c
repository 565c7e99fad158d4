/*
 * session_data.c - message content: DATA (dot-stuffed, ends at CRLF.CRLF)
 * and BDAT chunks (RFC 3030), streamed through the data decoder into the
 * spool file; the final verdict and the commit.
 *
 * Trusts nothing in the message. Never holds a message in memory: bytes
 * go from the input buffer through a bounded scratch buffer to the
 * spool. The 250 reply is sent only from the commit callback, i.e. after
 * the queue has made the message durable.
 */
#include "smtpd/session_internal.h"

#include <errno.h>
#include <string.h>

#include <event2/buffer.h>

#include "mail/received.h"
#include "util/log.h"

#define DECODE_CHUNK 16384

static void write_received(struct session *s);

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
    snprintf(env->client, sizeof(env->client), "%s", s->client_ip);
    snprintf(env->helo, sizeof(env->helo), "%s", s->helo);
    mailbox_format(&tx->mail.from, env->from, sizeof(env->from));
    env->body = tx->mail.body;
    env->smtputf8 = tx->mail.smtputf8;
    env->requiretls = tx->mail.requiretls;
    env->ret = tx->mail.ret;
    snprintf(env->envid, sizeof(env->envid), "%s", tx->mail.envid);
    session_rcpt_context(s, &ctx);
    env->dsn_content_withheld = rcpt_context_cleartext(&ctx);
    memset(&facts, 0, sizeof(facts));
    facts.tls = s->tls;
    snprintf(facts.listener, sizeof(facts.listener), "%s", s->listener->name);
    if (s->authenticated)
        memcpy(facts.auth_token, s->auth_token, sizeof(facts.auth_token));
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
    ri.when = env->arrival;
    hlen = received_format(&ri, header, sizeof(header));
    if (hlen)
        incoming_write(tx->msg, header, hlen);
    log_info("event=data session=%s id=%s rcpts=%zu", s->id, env->id, env->rcpt_count);
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
        if (!tx->too_big && out_len)
            incoming_write(tx->msg, out, out_len);
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

        if (err == ENOSPC || err == EDQUOT)
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
    if (err == ENOSPC || err == EDQUOT)
        return "452 4.3.1 Error: insufficient system storage";
    if (err)
        return "451 4.3.0 Error: queue file write error";
    return NULL;
}

/* End of message (DATA end or BDAT LAST): reject or commit. */
static void message_complete(struct session *s)
{
    char buf[160];
    const char *reject = message_verdict(s, buf, sizeof(buf));

    if (reject) {
        log_info("event=message_rejected session=%s id=%s reply=\"%.40s\"", s->id,
                 incoming_id(s->tx->msg), reject);
        session_tx_reset(s);
        s->state = ST_COMMAND;
        session_set_timeout(s, s->cfg->command_timeout);
        session_reply_error(s, "%s", reject);
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
    if (tail_len && !tx->too_big)
        incoming_write(tx->msg, tail, tail_len);
    tx->msg_bytes += tail_len;
    message_complete(s);
}

/*
 * session_cmds.c - the SMTP command table and its handlers.
 *
 * Each row names a verb and its handler; handlers check sequencing
 * first (503 5.5.1), then syntax, then policy, and answer exactly once.
 * Arguments are untrusted bytes from the client, already split from a
 * CRLF-terminated line.
 */
#include "smtpd/session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/recipient.h"
#include "mail/tls_policy.h"
#include "util/cidr.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

struct command_row {
    enum smtp_verb verb;
    void (*handler)(struct session *s, const char *args, size_t len);
};

/* STARTTLS is offered on starttls listeners, in cleartext only. */
static bool starttls_offered(const struct session *s)
{
    return !s->tls && s->srv->tls != NULL && s->listener->tls == LTLS_STARTTLS;
}

/* Relaying is for trusted networks (and, later, authenticated clients). */
static void tx_new(struct session *s, const struct mail_args *mail)
{
    struct transaction *tx = xcalloc(1, sizeof(*tx));

    tx->mail = *mail;
    envelope_init(&tx->env);
    s->tx = tx;
}

static void cmd_ehlo_helo(struct session *s, const char *args, size_t len, bool esmtp)
{
    char identity[sizeof(s->helo)];
    const struct config *cfg = s->cfg;

    if (!command_parse_helo(args, len, identity, sizeof(identity))) {
        session_reply_error(s, "501 5.5.2 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    session_tx_reset(s);     /* RFC 5321 4.1.4: EHLO resets the transaction */
    memcpy(s->helo, identity, sizeof(s->helo));
    s->helo_seen = true;
    s->esmtp = esmtp;
    if (!esmtp) {
        session_reply(s, "250 %s", cfg->hostname);
        return;
    }
    session_reply(s, "250-%s", cfg->hostname);
    session_reply(s, "250-PIPELINING");
    session_reply(s, "250-SIZE %llu", (unsigned long long)cfg->max_message_size);
    session_reply(s, "250-8BITMIME");
    session_reply(s, "250-SMTPUTF8");
    session_reply(s, "250-ENHANCEDSTATUSCODES");
    session_reply(s, "250-DSN");
    if (starttls_offered(s))
        session_reply(s, "250-STARTTLS");
    if (s->tls)
        session_reply(s, "250-REQUIRETLS");     /* RFC 8689: only inside TLS */
    if (session_auth_offered(s))
        session_reply(s, "250-AUTH PLAIN LOGIN");   /* RFC 4954: only inside TLS here */
    session_reply(s, "250 CHUNKING");
}

static void cmd_ehlo(struct session *s, const char *args, size_t len)
{
    cmd_ehlo_helo(s, args, len, true);
}

static void cmd_helo(struct session *s, const char *args, size_t len)
{
    cmd_ehlo_helo(s, args, len, false);
}

static bool has_esmtp_params(const struct mail_args *m)
{
    return m->has_size || m->body != BODY_UNSPECIFIED || m->smtputf8 || m->requiretls ||
           m->ret != DSN_RET_UNSPECIFIED || m->envid[0];
}

static void reply_param_error(struct session *s, enum param_status st, bool is_mail)
{
    switch (st) {
    case PARAM_ERR_ADDRESS:
        if (is_mail)
            session_reply_error(s, "501 5.1.7 Bad sender address syntax");
        else
            session_reply_error(s, "501 5.1.3 Bad recipient address syntax");
        break;
    case PARAM_ERR_ADDRESS_UTF8:
        session_reply_error(s, "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter");
        break;
    case PARAM_ERR_UNKNOWN:
        session_reply_error(s, "555 5.5.4 Unsupported %s parameter", is_mail ? "MAIL" : "RCPT");
        break;
    case PARAM_ERR_VALUE:
    case PARAM_ERR_DUPLICATE:
        session_reply_error(s, "501 5.5.4 Bad %s parameter value", is_mail ? "MAIL" : "RCPT");
        break;
    default:
        session_reply_error(s, "501 5.5.4 Syntax: %s", is_mail ? "MAIL FROM:<address>"
                                                               : "RCPT TO:<address>");
        break;
    }
}

/* Submission: MAIL needs AUTH (RFC 6409 4.3), and the sender must be one
 * the user may use ([submission] senders). from gets the address. */
static bool sender_checks(struct session *s, const struct mail_args *mail, char *from,
                          size_t fromsize)
{
    struct rcpt_context ctx;
    char qu[4 * SASL_USER_MAX + 8], qf[4 * ADDR_PATH_MAX + 8];

    mailbox_format(&mail->from, from, fromsize);    /* as the envelope stores it */
    if (s->listener->role != ROLE_SUBMISSION)
        return true;
    if (!s->authenticated) {
        session_reply_error(s, "530 5.7.0 Authentication required");
        return false;
    }
    session_rcpt_context(s, &ctx);
    if (rcpt_policy_sender_allowed(&ctx, from))
        return true;
    log_info("event=sender_refused session=%s user=%s from=%s", s->id,
             log_value(qu, sizeof(qu), s->auth_user), log_value(qf, sizeof(qf), from));
    session_reply_error(s, "553 5.7.1 <%s>: Sender address rejected: not owned by the "
                           "authenticated user", from);
    return false;
}

/* A milter's refusal of MAIL or RCPT: its reply, logged. */
static void milter_refusal(struct session *s, const char *stage, const char *reply)
{
    char q[4 * MILTER_CODEC_REPLY_MAX + 8];

    s->rejected++;
    log_info("event=milter_refused session=%s client=%s stage=%s reply=%s", s->id,
             s->client_ip, stage, log_quote(q, sizeof(q), reply, strlen(reply)));
    session_reply_error(s, "%s", reply);
}

/* The mail-stage milters' verdict on the transaction just begun. */
static void mail_verdict(struct session *s, enum milter_result_verdict v, const char *reply)
{
    if (v == MILTER_RESULT_REJECT || v == MILTER_RESULT_TEMPFAIL) {
        session_tx_reset(s);
        milter_refusal(s, "mail", reply);
        return;
    }
    if (v == MILTER_RESULT_DISCARD)
        s->tx->discard = true;
    session_reply(s, "250 2.1.0 Ok");
}

static void cmd_mail(struct session *s, const char *args, size_t len)
{
    struct param_features feat = { .requiretls = s->tls, .dsn = true,
                                   .auth = session_auth_offered(s) };
    struct mail_args mail;
    enum param_status st;
    char from[ADDR_PATH_MAX + 1], quoted[600];

    if (!s->helo_seen) {
        session_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->tx) {
        session_reply_error(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    st = command_parse_mail(args, len, &feat, &mail);
    if (st != PARAM_OK) {
        reply_param_error(s, st, true);
        return;
    }
    if (!s->esmtp && has_esmtp_params(&mail)) {
        session_reply_error(s, "555 5.5.4 MAIL parameters need EHLO");
        return;
    }
    if (mail.has_size && mail.size > s->cfg->max_message_size) {
        session_reply_error(s, "552 5.3.4 Message size exceeds fixed limit of %llu octets",
                            (unsigned long long)s->cfg->max_message_size);
        return;
    }
    if (!sender_checks(s, &mail, from, sizeof(from)))
        return;
    if (!queue_link_up(s->srv->queue)) {
        log_info("event=no_queue session=%s reply=451", s->id);
        session_reply(s, SESSION_NO_QUEUE_REPLY);
        return;
    }
    tx_new(s, &mail);
    log_info("event=mail session=%s from=%s size=%llu body=%d smtputf8=%d requiretls=%d",
             s->id, log_quote(quoted, sizeof(quoted), from, strlen(from)),
             (unsigned long long)mail.size, (int)mail.body, mail.smtputf8, mail.requiretls);
    if (session_milters_at(s, MILTER_AT_MAIL)) {
        session_milter_ask(s, MILTER_AT_MAIL, NULL, mail_verdict);
        return;
    }
    session_reply(s, "250 2.1.0 Ok");
}

/* Recipients are kept in canonical form (mailbox_format_canonical), so
 * every spelling of one mailbox is one entry; ASCII case is ignored as
 * the mailbox lookup and Maildir path ignore it. */
static bool rcpt_already_listed(const struct envelope *env, const char *addr)
{
    for (size_t i = 0; i < env->rcpt_count; i++) {
        if (strcasecmp(env->rcpts[i].addr, addr) == 0)
            return true;
    }
    return false;
}

/* A transaction in cleartext on a require_tls listener: only
 * cleartext_recipients get its message, and no DSN may carry it to
 * anyone else (docs/SMTP.md, "Cleartext on a require_tls listener"). */
static bool tx_cleartext_restricted(const struct session *s)
{
    struct rcpt_context ctx;

    session_rcpt_context(s, &ctx);
    return rcpt_context_cleartext(&ctx);
}

/* NOTIFY of a recipient in a cleartext-restricted transaction: SUCCESS
 * and DELAY are ignored, FAILURE is kept; nothing left is NEVER. Unset
 * NOTIFY means FAILURE,DELAY (RFC 3461 4.1), so it becomes FAILURE. */
static unsigned restricted_notify(struct session *s, unsigned notify, const char *quoted)
{
    if (notify & (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY))
        log_info("event=dsn_restricted session=%s to=%s ignored=%s%s%s reason=cleartext",
                 s->id, quoted, notify & DSN_NOTIFY_SUCCESS ? "success" : "",
                 (notify & DSN_NOTIFY_SUCCESS) && (notify & DSN_NOTIFY_DELAY) ? "," : "",
                 notify & DSN_NOTIFY_DELAY ? "delay" : "");
    if (notify == 0 || (notify & DSN_NOTIFY_FAILURE))
        return DSN_NOTIFY_FAILURE;
    return DSN_NOTIFY_NEVER;
}

/* RFC 3461 4.2: an MTA may add the ORCPT a client did not give, and it
 * must then hold the address of the RCPT command. Added when the stored
 * canonical address differs from what the client wrote, so a DSN still
 * shows the client's spelling: "rfc822;" + xtext. ASCII addresses only;
 * out is "" when nothing is added (or it would not fit). */
static void orcpt_for_spelling(const char *wire, const char *canon, char *out, size_t outsize)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = (size_t)snprintf(out, outsize, "rfc822;");

    if (strcmp(wire, canon) == 0 || o >= outsize)
        goto none;
    for (const unsigned char *p = (const unsigned char *)wire; *p; p++) {
        if (*p >= 0x80 || o + 4 > outsize)
            goto none;
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
            out[o++] = '+';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return;
none:
    out[0] = '\0';
}

/* The metrics verdict of a refusal: the same word as the log line's. */
static enum metrics_rcpt rcpt_metric(enum rcpt_decision d)
{
    switch (d) {
    case RCPT_TLS_REQUIRED:       return METRICS_RCPT_TLS_REQUIRED;
    case RCPT_UNKNOWN_USER:       return METRICS_RCPT_UNKNOWN_USER;
    case RCPT_UNKNOWN_RELAY_USER: return METRICS_RCPT_UNKNOWN_RELAY_USER;
    case RCPT_ALIAS_LOOP:         return METRICS_RCPT_ALIAS_LOOP;
    case RCPT_ALIAS_TOO_MANY:     return METRICS_RCPT_ALIAS_TOO_MANY;
    case RCPT_RELAY_DENIED:
    case RCPT_ACCEPT:             break;
    }
    return METRICS_RCPT_RELAY_DENIED;
}

/* The recipient policy (mail/rcpt_policy.h): false to accept; true when
 * refused (the reply has been given). */
static bool rcpt_refused(struct session *s, const struct rcpt_args *rcpt, const char *addr,
                         const char *quoted)
{
    struct rcpt_context ctx;
    enum rcpt_decision d;

    session_rcpt_context(s, &ctx);
    if ((d = rcpt_policy_decide(&ctx, &rcpt->to)) == RCPT_ACCEPT)
        return false;
    s->rejected++;
    log_info("event=rcpt session=%s client=%s to=%s verdict=%s", s->id, s->client_ip,
             quoted, rcpt_decision_name(d));
    metrics_rcpt(rcpt_metric(d));
    if (d == RCPT_TLS_REQUIRED)
        session_reply_error(s, TLS_POLICY_REPLY);
    else if (d == RCPT_UNKNOWN_USER)
        session_reply_error(s, "550 5.1.1 <%s>: Recipient address rejected: "
                               "User unknown", addr);
    else if (d == RCPT_UNKNOWN_RELAY_USER)    /* Postfix's words */
        session_reply_error(s, "550 5.1.1 <%s>: Recipient address rejected: "
                               "User unknown in relay recipient table", addr);
    else if (d == RCPT_ALIAS_LOOP)
        session_reply_error(s, "550 5.4.6 <%s>: Recipient address rejected: "
                               "Routing loop detected (alias)", addr);
    else if (d == RCPT_ALIAS_TOO_MANY)
        session_reply_error(s, "550 5.5.3 <%s>: Recipient address rejected: "
                               "Alias expands to too many recipients", addr);
    else
        session_reply_error(s, "554 5.7.1 <%s>: Relay access denied", addr);
    return true;
}

/* Add an accepted, new recipient to the envelope (canonical address);
 * false (452 sent) when the envelope would no longer fit the channel to
 * the queue (mail/envelope.h). */
static bool rcpt_add(struct session *s, const struct rcpt_args *rcpt, const char *addr,
                     const char *quoted)
{
    char wire[ADDR_PATH_MAX + 1], added[DSN_ORCPT_MAX + 1];
    const char *orcpt = rcpt->orcpt;
    unsigned notify = rcpt->notify;

    if (orcpt[0] == '\0' && !rcpt->to.is_bare_postmaster) {
        mailbox_format(&rcpt->to, wire, sizeof(wire));
        orcpt_for_spelling(wire, addr, added, sizeof(added));
        orcpt = added;
    }
    if (tx_cleartext_restricted(s))
        notify = restricted_notify(s, notify, quoted);
    if (envelope_wire_len(&s->tx->env, addr, notify, orcpt) > ENVELOPE_WIRE_MAX) {
        log_info("event=rcpt session=%s to=%s verdict=envelope_full rcpts=%zu", s->id, quoted,
                 s->tx->env.rcpt_count);
        metrics_rcpt(METRICS_RCPT_ENVELOPE_FULL);
        session_reply(s, "452 4.5.3 Error: too many recipients");
        return false;
    }
    envelope_add_rcpt(&s->tx->env, addr, notify, orcpt);
    return true;
}

/* Every check passed: the recipient joins the envelope. */
static void rcpt_accept(struct session *s, const struct rcpt_args *rcpt, const char *addr,
                        const char *quoted)
{
    if (!rcpt_add(s, rcpt, addr, quoted))
        return;
    s->rcpts++;
    log_info("event=rcpt session=%s to=%s verdict=accepted", s->id, quoted);
    metrics_rcpt(METRICS_RCPT_ACCEPTED);
    session_reply(s, "250 2.1.5 Ok");
}

/* The rcpt-stage milters' verdict on the recipient asked about. */
static void rcpt_verdict(struct session *s, enum milter_result_verdict v, const char *reply)
{
    char quoted[600];
    const char *addr = s->tx->asking_addr;

    log_quote(quoted, sizeof(quoted), addr, strlen(addr));
    if (v == MILTER_RESULT_REJECT || v == MILTER_RESULT_TEMPFAIL) {
        log_info("event=rcpt session=%s client=%s to=%s verdict=milter", s->id, s->client_ip,
                 quoted);
        metrics_rcpt(METRICS_RCPT_MILTER);
        milter_refusal(s, "rcpt", reply);
        return;
    }
    if (v == MILTER_RESULT_DISCARD)
        s->tx->discard = true;
    rcpt_accept(s, &s->tx->asking, addr, quoted);
}

static void cmd_rcpt(struct session *s, const char *args, size_t len)
{
    struct param_features feat = { .requiretls = s->tls, .dsn = true };
    struct rcpt_args rcpt;
    enum param_status st;
    char addr[ADDR_PATH_MAX + 1], quoted[600];

    if (s->tx == NULL) {
        session_reply_error(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->tx->bdat) {
        /* RFC 3030 has no way to add a recipient to a message that has
         * begun: its envelope was fixed at the first chunk. */
        session_reply_error(s, "503 5.5.1 Error: RCPT after BDAT; the recipients "
                               "of this message are fixed");
        return;
    }
    st = command_parse_rcpt(args, len, s->tx->mail.smtputf8, &feat, &rcpt);
    if (st != PARAM_OK) {
        reply_param_error(s, st, false);
        return;
    }
    if (rcpt.to.is_bare_postmaster)
        snprintf(addr, sizeof(addr), "%s", s->cfg->postmaster);
    else
        mailbox_format_canonical(&rcpt.to, addr, sizeof(addr));
    log_quote(quoted, sizeof(quoted), addr, strlen(addr));
    if (rcpt_refused(s, &rcpt, addr, quoted))
        return;
    if (rcpt_already_listed(&s->tx->env, addr)) {
        s->rcpts++;
        log_info("event=rcpt session=%s to=%s verdict=duplicate", s->id, quoted);
        session_reply(s, "250 2.1.5 Ok");
        return;
    }
    if (s->tx->env.rcpt_count >= s->cfg->max_recipients) {
        metrics_rcpt(METRICS_RCPT_TOO_MANY);
        session_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (session_milters_at(s, MILTER_AT_RCPT)) {
        struct envelope_rcpt r;

        memset(&r, 0, sizeof(r));
        snprintf(r.addr, sizeof(r.addr), "%s", addr);
        r.notify = rcpt.notify;
        snprintf(r.orcpt, sizeof(r.orcpt), "%s", rcpt.orcpt);
        s->tx->asking = rcpt;
        memcpy(s->tx->asking_addr, addr, sizeof(s->tx->asking_addr));
        session_milter_ask(s, MILTER_AT_RCPT, &r, rcpt_verdict);
        return;
    }
    rcpt_accept(s, &rcpt, addr, quoted);
}

/* The queue gave DATA its file (err NULL), or could not. */
static void data_ready(struct session *s, const char *err)
{
    if (err) {
        s->state = ST_COMMAND;
        session_reply(s, "%s", err);
        session_tx_reset(s);
        return;
    }
    data_decoder_init(&s->tx->dec, true, s->cfg->max_text_line_length);
    s->state = ST_DATA;
    session_set_timeout(s, s->cfg->data_timeout);
    session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_data(struct session *s, const char *args, size_t len)
{
    (void)args;
    if (len) {
        session_reply_error(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->tx == NULL) {
        session_reply_error(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->tx->bdat) {
        session_reply_error(s, "503 5.5.1 Error: DATA after BDAT in one transaction");
        return;
    }
    if (s->tx->env.rcpt_count == 0) {
        session_reply_error(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    session_data_open(s, data_ready);
}

/* Decide what happens to a BDAT chunk before reading it: NULL to take
 * it into the message, else the error reply to give after discarding it. */
static const char *bdat_check(struct session *s, uint64_t size)
{
    struct transaction *tx = s->tx;

    if (!s->helo_seen)
        return "503 5.5.1 Error: send HELO/EHLO first";
    if (!s->esmtp)
        return "503 5.5.1 Error: BDAT needs EHLO (CHUNKING is an ESMTP extension)";
    if (tx == NULL)
        return "503 5.5.1 Error: need MAIL command";
    if (tx->env.rcpt_count == 0)
        return "554 5.5.1 Error: no valid recipients";
    if (size > s->cfg->max_message_size - tx->msg_bytes)
        return "552 5.3.4 Error: message size exceeds fixed limit";
    return NULL;
}

/* Read the announced chunk: into the message, or (reply set) away. */
static void bdat_read_chunk(struct session *s, const char *reply)
{
    s->tx->chunk_reply = reply;
    s->state = ST_BDAT;
    session_set_timeout(s, s->cfg->data_timeout);
    if (s->tx->chunk_remaining == 0)
        session_bdat_chunk_done(s);
}

/* The first chunk's file is open (err NULL), or the chunk is discarded
 * and answered with err. */
static void bdat_ready(struct session *s, const char *err)
{
    struct transaction *tx = s->tx;

    tx->bdat = true;
    data_decoder_init(&tx->dec, false, s->cfg->max_text_line_length);
    bdat_read_chunk(s, err);
}

static void cmd_bdat(struct session *s, const char *args, size_t len)
{
    uint64_t size;
    bool last;
    const char *reply;

    if (!command_parse_bdat(args, len, &size, &last)) {
        /* Without a size the chunk cannot be skipped: its bytes would be
         * read as commands. Closing is the only safe answer. */
        session_reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing connection");
        session_close(s);
        return;
    }
    reply = bdat_check(s, size);
    if (s->tx == NULL) {
        /* A throwaway transaction carries the chunk to be discarded. */
        struct mail_args none;

        memset(&none, 0, sizeof(none));
        tx_new(s, &none);
    }
    s->tx->chunk_remaining = size;
    s->tx->chunk_last = last;
    if (reply == NULL && !s->tx->bdat && s->tx->msg == NULL) {
        session_data_open(s, bdat_ready);   /* first chunk: the file first */
        return;
    }
    bdat_read_chunk(s, reply);
}

static void cmd_rset(struct session *s, const char *args, size_t len)
{
    (void)args;
    if (len) {
        session_reply_error(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    session_tx_reset(s);
    session_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, const char *args, size_t len)
{
    (void)args;
    (void)len;
    session_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct session *s, const char *args, size_t len)
{
    (void)args;
    if (len) {
        session_reply_error(s, "501 5.5.4 Syntax: QUIT");
        return;
    }
    session_reply(s, "221 2.0.0 Bye");
    session_close(s);
}

static void cmd_vrfy(struct session *s, const char *args, size_t len)
{
    (void)args;
    if (len == 0) {
        session_reply_error(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, const char *args, size_t len)
{
    (void)args;
    (void)len;
    session_reply_error(s, "502 5.5.1 Error: EXPN not supported");
}

static void cmd_help(struct session *s, const char *args, size_t len)
{
    (void)args;
    (void)len;
    session_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
                     "HELP STARTTLS");
}

static void cmd_starttls(struct session *s, const char *args, size_t len)
{
    (void)args;
    if (len) {
        session_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (s->tls) {
        session_reply_error(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (!starttls_offered(s)) {
        session_reply_error(s, "502 5.5.1 Error: STARTTLS not available");
        return;
    }
    session_tx_reset(s);
    session_reply(s, "220 2.0.0 Ready to start TLS");
    session_starttls(s);
}

static void cmd_auth(struct session *s, const char *args, size_t len)
{
    session_auth_command(s, args, len);
}

/* RFC 6409 / RFC 8314: on a submission listener nothing but these works
 * before TLS; AUTH answers 538 itself. */
static bool allowed_before_tls(enum smtp_verb v)
{
    return v == VERB_EHLO || v == VERB_HELO || v == VERB_STARTTLS || v == VERB_NOOP ||
           v == VERB_RSET || v == VERB_QUIT || v == VERB_AUTH;
}

static const struct command_row commands[] = {
    { VERB_EHLO, cmd_ehlo },   { VERB_HELO, cmd_helo },   { VERB_MAIL, cmd_mail },
    { VERB_RCPT, cmd_rcpt },   { VERB_DATA, cmd_data },   { VERB_BDAT, cmd_bdat },
    { VERB_RSET, cmd_rset },   { VERB_NOOP, cmd_noop },   { VERB_QUIT, cmd_quit },
    { VERB_VRFY, cmd_vrfy },   { VERB_EXPN, cmd_expn },   { VERB_HELP, cmd_help },
    { VERB_STARTTLS, cmd_starttls }, { VERB_AUTH, cmd_auth },
};

void session_dispatch(struct session *s, const char *line, size_t len)
{
    struct smtp_command cmd;

    if (s->shutdown_soft && s->tx == NULL) {
        session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->cfg->hostname);
        session_close(s);
        return;
    }
    if (s->auth_step != AUTH_STEP_NONE) {
        session_auth_response(s, line, len);    /* a SASL response, not a command */
        return;
    }
    if (command_split(line, len, &cmd)) {
        if (s->greeting_refused && cmd.verb != VERB_QUIT) {
            /* RFC 5321 3.1: after a 554 greeting, wait for QUIT */
            session_reply_error(s, "503 5.5.1 Error: access denied, send QUIT");
            return;
        }
        if (s->listener->role == ROLE_SUBMISSION && !s->tls && !allowed_before_tls(cmd.verb)) {
            session_reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
            return;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
            if (commands[i].verb == cmd.verb) {
                commands[i].handler(s, cmd.args, cmd.args_len);
                return;
            }
        }
    }
    session_reply_error(s, "500 5.5.2 Error: command not recognized");
}

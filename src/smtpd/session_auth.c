/*
 * session_auth.c - SMTP AUTH (RFC 4954) in the smtpd worker: PLAIN (RFC
 * 4616) and LOGIN, offered only inside TLS on role = submission
 * listeners that have [submission] users. The worker decodes the SASL
 * responses (mail/sasl.c) and hands the user and password to the queue
 * process over its channel (queue_client.h); it never holds a hash and
 * never decides a password itself. The queue answers with a verdict and,
 * on success, a token that later NEW requests carry, so the queue knows
 * which user a transaction is for without the worker's word.
 *
 * While the queue checks, the session reads no input (ST_COMMIT, as for
 * a commit). Passwords live only in a heap struct wiped as soon as they
 * are queued for the channel, and are never logged.
 *
 * Trusts: nothing the client sends (every response is length-checked and
 * decoded strictly); the queue's verdict as auth_codec.h checked it.
 */
#include "smtpd/session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "util/xalloc.h"

bool session_auth_offered(const struct session *s)
{
    return s->listener->role == ROLE_SUBMISSION && s->tls && s->cfg->submission.users != NULL;
}

void session_auth_drop(struct session *s)
{
    if (s->creds) {
        sasl_creds_wipe(s->creds);
        free(s->creds);
        s->creds = NULL;
    }
    if (s->auth_req) {
        auth_cancel(s->auth_req);
        s->auth_req = NULL;
    }
    s->auth_step = AUTH_STEP_NONE;
}

static void auth_log(const struct session *s, const char *result, const char *user)
{
    char q[4 * SASL_USER_MAX + 8];

    log_info("event=auth session=%s client=%s result=%s user=%s mechanism=%s", s->id,
             s->client_ip, result, log_value(q, sizeof(q), user),
             auth_mechanism_name(s->auth_mech));
}

static void auth_done(const struct auth_answer *ans, void *arg)
{
    struct session *s = arg;
    char user[SASL_USER_MAX + 1];

    s->auth_req = NULL;
    s->state = ST_COMMAND;
    snprintf(user, sizeof(user), "%s", s->auth_user);
    switch ((enum auth_verdict)ans->verdict) {
    case AUTH_OK:
        s->authenticated = true;
        memcpy(s->auth_token, ans->token, sizeof(s->auth_token));
        auth_log(s, "ok", user);
        session_reply(s, "235 2.7.0 Authentication successful");
        break;
    case AUTH_FAILED:
        s->auth_user[0] = '\0';
        auth_log(s, "failed", user);
        session_reply_error(s, "535 5.7.8 Error: authentication credentials invalid");
        break;
    case AUTH_LOCKED:
        s->auth_user[0] = '\0';
        auth_log(s, "locked_out", user);
        session_reply(s, "421 4.7.0 %s Error: too many failed authentications from your "
                         "address, try again later", s->cfg->hostname);
        session_close(s);
        break;
    case AUTH_TEMPFAIL:
    default:
        s->auth_user[0] = '\0';
        auth_log(s, "tempfail", user);
        session_reply_error(s, "454 4.7.0 Temporary authentication failure");
        break;
    }
    session_resume(s);
}

/* The credentials are complete: ask the queue. */
static void check_creds(struct session *s)
{
    struct sasl_creds *c = s->creds;

    s->auth_mech = s->auth_step == AUTH_STEP_PLAIN ? AUTH_MECH_PLAIN : AUTH_MECH_LOGIN;
    s->creds = NULL;
    s->auth_step = AUTH_STEP_NONE;
    snprintf(s->auth_user, sizeof(s->auth_user), "%s", c->user);
    s->state = ST_COMMIT;               /* no input is read until the verdict */
    s->auth_req = auth_start(s->srv->queue, s->client_ip, s->auth_mech, c, auth_done, s);
    free(c);                            /* wiped by auth_start */
}

/* A decoding error or cancellation ends the exchange with its reply. */
static void exchange_failed(struct session *s, enum sasl_status st)
{
    session_auth_drop(s);
    switch (st) {
    case SASL_CANCELLED:
        session_reply_error(s, "501 5.0.0 Authentication cancelled");
        break;
    case SASL_BAD_AUTHZID:
        session_reply_error(s, "535 5.7.8 Error: authorization identity not allowed");
        break;
    case SASL_BAD_BASE64:
        session_reply_error(s, "501 5.5.2 Error: cannot decode the response (base64)");
        break;
    default:
        session_reply_error(s, "501 5.5.2 Error: malformed authentication response");
        break;
    }
}

void session_auth_response(struct session *s, const char *line, size_t len)
{
    enum sasl_status st;

    switch (s->auth_step) {
    case AUTH_STEP_PLAIN:
        st = sasl_plain(line, len, s->creds);
        break;
    case AUTH_STEP_LOGIN_USER:
        st = sasl_login_user(line, len, s->creds);
        if (st == SASL_OK) {
            s->auth_step = AUTH_STEP_LOGIN_PASSWORD;
            session_reply(s, "334 UGFzc3dvcmQ6");       /* "Password:" */
            return;
        }
        break;
    case AUTH_STEP_LOGIN_PASSWORD:
        st = sasl_login_password(line, len, s->creds);
        break;
    default:
        return;
    }
    if (st != SASL_OK) {
        exchange_failed(s, st);
        return;
    }
    check_creds(s);
}

/* Sequencing and listener checks; false when refused (replied). */
static bool auth_allowed(struct session *s)
{
    if (s->listener->role != ROLE_SUBMISSION || s->cfg->submission.users == NULL) {
        session_reply_error(s, "503 5.5.1 Error: authentication not enabled");
        return false;
    }
    if (!s->tls) {
        session_reply_error(s, "538 5.7.11 Encryption required for requested authentication "
                               "mechanism");
        return false;
    }
    if (!s->esmtp) {
        session_reply_error(s, "503 5.5.1 Error: send EHLO first");
        return false;
    }
    if (s->authenticated) {
        session_reply_error(s, "503 5.5.1 Error: already authenticated");
        return false;
    }
    if (s->tx) {
        session_reply_error(s, "503 5.5.1 Error: AUTH not permitted during a mail transaction");
        return false;
    }
    return true;
}

void session_auth_command(struct session *s, const char *args, size_t len)
{
    size_t mlen = strcspn(args, " ");
    const char *initial = mlen < len ? args + mlen + 1 : NULL;
    size_t ilen = initial ? len - mlen - 1 : 0;

    if (!auth_allowed(s))
        return;
    s->creds = xcalloc(1, sizeof(*s->creds));
    if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
        s->auth_step = AUTH_STEP_PLAIN;
        if (initial == NULL) {
            session_reply(s, "334 ");
            return;
        }
    } else if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
        s->auth_step = AUTH_STEP_LOGIN_USER;
        if (initial == NULL) {
            session_reply(s, "334 VXNlcm5hbWU6");       /* "Username:" */
            return;
        }
    } else {
        session_auth_drop(s);
        session_reply_error(s, len ? "504 5.5.4 Error: unrecognized authentication type"
                                   : "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return;
    }
    session_auth_response(s, initial, ilen);
}

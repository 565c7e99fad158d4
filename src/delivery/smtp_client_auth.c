/*
 * smtp_client_auth.c - logging in to a smart host (RFC 4954 AUTH, client
 * side): AUTH PLAIN with an initial response, or AUTH LOGIN (user, then
 * password, each after a 334) when the server offers only LOGIN.
 *
 * Runs after the EHLO inside TLS, and only when that TLS authenticated
 * the server (PKIX for the relayhost name, or DANE/fingerprint): the
 * credentials never go out in cleartext nor to an unverified server. A
 * server without PLAIN or LOGIN, a refused AUTH or a reply out of step
 * fail the address as a deferral (5xx becomes 4.7.8: a wrong password
 * is the operator's problem to fix, not a reason to bounce mail), with
 * an error log line that names the user, never the password.
 *
 * Trusts: the credentials (the operator's, via the master); nothing the
 * server says (replies are parsed by smtp_reply.c, quoted in logs).
 * Buffers that held the password or its base64 are wiped
 * (OPENSSL_cleanse); the copy libevent and OpenSSL queue for the socket
 * is not reachable from here.
 */
#include "delivery/smtp_client_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/log.h"

/* base64 of 2 + 2 * RELAY_CRED_FIELD_MAX octets, NUL included */
#define AUTH_B64_MAX (((2 + 2 * RELAY_CRED_FIELD_MAX + 2) / 3) * 4 + 1)

static const char *mechanism(const struct smtp_conn *c)
{
    return c->caps.auth_plain ? "PLAIN" : "LOGIN";
}

/* The address failed to log in: an error line (user, never password),
 * then the next address. */
static void auth_failed(struct smtp_conn *c, int code, const char *dsn, const char *why)
{
    char text[700], qu[RELAY_CRED_FIELD_MAX * 4 + 8], qw[700 * 4 + 8];

    text_fmt(text, sizeof(text), "AUTH %s as %s to %s failed: %s", mechanism(c),
             c->cfg.auth->user, c->peer, why);
    log_error("event=relay_auth result=failed peer=%s user=%s mechanism=%s dsn=%s "
              "reason=%s action=\"deferred; check [relay] relayhost_credentials\"", c->peer,
              log_value(qu, sizeof(qu), c->cfg.auth->user), mechanism(c), dsn,
              log_quote(qw, sizeof(qw), why, strlen(why)));
    open_attempt_failed(c, code, dsn, text, true);
}

/* Send "PREFIX<base64 of data[0..len)>" and wipe the encoding. */
static void send_b64(struct smtp_conn *c, const char *prefix, const unsigned char *data,
                     size_t len)
{
    unsigned char b64[AUTH_B64_MAX];

    EVP_EncodeBlock(b64, data, (int)len);
    conn_send_line(c, "%s%s", prefix, (const char *)b64);
    OPENSSL_cleanse(b64, sizeof(b64));
    conn_arm_timer(c, c->cfg.timeouts.command);
}

void open_auth_start(struct smtp_conn *c)
{
    const struct relay_credentials *a = c->cfg.auth;
    unsigned char plain[2 + 2 * RELAY_CRED_FIELD_MAX];
    size_t ulen = strnlen(a->user, RELAY_CRED_FIELD_MAX);
    size_t plen = strnlen(a->password, RELAY_CRED_FIELD_MAX);
    char why[400];

    if (!c->tls || c->auth == TLS_AUTH_NONE) {
        text_fmt(why, sizeof(why), "TLS to %s is not verified for the relayhost name: the "
                 "credentials are not sent", c->peer);
        auth_failed(c, 0, "4.7.5", why);
        return;
    }
    if (!c->caps.auth_plain && !c->caps.auth_login) {
        text_fmt(why, sizeof(why), "the server offers no AUTH PLAIN or LOGIN, and "
                 "relayhost_credentials are configured: not sending unauthenticated");
        auth_failed(c, 0, "4.7.0", why);
        return;
    }
    if (!c->caps.auth_plain) {
        conn_send_line(c, "AUTH LOGIN");
        c->state = CS_AUTH_USER;
        conn_arm_timer(c, c->cfg.timeouts.command);
        return;
    }
    /* RFC 4616: authzid (empty) NUL authcid NUL passwd */
    plain[0] = '\0';
    memcpy(plain + 1, a->user, ulen);
    plain[1 + ulen] = '\0';
    memcpy(plain + 2 + ulen, a->password, plen);
    c->state = CS_AUTH;
    send_b64(c, "AUTH PLAIN ", plain, 2 + ulen + plen);
    OPENSSL_cleanse(plain, sizeof(plain));
}

/* The reply r refused the login (or came out of step). */
static void auth_refused(struct smtp_conn *c, const struct smtp_reply *r)
{
    char reply[SMTP_REPLY_LINE_MAX], dsn[16];

    smtp_reply_format(r, reply, sizeof(reply));
    if (r->code / 100 == 5)
        snprintf(dsn, sizeof(dsn), "4.7.8");    /* RFC 3463: credentials invalid */
    else if (r->code / 100 == 4)
        snprintf(dsn, sizeof(dsn), "%s", r->dsn);
    else
        snprintf(dsn, sizeof(dsn), "4.5.0");    /* a 334 to PLAIN, a 2xx to LOGIN, ... */
    auth_failed(c, r->code, dsn, reply);
}

void open_auth_reply(struct smtp_conn *c, const struct smtp_reply *r)
{
    const struct relay_credentials *a = c->cfg.auth;
    char qu[RELAY_CRED_FIELD_MAX * 4 + 8];

    switch (c->state) {
    case CS_AUTH_USER:
    case CS_AUTH_PASS:
        if (r->code != 334) {
            auth_refused(c, r);
            return;
        }
        if (c->state == CS_AUTH_USER) {
            c->state = CS_AUTH_PASS;
            send_b64(c, "", (const unsigned char *)a->user, strnlen(a->user, sizeof(a->user)));
        } else {
            c->state = CS_AUTH;
            send_b64(c, "", (const unsigned char *)a->password,
                     strnlen(a->password, sizeof(a->password)));
        }
        return;
    default:
        if (r->code != 235) {
            auth_refused(c, r);
            return;
        }
        log_info("event=relay_auth result=ok peer=%s user=%s mechanism=%s", c->peer,
                 log_value(qu, sizeof(qu), a->user), mechanism(c));
        open_ready(c);
        return;
    }
}

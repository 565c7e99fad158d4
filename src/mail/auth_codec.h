/*
 * auth_codec.h - the two IPC messages of SMTP AUTH between an smtpd
 * worker and the queue process, which alone holds the users file:
 * IPC_AUTH_CHECK (worker -> queue: a request number, the SASL mechanism,
 * the client's address, the user name and the password) and IPC_AUTH_RESULT (queue ->
 * worker: the same number, the verdict, and on success a token that the
 * worker's NEW requests carry, so that the queue knows which user a
 * transaction belongs to without trusting the worker's word).
 *
 * Wire form: a fixed-size struct in host byte order (both ends are the
 * same binary), NUL-terminated strings in their arrays. Decoding trusts
 * nothing: exact size, every string terminated, non-empty where needed,
 * the mechanism and the verdict in range, a token of hex digits exactly when the verdict
 * is OK. The request's password is wiped by whoever holds it as soon as
 * it has been checked.
 */
#ifndef SEALPOST_MAIL_AUTH_CODEC_H
#define SEALPOST_MAIL_AUTH_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/sasl.h"

#define AUTH_CLIENT_MAX 46          /* an IPv6 address in text, with its NUL */
#define AUTH_TOKEN_LEN  32          /* hex digits */

/* The SASL mechanism the client used (the milters' {auth_type}). */
enum auth_mechanism {
    AUTH_MECH_PLAIN = 0,
    AUTH_MECH_LOGIN,
    AUTH_MECH_MAX = AUTH_MECH_LOGIN,
};

struct auth_request {
    uint32_t id;
    uint32_t mechanism;         /* enum auth_mechanism */
    char client[AUTH_CLIENT_MAX];
    char user[SASL_USER_MAX + 1];
    char password[SASL_PASSWORD_MAX + 1];
};

enum auth_verdict {
    AUTH_OK = 0,                /* 235 2.7.0 */
    AUTH_FAILED,                /* 535 5.7.8 */
    AUTH_LOCKED,                /* 421 4.7.0: too many failures from this address */
    AUTH_TEMPFAIL,              /* 454 4.7.0 */
    AUTH_VERDICT_MAX = AUTH_TEMPFAIL,
};

struct auth_answer {
    uint32_t id;
    uint32_t verdict;           /* enum auth_verdict */
    char token[AUTH_TOKEN_LEN + 1];     /* AUTH_OK only, else "" */
};

#define AUTH_MECH_NAME_MAX 20       /* octets of a SASL mechanism name (RFC 4422) */

/* "PLAIN", "LOGIN"; NULL out of range. */
const char *auth_mechanism_name(uint32_t mechanism);
/* Is name one of auth_mechanism_name's? (what the milter codecs accept) */
bool auth_mechanism_known(const char *name);

bool auth_request_decode(const void *payload, size_t len, struct auth_request *out);
bool auth_answer_decode(const void *payload, size_t len, struct auth_answer *out);
/* A token as the queue makes them: AUTH_TOKEN_LEN lower-case hex digits. */
bool auth_token_valid(const char *token);

#endif

/*
 * sasl.h - the client side of SMTP AUTH (RFC 4954) as the server reads
 * it: strict base64 (RFC 4648 section 4, padding required, no white
 * space) and the PLAIN (RFC 4616) and LOGIN mechanisms' messages.
 *
 * Pure, no allocation: the caller owns the fixed-size results and wipes
 * them (sasl_creds_wipe) as soon as the password has been handed on.
 * Trusts: nothing; every input is bytes from an unauthenticated client.
 * Used by session_auth.c (smtpd) for AUTH on submission listeners.
 */
#ifndef SEALPOST_MAIL_SASL_H
#define SEALPOST_MAIL_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_USER_MAX      255      /* octets of a user name */
#define SASL_PASSWORD_MAX  255      /* octets of a password */
/* A client response line: base64 of authzid NUL authcid NUL password. */
#define SASL_RESPONSE_MAX  (((SASL_USER_MAX * 2 + SASL_PASSWORD_MAX + 2) + 2) / 3 * 4)

struct sasl_creds {
    char user[SASL_USER_MAX + 1];
    char password[SASL_PASSWORD_MAX + 1];
};

/*
 * Decode base64 in[0..len) into out (outsize octets); *outlen set. "="
 * alone is the empty string (RFC 4954 4). Refuses anything that is not
 * canonical base64: a length not a multiple of 4, characters outside the
 * alphabet, padding in the middle, non-zero bits in the last character
 * before the padding, or a result larger than outsize.
 */
bool sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsize,
                     size_t *outlen);

/* Encode data as base64 into out (NUL-terminated); false if it does not fit. */
bool sasl_b64_encode(const unsigned char *data, size_t len, char *out, size_t outsize);

enum sasl_status {
    SASL_OK = 0,
    SASL_BAD_BASE64,    /* 501 5.5.2 */
    SASL_BAD_MESSAGE,   /* 501 5.5.2: malformed, NUL inside a field, too long */
    SASL_BAD_AUTHZID,   /* 535 5.7.8: acting as someone else is not offered */
    SASL_CANCELLED,     /* "*": 501 5.0.0 (RFC 4954 4) */
};

/*
 * PLAIN: the base64 response "[authzid] NUL authcid NUL passwd". An
 * authzid is accepted only when empty or equal to authcid. The user and
 * password must be 1..MAX octets without NUL (a user name is also
 * printable ASCII or UTF-8 without control characters or blanks).
 */
enum sasl_status sasl_plain(const char *response, size_t len, struct sasl_creds *out);

/* LOGIN: one base64 response, the user name or the password. */
enum sasl_status sasl_login_user(const char *response, size_t len, struct sasl_creds *out);
enum sasl_status sasl_login_password(const char *response, size_t len, struct sasl_creds *out);

/* Overwrite the password (and the user) so no copy outlives its use. */
void sasl_creds_wipe(struct sasl_creds *c);

#endif

/*
 * sasl.c - strict base64 and the PLAIN/LOGIN messages (see sasl.h).
 *
 * Trusts: nothing. Every length is checked before a byte is copied; the
 * decoded response lives in a stack buffer that is wiped before return.
 */
#include "mail/sasl.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* One quantum of 4 characters; pads = how many '=' end it (0..2). */
static bool b64_quantum(const char *q, bool last, unsigned char *out, size_t *n)
{
    int v[4];
    size_t pads = 0;

    for (int i = 0; i < 4; i++) {
        if (q[i] == '=' && last && i >= 2) {
            v[i] = 0;
            pads++;
            continue;
        }
        if (pads > 0 || (v[i] = b64_value((unsigned char)q[i])) < 0)
            return false;
    }
    /* Canonical only: the bits the padding drops must be zero. */
    if ((pads == 1 && (v[2] & 0x3)) || (pads == 2 && (v[1] & 0xf)))
        return false;
    out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    out[1] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
    out[2] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
    *n = 3 - pads;
    return true;
}

bool sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsize,
                     size_t *outlen)
{
    *outlen = 0;
    if (len == 1 && in[0] == '=')
        return true;                    /* RFC 4954 4: an empty response */
    if (len == 0 || len % 4 != 0)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        unsigned char buf[3];
        size_t n;

        if (!b64_quantum(in + i, i + 4 == len, buf, &n) || *outlen + n > outsize)
            return false;
        memcpy(out + *outlen, buf, n);
        *outlen += n;
    }
    return true;
}

bool sasl_b64_encode(const unsigned char *data, size_t len, char *out, size_t outsize)
{
    size_t o = 0;

    if ((len + 2) / 3 * 4 + 1 > outsize)
        return false;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16;
        size_t left = len - i;

        if (left > 1)
            v |= (unsigned)data[i + 1] << 8;
        if (left > 2)
            v |= data[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = left > 1 ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = left > 2 ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return true;
}

/* A user name: 1..MAX octets, no control characters, no blanks. */
static bool user_ok(const unsigned char *p, size_t len)
{
    if (len == 0 || len > SASL_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

static bool password_ok(const unsigned char *p, size_t len)
{
    return len > 0 && len <= SASL_PASSWORD_MAX && memchr(p, '\0', len) == NULL;
}

static bool cancelled(const char *r, size_t len)
{
    return len == 1 && r[0] == '*';
}

enum sasl_status sasl_plain(const char *response, size_t len, struct sasl_creds *out)
{
    unsigned char msg[SASL_USER_MAX * 2 + SASL_PASSWORD_MAX + 2];
    const unsigned char *authcid, *passwd, *nul1, *nul2;
    size_t n = 0, zlen, clen, plen;
    enum sasl_status st = SASL_BAD_MESSAGE;

    memset(out, 0, sizeof(*out));
    if (cancelled(response, len))
        return SASL_CANCELLED;
    if (!sasl_b64_decode(response, len, msg, sizeof(msg), &n)) {
        st = SASL_BAD_BASE64;
        goto done;
    }
    if ((nul1 = memchr(msg, '\0', n)) == NULL ||
        (nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg))) == NULL)
        goto done;
    zlen = (size_t)(nul1 - msg);
    authcid = nul1 + 1;
    clen = (size_t)(nul2 - authcid);
    passwd = nul2 + 1;
    plen = n - (size_t)(passwd - msg);
    if (!user_ok(authcid, clen) || !password_ok(passwd, plen))
        goto done;
    if (zlen != 0 && (zlen != clen || memcmp(msg, authcid, clen) != 0)) {
        st = SASL_BAD_AUTHZID;
        goto done;
    }
    memcpy(out->user, authcid, clen);
    memcpy(out->password, passwd, plen);
    st = SASL_OK;
done:
    explicit_bzero(msg, sizeof(msg));
    return st;
}

static enum sasl_status login_field(const char *response, size_t len, char *field,
                                    size_t fieldsize, bool user)
{
    unsigned char buf[SASL_PASSWORD_MAX > SASL_USER_MAX ? SASL_PASSWORD_MAX : SASL_USER_MAX];
    size_t n = 0;
    enum sasl_status st = SASL_BAD_MESSAGE;

    if (cancelled(response, len))
        return SASL_CANCELLED;
    if (!sasl_b64_decode(response, len, buf, sizeof(buf), &n))
        st = SASL_BAD_BASE64;
    else if (n < fieldsize && (user ? user_ok(buf, n) : password_ok(buf, n))) {
        memcpy(field, buf, n);
        field[n] = '\0';
        st = SASL_OK;
    }
    explicit_bzero(buf, sizeof(buf));
    return st;
}

enum sasl_status sasl_login_user(const char *response, size_t len, struct sasl_creds *out)
{
    memset(out, 0, sizeof(*out));
    return login_field(response, len, out->user, sizeof(out->user), true);
}

enum sasl_status sasl_login_password(const char *response, size_t len, struct sasl_creds *out)
{
    return login_field(response, len, out->password, sizeof(out->password), false);
}

void sasl_creds_wipe(struct sasl_creds *c)
{
    explicit_bzero(c, sizeof(*c));
}

/*
 * fuzz_sasl.c - libFuzzer target for the SMTP AUTH response parsers
 * (src/mail/sasl.c): strict base64, PLAIN and LOGIN.
 *
 * Input layout: the whole input is one client response line (without
 * CRLF), in a buffer of exactly its size. Checked:
 *  - base64 decoding never writes past its buffer and, when it succeeds,
 *    encoding the result gives the input back (canonical form only);
 *  - PLAIN/LOGIN results are NUL-terminated within their arrays, a user
 *    is 1..SASL_USER_MAX octets without control bytes or blanks, a
 *    password 1..SASL_PASSWORD_MAX octets without NUL; on failure both
 *    are empty;
 *  - a PLAIN success re-encoded ("" NUL user NUL password) parses to the
 *    same credentials.
 */
#include "fuzz.h"

#include "mail/sasl.h"

static void check_creds(const struct sasl_creds *c, bool ok, bool want_password)
{
    size_t ul = strnlen(c->user, sizeof(c->user));
    size_t pl = strnlen(c->password, sizeof(c->password));

    FUZZ_CHECK(ul < sizeof(c->user) && pl < sizeof(c->password));
    if (!ok) {
        FUZZ_CHECK(pl == 0);
        return;
    }
    FUZZ_CHECK(ul > 0 && ul <= SASL_USER_MAX);
    for (size_t i = 0; i < ul; i++)
        FUZZ_CHECK((unsigned char)c->user[i] > 0x20 && c->user[i] != 0x7f);
    if (want_password)
        FUZZ_CHECK(pl > 0 && pl <= SASL_PASSWORD_MAX);
}

static void check_roundtrip(const struct sasl_creds *c)
{
    unsigned char msg[SASL_USER_MAX + SASL_PASSWORD_MAX + 2];
    char b64[SASL_RESPONSE_MAX + 1];
    size_t ul = strlen(c->user), pl = strlen(c->password), n = 0;
    struct sasl_creds again;

    msg[n++] = '\0';
    memcpy(msg + n, c->user, ul);
    n += ul;
    msg[n++] = '\0';
    memcpy(msg + n, c->password, pl);
    n += pl;
    FUZZ_CHECK(sasl_b64_encode(msg, n, b64, sizeof(b64)));
    FUZZ_CHECK(sasl_plain(b64, strlen(b64), &again) == SASL_OK);
    FUZZ_CHECK(strcmp(again.user, c->user) == 0 && strcmp(again.password, c->password) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    unsigned char out[1024];
    char back[sizeof(out) / 3 * 4 + 8];
    size_t n = 0;
    struct sasl_creds c;
    enum sasl_status st;

    if (sasl_b64_decode(in, size, out, sizeof(out), &n)) {
        FUZZ_CHECK(n <= sizeof(out));
        FUZZ_CHECK(sasl_b64_encode(out, n, back, sizeof(back)));
        if (!(size == 1 && in[0] == '='))
            FUZZ_CHECK(strlen(back) == size && memcmp(back, in, size) == 0);
    }
    st = sasl_plain(in, size, &c);
    check_creds(&c, st == SASL_OK, true);
    if (st == SASL_OK)
        check_roundtrip(&c);
    st = sasl_login_user(in, size, &c);
    check_creds(&c, st == SASL_OK, false);
    st = sasl_login_password(in, size, &c);
    FUZZ_CHECK(strnlen(c.password, sizeof(c.password)) < sizeof(c.password));
    sasl_creds_wipe(&c);
    return 0;
}

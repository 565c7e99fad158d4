/*
 * test_sasl.c - unit tests for mail/sasl.c: strict base64 (RFC 4648 4,
 * RFC 4954's "=" for an empty response) and the PLAIN (RFC 4616) and
 * LOGIN messages: the RFC examples, authzid rules, NUL and control bytes,
 * length limits, cancellation, non-canonical base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/sasl.h"

static enum sasl_status plain_of(const char *raw, size_t rawlen, struct sasl_creds *c)
{
    char b64[2048];

    assert_true(sasl_b64_encode((const unsigned char *)raw, rawlen, b64, sizeof(b64)));
    return sasl_plain(b64, strlen(b64), c);
}

static void test_base64(void **state)
{
    unsigned char out[16];
    size_t n;
    char enc[32];

    (void)state;
    assert_true(sasl_b64_decode("Zm9vYmFy", 8, out, sizeof(out), &n));
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_true(sasl_b64_decode("Zm8=", 4, out, sizeof(out), &n) && n == 2);
    assert_true(sasl_b64_decode("Zg==", 4, out, sizeof(out), &n) && n == 1);
    assert_true(sasl_b64_decode("=", 1, out, sizeof(out), &n) && n == 0);
    assert_false(sasl_b64_decode("", 0, out, sizeof(out), &n));
    assert_false(sasl_b64_decode("Zm9", 3, out, sizeof(out), &n));       /* no padding */
    assert_false(sasl_b64_decode("Zm9v YmFy", 9, out, sizeof(out), &n)); /* blank */
    assert_false(sasl_b64_decode("Zg=a", 4, out, sizeof(out), &n));      /* pad inside */
    assert_false(sasl_b64_decode("Zh==", 4, out, sizeof(out), &n));      /* stray bits */
    assert_false(sasl_b64_decode("Zm9=Zm9v", 8, out, sizeof(out), &n));  /* pad mid-way */
    assert_false(sasl_b64_decode("Zm9vYmFy", 8, out, 5, &n));            /* too big */
    assert_true(sasl_b64_encode((const unsigned char *)"foob", 4, enc, sizeof(enc)));
    assert_string_equal(enc, "Zm9vYg==");
    assert_false(sasl_b64_encode((const unsigned char *)"foob", 4, enc, 8));
}

static void test_plain(void **state)
{
    struct sasl_creds c;

    (void)state;
    /* RFC 4616 4: "\0tim\0tanstaaftanstaaf" */
    assert_int_equal(sasl_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, &c), SASL_OK);
    assert_string_equal(c.user, "tim");
    assert_string_equal(c.password, "tanstaaftanstaaf");
    assert_int_equal(plain_of("tim\0tim\0pw", 10, &c), SASL_OK);          /* authzid = authcid */
    assert_int_equal(plain_of("Ursel\0Kurt\0xipj3plmq", 20, &c), SASL_BAD_AUTHZID);
    assert_string_equal(c.password, "");
    assert_int_equal(plain_of("\0\0pw", 4, &c), SASL_BAD_MESSAGE);        /* no user */
    assert_int_equal(plain_of("\0tim\0", 5, &c), SASL_BAD_MESSAGE);       /* no password */
    assert_int_equal(plain_of("\0tim\0p\0w", 8, &c), SASL_BAD_MESSAGE);   /* NUL in it */
    assert_int_equal(plain_of("\0ti m\0pw", 8, &c), SASL_BAD_MESSAGE);    /* blank in user */
    assert_int_equal(plain_of("\0ti\tm\0pw", 8, &c), SASL_BAD_MESSAGE);
    assert_int_equal(plain_of("tim", 3, &c), SASL_BAD_MESSAGE);           /* no NUL */
    assert_int_equal(sasl_plain("*", 1, &c), SASL_CANCELLED);
    assert_int_equal(sasl_plain("AHRpbQB0YW5zd", 13, &c), SASL_BAD_BASE64);
    assert_int_equal(plain_of("\0j\xc3\xb6rg\0pw", 9, &c), SASL_OK);       /* UTF-8 user */
}

static void test_plain_limits(void **state)
{
    char raw[1024];
    struct sasl_creds c;

    (void)state;
    memset(raw, 'a', sizeof(raw));
    raw[0] = '\0';
    raw[1 + SASL_USER_MAX] = '\0';
    assert_int_equal(plain_of(raw, 2 + SASL_USER_MAX + SASL_PASSWORD_MAX, &c), SASL_OK);
    assert_int_equal(strlen(c.user), SASL_USER_MAX);
    assert_int_equal(strlen(c.password), SASL_PASSWORD_MAX);
    assert_int_equal(plain_of(raw, 3 + SASL_USER_MAX + SASL_PASSWORD_MAX, &c),
                     SASL_BAD_MESSAGE);                 /* password one too long */
    raw[1 + SASL_USER_MAX] = 'a';
    raw[2 + SASL_USER_MAX] = '\0';
    assert_int_not_equal(plain_of(raw, 4 + SASL_USER_MAX, &c), SASL_OK);   /* user too long */
    sasl_creds_wipe(&c);
    assert_string_equal(c.password, "");
}

static void test_login(void **state)
{
    struct sasl_creds c;

    (void)state;
    assert_int_equal(sasl_login_user("dGlt", 4, &c), SASL_OK);
    assert_string_equal(c.user, "tim");
    assert_int_equal(sasl_login_password("c2VjcmV0", 8, &c), SASL_OK);
    assert_string_equal(c.user, "tim");
    assert_string_equal(c.password, "secret");
    assert_int_equal(sasl_login_user("=", 1, &c), SASL_BAD_MESSAGE);       /* empty user */
    assert_int_equal(sasl_login_user("*", 1, &c), SASL_CANCELLED);
    assert_int_equal(sasl_login_password("cw==", 4, &c), SASL_OK);
    assert_int_equal(sasl_login_password("AA==", 4, &c), SASL_BAD_MESSAGE); /* NUL */
    assert_int_equal(sasl_login_password("c!==", 4, &c), SASL_BAD_BASE64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_limits),
        cmocka_unit_test(test_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

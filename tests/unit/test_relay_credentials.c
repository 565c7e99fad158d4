/*
 * test_relay_credentials.c - unit tests for mail/relay_credentials.c: the
 * smart host's "user:password" file (one line; comments and blank lines
 * skipped; the password split at the first ':' and may hold more; bounds;
 * no control characters; errors that never quote the line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mail/relay_credentials.h"

#define LIT(s) (s), (sizeof(s) - 1)

static void test_one_line(void **state)
{
    struct relay_credentials rc;
    char err[256];

    (void)state;
    assert_true(relay_credentials_parse(LIT("# login\n\nalice:pa:ss word\r\n"), &rc, err,
                                        sizeof(err)));
    assert_string_equal(rc.user, "alice");
    assert_string_equal(rc.password, "pa:ss word");
    assert_true(relay_credentials_parse(LIT("u@example.net:p"), &rc, err, sizeof(err)));
    assert_string_equal(rc.user, "u@example.net");
    assert_string_equal(rc.password, "p");
    relay_credentials_wipe(&rc);
    assert_string_equal(rc.user, "");
    assert_string_equal(rc.password, "");
}

/* Every refusal names the line and the problem, never the secret. */
static void refused(const char *text, const char *why)
{
    struct relay_credentials rc;
    char err[256];

    assert_false(relay_credentials_parse(text, strlen(text), &rc, err, sizeof(err)));
    assert_non_null(strstr(err, why));
    assert_null(strstr(err, "secret"));
    assert_string_equal(rc.password, "");
}

static void test_refusals(void **state)
{
    char big[600];

    (void)state;
    refused("", "no \"user:password\" line");
    refused("# only a comment\n\n", "no \"user:password\" line");
    refused("secret\n", "line 1: not \"user:password\"");
    refused(":secret\n", "line 1: empty user");
    refused("alice:\n", "line 1: empty password");
    refused("alice:secret\nbob:secret\n", "line 2: a second credentials line");
    refused("alice:sec\tret\n", "line 1: control characters");
    refused("alice:sec\rret\n", "line 1: control characters");
    memset(big, 'x', sizeof(big));
    memcpy(big, "alice:", 6);
    big[sizeof(big) - 1] = '\0';
    refused(big, "the password is longer than 255 octets");
    big[0] = 'y';
    memset(big, 'u', 300);
    big[300] = ':';
    refused(big, "the user is longer than 255 octets");
}

static void test_embedded_nul(void **state)
{
    struct relay_credentials rc;
    char err[256];

    (void)state;
    assert_false(relay_credentials_parse(LIT("alice:se\0cret\n"), &rc, err, sizeof(err)));
    assert_non_null(strstr(err, "control characters"));
}

static void test_file_limit(void **state)
{
    static char text[RELAY_CRED_FILE_MAX + 2];
    struct relay_credentials rc;
    char err[256];

    (void)state;
    memset(text, '#', sizeof(text));
    text[sizeof(text) - 2] = '\n';
    assert_false(relay_credentials_parse(text, sizeof(text) - 1, &rc, err, sizeof(err)));
    assert_non_null(strstr(err, "larger than 4096 octets"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_file_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

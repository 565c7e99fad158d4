/*
 * test_sts_policy.c - unit tests for delivery/sts_policy.c: the MTA-STS
 * policy file of RFC 8461 3.2 (the RFC example, LF and CRLF, whitespace,
 * repeated and unknown keys, versions, max_age and mx limits, hostile
 * bytes, the 64 KiB body limit) and the MX matching of 4.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/sts_policy.h"

/* The example policy of RFC 8461 3.2. */
#define RFC_EXAMPLE                                                         \
    "version: STSv1\n"                                                      \
    "mode: enforce\n"                                                       \
    "mx: mail.example.com\n"                                                \
    "mx: *.example.net\n"                                                   \
    "mx: backupmx.example.com\n"                                            \
    "max_age: 604800\n"

static struct sts_policy pol;

static bool parse(const char *s)
{
    return sts_policy_parse(s, strlen(s), &pol);
}

/* A failed parse leaves only the error, which starts with prefix. */
static void assert_fails(const char *s, const char *prefix)
{
    if (parse(s)) {
        fprintf(stderr, "accepted: \"%s\"\n", s);
        fail();
    }
    assert_int_equal(pol.mx_count, 0);
    assert_int_equal(pol.max_age, 0);
    assert_int_equal(pol.mode, 0);
    assert_true(pol.error[0] != '\0');
    if (strncmp(pol.error, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "\"%s\": error \"%s\", wanted \"%s...\"\n", s, pol.error, prefix);
        fail();
    }
}

static void test_rfc_example(void **state)
{
    (void)state;
    assert_true(parse(RFC_EXAMPLE));
    assert_string_equal(pol.error, "");
    assert_int_equal(pol.mode, STS_MODE_ENFORCE);
    assert_int_equal(pol.max_age, 604800);
    assert_int_equal(pol.mx_count, 3);
    assert_string_equal(pol.mx[0], "mail.example.com");
    assert_string_equal(pol.mx[1], "*.example.net");
    assert_string_equal(pol.mx[2], "backupmx.example.com");
}

static void test_line_ends(void **state)
{
    (void)state;
    /* CRLF, as the prose says */
    assert_true(parse("version: STSv1\r\nmode: testing\r\nmx: a.example\r\nmax_age: 86400\r\n"));
    assert_int_equal(pol.mode, STS_MODE_TESTING);
    assert_string_equal(pol.mx[0], "a.example");
    /* mixed, and no terminator on the last line */
    assert_true(parse("version: STSv1\nmode: testing\r\nmx: a.example\nmax_age: 86400"));
    assert_int_equal(pol.max_age, 86400);
    /* a lone CR is not a line end, nor a CR before the end of the body */
    assert_fails("version: STSv1\rmode: none\rmax_age: 1\r", "line 1: CR not followed by LF");
    assert_fails("version: STSv1\nmode: none\nmax_age: 1\r", "line 3: CR");
    assert_fails("version: STSv1\r\r\nmode: none\nmax_age: 1\n", "line 1: CR");
    /* blank lines (also with spaces, also CRLF) are skipped */
    assert_true(parse("\nversion: STSv1\n\n \t\nmode: none\r\n\r\nmax_age: 1\n\n\n"));
    assert_int_equal(pol.mode, STS_MODE_NONE);
}

static void test_whitespace(void **state)
{
    (void)state;
    assert_true(parse("version:STSv1\nmode:\tenforce \t\nmx:   a.example  \nmax_age: 5\t\n"));
    assert_int_equal(pol.mode, STS_MODE_ENFORCE);
    assert_string_equal(pol.mx[0], "a.example");
    assert_int_equal(pol.max_age, 5);
    /* no whitespace before the ':' nor at the start of a line */
    assert_fails("version : STSv1\nmode: none\nmax_age: 1\n", "line 1: expected");
    assert_fails("version: STSv1\n mode: none\nmax_age: 1\n", "line 2: expected");
    assert_fails("version: STSv1\n\tmode: none\nmax_age: 1\n", "line 2: expected");
    /* inside a value, whitespace is part of it */
    assert_fails("version: STSv1\nmode: en force\nmax_age: 1\n", "line 2: mode is not");
    assert_fails("version: STSv1\nmode: enforce\nmx: a .example\nmax_age: 1\n",
                 "line 3: invalid mx pattern");
    assert_fails("version: STSv1\nmode: none\nmax_age: 1 2\n", "line 3: max_age is not");
    /* a key with no value */
    assert_fails("version: STSv1\nmode:\nmax_age: 1\n", "line 2: empty value");
    assert_fails("version: STSv1\nmode: \t \nmax_age: 1\n", "line 2: empty value");
    assert_fails("version: STSv1\nmode none\nmax_age: 1\n", "line 2: expected");
}

static void test_modes(void **state)
{
    (void)state;
    assert_true(parse("version: STSv1\nmode: none\nmax_age: 0\n"));
    assert_int_equal(pol.mode, STS_MODE_NONE);
    assert_int_equal(pol.mx_count, 0);
    assert_true(parse("version: STSv1\nmode: none\nmx: A.Example\nmax_age: 0\n"));
    assert_int_equal(pol.mx_count, 1);
    assert_string_equal(pol.mx[0], "a.example");
    /* mx required unless mode is none */
    assert_fails("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx field");
    assert_fails("version: STSv1\nmode: testing\nmax_age: 1\n", "no mx field");
    /* an invalid mx is an error in mode none too */
    assert_fails("version: STSv1\nmode: none\nmx: -x.example\nmax_age: 1\n", "line 3: invalid");
    /* values are case-sensitive */
    assert_fails("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "line 2: mode");
    assert_fails("version: STSv1\nmode: report\nmax_age: 1\n", "line 2: mode");
}

static void test_required_and_version(void **state)
{
    (void)state;
    assert_fails("", "no version field");
    assert_fails("\n\n", "no version field");
    assert_fails("mode: none\nmax_age: 1\n", "no version field");
    assert_fails("version: STSv1\nmax_age: 1\n", "no mode field");
    assert_fails("version: STSv1\nmode: none\n", "no max_age field");
    assert_fails("version: STSv2\nmode: none\nmax_age: 1\n", "line 1: version is not STSv1");
    assert_fails("version: stsv1\nmode: none\nmax_age: 1\n", "line 1: version");
    assert_fails("version: STSv1x\nmode: none\nmax_age: 1\n", "line 1: version");
    /* keys are case-sensitive: "Version" is an unknown key */
    assert_fails("Version: STSv1\nmode: none\nmax_age: 1\n", "no version field");
    /* version need not come first (the ABNF does not order fields) */
    assert_true(parse("mode: enforce\nmx: a.example\nmax_age: 1\nversion: STSv1\n"));
}

static void test_repeated_and_unknown(void **state)
{
    (void)state;
    /* first occurrence wins; later ones are ignored unchecked */
    assert_true(parse("version: STSv1\nmode: testing\nmode: enforce\nmode: bogus\n"
                      "max_age: 10\nmax_age: 99999999999999\nversion: STSv9\nmx: a.example\n"));
    assert_int_equal(pol.mode, STS_MODE_TESTING);
    assert_int_equal(pol.max_age, 10);
    /* ...but a bad first one is an error */
    assert_fails("version: STSv1\nmode: bogus\nmode: none\nmax_age: 1\n", "line 2: mode");
    assert_fails("version: STSv2\nversion: STSv1\nmode: none\nmax_age: 1\n", "line 1: version");
    /* mx repeats; a repeated pattern is kept once (after lower-casing) */
    assert_true(parse("version: STSv1\nmode: enforce\nmx: a.example\nmx: A.EXAMPLE\n"
                      "mx: b.example\nmx: a.example.\nmax_age: 1\n"));
    assert_int_equal(pol.mx_count, 2);
    assert_string_equal(pol.mx[1], "b.example");

    /* unknown keys are ignored, whatever they say */
    assert_true(parse("version: STSv1\nfoo: bar baz\nx-y.z_1: \xc3\xa9t\xc3\xa9\nmode: none\n"
                      "0: zero\nmax_age: 1\n"));
    /* ...but must still be well-formed */
    assert_fails("version: STSv1\nfoo:\nmode: none\nmax_age: 1\n", "line 2: empty value");
    assert_fails("version: STSv1\n_foo: 1\nmode: none\nmax_age: 1\n", "line 2: expected");
    assert_fails("version: STSv1\nfo o: 1\nmode: none\nmax_age: 1\n", "line 2: expected");
    assert_fails("version: STSv1\n: 1\nmode: none\nmax_age: 1\n", "line 2: expected");
    /* key length: 32 characters at most */
    assert_true(parse("version: STSv1\nabcdefghijklmnopqrstuvwxyz012345: 1\nmode: none\n"
                      "max_age: 1\n"));
    assert_fails("version: STSv1\nabcdefghijklmnopqrstuvwxyz0123456: 1\nmode: none\n"
                 "max_age: 1\n", "line 2: key longer than 32");
}

static void test_max_age(void **state)
{
    static const struct {
        const char *value;
        bool ok;
        uint32_t age;
    } cases[] = {
        { "0", true, 0 },
        { "604800", true, 604800 },
        { "31557600", true, 31557600 },
        { "31557601", false, 0 },
        { "0031557600", true, 31557600 },       /* 10 digits */
        { "00031557600", false, 0 },            /* 11 digits */
        { "9999999999", false, 0 },
        { "99999999999999999999999", false, 0 },
        { "-1", false, 0 },
        { "+1", false, 0 },
        { "1e3", false, 0 },
        { "0x10", false, 0 },
        { "1.5", false, 0 },
    };
    char buf[128];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "version: STSv1\nmode: none\nmax_age: %s\n", cases[i].value);
        if (cases[i].ok) {
            assert_true(parse(buf));
            assert_int_equal(pol.max_age, cases[i].age);
        } else {
            assert_fails(buf, "line 3: max_age");
        }
    }
}

static void test_mx_syntax(void **state)
{
    static const char *const good[][2] = {
        { "mail.example.com", "mail.example.com" },
        { "MAIL.Example.COM", "mail.example.com" },
        { "*.example.net", "*.example.net" },
        { "*.EXAMPLE.net", "*.example.net" },
        { "mail.example.com.", "mail.example.com" },    /* one trailing dot dropped */
        { "localhost", "localhost" },
        { "*.com", "*.com" },
        { "a-b.x1.example", "a-b.x1.example" },
        { "1.2.3.4", "1.2.3.4" },
        { "xn--bcher-kva.example", "xn--bcher-kva.example" },
    };
    static const char *const bad[] = {
        "-a.example", "a-.example", "a..example", "a.example..", ".a.example", ".",
        "*", "*.", "**.example", "*a.example", "a*.example", "a.*.example", "*.*.example",
        "a_b.example", "a/b.example", "[192.0.2.1]", "\xc3\xa9t\xc3\xa9.example",
        "a.example:25", "*.-a.example",
    };
    char buf[600];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n",
                 good[i][0]);
        assert_true(parse(buf));
        assert_int_equal(pol.mx_count, 1);
        assert_string_equal(pol.mx[0], good[i][1]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", bad[i]);
        assert_fails(buf, "line 3: invalid mx pattern");
    }
}

/* A valid name of exactly len octets: prefix, then labels of 'a' (63 at
 * most) separated by dots. */
static void make_name(char *out, size_t len, const char *prefix)
{
    size_t o = strlen(prefix);

    memcpy(out, prefix, o);
    while (o < len) {
        size_t left = len - o;
        size_t label = left <= 63 ? left : (left - 2 < 63 ? left - 2 : 63);
        memset(out + o, 'a', label);
        o += label;
        if (o < len)
            out[o++] = '.';
    }
    out[len] = '\0';
}

static void test_mx_lengths(void **state)
{
    char name[400], buf[600];

    (void)state;
    /* a 63-octet label is fine, 64 is not */
    memset(name, 'a', 63);
    memcpy(name + 63, ".example", 9);
    snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
    assert_true(parse(buf));
    memset(name, 'a', 64);
    memcpy(name + 64, ".example", 9);
    snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
    assert_fails(buf, "line 3: invalid mx pattern");

    /* whole patterns: 253 octets (with "*." or without) fine, 254 not */
    static const char *const prefixes[] = { "", "*." };
    for (size_t i = 0; i < 2; i++) {
        for (size_t len = 250; len <= 256; len++) {
            make_name(name, len, prefixes[i]);
            assert_int_equal(strlen(name), len);
            snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
            if (len <= STS_MX_PATTERN_MAX) {
                assert_true(parse(buf));
                assert_string_equal(pol.mx[0], name);
                /* and with a trailing dot: 254 octets in, 253 kept */
                snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s.\nmax_age: 1\n",
                         name);
                assert_true(parse(buf));
                assert_string_equal(pol.mx[0], name);
            } else {
                assert_fails(buf, "line 3: mx pattern longer than 253");
            }
        }
    }
}

static void test_mx_count(void **state)
{
    char buf[4096];
    size_t n;

    (void)state;
    n = (size_t)snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmax_age: 1\n");
    for (int i = 0; i < STS_POLICY_MX_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "mx: mx%d.example\n", i);
    assert_true(sts_policy_parse(buf, n, &pol));
    assert_int_equal(pol.mx_count, STS_POLICY_MX_MAX);
    assert_string_equal(pol.mx[STS_POLICY_MX_MAX - 1], "mx31.example");
    /* a repeat does not count */
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "mx: MX0.example\n");
    assert_true(sts_policy_parse(buf, n, &pol));
    assert_int_equal(pol.mx_count, STS_POLICY_MX_MAX);
    /* one more distinct pattern is too many */
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "mx: *.example\n");
    assert_false(sts_policy_parse(buf, n, &pol));
    assert_string_equal(pol.error, "line 37: more than 32 mx patterns");
    assert_int_equal(pol.mx_count, 0);
}

static void test_hostile_bytes(void **state)
{
    static const char nul[] = "version: STSv1\nmode: none\nmax_age: 1\0\n";
    static const char nul2[] = "version: STSv1\nmode: none\0enforce\nmax_age: 1\n";

    (void)state;
    assert_false(sts_policy_parse(nul, sizeof(nul) - 1, &pol));
    assert_string_equal(pol.error, "line 3: control character");
    assert_false(sts_policy_parse(nul2, sizeof(nul2) - 1, &pol));
    assert_string_equal(pol.error, "line 2: control character");
    assert_fails("version: STSv1\nmode: none\x01\nmax_age: 1\n", "line 2: control");
    assert_fails("version: STSv1\nmode: none\nfoo: a\x7f\nmax_age: 1\n", "line 3: control");
    assert_fails("version: STSv1\nmode: none\nfoo: a\x1b[2J\nmax_age: 1\n", "line 3: control");
    assert_fails("\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 1\n", "line 1: expected");
    /* only the first len octets are read */
    assert_true(sts_policy_parse("version: STSv1\nmode: none\nmax_age: 12\x01garbage", 37, &pol));
    assert_int_equal(pol.max_age, 12);
    /* NULL with no length is an empty body; with a length, an error */
    assert_false(sts_policy_parse(NULL, 0, &pol));
    assert_string_equal(pol.error, "no version field");
    assert_false(sts_policy_parse(NULL, 5, &pol));
}

static void test_body_limit(void **state)
{
    static const char head[] = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: ";
    char *buf = malloc(STS_POLICY_BODY_MAX + 2);

    (void)state;
    assert_non_null(buf);
    memcpy(buf, head, sizeof(head) - 1);
    memset(buf + sizeof(head) - 1, 'y', STS_POLICY_BODY_MAX + 2 - (sizeof(head) - 1));
    buf[STS_POLICY_BODY_MAX - 1] = '\n';
    assert_true(sts_policy_parse(buf, STS_POLICY_BODY_MAX, &pol));
    assert_int_equal(pol.mx_count, 1);
    assert_false(sts_policy_parse(buf, STS_POLICY_BODY_MAX + 1, &pol));
    assert_string_equal(pol.error, "policy longer than 65536 octets");
    free(buf);
}

static void test_error_is_one_printable_line(void **state)
{
    (void)state;
    assert_fails("version: STSv1\nmode: none\nmax_age: 1\nmx: \xff\xfe\n", "line 4: invalid");
    for (const char *p = pol.error; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

/* ---- RFC 8461 4.1 ---- */

static void test_match_wildcard(void **state)
{
    (void)state;
    assert_true(parse("version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 1\n"));
    assert_true(sts_mx_matches(&pol, "mx.example.com"));
    assert_true(sts_mx_matches(&pol, "MX.Example.COM"));
    assert_true(sts_mx_matches(&pol, "mx.example.com."));
    assert_true(sts_mx_matches(&pol, "a-1.example.com"));
    assert_false(sts_mx_matches(&pol, "example.com"));
    assert_false(sts_mx_matches(&pol, "example.com."));
    assert_false(sts_mx_matches(&pol, "a.b.example.com"));
    assert_false(sts_mx_matches(&pol, ".example.com"));
    assert_false(sts_mx_matches(&pol, "*.example.com"));
    assert_false(sts_mx_matches(&pol, "mx.example.com.."));
    assert_false(sts_mx_matches(&pol, "mx.example.co"));
    assert_false(sts_mx_matches(&pol, "mx.example.com.evil"));
    assert_false(sts_mx_matches(&pol, "mxexample.com"));
    assert_false(sts_mx_matches(&pol, "mx_1.example.com"));
    assert_false(sts_mx_matches(&pol, "mx .example.com"));
    assert_false(sts_mx_matches(&pol, "-mx.example.com"));
    assert_false(sts_mx_matches(&pol, "xexample.com"));
    assert_false(sts_mx_matches(&pol, ""));
    assert_false(sts_mx_matches(&pol, "."));
    assert_false(sts_mx_matches(&pol, NULL));
    assert_false(sts_mx_matches(NULL, "mx.example.com"));
}

static void test_match_exact(void **state)
{
    char host[300];

    (void)state;
    assert_true(parse(RFC_EXAMPLE));
    assert_true(sts_mx_matches(&pol, "mail.example.com"));
    assert_true(sts_mx_matches(&pol, "Mail.Example.Com."));
    assert_true(sts_mx_matches(&pol, "backupmx.example.com"));
    assert_true(sts_mx_matches(&pol, "anything.example.net"));
    assert_false(sts_mx_matches(&pol, "example.net"));
    assert_false(sts_mx_matches(&pol, "x.mail.example.com"));
    assert_false(sts_mx_matches(&pol, "ail.example.com"));
    assert_false(sts_mx_matches(&pol, "mail.example.com.example.net.x"));
    assert_false(sts_mx_matches(&pol, "mail.example"));
    assert_false(sts_mx_matches(&pol, "a.b.example.net"));

    /* a wildcard beside the exact parent name */
    assert_true(parse("version: STSv1\nmode: enforce\nmx: *.example.com\nmx: example.com\n"
                      "max_age: 1\n"));
    assert_true(sts_mx_matches(&pol, "example.com"));
    assert_true(sts_mx_matches(&pol, "mx.example.com"));
    assert_false(sts_mx_matches(&pol, "a.b.example.com"));

    /* the longest host name matches; longer ones match nothing */
    make_name(host, 253, "");
    char buf[600];
    snprintf(buf, sizeof(buf), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", host);
    assert_true(parse(buf));
    assert_true(sts_mx_matches(&pol, host));
    host[253] = '.';
    host[254] = '\0';
    assert_true(sts_mx_matches(&pol, host));
    host[254] = 'x';
    host[255] = '\0';
    assert_false(sts_mx_matches(&pol, host));

    /* mode none: patterns still match; applying the mode is the caller's job */
    assert_true(parse("version: STSv1\nmode: none\nmax_age: 1\n"));
    assert_false(sts_mx_matches(&pol, "mail.example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_required_and_version),
        cmocka_unit_test(test_repeated_and_unknown),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_mx_syntax),
        cmocka_unit_test(test_mx_lengths),
        cmocka_unit_test(test_mx_count),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_error_is_one_printable_line),
        cmocka_unit_test(test_match_wildcard),
        cmocka_unit_test(test_match_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

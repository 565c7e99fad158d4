/*
 * test_sts_txt.c - unit tests for delivery/sts_txt.c: the "_mta-sts" TXT
 * record of RFC 8461 3.1 and the "_smtp._tls" TLS-RPT record of RFC 8460
 * 3 (the RFC examples, which records count as this kind, separators and
 * whitespace, id and URI syntax, unknown and repeated fields, NUL and
 * other hostile bytes, the length and count limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/sts_txt.h"

static struct sts_txt sts;
static struct tlsrpt_txt rpt;

static enum sts_txt_result sts_parse(const char *s)
{
    return sts_txt_parse(s, strlen(s), &sts);
}

static enum sts_txt_result rpt_parse(const char *s)
{
    return tlsrpt_txt_parse(s, strlen(s), &rpt);
}

static void expect_sts(const char *s, enum sts_txt_result want, const char *id)
{
    enum sts_txt_result got = sts_parse(s);

    if (got != want) {
        fprintf(stderr, "\"%s\": %d (%s), wanted %d\n", s, got, sts.error, want);
        fail();
    }
    if (want == STS_TXT_OK) {
        assert_string_equal(sts.id, id);
        assert_string_equal(sts.error, "");
    } else {
        assert_string_equal(sts.id, "");
        assert_true(sts.error[0] != '\0');
    }
}

static void expect_rpt(const char *s, enum sts_txt_result want, size_t count, size_t ignored)
{
    enum sts_txt_result got = rpt_parse(s);

    if (got != want) {
        fprintf(stderr, "\"%s\": %d (%s), wanted %d\n", s, got, rpt.error, want);
        fail();
    }
    assert_int_equal(rpt.rua_count, count);
    assert_int_equal(rpt.rua_ignored, ignored);
    if (want == STS_TXT_OK)
        assert_string_equal(rpt.error, "");
    else
        assert_true(rpt.error[0] != '\0');
}

/* ---- _mta-sts ---- */

static void test_sts_rfc_example(void **state)
{
    (void)state;
    /* RFC 8461 3.1 */
    expect_sts("v=STSv1; id=20160831085700Z;", STS_TXT_OK, "20160831085700Z");
    expect_sts("v=STSv1; id=20160831085700Z", STS_TXT_OK, "20160831085700Z");
}

static void test_sts_separators(void **state)
{
    (void)state;
    expect_sts("v=STSv1;id=abc", STS_TXT_OK, "abc");
    expect_sts("v=STSv1 ;id=abc", STS_TXT_OK, "abc");
    expect_sts("v=STSv1\t; \tid=abc \t;\t ", STS_TXT_OK, "abc");
    expect_sts("v=STSv1; id=abc; ", STS_TXT_OK, "abc");
    /* whitespace only as part of a separator */
    expect_sts("v=STSv1; id=abc ", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1 id=abc", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id= abc", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id =abc", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=abc;;", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1;; id=abc", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; ; id=abc", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=abc; x", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; =abc", STS_TXT_INVALID, NULL);
}

static void test_sts_classification(void **state)
{
    (void)state;
    /* not an MTA-STS record: discard, do not count */
    expect_sts("", STS_TXT_OTHER, NULL);
    expect_sts("v=spf1 -all", STS_TXT_OTHER, NULL);
    expect_sts("v=STSv10; id=abc", STS_TXT_OTHER, NULL);
    expect_sts("v=STSv2; id=abc", STS_TXT_OTHER, NULL);
    expect_sts("v=stsv1; id=abc", STS_TXT_OTHER, NULL);
    expect_sts(" v=STSv1; id=abc", STS_TXT_OTHER, NULL);
    expect_sts("id=abc; v=STSv1", STS_TXT_OTHER, NULL);
    expect_sts("v=STSv", STS_TXT_OTHER, NULL);
    assert_int_equal(sts_txt_parse(NULL, 0, &sts), STS_TXT_OTHER);
    /* an MTA-STS record, but invalid */
    expect_sts("v=STSv1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1;", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1 ", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; foo=bar", STS_TXT_INVALID, NULL);
}

static void test_sts_id(void **state)
{
    char buf[128];

    (void)state;
    expect_sts("v=STSv1; id=0", STS_TXT_OK, "0");
    expect_sts("v=STSv1; id=abcdefghijklmnopqrstuvwxyzABCDEF", STS_TXT_OK,
               "abcdefghijklmnopqrstuvwxyzABCDEF");                      /* 32 */
    expect_sts("v=STSv1; id=abcdefghijklmnopqrstuvwxyzABCDEFG", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=a-b", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=a.b", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=a=b", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=\"abc\"", STS_TXT_INVALID, NULL);
    /* field names are case-sensitive: "ID" is an unknown field */
    expect_sts("v=STSv1; ID=abc", STS_TXT_INVALID, NULL);
    assert_string_equal(sts.error, "no id field");
    /* the first id counts; later ones are ignored unchecked */
    expect_sts("v=STSv1; id=first; id=second", STS_TXT_OK, "first");
    expect_sts("v=STSv1; id=first; id=not-valid!", STS_TXT_OK, "first");
    expect_sts("v=STSv1; id=not-valid; id=second", STS_TXT_INVALID, NULL);
    /* order of other fields does not matter */
    snprintf(buf, sizeof(buf), "v=STSv1; foo=bar; id=x1; v=STSv2");
    expect_sts(buf, STS_TXT_OK, "x1");
}

static void test_sts_unknown_fields(void **state)
{
    (void)state;
    expect_sts("v=STSv1; id=1; ext=!\"#$%&'()*+,-./0123456789:<>?@AZaz[\\]^_`{|}~",
               STS_TXT_OK, "1");
    expect_sts("v=STSv1; a_b-c.d=1; id=1", STS_TXT_OK, "1");
    expect_sts("v=STSv1; 9=1; id=1", STS_TXT_OK, "1");
    expect_sts("v=STSv1; abcdefghijklmnopqrstuvwxyz012345=1; id=1", STS_TXT_OK, "1");
    expect_sts("v=STSv1; abcdefghijklmnopqrstuvwxyz0123456=1; id=1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; _a=1; id=1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; ext=; id=1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; ext=a b; id=1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; ext=a=b; id=1", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; ext=a\tb; id=1", STS_TXT_INVALID, NULL);
}

static void test_sts_hostile_bytes(void **state)
{
    static const char nul_end[] = "v=STSv1; id=abc\0";
    static const char nul_mid[] = "v=STSv1; id=ab\0c";
    static const char nul_ext[] = "v=STSv1; id=abc; x=\0";
    static const char nul_ver[] = "v=STSv1\0; id=abc";

    (void)state;
    assert_int_equal(sts_txt_parse(nul_end, sizeof(nul_end) - 1, &sts), STS_TXT_INVALID);
    assert_string_equal(sts.error, "NUL byte in record");
    assert_string_equal(sts.id, "");
    assert_int_equal(sts_txt_parse(nul_mid, sizeof(nul_mid) - 1, &sts), STS_TXT_INVALID);
    assert_int_equal(sts_txt_parse(nul_ext, sizeof(nul_ext) - 1, &sts), STS_TXT_INVALID);
    /* right after the version it is not "v=STSv1" followed by a separator */
    assert_int_equal(sts_txt_parse(nul_ver, sizeof(nul_ver) - 1, &sts), STS_TXT_OTHER);
    expect_sts("v=STSv1; id=abc\r\n", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=abc; x=\x7f", STS_TXT_INVALID, NULL);
    expect_sts("v=STSv1; id=abc; x=\xc3\xa9", STS_TXT_INVALID, NULL);
    assert_string_equal(sts.error, "non-ASCII octet in record");
    /* only len octets are read */
    assert_int_equal(sts_txt_parse("v=STSv1; id=abc\xff", 15, &sts), STS_TXT_OK);
    assert_string_equal(sts.id, "abc");
}

static void test_sts_length(void **state)
{
    char *buf = malloc(STS_TXT_RECORD_MAX + 1);
    static const char head[] = "v=STSv1; id=abc; x=";

    (void)state;
    assert_non_null(buf);
    memcpy(buf, head, sizeof(head) - 1);
    memset(buf + sizeof(head) - 1, 'y', STS_TXT_RECORD_MAX + 1 - (sizeof(head) - 1));
    assert_int_equal(sts_txt_parse(buf, STS_TXT_RECORD_MAX, &sts), STS_TXT_OK);
    assert_int_equal(sts_txt_parse(buf, STS_TXT_RECORD_MAX + 1, &sts), STS_TXT_INVALID);
    assert_string_equal(sts.error, "record longer than 8192 octets");
    free(buf);
}

/* ---- _smtp._tls ---- */

static void test_rpt_rfc_examples(void **state)
{
    (void)state;
    /* RFC 8460 3.1 */
    expect_rpt("v=TLSRPTv1;rua=mailto:reports@example.com", STS_TXT_OK, 1, 0);
    assert_int_equal(rpt.rua[0].scheme, TLSRPT_MAILTO);
    assert_string_equal(rpt.rua[0].uri, "mailto:reports@example.com");
    expect_rpt("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", STS_TXT_OK, 1, 0);
    assert_int_equal(rpt.rua[0].scheme, TLSRPT_HTTPS);
    assert_string_equal(rpt.rua[0].uri, "https://reporting.example.com/v1/tlsrpt");
}

static void test_rpt_list(void **state)
{
    (void)state;
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/x", STS_TXT_OK, 2, 0);
    assert_string_equal(rpt.rua[0].uri, "mailto:a@example.com");
    assert_string_equal(rpt.rua[1].uri, "https://r.example/x");
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com \t,\t https://r.example/x ;", STS_TXT_OK,
               2, 0);
    assert_string_equal(rpt.rua[1].uri, "https://r.example/x");
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com,", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com, ", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=,mailto:a@example.com", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com,,https://r.example", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com https://r.example", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=", STS_TXT_INVALID, 0, 0);
}

static void test_rpt_schemes(void **state)
{
    (void)state;
    /* scheme names are case-insensitive; the URI is kept as published */
    expect_rpt("v=TLSRPTv1; rua=MAILTO:A@Example.COM,HTTPS://R.example", STS_TXT_OK, 2, 0);
    assert_string_equal(rpt.rua[0].uri, "MAILTO:A@Example.COM");
    assert_int_equal(rpt.rua[1].scheme, TLSRPT_HTTPS);
    /* valid URIs that cannot take reports are ignored, counted */
    expect_rpt("v=TLSRPTv1; rua=http://r.example,mailto:a@b.example", STS_TXT_OK, 1, 1);
    assert_string_equal(rpt.rua[0].uri, "mailto:a@b.example");
    expect_rpt("v=TLSRPTv1; rua=ftp://r.example,mailto:nobody,mailto:@x,mailto:x@,"
               "mailto:?to=a@b,https:r.example,https:///x,https://,mailto:a@b",
               STS_TXT_OK, 1, 8);
    /* mailto headers after the address are fine */
    expect_rpt("v=TLSRPTv1; rua=mailto:a@b.example?subject=tlsrpt", STS_TXT_OK, 1, 0);
    /* nothing left to report to: invalid */
    expect_rpt("v=TLSRPTv1; rua=http://r.example", STS_TXT_INVALID, 0, 0);
    assert_string_equal(rpt.error, "no mailto: or https: URI in rua");
    /* not URIs at all: invalid */
    expect_rpt("v=TLSRPTv1; rua=reports@example.com", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=1http://x", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=://x", STS_TXT_INVALID, 0, 0);
}

static void test_rpt_uri_chars(void **state)
{
    (void)state;
    expect_rpt("v=TLSRPTv1; rua=https://r.example/a%2Cb%21c%3Bd?x=1&y=(2)*+$'~#f",
               STS_TXT_OK, 1, 0);
    expect_rpt("v=TLSRPTv1; rua=https://[2001:db8::1]:8443/r", STS_TXT_OK, 1, 0);
    /* ',', '!' and ';' must be %-encoded */
    expect_rpt("v=TLSRPTv1; rua=mailto:a!b@example.com", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=mailto:a@example.com;x", STS_TXT_INVALID, 0, 0);
    /* bad escapes and characters */
    expect_rpt("v=TLSRPTv1; rua=https://r.example/%2", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/%zz", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/<x>", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/\"x\"", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/a\\b", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/{x}", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; rua=https://r.example/\xc3\xa9", STS_TXT_INVALID, 0, 0);
}

static void test_rpt_fields(void **state)
{
    (void)state;
    expect_rpt("v=TLSRPTv1", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1;", STS_TXT_INVALID, 0, 0);
    assert_string_equal(rpt.error, "no rua field");
    expect_rpt("v=TLSRPTv1; RUA=mailto:a@b", STS_TXT_INVALID, 0, 0);
    expect_rpt("v=TLSRPTv1; ext=1; rua=mailto:a@b; x.y=z", STS_TXT_OK, 1, 0);
    expect_rpt("v=TLSRPTv1; ext=a b; rua=mailto:a@b", STS_TXT_INVALID, 0, 0);
    /* the first rua counts; later ones are ignored unchecked */
    expect_rpt("v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d,mailto:e@f", STS_TXT_OK, 1, 0);
    assert_string_equal(rpt.rua[0].uri, "mailto:a@b");
    expect_rpt("v=TLSRPTv1; rua=mailto:a@b; rua=bogus", STS_TXT_OK, 1, 0);
    expect_rpt("v=TLSRPTv1; rua=bogus; rua=mailto:a@b", STS_TXT_INVALID, 0, 0);
    /* classification */
    expect_rpt("v=TLSRPTv2; rua=mailto:a@b", STS_TXT_OTHER, 0, 0);
    expect_rpt("v=TLSRPTv10; rua=mailto:a@b", STS_TXT_OTHER, 0, 0);
    expect_rpt("v=STSv1; id=1", STS_TXT_OTHER, 0, 0);
    expect_rpt("", STS_TXT_OTHER, 0, 0);
    expect_rpt("v=TLSRPTv1 ;rua=mailto:a@b", STS_TXT_OK, 1, 0);
    /* hostile bytes */
    static const char nul[] = "v=TLSRPTv1; rua=mailto:a@b\0.evil";
    assert_int_equal(tlsrpt_txt_parse(nul, sizeof(nul) - 1, &rpt), STS_TXT_INVALID);
    assert_string_equal(rpt.error, "NUL byte in record");
    assert_int_equal(rpt.rua_count, 0);
    expect_rpt("v=TLSRPTv1; rua=mailto:a@b\n", STS_TXT_INVALID, 0, 0);
}

static void test_rpt_limits(void **state)
{
    char buf[STS_TXT_RECORD_MAX + 64];
    size_t n;

    (void)state;
    /* TLSRPT_RUA_MAX kept, the rest counted */
    n = (size_t)snprintf(buf, sizeof(buf), "v=TLSRPTv1; rua=");
    for (int i = 0; i < TLSRPT_RUA_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%smailto:r%d@example.com",
                              i ? "," : "", i);
    assert_int_equal(tlsrpt_txt_parse(buf, n, &rpt), STS_TXT_OK);
    assert_int_equal(rpt.rua_count, TLSRPT_RUA_MAX);
    assert_int_equal(rpt.rua_ignored, 0);
    assert_string_equal(rpt.rua[TLSRPT_RUA_MAX - 1].uri, "mailto:r7@example.com");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",https://extra.example,mailto:x@y");
    assert_int_equal(tlsrpt_txt_parse(buf, n, &rpt), STS_TXT_OK);
    assert_int_equal(rpt.rua_count, TLSRPT_RUA_MAX);
    assert_int_equal(rpt.rua_ignored, 2);

    /* a URI of TLSRPT_URI_MAX octets is kept, one more is ignored */
    for (size_t len = TLSRPT_URI_MAX - 1; len <= TLSRPT_URI_MAX + 1; len++) {
        n = (size_t)snprintf(buf, sizeof(buf), "v=TLSRPTv1; rua=mailto:a@b.example,https://r/");
        memset(buf + n, 'p', len - strlen("https://r/"));
        n += len - strlen("https://r/");
        assert_int_equal(tlsrpt_txt_parse(buf, n, &rpt), STS_TXT_OK);
        if (len <= TLSRPT_URI_MAX) {
            assert_int_equal(rpt.rua_count, 2);
            assert_int_equal(strlen(rpt.rua[1].uri), len);
        } else {
            assert_int_equal(rpt.rua_count, 1);
            assert_int_equal(rpt.rua_ignored, 1);
        }
    }

    /* the record length limit */
    n = (size_t)snprintf(buf, sizeof(buf), "v=TLSRPTv1; rua=mailto:a@b; x=");
    memset(buf + n, 'y', sizeof(buf) - n);
    assert_int_equal(tlsrpt_txt_parse(buf, STS_TXT_RECORD_MAX, &rpt), STS_TXT_OK);
    assert_int_equal(tlsrpt_txt_parse(buf, STS_TXT_RECORD_MAX + 1, &rpt), STS_TXT_INVALID);
    assert_int_equal(rpt.rua_count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sts_rfc_example),
        cmocka_unit_test(test_sts_separators),
        cmocka_unit_test(test_sts_classification),
        cmocka_unit_test(test_sts_id),
        cmocka_unit_test(test_sts_unknown_fields),
        cmocka_unit_test(test_sts_hostile_bytes),
        cmocka_unit_test(test_sts_length),
        cmocka_unit_test(test_rpt_rfc_examples),
        cmocka_unit_test(test_rpt_list),
        cmocka_unit_test(test_rpt_schemes),
        cmocka_unit_test(test_rpt_uri_chars),
        cmocka_unit_test(test_rpt_fields),
        cmocka_unit_test(test_rpt_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

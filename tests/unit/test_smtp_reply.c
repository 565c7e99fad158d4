/*
 * test_smtp_reply.c - unit tests for delivery/smtp_reply.c: the SMTP
 * client's reply parser (multi-line, mixed codes, bounds, input split
 * anywhere), enhanced status codes, EHLO capabilities (SIZE parsing),
 * reply formatting, and the dot-stuffing encoder checked against a
 * byte-by-byte model with its input split at every position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/smtp_reply.h"

#define LIT(s) (s), (sizeof(s) - 1)

static struct smtp_reply reply;     /* ~51 KB: not on the stack */

/* Feed buf to a fresh parser; returns the final status and the bytes used. */
static enum smtp_reply_status parse_all(const char *buf, size_t len, size_t *used)
{
    enum smtp_reply_status st;
    size_t off = 0, n = 0;

    smtp_reply_init(&reply);
    do {
        st = smtp_reply_parse(&reply, buf + off, len - off, &n);
        off += n;
    } while (st == REPLY_CONTINUE);
    if (used)
        *used = off;
    return st;
}

static void test_single_line(void **state)
{
    size_t used;

    (void)state;
    assert_int_equal(parse_all(LIT("250 2.1.0 Ok\r\nNEXT"), &used), REPLY_DONE);
    assert_int_equal(used, 14);
    assert_int_equal(reply.code, 250);
    assert_int_equal(reply.lines, 1);
    assert_string_equal(reply.text, "2.1.0 Ok");
    assert_string_equal(reply.dsn, "2.1.0");
}

static void test_bare_code_and_lf(void **state)
{
    (void)state;
    assert_int_equal(parse_all(LIT("354\r\n"), NULL), REPLY_DONE);
    assert_int_equal(reply.code, 354);
    assert_string_equal(reply.text, "");
    /* A bare LF ends a line too (lenient), and the CR is not text. */
    assert_int_equal(parse_all(LIT("220 mx ready\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.text, "mx ready");
    assert_string_equal(reply.dsn, "2.0.0");
}

static void test_multiline(void **state)
{
    static const char ehlo[] = "250-mx.example.test Hello\r\n250-PIPELINING\r\n"
                               "250-SIZE 10240000\r\n250 8BITMIME\r\n";
    size_t pos = 0, len, used;
    const char *line;

    (void)state;
    assert_int_equal(parse_all(LIT(ehlo), &used), REPLY_DONE);
    assert_int_equal(used, sizeof(ehlo) - 1);
    assert_int_equal(reply.code, 250);
    assert_int_equal(reply.lines, 4);
    assert_true(smtp_reply_next_line(&reply, &pos, &line, &len));
    assert_int_equal(len, strlen("mx.example.test Hello"));
    assert_memory_equal(line, "mx.example.test Hello", len);
    assert_true(smtp_reply_next_line(&reply, &pos, &line, &len));
    assert_memory_equal(line, "PIPELINING", len);
    assert_true(smtp_reply_next_line(&reply, &pos, &line, &len));
    assert_true(smtp_reply_next_line(&reply, &pos, &line, &len));
    assert_int_equal(len, 8);
    assert_memory_equal(line, "8BITMIME", 8);
    assert_false(smtp_reply_next_line(&reply, &pos, &line, &len));
}

static void test_need_more(void **state)
{
    size_t used = 99;

    (void)state;
    smtp_reply_init(&reply);
    assert_int_equal(smtp_reply_parse(&reply, LIT("250-first\r\n250 sec"), &used),
                     REPLY_CONTINUE);
    assert_int_equal(used, 11);
    assert_int_equal(smtp_reply_parse(&reply, LIT("250 sec"), &used), REPLY_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(smtp_reply_parse(&reply, LIT(""), &used), REPLY_NEED_MORE);
    assert_int_equal(smtp_reply_parse(&reply, LIT("250 second\r\n"), &used), REPLY_DONE);
    assert_string_equal(reply.text, "first\nsecond");
}

static void test_mixed_codes(void **state)
{
    (void)state;
    assert_int_equal(parse_all(LIT("250-one\r\n251 two\r\n"), NULL), REPLY_ERR_MIXED);
    assert_int_equal(parse_all(LIT("550-one\r\n450 two\r\n"), NULL), REPLY_ERR_MIXED);
}

static void test_syntax(void **state)
{
    (void)state;
    assert_int_equal(parse_all(LIT("199 too low\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("600 too high\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("25 short\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("25x bad\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("250_bad\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("hello\r\n"), NULL), REPLY_ERR_SYNTAX);
    assert_int_equal(parse_all(LIT("200 ok\r\n"), NULL), REPLY_DONE);
    assert_int_equal(parse_all(LIT("599 ok\r\n"), NULL), REPLY_DONE);
}

static void test_too_long(void **state)
{
    char buf[SMTP_REPLY_LINE_MAX + 16];
    size_t used;

    (void)state;
    /* Exactly 512 octets with CRLF: fine. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "250 ", 4);
    memcpy(buf + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
    assert_int_equal(parse_all(buf, SMTP_REPLY_LINE_MAX, &used), REPLY_DONE);
    assert_int_equal(used, SMTP_REPLY_LINE_MAX);
    assert_int_equal(strlen(reply.text), SMTP_REPLY_LINE_MAX - 6);
    /* 513: too long, even before the line end arrives. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "250 ", 4);
    memcpy(buf + SMTP_REPLY_LINE_MAX - 1, "\r\n", 2);
    assert_int_equal(parse_all(buf, SMTP_REPLY_LINE_MAX + 1, NULL), REPLY_ERR_TOO_LONG);
    assert_int_equal(parse_all(buf, SMTP_REPLY_LINE_MAX, NULL), REPLY_ERR_TOO_LONG);
    assert_int_equal(parse_all(buf, SMTP_REPLY_LINE_MAX - 1, NULL), REPLY_NEED_MORE);
}

static void test_too_many_lines(void **state)
{
    size_t cap = (SMTP_REPLY_LINES_MAX + 2) * 16, len = 0;
    char *buf = malloc(cap);

    (void)state;
    assert_non_null(buf);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
        len += (size_t)snprintf(buf + len, cap - len, "250-line %d\r\n", i);
    len += (size_t)snprintf(buf + len, cap - len, "250 last\r\n");
    assert_int_equal(parse_all(buf, len, NULL), REPLY_DONE);
    assert_int_equal(reply.lines, SMTP_REPLY_LINES_MAX);
    /* One more continuation line: 101 lines. */
    len -= strlen("250 last\r\n");
    len += (size_t)snprintf(buf + len, cap - len, "250-extra\r\n250 last\r\n");
    assert_int_equal(parse_all(buf, len, NULL), REPLY_ERR_TOO_MANY);
    free(buf);
}

static void test_max_reply_fits(void **state)
{
    /* 100 lines of maximal length: the text buffer must hold them all. */
    size_t cap = SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINE_MAX, len = 0;
    char *buf = malloc(cap);

    (void)state;
    assert_non_null(buf);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++) {
        memcpy(buf + len, i == SMTP_REPLY_LINES_MAX - 1 ? "250 " : "250-", 4);
        memset(buf + len + 4, 'x', SMTP_REPLY_LINE_MAX - 6);
        memcpy(buf + len + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
        len += SMTP_REPLY_LINE_MAX;
    }
    assert_int_equal(parse_all(buf, len, NULL), REPLY_DONE);
    assert_int_equal(reply.text_len, SMTP_REPLY_LINES_MAX * (SMTP_REPLY_LINE_MAX - 6) +
                                         SMTP_REPLY_LINES_MAX - 1);
    assert_int_equal(strlen(reply.text), reply.text_len);
    free(buf);
}

static void test_split_anywhere(void **state)
{
    static const char in[] = "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n";
    size_t n = sizeof(in) - 1;

    (void)state;
    /* Deliver the bytes in two pieces split at every position. */
    for (size_t cut = 0; cut <= n; cut++) {
        char buf[sizeof(in)];
        size_t have = cut, off = 0, used;
        enum smtp_reply_status st;

        memcpy(buf, in, cut);
        smtp_reply_init(&reply);
        for (;;) {
            st = smtp_reply_parse(&reply, buf + off, have - off, &used);
            off += used;
            if (st == REPLY_NEED_MORE && have < n) {
                memcpy(buf + have, in + have, n - have);
                have = n;
                continue;
            }
            if (st != REPLY_CONTINUE)
                break;
        }
        assert_int_equal(st, REPLY_DONE);
        assert_int_equal(off, n);
        assert_string_equal(reply.text, "5.1.1 first\n5.1.1 second\n5.1.1 third");
        assert_string_equal(reply.dsn, "5.1.1");
    }
}

static void test_enhanced_code(void **state)
{
    char dsn[16] = "unset";

    (void)state;
    assert_int_equal(smtp_enhanced_code(LIT("5.1.1 user unknown"), 5, dsn, sizeof(dsn)), 5);
    assert_string_equal(dsn, "5.1.1");
    assert_int_equal(smtp_enhanced_code(LIT("4.7.123"), 4, dsn, sizeof(dsn)), 7);
    assert_string_equal(dsn, "4.7.123");
    assert_int_equal(smtp_enhanced_code(LIT("2.999.999 x"), 2, dsn, sizeof(dsn)), 9);
    snprintf(dsn, sizeof(dsn), "unset");
    /* class must match the reply code */
    assert_int_equal(smtp_enhanced_code(LIT("4.1.1 x"), 5, dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_enhanced_code(LIT("5.1 x"), 5, dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_enhanced_code(LIT("5.1.1x"), 5, dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_enhanced_code(LIT("5.1234.1 x"), 5, dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_enhanced_code(LIT("5..1 x"), 5, dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_enhanced_code(LIT("3.0.0 x"), 3, dsn, sizeof(dsn)), 0);
    assert_string_equal(dsn, "unset");

    /* In replies: extracted from the first line, else synthesized. */
    assert_int_equal(parse_all(LIT("550 5.7.1 relaying denied\r\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.dsn, "5.7.1");
    assert_int_equal(parse_all(LIT("550 relaying denied\r\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.dsn, "5.0.0");
    assert_int_equal(parse_all(LIT("451 4.3.0 try later\r\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.dsn, "4.3.0");
    assert_int_equal(parse_all(LIT("451 5.3.0 mismatched class\r\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.dsn, "4.0.0");
    assert_int_equal(parse_all(LIT("250 ok\r\n"), NULL), REPLY_DONE);
    assert_string_equal(reply.dsn, "2.0.0");
}

static void test_format(void **state)
{
    char out[512], tiny[8];

    (void)state;
    assert_int_equal(parse_all(LIT("550-5.1.1 no such\r\n550 5.1.1 user\r\n"), NULL), REPLY_DONE);
    smtp_reply_format(&reply, out, sizeof(out));
    assert_string_equal(out, "550 5.1.1 no such 5.1.1 user");
    smtp_reply_format(&reply, tiny, sizeof(tiny));
    assert_string_equal(tiny, "550 5.1");
    assert_int_equal(parse_all(LIT("421\r\n"), NULL), REPLY_DONE);
    smtp_reply_format(&reply, out, sizeof(out));
    assert_string_equal(out, "421");
    assert_int_equal(parse_all(LIT("550 bad\x01\x7f text\r\n"), NULL), REPLY_DONE);
    smtp_reply_format(&reply, out, sizeof(out));
    assert_string_equal(out, "550 bad?? text");
}

static void test_caps(void **state)
{
    struct smtp_caps caps;

    (void)state;
    assert_int_equal(parse_all(LIT("250-mx.example.test SIZE PIPELINING\r\n"
                                   "250-pipelining\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
                                   "250-SMTPUTF8\r\n250-STARTTLS\r\n250-CHUNKING\r\n"
                                   "250-DSN\r\n250-AUTH PLAIN LOGIN\r\n250 REQUIRETLS\r\n"),
                             NULL), REPLY_DONE);
    smtp_caps_parse(&caps, &reply);
    assert_true(caps.esmtp);
    assert_true(caps.pipelining);
    assert_true(caps.size);
    assert_int_equal(caps.size_max, 10240000);
    assert_true(caps.eightbitmime);
    assert_true(caps.smtputf8);
    assert_true(caps.starttls);
    assert_true(caps.chunking);
    assert_true(caps.dsn);
    assert_true(caps.requiretls);

    /* The first line is the server's name, never a capability. */
    assert_int_equal(parse_all(LIT("250-STARTTLS\r\n250 8BITMIME\r\n"), NULL), REPLY_DONE);
    smtp_caps_parse(&caps, &reply);
    assert_false(caps.starttls);
    assert_true(caps.eightbitmime);
    assert_false(caps.pipelining);
    assert_false(caps.size);
}

static void test_caps_size(void **state)
{
    struct smtp_caps caps;

    (void)state;
    memset(&caps, 0, sizeof(caps));
    assert_true(smtp_caps_line(&caps, LIT("SIZE 1000")));
    assert_true(caps.size);
    assert_int_equal(caps.size_max, 1000);
    assert_true(smtp_caps_line(&caps, LIT("size")));
    assert_int_equal(caps.size_max, 0);
    assert_true(smtp_caps_line(&caps, LIT("SIZE 0")));
    assert_int_equal(caps.size_max, 0);
    assert_true(smtp_caps_line(&caps, LIT("SIZE 18446744073709551615")));
    assert_int_equal(caps.size_max, UINT64_MAX);
    assert_true(smtp_caps_line(&caps, LIT("SIZE 18446744073709551616")));
    assert_int_equal(caps.size_max, 0);     /* overflow: no usable limit */
    assert_true(smtp_caps_line(&caps, LIT("SIZE 12ab")));
    assert_int_equal(caps.size_max, 0);
    assert_true(smtp_caps_line(&caps, LIT("SIZE 52428800 ")));
    assert_int_equal(caps.size_max, 52428800);
    assert_false(smtp_caps_line(&caps, LIT("SIZEX 5")));
    assert_false(smtp_caps_line(&caps, LIT("X-SIZE")));
    assert_false(smtp_caps_line(&caps, LIT("")));
}

/* RFC 4954 AUTH mechanisms, and the pre-standard "AUTH=" form. */
static void test_caps_auth(void **state)
{
    struct smtp_caps caps;

    (void)state;
    memset(&caps, 0, sizeof(caps));
    assert_true(smtp_caps_line(&caps, LIT("AUTH CRAM-MD5 LOGIN")));
    assert_true(caps.auth_login);
    assert_false(caps.auth_plain);
    assert_true(smtp_caps_line(&caps, LIT("auth  plain  ")));
    assert_true(caps.auth_plain);
    memset(&caps, 0, sizeof(caps));
    assert_true(smtp_caps_line(&caps, LIT("AUTH=PLAIN LOGIN")));
    assert_true(caps.auth_plain && caps.auth_login);
    memset(&caps, 0, sizeof(caps));
    assert_true(smtp_caps_line(&caps, LIT("AUTH PLAINX XLOGIN SCRAM-SHA-256")));
    assert_false(caps.auth_plain || caps.auth_login);
    assert_true(smtp_caps_line(&caps, LIT("AUTH")));
    assert_false(caps.auth_plain || caps.auth_login);
    assert_false(smtp_caps_line(&caps, LIT("AUTHX PLAIN")));
    assert_false(caps.auth_plain);
}

/* The model: double every '.' that follows an LF or starts the data. */
static size_t model_stuff(const char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
            out[o++] = '.';
        out[o++] = in[i];
    }
    return o;
}

static size_t stuff_split(const char *in, size_t len, size_t cut1, size_t cut2, char *out)
{
    struct dot_stuffer d;
    size_t o = 0;

    dot_stuff_init(&d);
    o += dot_stuff(&d, in, cut1, out + o);
    o += dot_stuff(&d, in + cut1, cut2 - cut1, out + o);
    o += dot_stuff(&d, in + cut2, len - cut2, out + o);
    o += dot_stuff_end(&d, out + o);
    return o;
}

static void check_stuffing(const char *in, size_t len, const char *end)
{
    char *expect = malloc(2 * len + 8), *got = malloc(2 * len + 8);
    size_t elen = model_stuff(in, len, expect);

    memcpy(expect + elen, end, strlen(end));
    elen += strlen(end);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            size_t glen = stuff_split(in, len, a, b, got);

            assert_int_equal(glen, elen);
            assert_memory_equal(got, expect, elen);
        }
    }
    free(expect);
    free(got);
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    check_stuffing(LIT(".starts with a dot\r\nline\r\n.\r\n..two\r\nend.\r\n"), ".\r\n");
    check_stuffing(LIT("a\r\n.\r\nb\r\n"), ".\r\n");
    check_stuffing(LIT("."), "\r\n.\r\n");
    check_stuffing(LIT("no final newline"), "\r\n.\r\n");
    check_stuffing(LIT("ends with CR\r"), "\n.\r\n");
    check_stuffing(LIT("ends with bare LF\n"), "\r\n.\r\n");
    check_stuffing(LIT("bare\n.LF\r\n"), ".\r\n");
    check_stuffing(LIT("\r\n"), ".\r\n");
    check_stuffing(LIT("x\r\n\r\n.\r\n"), ".\r\n");
}

static void test_dot_stuffing_empty(void **state)
{
    struct dot_stuffer d;
    char out[8];

    (void)state;
    dot_stuff_init(&d);
    assert_int_equal(dot_stuff(&d, "", 0, out), 0);
    assert_int_equal(dot_stuff_end(&d, out), 3);
    assert_memory_equal(out, ".\r\n", 3);
}

static void test_dot_stuffing_single_bytes(void **state)
{
    static const char in[] = "..\r\n.x\r\n\r\n...\r\n";
    struct dot_stuffer d;
    char out[64];
    size_t o = 0;

    (void)state;
    dot_stuff_init(&d);
    for (size_t i = 0; i < sizeof(in) - 1; i++)
        o += dot_stuff(&d, in + i, 1, out + o);
    o += dot_stuff_end(&d, out + o);
    assert_int_equal(o, strlen("...\r\n..x\r\n\r\n....\r\n.\r\n"));
    assert_memory_equal(out, "...\r\n..x\r\n\r\n....\r\n.\r\n", o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_bare_code_and_lf),
        cmocka_unit_test(test_multiline),
        cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_mixed_codes),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_too_many_lines),
        cmocka_unit_test(test_max_reply_fits),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_enhanced_code),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_caps_size),
        cmocka_unit_test(test_caps_auth),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_dot_stuffing_empty),
        cmocka_unit_test(test_dot_stuffing_single_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

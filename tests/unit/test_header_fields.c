/*
 * test_header_fields.c - unit tests for mail/header_fields.c (the
 * streaming header scanner and the Date / Message-ID formatters) and
 * mail/mailbox_list.c (RFC 5322 address lists, as in From:).
 *
 * The scanner is run with an at_end that inserts a marker, so each test
 * shows where added fields land; every input is also fed one octet at a
 * time and must give the same output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mail/header_fields.h"
#include "mail/mailbox_list.h"

struct out {
    char buf[20000];
    size_t len;
    unsigned ends;
};

static void sink(void *arg, const char *data, size_t len)
{
    struct out *o = arg;

    assert_true(o->len + len < sizeof(o->buf));
    memcpy(o->buf + o->len, data, len);
    o->len += len;
    o->buf[o->len] = '\0';
}

static void at_end(void *arg, const struct header_scan *h)
{
    (void)h;
    ((struct out *)arg)->ends++;
    sink(arg, "[ADD]\r\n", 7);
}

/* Scan msg whole and octet by octet; both must give expect. */
static struct header_scan *scan(const char *msg, const char *expect)
{
    static struct header_scan h1, h2;
    static struct out o1, o2;
    size_t len = strlen(msg);

    memset(&o1, 0, sizeof(o1));
    memset(&o2, 0, sizeof(o2));
    header_scan_init(&h1, sink, at_end, &o1);
    header_scan_feed(&h1, msg, len);
    header_scan_finish(&h1);
    header_scan_init(&h2, sink, at_end, &o2);
    for (size_t i = 0; i < len; i++)
        header_scan_feed(&h2, msg + i, 1);
    header_scan_finish(&h2);
    assert_string_equal(o1.buf, expect);
    assert_string_equal(o2.buf, expect);
    assert_int_equal(o1.ends, 1);
    assert_int_equal(o2.ends, 1);
    assert_int_equal(h1.seen, h2.seen);
    assert_int_equal(h1.from_len, h2.from_len);
    assert_memory_equal(h1.from, h2.from, h1.from_len);
    return &h1;
}

static void test_insert_before_the_empty_line(void **state)
{
    struct header_scan *h;

    (void)state;
    h = scan("From: a@x\r\nSubject: hi\r\n\r\nbody\r\nDate: no\r\n",
             "From: a@x\r\nSubject: hi\r\n[ADD]\r\n\r\nbody\r\nDate: no\r\n");
    assert_int_equal(h->seen, HEADER_HAS_FROM);     /* Date: in the body does not count */
    assert_int_equal(h->end, HEADER_END_BLANK);
    assert_int_equal(h->from_len, 4);
    assert_memory_equal(h->from, " a@x", 4);
}

static void test_names_case_insensitive_and_blanks_before_colon(void **state)
{
    struct header_scan *h;

    (void)state;
    h = scan("DATE: x\r\nmessage-ID : <a@b>\r\nfRoM\t: y@z\r\n\r\n",
             "DATE: x\r\nmessage-ID : <a@b>\r\nfRoM\t: y@z\r\n[ADD]\r\n\r\n");
    assert_int_equal(h->seen, HEADER_HAS_FROM | HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID);
    /* names that only start like ours are other fields */
    h = scan("Dates: x\r\nMessage-IDs: y\r\nFrom-x: z\r\n\r\n",
             "Dates: x\r\nMessage-IDs: y\r\nFrom-x: z\r\n[ADD]\r\n\r\n");
    assert_int_equal(h->seen, 0);
}

static void test_folded_from_is_unfolded_and_joined(void **state)
{
    struct header_scan *h;

    (void)state;
    h = scan("From: A <a@x>,\r\n\tB <b@x>\r\nTo: t@x\r\nFrom: c@x\r\n\r\n",
             "From: A <a@x>,\r\n\tB <b@x>\r\nTo: t@x\r\nFrom: c@x\r\n[ADD]\r\n\r\n");
    assert_int_equal(h->from_fields, 2);
    assert_int_equal(h->from_len, strlen(" A <a@x>,\tB <b@x>, c@x"));
    assert_memory_equal(h->from, " A <a@x>,\tB <b@x>, c@x", h->from_len);
}

static void test_no_empty_line(void **state)
{
    struct header_scan *h;

    (void)state;
    /* a line that is no field ends the section: an empty line is added */
    h = scan("Subject: x\r\nthis is body\r\nFrom: evil@x\r\n",
             "Subject: x\r\n[ADD]\r\n\r\nthis is body\r\nFrom: evil@x\r\n");
    assert_int_equal(h->end, HEADER_END_BODY_LINE);
    assert_int_equal(h->seen, 0);
    /* no header section at all */
    scan("Hello.\r\n", "[ADD]\r\n\r\nHello.\r\n");
    scan(" indented\r\n", "[ADD]\r\n\r\n indented\r\n");
    scan(":colon\r\n", "[ADD]\r\n\r\n:colon\r\n");
    scan("\r\nbody\r\n", "[ADD]\r\n\r\nbody\r\n");
    scan("", "[ADD]\r\n");
    /* an mbox "From " line is not a field */
    scan("From alice Sun\r\nX: y\r\n", "[ADD]\r\n\r\nFrom alice Sun\r\nX: y\r\n");
}

static void test_headers_only(void **state)
{
    struct header_scan *h;

    (void)state;
    h = scan("Subject: x\r\nFrom: a@x\r\n", "Subject: x\r\nFrom: a@x\r\n[ADD]\r\n");
    assert_int_equal(h->end, HEADER_END_EOF);
    /* a last line without CRLF gets one before the added fields */
    scan("Subject: x", "Subject: x\r\n[ADD]\r\n");
    /* a last line that is only a name is no field */
    scan("Subject: x\r\nabc", "Subject: x\r\n[ADD]\r\n\r\nabc");
}

static void test_long_name_ends_the_section(void **state)
{
    char msg[400], expect[420];
    char name[HEADER_NAME_MAX + 2];

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(msg, sizeof(msg), "A: b\r\n%s: c\r\nFrom: x@y\r\n", name);
    snprintf(expect, sizeof(expect), "A: b\r\n[ADD]\r\n\r\n%s: c\r\nFrom: x@y\r\n", name);
    assert_int_equal(scan(msg, expect)->seen, 0);
    name[HEADER_NAME_MAX] = '\0';       /* exactly the limit: a field */
    snprintf(msg, sizeof(msg), "%s: c\r\nFrom: x@y\r\n\r\n", name);
    snprintf(expect, sizeof(expect), "%s: c\r\nFrom: x@y\r\n[ADD]\r\n\r\n", name);
    assert_int_equal(scan(msg, expect)->seen, HEADER_HAS_FROM);
}

static void test_from_overflow(void **state)
{
    static char msg[HEADER_FROM_MAX + 100];
    struct header_scan h;
    struct out o = { .len = 0 };

    (void)state;
    memcpy(msg, "From: ", 6);
    memset(msg + 6, 'a', HEADER_FROM_MAX);
    memcpy(msg + 6 + HEADER_FROM_MAX, "\r\n\r\n", 5);
    header_scan_init(&h, sink, NULL, &o);
    header_scan_feed(&h, msg, strlen(msg));
    header_scan_finish(&h);
    assert_true(h.from_overflow);
    assert_int_equal(o.len, strlen(msg));      /* passed on unchanged */
}

static void test_formatters(void **state)
{
    char buf[200];
    struct header_scan h;
    size_t n;

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    n = header_format_date(buf, sizeof(buf), (time_t)1795968693);
    assert_string_equal(buf, "Date: Sun, 29 Nov 2026 16:11:33 +0000\r\n");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(header_format_date(buf, 10, 0), 0);
    n = header_format_message_id(buf, sizeof(buf), "4AB<C>", 0x1234, "mx.example.test");
    assert_string_equal(buf, "Message-ID: <4ABC.0000000000001234@mx.example.test>\r\n");
    assert_int_equal(header_format_message_id(buf, 20, "4ABC", 1, "mx.example.test"), 0);
    memset(&h, 0, sizeof(h));
    h.seen = HEADER_HAS_DATE;
    n = header_format_missing(&h, buf, sizeof(buf), 0, "Q", 1, "h");
    assert_string_equal(buf, "Message-ID: <Q.0000000000000001@h>\r\n");
    h.seen = HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID;
    assert_int_equal(header_format_missing(&h, buf, sizeof(buf), 0, "Q", 1, "h"), 0);
    h.seen = 0;
    n = header_format_missing(&h, buf, sizeof(buf), (time_t)1795968693, "Q", 1, "h");
    assert_string_equal(buf, "Date: Sun, 29 Nov 2026 16:11:33 +0000\r\n"
                             "Message-ID: <Q.0000000000000001@h>\r\n");
}

/* --- mailbox_list --- */

struct addrs {
    char all[2000];
};

static bool collect(void *arg, const char *addr)
{
    struct addrs *a = arg;
    size_t n = strlen(a->all);

    snprintf(a->all + n, sizeof(a->all) - n, "%s%s", n ? " " : "", addr);
    return true;
}

static void expect_list(const char *text, int count, const char *addrs)
{
    struct addrs a = { "" };
    char err[100] = "";
    int n = mailbox_list_parse(text, strlen(text), collect, &a, err, sizeof(err));

    if (n != count)
        fail_msg("%s: %d addresses (%s), expected %d", text, n, err, count);
    assert_string_equal(a.all, addrs);
}

static void expect_error(const char *text)
{
    char err[100] = "";

    if (mailbox_list_parse(text, strlen(text), NULL, NULL, err, sizeof(err)) != -1)
        fail_msg("%s: accepted", text);
    assert_true(err[0] != '\0');
}

static void test_list_forms(void **state)
{
    (void)state;
    expect_list(" alice@example.org", 1, "alice@example.org");
    expect_list(" Alice Liddell <alice@example.org>", 1, "alice@example.org");
    expect_list("\"Liddell, Alice\" <alice@example.org>", 1, "alice@example.org");
    expect_list("<alice@example.org>", 1, "alice@example.org");
    expect_list("alice@example.org (Alice Liddell)", 1, "alice@example.org");
    expect_list("(c) Alice (x (nested) y) <alice(in)@(in)example.org> (after)", 1,
                "alice@example.org");
    expect_list("=?utf-8?q?J=C3=B6rg?= <j@example.org>", 1, "j@example.org");
    expect_list("J\xc3\xb6rg <j@example.org>", 1, "j@example.org");
    expect_list("Mr. J. Doe <j@example.org>", 1, "j@example.org");    /* obs-phrase */
    expect_list("a@x, B <b@y>,c@z", 3, "a@x b@y c@z");
    expect_list("a@x,, ,b@y,", 2, "a@x b@y");
    expect_list("Team: a@x, B <b@y>;, c@z", 3, "a@x b@y c@z");
    expect_list("undisclosed-recipients:;", 0, "");
    expect_list("", 0, "");
    expect_list("<@relay.x,@relay.y:alice@example.org>", 1, "alice@example.org");
    expect_list("\"alice\"@example.org", 1, "alice@example.org");
    expect_list("\"al ice\"@example.org", 1, "\"al ice\"@example.org");
    expect_list("\"alice@example.org\"@evil.test", 1, "\"alice@example.org\"@evil.test");
    expect_list("\"a\\\"b\"@x", 1, "\"a\\\"b\"@x");
    expect_list("a@[192.0.2.1]", 1, "a@[192.0.2.1]");
    expect_list("A\r\n\t<a@x>", 1, "a@x");
}

static void test_list_errors(void **state)
{
    char longer[400];

    (void)state;
    expect_error("Doe, John <j@x>");
    expect_error("alice");
    expect_error("Alice");
    expect_error("<alice>");
    expect_error("<alice@x");
    expect_error("alice@");
    expect_error("alice@.x");
    expect_error("\"unterminated@x");
    expect_error("(unterminated a@x");
    expect_error("a@x b@y");
    expect_error("G: a@x");
    expect_error("G: H: a@x;;");
    expect_error("a@x;");
    expect_error("a\x01@x");
    expect_error("<>");
    expect_error("a@[x[y]");
    memset(longer, 'a', sizeof(longer));
    memcpy(longer + 300, "@x", 3);
    expect_error(longer);
    memset(longer, '(', 40);
    memcpy(longer + 40, "a@x", 4);
    expect_error(longer);
}

static bool stop_at_b(void *arg, const char *addr)
{
    (void)arg;
    return strcmp(addr, "b@y") != 0;
}

static void test_list_stop(void **state)
{
    char err[100];

    (void)state;
    assert_int_equal(mailbox_list_parse("a@x, b@y, c@z", 13, stop_at_b, NULL, err,
                                        sizeof(err)), -2);
    /* the length is obeyed: text past len is never read */
    assert_int_equal(mailbox_list_parse("a@x, junk(", 3, NULL, NULL, err, sizeof(err)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_before_the_empty_line),
        cmocka_unit_test(test_names_case_insensitive_and_blanks_before_colon),
        cmocka_unit_test(test_folded_from_is_unfolded_and_joined),
        cmocka_unit_test(test_no_empty_line),
        cmocka_unit_test(test_headers_only),
        cmocka_unit_test(test_long_name_ends_the_section),
        cmocka_unit_test(test_from_overflow),
        cmocka_unit_test(test_formatters),
        cmocka_unit_test(test_list_forms),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_list_stop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_maildrop.c - unit tests for local submission's pure parts: the
 * maildrop file format (mail/maildrop_format.c: writer, strict parser,
 * message check, stdin canonicalisation) and the sendmail command's
 * header scan (sendmail/sendmail_headers.c) and recipient lists (mail/mailbox_list.c).
 *
 * Trusts: nothing; pure functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/mailbox_list.h"
#include "mail/maildrop_format.h"
#include "sendmail/sendmail_headers.h"

static struct maildrop_head head, parsed;
static char buf[MAILDROP_HEAD_MAX + 1];
static char err[200];

static size_t parse(const char *text)
{
    return maildrop_head_parse(text, strlen(text), &parsed, err, sizeof(err));
}

static void test_head_round_trip(void **state)
{
    size_t len;

    (void)state;
    memset(&head, 0, sizeof(head));
    snprintf(head.from, sizeof(head.from), "bob@example.test");
    head.size = 42;
    head.eight_bit = true;
    head.rcpt_count = 2;
    snprintf(head.rcpts[0], sizeof(head.rcpts[0]), "alice@example.test");
    snprintf(head.rcpts[1], sizeof(head.rcpts[1]), "\"a b\"@other.test");
    len = maildrop_head_format(&head, buf, sizeof(buf));
    assert_string_equal(buf, "sealpost-maildrop 1\nfrom bob@example.test\nbody 8bitmime\n"
                             "size 42\nrcpt alice@example.test\nrcpt \"a b\"@other.test\n\n");
    assert_int_equal(parse(buf), len);
    assert_string_equal(parsed.from, "bob@example.test");
    assert_true(parsed.eight_bit);
    assert_int_equal(parsed.size, 42);
    assert_int_equal(parsed.rcpt_count, 2);
    assert_string_equal(parsed.rcpts[1], "\"a b\"@other.test");
    assert_false(parsed.smtputf8);
    /* the null sender, and UTF-8 making it SMTPUTF8 */
    assert_true(parse("sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nrcpt j\xc3\xb6@x.test\n\n") > 0);
    assert_string_equal(parsed.from, "");
    assert_true(parsed.smtputf8);
}

static void test_head_refused(void **state)
{
    static const char *bad[] = {
        "",
        "sealpost-maildrop 2\nfrom \nbody 7bit\nsize 0\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nbody 7bit\nfrom \nsize 0\nrcpt a@b.test\n\n",   /* order */
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\n\n",                   /* no rcpt */
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nrcpt a@b.test\n",      /* no end */
        "sealpost-maildrop 1\nfrom \nbody 9bit\nsize 0\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 01\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize -1\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 99999999999999999999\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nrcpt alice\n\n",      /* bare name */
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nrcpt <a@b.test>\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nrcpt \"a\"@b.test\n\n", /* not canonical */
        "sealpost-maildrop 1\nfrom a@b.test\r\nbody 7bit\nsize 0\nrcpt a@b.test\n\n",
        "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\nuid 0\nrcpt a@b.test\n\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i]), 0);
        assert_true(err[0] != '\0');
    }
}

static void test_too_many_rcpts(void **state)
{
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(buf, sizeof(buf), "sealpost-maildrop 1\nfrom \nbody 7bit\nsize 0\n");
    for (int i = 0; i <= MAILDROP_RCPTS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "rcpt r%d@x.test\n", i);
    snprintf(buf + n, sizeof(buf) - n, "\n");
    assert_int_equal(parse(buf), 0);
    assert_string_equal(err, "too many recipients");
}

static bool body_ok(const char *text, size_t max_line, bool *eight_bit)
{
    struct maildrop_body_check c;

    maildrop_body_begin(&c, max_line);
    maildrop_body_feed(&c, text, strlen(text) / 2);
    maildrop_body_feed(&c, text + strlen(text) / 2, strlen(text) - strlen(text) / 2);
    *eight_bit = c.eight_bit;
    return maildrop_body_end(&c);
}

static void test_body_check(void **state)
{
    bool eb;

    (void)state;
    assert_true(body_ok("", 10, &eb));
    assert_true(body_ok("a\r\n\r\nb\r\n", 10, &eb));
    assert_false(eb);
    assert_true(body_ok("\xe9t\xe9\r\n", 10, &eb));
    assert_true(eb);
    assert_false(body_ok("a\nb\r\n", 10, &eb));
    assert_false(body_ok("a\rb\r\n", 10, &eb));
    assert_false(body_ok("abc", 10, &eb));
    assert_false(body_ok("abc\r", 10, &eb));
    assert_true(body_ok("0123456789\r\n", 10, &eb));
    assert_false(body_ok("0123456789X\r\n", 10, &eb));
}

static void canon_is(const char *in, bool dot_ends, const char *want)
{
    char out[256];
    size_t n = maildrop_canonical(in, strlen(in), dot_ends, out);

    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_canonical(void **state)
{
    (void)state;
    canon_is("", true, "");
    canon_is("a\nb", true, "a\r\nb\r\n");
    canon_is("a\r\nb\r\n", true, "a\r\nb\r\n");
    canon_is("a\rb\n", true, "a\r\nb\r\n");
    canon_is("a\n.\nb\n", true, "a\r\n");
    canon_is("a\n.\nb\n", false, "a\r\n.\r\nb\r\n");
    canon_is("a\n..\n.x\n", true, "a\r\n..\r\n.x\r\n");     /* no unstuffing */
    canon_is(".", true, "");
    canon_is("\n\n", true, "\r\n\r\n");
}

struct collected {
    char items[8][600];
    size_t n;
};

static bool collect(void *arg, const char *addr)
{
    struct collected *c = arg;

    if (c->n < 8)
        snprintf(c->items[c->n++], sizeof(c->items[0]), "%s", addr);
    return true;
}

static int bare_list(const char *list, struct collected *c)
{
    char why[128];

    c->n = 0;
    return mailbox_list_parse_flags(list, strlen(list), MAILBOX_BARE_LOCAL, collect, c, why,
                                    sizeof(why));
}

/* The recipient lists of sendmail: RFC 5322 lists with lone names. */
static void test_address_list(void **state)
{
    struct collected c = { .n = 0 };
    const char *list = "Alice <alice@x.test>, \"Smith, Bob\" <bob@y.test> (work),\r\n"
                       "\tcarol@z.test (Carol (C)), team: d@t.test, e@t.test;, root, "
                       "<@relay.test,@r2.test:f@u.test>, g@[IPv6:::1]";

    (void)state;
    assert_int_equal(bare_list(list, &c), 8);
    assert_string_equal(c.items[0], "alice@x.test");
    assert_string_equal(c.items[1], "bob@y.test");
    assert_string_equal(c.items[2], "carol@z.test");
    assert_string_equal(c.items[3], "d@t.test");
    assert_string_equal(c.items[4], "e@t.test");
    assert_string_equal(c.items[5], "root");
    assert_string_equal(c.items[6], "f@u.test");
    assert_string_equal(c.items[7], "g@[IPv6:::1]");
    assert_int_equal(bare_list("root", &c), 1);
    assert_int_equal(bare_list("team: root;", &c), 1);
    assert_string_equal(c.items[0], "root");
    assert_int_equal(bare_list("\"open", &c), -1);
    assert_int_equal(bare_list("<a@b", &c), -1);
    assert_int_equal(bare_list("a@b (x", &c), -1);
    assert_int_equal(bare_list("a@b)", &c), -1);
    /* never guessed into some other address */
    assert_int_equal(bare_list("bob smith@example.test", &c), -1);
    assert_int_equal(bare_list("bob@example.test\r\nRCPT TO:<c@d.test>", &c), -1);
    assert_int_equal(bare_list("bob@example.test RCPT TO:<c@d.test>", &c), -1);
    assert_int_equal(bare_list("two words", &c), -1);
    /* without the flag a lone name is no address */
    assert_int_equal(mailbox_list_parse("root", 4, NULL, NULL, (char[64]){ 0 }, 64), -1);
}

static void test_header_scan(void **state)
{
    const char *msg = "To: a@x.test\r\nBcc: secret@x.test,\r\n other@x.test\r\n"
                      "Subject: s\r\nfrom: me@x.test\r\n\r\nBcc: body@x.test\r\n";
    char out[300];
    struct sendmail_headers hs;
    size_t n = sendmail_headers_scan(msg, strlen(msg), &hs, out);

    (void)state;
    out[n] = '\0';
    assert_string_equal(out, "To: a@x.test\r\nSubject: s\r\nfrom: me@x.test\r\n\r\n"
                             "Bcc: body@x.test\r\n");
    assert_true(hs.has_from);
    assert_false(hs.no_separator);
    assert_int_equal(hs.header_len, strlen("To: a@x.test\r\nSubject: s\r\nfrom: me@x.test\r\n"));
    assert_false(hs.has_resent_rcpt);
    assert_int_equal(hs.field_count, 2);
    assert_string_equal(hs.fields[0].value, " a@x.test");
    assert_string_equal(hs.fields[1].value, " secret@x.test, other@x.test");
    sendmail_headers_free(&hs);
    /* no blank line: the header ends at the first line that is no field */
    msg = "Resent-Bcc: r@x.test\r\nTo: t@x.test\r\nhello world\r\n";
    n = sendmail_headers_scan(msg, strlen(msg), &hs, out);
    out[n] = '\0';
    assert_string_equal(out, "To: t@x.test\r\nhello world\r\n");
    assert_true(hs.no_separator);
    assert_int_equal(hs.header_len, strlen("To: t@x.test\r\n"));
    assert_true(hs.has_resent_rcpt);
    assert_false(hs.has_from);
    assert_true(hs.fields[0].resent);
    assert_false(hs.fields[1].resent);
    sendmail_headers_free(&hs);
    /* no header at all */
    msg = "hello\r\n";
    assert_int_equal(sendmail_headers_scan(msg, strlen(msg), &hs, out), strlen(msg));
    assert_true(hs.no_separator);
    assert_int_equal(hs.header_len, 0);
    sendmail_headers_free(&hs);
    msg = "\r\nbody\r\n";
    sendmail_headers_scan(msg, strlen(msg), &hs, out);
    assert_false(hs.no_separator);
    sendmail_headers_free(&hs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_round_trip),
        cmocka_unit_test(test_head_refused),
        cmocka_unit_test(test_too_many_rcpts),
        cmocka_unit_test(test_body_check),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_address_list),
        cmocka_unit_test(test_header_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_address.c - unit tests for mail/address.c (RFC 5321 paths,
 * RFC 6531 UTF-8, limits, hostile bytes).
 *
 * Every input is copied into a heap buffer of exactly its length, so a
 * parser that reads one byte too far is caught under AddressSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/address.h"

/* ---- helpers (report the caller's line on failure) ---- */

static enum addr_status parse_n(const char *s, size_t len, bool utf8,
                                struct mailbox *mb, size_t *consumed)
{
    char *buf = malloc(len ? len : 1);
    enum addr_status st;

    assert_non_null(buf);
    memcpy(buf, s, len);
    st = address_parse_path(buf, len, utf8, mb, consumed);
    free(buf);
    return st;
}

static void check_status(const char *s, size_t len, bool utf8,
                         enum addr_status want, const char *file, int line)
{
    struct mailbox mb;
    size_t consumed = 12345;
    enum addr_status st = parse_n(s, len, utf8, &mb, &consumed);

    _assert_int_equal(st, want, file, line);
    if (st != ADDR_OK) {
        /* On failure nothing of the input is left in the output. */
        _assert_int_equal(consumed, 0, file, line);
        _assert_string_equal(mb.local, "", file, line);
        _assert_string_equal(mb.domain, "", file, line);
    }
}

/* Status of a NUL-free path string. */
#define STATUS(s, utf8, want) check_status((s), strlen(s), (utf8), (want), __FILE__, __LINE__)
/* Status of a byte string with explicit length (may hold NUL). */
#define STATUS_N(s, n, utf8, want) check_status((s), (n), (utf8), (want), __FILE__, __LINE__)
/* Same status with and without allow_utf8. */
#define STATUS_BOTH(s, want) do { STATUS((s), false, (want)); STATUS((s), true, (want)); } while (0)

static void check_ok(const char *s, bool utf8, const char *local,
                     const char *unquoted, const char *domain,
                     const char *file, int line)
{
    struct mailbox mb;
    size_t consumed = 0;
    enum addr_status st = parse_n(s, strlen(s), utf8, &mb, &consumed);

    _assert_int_equal(st, ADDR_OK, file, line);
    _assert_string_equal(mb.local, local, file, line);
    _assert_string_equal(mb.local_unquoted, unquoted, file, line);
    _assert_string_equal(mb.domain, domain, file, line);
    _assert_int_equal(consumed, strlen(s), file, line);
    _assert_int_equal(mb.is_null, false, file, line);
}

#define OK(s, local, unq, domain) check_ok((s), false, (local), (unq), (domain), __FILE__, __LINE__)
#define OK_UTF8(s, local, unq, domain) check_ok((s), true, (local), (unq), (domain), __FILE__, __LINE__)

/* Build "<" + local + "@" + domain + ">" with generated parts. */
static void build(char *out, size_t outsize, size_t local_len, size_t domain_len)
{
    size_t n = 0, i;

    assert_true(local_len + domain_len + 4 <= outsize);
    out[n++] = '<';
    for (i = 0; i < local_len; i++)
        out[n++] = 'l';
    out[n++] = '@';
    /* labels of 50 letters separated by dots; never ends with '.' */
    for (i = 0; i < domain_len; i++)
        out[n++] = (i % 51 == 50 && i + 1 < domain_len) ? '.' : 'd';
    out[n++] = '>';
    out[n] = '\0';
}

/* ---- tests ---- */

static void test_simple(void **state)
{
    struct mailbox mb;
    size_t consumed;

    (void)state;
    assert_int_equal(parse_n("<user@example.com>", 18, false, &mb, &consumed), ADDR_OK);
    assert_string_equal(mb.local, "user");
    assert_string_equal(mb.local_unquoted, "user");
    assert_string_equal(mb.domain, "example.com");
    assert_int_equal(consumed, 18);
    assert_false(mb.is_null);
    assert_false(mb.is_bare_postmaster);
    assert_false(mb.has_utf8);
    assert_false(mb.domain_is_literal);

    OK("<User.Name+tag@Example.COM>", "User.Name+tag", "User.Name+tag", "Example.COM");
    OK("<a@b>", "a", "a", "b");
    OK("<a@localhost>", "a", "a", "localhost");
    OK("<!#$%&'*+-/=?^_`{|}~@example.com>", "!#$%&'*+-/=?^_`{|}~",
       "!#$%&'*+-/=?^_`{|}~", "example.com");
    OK("<1@2.3>", "1", "1", "2.3");
}

static void test_consumed_stops_at_gt(void **state)
{
    struct mailbox mb;
    size_t consumed;
    const char *s = "<a@b.example> SIZE=10";

    (void)state;
    assert_int_equal(parse_n(s, strlen(s), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(consumed, 13);
    assert_string_equal(mb.domain, "b.example");

    /* Bytes after '>' are not the parser's business, even NUL. */
    assert_int_equal(parse_n("<a@b>\0\r\n", 8, false, &mb, &consumed), ADDR_OK);
    assert_int_equal(consumed, 5);

    /* '>' inside a quoted local part does not end the path. */
    s = "<\"a>b\"@c.d> x";
    assert_int_equal(parse_n(s, strlen(s), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(consumed, 11);
    assert_string_equal(mb.local_unquoted, "a>b");
}

static void test_null_path(void **state)
{
    struct mailbox mb;
    size_t consumed;
    char buf[8] = "x";

    (void)state;
    assert_int_equal(parse_n("<>", 2, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.is_null);
    assert_false(mb.is_bare_postmaster);
    assert_int_equal(consumed, 2);
    assert_string_equal(mb.local, "");
    assert_string_equal(mb.domain, "");
    mailbox_format(&mb, buf, sizeof(buf));
    assert_string_equal(buf, "");

    assert_int_equal(parse_n("<> BODY=7BIT", 12, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.is_null);
    assert_int_equal(consumed, 2);

    STATUS("< >", false, ADDR_ERR_SYNTAX);
    STATUS("<", false, ADDR_ERR_SYNTAX);
    STATUS("<<>>", false, ADDR_ERR_SYNTAX);
}

static void test_postmaster(void **state)
{
    struct mailbox mb;
    size_t consumed;
    char buf[32];

    (void)state;
    assert_int_equal(parse_n("<Postmaster>", 12, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.is_bare_postmaster);
    assert_false(mb.is_null);
    assert_string_equal(mb.local, "Postmaster");
    assert_string_equal(mb.local_unquoted, "Postmaster");
    assert_string_equal(mb.domain, "");
    assert_int_equal(consumed, 12);
    mailbox_format(&mb, buf, sizeof(buf));
    assert_string_equal(buf, "Postmaster");

    assert_int_equal(parse_n("<pOSTMASTER> NOTIFY=NEVER", 25, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.is_bare_postmaster);
    assert_string_equal(mb.local, "pOSTMASTER");
    assert_int_equal(consumed, 12);

    assert_int_equal(parse_n("<postmaster@example.com>", 24, false, &mb, &consumed), ADDR_OK);
    assert_false(mb.is_bare_postmaster);
    assert_string_equal(mb.domain, "example.com");

    STATUS("<postmasterx>", false, ADDR_ERR_SYNTAX);
    STATUS("<postmaste>", false, ADDR_ERR_SYNTAX);
    STATUS("<Postmaster", false, ADDR_ERR_SYNTAX);
    STATUS("<\"Postmaster\">", false, ADDR_ERR_SYNTAX);
    STATUS("<@a.example:Postmaster>", false, ADDR_ERR_SYNTAX);
    STATUS_N("<Postmaster>", 11, false, ADDR_ERR_SYNTAX);
}

static void test_dot_string(void **state)
{
    (void)state;
    OK("<a.b.c@x.example>", "a.b.c", "a.b.c", "x.example");
    STATUS(".<a@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<.a@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a.@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a..b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<.@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a(b)@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a,b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a:b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a;b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a[b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a\\b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a\"b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@b@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<user>", false, ADDR_ERR_SYNTAX);
    STATUS("user@x", false, ADDR_ERR_SYNTAX);
    STATUS("<user@x", false, ADDR_ERR_SYNTAX);
    STATUS(" <user@x>", false, ADDR_ERR_SYNTAX);
    STATUS("<user@x >", false, ADDR_ERR_SYNTAX);
    STATUS("< user@x>", false, ADDR_ERR_SYNTAX);
    STATUS("", false, ADDR_ERR_SYNTAX);
}

static void test_quoted_local(void **state)
{
    (void)state;
    OK("<\"john smith\"@example.com>", "\"john smith\"", "john smith", "example.com");
    OK("<\"a\\\"b\"@x.org>", "\"a\\\"b\"", "a\"b", "x.org");
    OK("<\"a\\\\b\"@x.org>", "\"a\\\\b\"", "a\\b", "x.org");
    OK("<\"\\a\\ \"@x.org>", "\"\\a\\ \"", "a ", "x.org");
    OK("<\"\"@x.org>", "\"\"", "", "x.org");
    OK("<\"a@b\"@x.org>", "\"a@b\"", "a@b", "x.org");
    OK("<\"a..b.\"@x.org>", "\"a..b.\"", "a..b.", "x.org");
    OK("<\" !#[]~\"@x.org>", "\" !#[]~\"", " !#[]~", "x.org");
    OK("<\"\\~\"@x.org>", "\"\\~\"", "~", "x.org");

    STATUS("<\"abc@x.org>", false, ADDR_ERR_SYNTAX);      /* unterminated */
    STATUS("<\"abc\\\"@x.org>", false, ADDR_ERR_SYNTAX);  /* escaped closer */
    STATUS("<\"a\"b@x.org>", false, ADDR_ERR_SYNTAX);     /* text after quote */
    STATUS("<a\"b\"@x.org>", false, ADDR_ERR_SYNTAX);
    STATUS("<\"a\".\"b\"@x.org>", false, ADDR_ERR_SYNTAX); /* no mixed forms */
    STATUS("<\"a\tb\"@x.org>", false, ADDR_ERR_SYNTAX);   /* raw TAB */
    STATUS("<\"a\\\tb\"@x.org>", false, ADDR_ERR_SYNTAX); /* TAB in pair */
    STATUS("<\"a\\\x7f\"@x.org>", false, ADDR_ERR_SYNTAX);/* DEL in pair */
    STATUS("<\"a\x7f\"@x.org>", false, ADDR_ERR_SYNTAX);
    STATUS("<\"a\"@>", false, ADDR_ERR_SYNTAX);
    STATUS("<\"a\">", false, ADDR_ERR_SYNTAX);
    STATUS_N("<\"a\\", 4, false, ADDR_ERR_SYNTAX);       /* ends inside pair */
    STATUS_N("<\"a", 3, false, ADDR_ERR_SYNTAX);
}

static void test_domain(void **state)
{
    (void)state;
    OK("<a@x-y.example>", "a", "a", "x-y.example");
    OK("<a@x--y.example>", "a", "a", "x--y.example");
    OK("<a@xn--bcher-kva.example>", "a", "a", "xn--bcher-kva.example");
    OK("<a@1.2.3.4>", "a", "a", "1.2.3.4");          /* a domain, not literal */
    OK("<a@0>", "a", "a", "0");
    OK("<a@EXAMPLE.Com>", "a", "a", "EXAMPLE.Com");

    STATUS("<a@-x.example>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x-.example>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x.-y>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x.y->", false, ADDR_ERR_SYNTAX);
    STATUS("<a@->", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x.example.>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@.x.example>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x..example>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x_y.example>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x y>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x/y>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x\\y>", false, ADDR_ERR_SYNTAX);
}

static void test_ipv4_literal(void **state)
{
    struct mailbox mb;
    size_t consumed;

    (void)state;
    assert_int_equal(parse_n("<a@[192.0.2.1]>", 15, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.domain_is_literal);
    assert_string_equal(mb.domain, "[192.0.2.1]");
    assert_int_equal(consumed, 15);

    OK("<a@[0.0.0.0]>", "a", "a", "[0.0.0.0]");
    OK("<a@[255.255.255.255]>", "a", "a", "[255.255.255.255]");
    OK("<a@[01.2.3.004]>", "a", "a", "[01.2.3.004]");   /* Snum = 1*3DIGIT */

    STATUS("<a@[256.0.0.1]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.4.5]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1..2.3]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[.1.2.3]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[0001.2.3.4]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.4x]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.-4]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.4>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.4]", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[ 1.2.3.4]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[[1.2.3.4]]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@x.[1.2.3.4]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[1.2.3.4].x>", false, ADDR_ERR_SYNTAX);
}

static void test_ipv6_literal(void **state)
{
    struct mailbox mb;
    size_t consumed;

    (void)state;
    assert_int_equal(parse_n("<a@[IPv6:2001:db8::1]>", 22, false, &mb, &consumed), ADDR_OK);
    assert_true(mb.domain_is_literal);
    assert_string_equal(mb.domain, "[IPv6:2001:db8::1]");

    OK("<a@[ipv6:::1]>", "a", "a", "[ipv6:::1]");
    OK("<a@[IPv6:::]>", "a", "a", "[IPv6:::]");
    OK("<a@[IPv6:::ffff:192.0.2.1]>", "a", "a", "[IPv6:::ffff:192.0.2.1]");
    OK("<a@[IPv6:1:2:3:4:5:6:7:8]>", "a", "a", "[IPv6:1:2:3:4:5:6:7:8]");
    OK("<a@[IPv6:0000:0000:0000:0000:0000:ffff:192.168.100.228]>", "a", "a",
       "[IPv6:0000:0000:0000:0000:0000:ffff:192.168.100.228]");

    STATUS("<a@[IPv6:2001:db8::g]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:1::2::3]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:192.0.2.1]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:fe80::1%eth0]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]>",
           false, ADDR_ERR_SYNTAX);                      /* longer than any address */
    STATUS("<a@[IPv6 ::1]>", false, ADDR_ERR_SYNTAX);
}

static void test_general_literal(void **state)
{
    (void)state;
    OK("<a@[x400:c=us;a=foo]>", "a", "a", "[x400:c=us;a=foo]");
    OK("<a@[tag-1:x]>", "a", "a", "[tag-1:x]");
    /* Ldh-str tag, as RFC 5321 writes it; whether to deliver is policy. */
    OK("<a@[2001:db8::1]>", "a", "a", "[2001:db8::1]");

    STATUS("<a@[tag-:x]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[:x]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[t_g:x]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:a\\b]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:a b]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:a[b]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:a\x7f]>", false, ADDR_ERR_SYNTAX);
    STATUS("<a@[tag:\xc3\xa9]>", true, ADDR_ERR_SYNTAX);
}

static void test_source_route(void **state)
{
    struct mailbox mb;
    size_t consumed;
    const char *s = "<@a.example,@b.example:user@c.example>";

    (void)state;
    assert_int_equal(parse_n(s, strlen(s), false, &mb, &consumed), ADDR_OK);
    assert_string_equal(mb.local, "user");
    assert_string_equal(mb.domain, "c.example");
    assert_int_equal(consumed, strlen(s));

    OK("<@a:u@b>", "u", "u", "b");
    OK("<@a,@b,@c:\"q q\"@[1.2.3.4]>", "\"q q\"", "q q", "[1.2.3.4]");

    STATUS("<@a,u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a,:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a,,@b:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a@b:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@[1.2.3.4]:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@-a:u@b>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a:>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a:u>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a>", false, ADDR_ERR_SYNTAX);
    STATUS("<a,@b:u@c>", false, ADDR_ERR_SYNTAX);
    STATUS("<@a:@b:u@c>", false, ADDR_ERR_SYNTAX);
}

static void test_local_length(void **state)
{
    char buf[400];
    struct mailbox mb;
    size_t consumed;

    (void)state;
    build(buf, sizeof(buf), 64, 11);
    assert_int_equal(parse_n(buf, strlen(buf), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(strlen(mb.local), 64);
    assert_int_equal(strlen(mb.local_unquoted), 64);

    build(buf, sizeof(buf), 65, 11);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);
    build(buf, sizeof(buf), 200, 11);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);

    /* Quoted: the limit counts the wire form, quotes and backslashes. */
    memset(buf, 0, sizeof(buf));
    buf[0] = '<';
    buf[1] = '"';
    memset(buf + 2, ' ', 62);
    memcpy(buf + 64, "\"@x>", 5);
    assert_int_equal(parse_n(buf, strlen(buf), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(strlen(mb.local), 64);
    assert_int_equal(strlen(mb.local_unquoted), 62);

    memset(buf + 2, ' ', 63);
    memcpy(buf + 65, "\"@x>", 5);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);

    /* 31 escaped pairs = 62 wire octets + quotes = 64: fits; decoded 31. */
    buf[1] = '"';
    for (int i = 0; i < 31; i++)
        memcpy(buf + 2 + 2 * i, "\\\"", 2);
    memcpy(buf + 64, "\"@x>", 5);
    assert_int_equal(parse_n(buf, strlen(buf), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(strlen(mb.local), 64);
    assert_int_equal(strlen(mb.local_unquoted), 31);
    assert_int_equal(mb.local_unquoted[0], '"');

    /* Syntax errors win over length. */
    build(buf, sizeof(buf), 65, 11);
    buf[3] = ' ';
    STATUS(buf, false, ADDR_ERR_SYNTAX);
}

static void test_domain_and_path_length(void **state)
{
    char buf[600];
    struct mailbox mb;
    size_t consumed;

    (void)state;
    /* "<a@" + 252 + ">" = 256: the whole-path limit exactly. */
    build(buf, sizeof(buf), 1, 252);
    assert_int_equal(strlen(buf), 256);
    assert_int_equal(parse_n(buf, strlen(buf), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(consumed, 256);
    assert_int_equal(strlen(mb.domain), 252);

    build(buf, sizeof(buf), 1, 253);
    assert_int_equal(strlen(buf), 257);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);

    /* Local 64 + domain 189 + punctuation = 256. */
    build(buf, sizeof(buf), 64, 189);
    STATUS(buf, false, ADDR_OK);
    build(buf, sizeof(buf), 64, 190);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);

    /* Domains at and over 255 octets. */
    build(buf, sizeof(buf), 1, 255);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);
    build(buf, sizeof(buf), 1, 256);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);
    build(buf, sizeof(buf), 1, 500);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);

    /* A source route counts towards the path limit. */
    memcpy(buf, "<@", 2);
    memset(buf + 2, 'r', 240);
    memcpy(buf + 242, ":u@example.com>", 16);
    assert_int_equal(strlen(buf), 257);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);
    buf[241] = ':';
    memcpy(buf + 242, "u@example.com>", 15);
    assert_int_equal(strlen(buf), 256);
    STATUS(buf, false, ADDR_OK);
}

static void test_utf8_addresses(void **state)
{
    struct mailbox mb;
    size_t consumed;
    const char *s = "<jos\xc3\xa9@example.com>";

    (void)state;
    assert_int_equal(parse_n(s, strlen(s), true, &mb, &consumed), ADDR_OK);
    assert_true(mb.has_utf8);
    assert_string_equal(mb.local, "jos\xc3\xa9");
    assert_string_equal(mb.local_unquoted, "jos\xc3\xa9");
    STATUS(s, false, ADDR_ERR_UTF8);

    OK_UTF8("<a@b\xc3\xbc" "cher.example>", "a", "a", "b\xc3\xbc" "cher.example");
    OK_UTF8("<a@\xc3\xa9>", "a", "a", "\xc3\xa9");
    OK_UTF8("<a@x-\xc3\xa9.example>", "a", "a", "x-\xc3\xa9.example");
    OK_UTF8("<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.jp>", "\xe7\x94\xb0\xe4\xb8\xad",
            "\xe7\x94\xb0\xe4\xb8\xad", "\xe4\xbe\x8b.jp");
    OK_UTF8("<\xf0\x9f\x98\x80@x.example>", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "x.example");
    OK_UTF8("<\"jo s\xc3\xa9\"@x.example>", "\"jo s\xc3\xa9\"", "jo s\xc3\xa9", "x.example");
    OK_UTF8("<a\xc2\xa0" "b@x.example>", "a\xc2\xa0" "b", "a\xc2\xa0" "b", "x.example");
    STATUS("<a@b\xc3\xbc" "cher.example>", false, ADDR_ERR_UTF8);
    STATUS("<\"jo s\xc3\xa9\"@x.example>", false, ADDR_ERR_UTF8);

    /* Not in quoted-pairSMTP, not in literals. */
    STATUS_BOTH("<\"\\\xc3\xa9\"@x.example>", ADDR_ERR_SYNTAX);
    STATUS_BOTH("<a@[\xc3\xa9]>", ADDR_ERR_SYNTAX);

    /* A source route with UTF-8: needs SMTPUTF8, but the mailbox is ASCII. */
    s = "<@\xc3\xa9.example:u@x.example>";
    STATUS(s, false, ADDR_ERR_UTF8);
    assert_int_equal(parse_n(s, strlen(s), true, &mb, &consumed), ADDR_OK);
    assert_false(mb.has_utf8);
    assert_string_equal(mb.domain, "x.example");

    /* UTF-8 verdict only when the rest parses; length before UTF-8. */
    STATUS("<jos\xc3\xa9..x@example.com>", false, ADDR_ERR_SYNTAX);
    STATUS("<jos\xc3\xa9@-example.com>", false, ADDR_ERR_SYNTAX);
}

static void test_utf8_too_long_precedence(void **state)
{
    char buf[128];

    (void)state;
    /* 63 ASCII + 2-octet char = 65 octets: too long even with UTF-8 on. */
    buf[0] = '<';
    memset(buf + 1, 'a', 63);
    memcpy(buf + 64, "\xc3\xa9@x>", 6);
    STATUS(buf, true, ADDR_ERR_TOO_LONG);
    STATUS(buf, false, ADDR_ERR_TOO_LONG);
    /* 62 + 2 = 64 octets: fits. */
    memcpy(buf + 63, "\xc3\xa9@x>", 6);
    STATUS(buf, true, ADDR_OK);
    STATUS(buf, false, ADDR_ERR_UTF8);
}

static void test_utf8_invalid_in_address(void **state)
{
    static const char *const bad[] = {
        "<a\xc0\xaf@x.example>",             /* overlong '/' */
        "<a\xc1\xbf@x.example>",             /* overlong */
        "<a\xe0\x80\xaf@x.example>",         /* overlong 3-byte */
        "<a\xf0\x80\x80\xaf@x.example>",     /* overlong 4-byte */
        "<a\xed\xa0\x80@x.example>",         /* surrogate U+D800 */
        "<a\xed\xbf\xbf@x.example>",         /* surrogate U+DFFF */
        "<a\xf4\x90\x80\x80@x.example>",     /* U+110000 */
        "<a\xf5\x80\x80\x80@x.example>",     /* lead F5 */
        "<a\xff@x.example>",
        "<a\xc3@x.example>",                 /* truncated */
        "<a\xe2\x82@x.example>",             /* truncated */
        "<a\xf0\x9f\x98@x.example>",         /* truncated */
        "<a\x80@x.example>",                 /* lone continuation */
        "<a\xc3\xa9\xa9@x.example>",         /* stray continuation */
        "<a@x\xc3.example>",
        "<a@x.example\xc3>",
        "<\"a\xc3\"@x.example>",
        "<a\xc2\x85@x.example>",             /* C1 control NEL */
        "<a\xc2\x9b@x.example>",             /* C1 control CSI */
        "<a@x\xc2\x80.example>",
        "<\"a\xc2\x8a\"@x.example>",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        STATUS(bad[i], true, ADDR_ERR_SYNTAX);
        STATUS(bad[i], false, ADDR_ERR_SYNTAX);
    }
    /* Truncated by the length, not by a terminator. */
    STATUS_N("<a\xc3\xa9@x>", 3, true, ADDR_ERR_SYNTAX);
}

static void test_control_chars(void **state)
{
    static const char *const bad[] = {
        "<a\tb@x.example>", "<a\rb@x.example>", "<a\nb@x.example>",
        "<a\x01" "b@x.example>", "<a\x1f@x.example>", "<a\x7f@x.example>",
        "<a@x\r.example>", "<a@x.example\n>", "<a@x.ex\x1b" "ample>",
        "<\"a\rb\"@x.example>", "<\"a\nb\"@x.example>", "<\"a\x1b\"@x.example>",
        "<a@[1.2.3.4\r]>", "<a@[IPv6:::1\n]>", "<@a\r:b@c>",
        "<a@x.example\r\n>",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        STATUS_BOTH(bad[i], ADDR_ERR_SYNTAX);
}

static void test_nul_inside(void **state)
{
    (void)state;
    STATUS_N("<a\0b@x.example>", 15, false, ADDR_ERR_SYNTAX);
    STATUS_N("<a@x\0.example>", 14, true, ADDR_ERR_SYNTAX);
    STATUS_N("<\"a\0b\"@x.example>", 17, true, ADDR_ERR_SYNTAX);
    STATUS_N("<\"a\\\0\"@x.example>", 17, true, ADDR_ERR_SYNTAX);
    STATUS_N("<a@[1.2.3.4\0]>", 14, false, ADDR_ERR_SYNTAX);
    STATUS_N("<a@[IPv6:::1\0]>", 15, false, ADDR_ERR_SYNTAX);
    STATUS_N("\0<a@x>", 6, false, ADDR_ERR_SYNTAX);
    STATUS_N("<\0>", 3, false, ADDR_ERR_SYNTAX);
    STATUS_N("<postmaster\0>", 13, false, ADDR_ERR_SYNTAX);
}

static void test_truncated_input(void **state)
{
    const char *s = "<user@example.com>";
    size_t n;

    (void)state;
    /* Every proper prefix is incomplete; ASan catches reads past len. */
    for (n = 0; n < strlen(s); n++)
        STATUS_N(s, n, false, ADDR_ERR_SYNTAX);
    s = "<\"q\\\"x\"@[IPv6:2001:db8::1]>";
    for (n = 0; n < strlen(s); n++)
        STATUS_N(s, n, false, ADDR_ERR_SYNTAX);
    s = "<@a,@b:\xc3\xa9@\xc3\xa9>";
    for (n = 0; n < strlen(s); n++)
        STATUS_N(s, n, true, ADDR_ERR_SYNTAX);
    STATUS_N(s, strlen(s), true, ADDR_OK);
}

static void test_null_input(void **state)
{
    struct mailbox mb;
    size_t consumed = 7;

    (void)state;
    assert_int_equal(address_parse_path(NULL, 0, false, &mb, &consumed), ADDR_ERR_SYNTAX);
    assert_int_equal(consumed, 0);
}

static void test_mailbox_format(void **state)
{
    struct mailbox mb;
    size_t consumed;
    char buf[400];
    char small[5];

    (void)state;
    assert_int_equal(parse_n("<@r.example:user@Example.com>", 29, false, &mb, &consumed), ADDR_OK);
    mailbox_format(&mb, buf, sizeof(buf));
    assert_string_equal(buf, "user@Example.com");

    assert_int_equal(parse_n("<\"a b\"@[1.2.3.4]>", 17, false, &mb, &consumed), ADDR_OK);
    mailbox_format(&mb, buf, sizeof(buf));
    assert_string_equal(buf, "\"a b\"@[1.2.3.4]");

    assert_int_equal(parse_n("<user@example.com>", 18, false, &mb, &consumed), ADDR_OK);
    memset(small, 'X', sizeof(small));
    mailbox_format(&mb, small, sizeof(small));
    assert_string_equal(small, "user");

    small[0] = 'Z';
    mailbox_format(&mb, small, 0);
    assert_int_equal(small[0], 'Z');
    mailbox_format(&mb, NULL, 10);

    /* The longest possible mailbox: 64 + 1 + 189 octets. */
    build(buf, sizeof(buf), 64, 189);
    assert_int_equal(parse_n(buf, strlen(buf), false, &mb, &consumed), ADDR_OK);
    {
        char out[ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX + 1];

        mailbox_format(&mb, out, sizeof(out));
        assert_int_equal(strlen(out), 64 + 1 + 189);
    }
}

/* ---- canonical form (RFC 5321 4.1.2: quoting that is not needed) ---- */

static void check_canonical(const char *path, bool utf8, const char *want,
                            const char *file, int line)
{
    struct mailbox mb, again;
    size_t consumed;
    char out[ADDR_PATH_MAX + 1], wire[ADDR_PATH_MAX + 1], reparse[ADDR_PATH_MAX + 3];

    _assert_int_equal(parse_n(path, strlen(path), utf8, &mb, &consumed), ADDR_OK, file, line);
    mailbox_format_canonical(&mb, out, sizeof(out));
    _assert_string_equal(out, want, file, line);
    /* never longer than what the client wrote */
    mailbox_format(&mb, wire, sizeof(wire));
    _assert_true(strlen(out) <= strlen(wire), "canonical longer than wire", file, line);
    if (mb.is_null || mb.domain[0] == '\0')
        return;
    /* the same local part, and canonical already */
    snprintf(reparse, sizeof(reparse), "<%s>", out);
    _assert_int_equal(parse_n(reparse, strlen(reparse), utf8, &again, &consumed), ADDR_OK,
                      file, line);
    _assert_string_equal(again.local_unquoted, mb.local_unquoted, file, line);
    if (out[0] != '"')
        _assert_string_equal(again.local, mb.local_unquoted, file, line);
    mailbox_format_canonical(&again, wire, sizeof(wire));
    _assert_string_equal(wire, out, file, line);
}

#define CANON(path, utf8, want) check_canonical((path), (utf8), (want), __FILE__, __LINE__)

static void test_canonical(void **state)
{
    (void)state;
    CANON("<user@example.test>", false, "user@example.test");
    CANON("<\"p\\ostmaster\"@example.test>", false, "postmaster@example.test");
    CANON("<\"\\p\\o\\s\\t\\m\\a\\s\\t\\e\\r\"@example.test>", false,
          "postmaster@example.test");
    CANON("<\"postmaster\"@example.test>", false, "postmaster@example.test");
    CANON("<\"first.last\"@example.test>", false, "first.last@example.test");
    CANON("<@relay.example:\"u\"@example.test>", false, "u@example.test");
    /* case is kept, in local part and domain */
    CANON("<\"PostMaster\"@Example.TEST>", false, "PostMaster@Example.TEST");
    /* quoting that is needed stays, with the least escaping */
    CANON("<\"a b\"@x.test>", false, "\"a b\"@x.test");
    CANON("<\"a\\ b\"@x.test>", false, "\"a b\"@x.test");
    CANON("<\"a\\\"b\"@x.test>", false, "\"a\\\"b\"@x.test");
    CANON("<\"a\\\\b\"@x.test>", false, "\"a\\\\b\"@x.test");
    CANON("<\"a..b\"@x.test>", false, "\"a..b\"@x.test");
    CANON("<\".a\"@x.test>", false, "\".a\"@x.test");
    CANON("<\"a.\"@x.test>", false, "\"a.\"@x.test");
    CANON("<\"a@b\"@x.test>", false, "\"a@b\"@x.test");
    CANON("<\"\\a\\@b\"@x.test>", false, "\"a@b\"@x.test");
    CANON("<\"\"@x.test>", false, "\"\"@x.test");
    CANON("<\"\\\"\"@x.test>", false, "\"\\\"\"@x.test");
    /* UTF-8 (RFC 6531): a quoted U-string that needs no quoting */
    CANON("<\"j\xc3\xb6rg\"@x.test>", true, "j\xc3\xb6rg@x.test");
    CANON("<\"j\xc3\xb6 rg\"@x.test>", true, "\"j\xc3\xb6 rg\"@x.test");
    /* null path and bare postmaster */
    CANON("<>", false, "");
    CANON("<Postmaster>", false, "Postmaster");
}

/* Every spelling of postmaster that escapes some of its letters. */
static void test_canonical_many_spellings(void **state)
{
    const char *name = "postmaster";
    size_t n = strlen(name);

    (void)state;
    for (unsigned mask = 0; mask < (1u << n); mask++) {
        char path[64];
        size_t o = 0;

        path[o++] = '<';
        path[o++] = '"';
        for (size_t i = 0; i < n; i++) {
            if (mask & (1u << i))
                path[o++] = '\\';
            path[o++] = name[i];
        }
        memcpy(path + o, "\"@example.test>", 16);
        CANON(path, false, "postmaster@example.test");
    }
}

static void test_canonical_limits(void **state)
{
    struct mailbox mb;
    size_t consumed;
    char path[ADDR_PATH_MAX + 1], out[ADDR_PATH_MAX + 1], small[8];
    size_t o = 0;

    (void)state;
    /* the longest quoted local part: 31 escaped octets in 64 */
    path[o++] = '<';
    path[o++] = '"';
    for (int i = 0; i < 31; i++) {
        path[o++] = '\\';
        path[o++] = 'a';
    }
    memcpy(path + o, "\"@x.test>", 10);
    assert_int_equal(parse_n(path, strlen(path), false, &mb, &consumed), ADDR_OK);
    assert_int_equal(strlen(mb.local), 64);
    mailbox_format_canonical(&mb, out, sizeof(out));
    assert_int_equal(strlen(out), 31 + strlen("@x.test"));

    /* truncation keeps the NUL */
    memset(small, 'X', sizeof(small));
    mailbox_format_canonical(&mb, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    small[0] = 'Z';
    mailbox_format_canonical(&mb, small, 0);
    assert_int_equal(small[0], 'Z');
    mailbox_format_canonical(&mb, NULL, 10);

    /* a mailbox not made by the parser, whose canonical local part would
     * not fit: the wire form is written instead */
    memset(&mb, 0, sizeof(mb));
    memcpy(mb.local, "x", 2);
    memset(mb.local_unquoted, '"', ADDR_LOCAL_MAX);
    memcpy(mb.domain, "d.test", 7);
    mailbox_format_canonical(&mb, out, sizeof(out));
    assert_string_equal(out, "x@d.test");
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain ascii", 11));
    assert_true(utf8_valid("a\0b", 3));                        /* NUL is UTF-8 */
    assert_true(utf8_valid("\xc2\x80", 2));                    /* U+0080 */
    assert_true(utf8_valid("\xdf\xbf", 2));                    /* U+07FF */
    assert_true(utf8_valid("\xe0\xa0\x80", 3));                /* U+0800 */
    assert_true(utf8_valid("\xed\x9f\xbf", 3));                /* U+D7FF */
    assert_true(utf8_valid("\xee\x80\x80", 3));                /* U+E000 */
    assert_true(utf8_valid("\xef\xbf\xbf", 3));                /* U+FFFF */
    assert_true(utf8_valid("\xf0\x90\x80\x80", 4));            /* U+10000 */
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));            /* U+10FFFF */
    assert_true(utf8_valid("a\xc3\xa9z\xe2\x82\xac", 7));

    assert_false(utf8_valid("\x80", 1));
    assert_false(utf8_valid("\xbf", 1));
    assert_false(utf8_valid("\xc0\x80", 2));                   /* overlong NUL */
    assert_false(utf8_valid("\xc1\xbf", 2));
    assert_false(utf8_valid("\xe0\x9f\xbf", 3));               /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));               /* U+D800 */
    assert_false(utf8_valid("\xed\xbf\xbf", 3));               /* U+DFFF */
    assert_false(utf8_valid("\xf0\x8f\xbf\xbf", 4));           /* overlong */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4));           /* U+110000 */
    assert_false(utf8_valid("\xf5\x80\x80\x80", 4));
    assert_false(utf8_valid("\xf8\x88\x80\x80\x80", 5));
    assert_false(utf8_valid("\xfe", 1));
    assert_false(utf8_valid("\xff", 1));
    assert_false(utf8_valid("\xc3", 1));                       /* truncated */
    assert_false(utf8_valid("\xe2\x82", 2));
    assert_false(utf8_valid("\xf0\x9f\x98", 3));
    assert_false(utf8_valid("\xe2\x28\xa1", 3));               /* bad continuation */
    assert_false(utf8_valid("\xc3\x28", 2));
    assert_false(utf8_valid("\xf0\x9f\x98\x28", 4));
    assert_false(utf8_valid("ok\xc3\xa9\xa9", 5));

    /* The length is honoured: a valid sequence cut short is invalid. */
    assert_false(utf8_valid("\xc3\xa9", 1));
    assert_true(utf8_valid("a\xc3\xa9", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_consumed_stops_at_gt),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_dot_string),
        cmocka_unit_test(test_quoted_local),
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_ipv4_literal),
        cmocka_unit_test(test_ipv6_literal),
        cmocka_unit_test(test_general_literal),
        cmocka_unit_test(test_source_route),
        cmocka_unit_test(test_local_length),
        cmocka_unit_test(test_domain_and_path_length),
        cmocka_unit_test(test_utf8_addresses),
        cmocka_unit_test(test_utf8_too_long_precedence),
        cmocka_unit_test(test_utf8_invalid_in_address),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_nul_inside),
        cmocka_unit_test(test_truncated_input),
        cmocka_unit_test(test_null_input),
        cmocka_unit_test(test_mailbox_format),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_canonical_many_spellings),
        cmocka_unit_test(test_canonical_limits),
        cmocka_unit_test(test_utf8_valid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

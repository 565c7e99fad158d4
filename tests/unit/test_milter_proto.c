/*
 * test_milter_proto.c - unit tests for milter/milter_proto.c: the
 * commands we send have the wire form libmilter reads, and every reply a
 * milter may send decodes to what it means, while every malformed one
 * (short, overlong, missing NUL, NUL or line break inside a value, bad
 * reply code, class mismatch, junk after data) is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter_proto.h"

static struct milter_packet p;
static struct milter_reply r;
static unsigned char pk[MILTER_PACKET_MAX + 16];
static char err[256];

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The packet's length word covers command + data. */
static void assert_framed(char cmd)
{
    assert_true(p.len >= 5);
    assert_int_equal(be32(p.buf), p.len - 4);
    assert_int_equal(p.buf[4], (unsigned char)cmd);
}

/* A reply packet: cmd then len octets of data; returns its length. */
static size_t mk(char cmd, const void *data, size_t len)
{
    pk[0] = (unsigned char)cmd;
    memcpy(pk + 1, data, len);
    return len + 1;
}

static bool dec(char cmd, const void *data, size_t len)
{
    err[0] = 0;
    return milter_reply_decode(pk, mk(cmd, data, len), &r, err, sizeof(err));
}

#define S(lit) lit, sizeof(lit)     /* with its NUL */
#define N(lit) lit, sizeof(lit) - 1 /* without */

static void test_encoders(void **state)
{
    const char *names[] = { "j", "{client_addr}" }, *values[] = { "mx", "192.0.2.1" };
    const char *args[] = { "BODY=8BITMIME", "SMTPUTF8" };
    static const char body[70000];

    (void)state;
    milter_encode_optneg(&p, 6, MILTER_ACTIONS_OFFERED, MILTER_PROTOCOL_OFFERED);
    assert_framed('O');
    assert_int_equal(p.len, 17);
    assert_int_equal(be32(p.buf + 5), 6);
    assert_int_equal(be32(p.buf + 9), 0x1ff);
    assert_int_equal(be32(p.buf + 13), MILTER_PROTOCOL_OFFERED);
    assert_int_equal(MILTER_PROTOCOL_OFFERED & (SMFIP_RCPT_REJ | SMFIP_HDR_LEADSPC), 0);

    assert_true(milter_encode_macro(&p, 'C', names, values, 2));
    assert_framed('D');
    assert_memory_equal(p.buf + 5, "Cj\0mx\0{client_addr}\0" "192.0.2.1\0", 30);
    assert_int_equal(p.len, 5 + 30);

    assert_true(milter_encode_connect(&p, "[192.0.2.1]", '4', 2525, "192.0.2.1"));
    assert_framed('C');
    assert_memory_equal(p.buf + 5, "[192.0.2.1]\0" "4\x09\xdd" "192.0.2.1\0", 25);
    assert_true(milter_encode_connect(&p, "host", 'U', 0, ""));
    assert_int_equal(p.len, 5 + 6);

    assert_true(milter_encode_addr(&p, 'M', "a@b.example", args, 2));
    assert_framed('M');
    assert_memory_equal(p.buf + 5, "<a@b.example>\0BODY=8BITMIME\0SMTPUTF8\0", 37);
    assert_true(milter_encode_addr(&p, 'M', "", NULL, 0));
    assert_memory_equal(p.buf + 5, "<>\0", 3);

    assert_true(milter_encode_header(&p, "Subject", "a\n b", 4));
    assert_framed('L');
    assert_memory_equal(p.buf + 5, "Subject\0a\n b\0", 14);
    assert_false(milter_encode_header(&p, "X", "a\0b", 3));

    assert_true(milter_encode_body(&p, body, MILTER_SEND_DATA_MAX));
    assert_int_equal(be32(p.buf), MILTER_SEND_DATA_MAX + 1);
    assert_false(milter_encode_body(&p, body, MILTER_SEND_DATA_MAX + 1));
    milter_encode_empty(&p, 'E');
    assert_framed('E');
    assert_int_equal(p.len, 5);
}

static void test_packet_length(void **state)
{
    unsigned char w[4] = { 0, 0, 0, 1 };
    uint32_t len;

    (void)state;
    assert_true(milter_packet_length(w, &len, err, sizeof(err)));
    assert_int_equal(len, 1);
    memset(w, 0, 4);
    assert_false(milter_packet_length(w, &len, err, sizeof(err)));     /* 0 */
    w[1] = 0x10;
    w[3] = 0x01;                                                        /* 1 MiB + 1 */
    assert_true(milter_packet_length(w, &len, err, sizeof(err)));
    w[3] = 0x02;
    assert_false(milter_packet_length(w, &len, err, sizeof(err)));
    memset(w, 0xff, 4);
    assert_false(milter_packet_length(w, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "bad packet length"));
}

static void test_simple_replies(void **state)
{
    (void)state;
    for (const char *c = "acdrtps"; *c; c++) {
        assert_true(dec(*c, "", 0));
        assert_int_equal(r.cmd, *c);
        assert_false(dec(*c, "x", 1));          /* data where none belongs */
    }
    assert_false(dec('Z', "", 0));
    assert_false(dec('4', "", 0));              /* SMFIR_SHUTDOWN: not for us */
    assert_false(dec('f', "", 0));
    assert_false(milter_reply_decode(pk, 0, &r, err, sizeof(err)));
}

static void test_optneg(void **state)
{
    unsigned char d[64] = { 0, 0, 0, 6, 0, 0, 0x01, 0x01, 0, 0x1f, 0, 0x7f };
    size_t n = 12;

    (void)state;
    assert_true(dec('O', d, 12));
    assert_int_equal(r.version, 6);
    assert_int_equal(r.actions, 0x101);
    assert_int_equal(r.protocol, 0x1f007f);
    assert_null(r.symlist[0]);
    assert_false(dec('O', d, 11));
    /* symlists: CONNECT "j {client_addr}", EOM "i" */
    memcpy(d + n, "\0\0\0\0j {client_addr}\0\0\0\0\x05i\0", 26);
    assert_true(dec('O', d, n + 26));
    assert_string_equal(r.symlist[MILTER_STAGE_CONNECT], "j {client_addr}");
    assert_string_equal(r.symlist[MILTER_STAGE_EOM], "i");
    assert_false(dec('O', d, n + 25));          /* list without its NUL */
    assert_false(dec('O', d, n + 2));           /* truncated stage */
    d[n + 3] = 7;                               /* unknown stage */
    assert_false(dec('O', d, n + 26));
    d[n + 3] = 5;                               /* two lists for EOM */
    assert_false(dec('O', d, n + 26));
    d[n + 3] = 0;
    d[n + 5] = '\t';                            /* not printable */
    assert_false(dec('O', d, n + 26));
}

static void test_header_edits(void **state)
{
    unsigned char d[MILTER_VALUE_MAX + 64];

    (void)state;
    assert_true(dec('h', S("X-Spam\0Yes")));
    assert_string_equal(r.name, "X-Spam");
    assert_string_equal(r.value, "Yes");
    assert_true(dec('h', S("X-Spamd-Result\0default: False\r\n\tSYM(1.0)\n SYM2")));
    assert_int_equal(r.value_len, 31);
    assert_true(dec('h', S("X-Empty\0")));
    assert_true(dec('h', S("X-Utf8\0caf\xc3\xa9")));
    assert_true(dec('i', S("\0\0\0\0DKIM-Signature\0v=1;\n\tb=x")));
    assert_int_equal(r.index, 0);
    assert_true(dec('m', S("\0\0\0\x02Subject\0")));
    assert_int_equal(r.index, 2);
    assert_int_equal(r.value_len, 0);

    assert_false(dec('h', N("X-Spam\0Yes")));           /* value without NUL */
    assert_false(dec('h', N("X-Spam")));                /* name without NUL */
    assert_false(dec('h', S("X-Spam\0Yes\0junk")));     /* data after the value */
    assert_false(dec('h', S("\0Yes")));                 /* empty name */
    assert_false(dec('h', S("X Spam\0Yes")));           /* space in name */
    assert_false(dec('h', S("X:Spam\0Yes")));
    assert_false(dec('h', S("X-\x80\0Yes")));
    assert_false(dec('h', S("X\0a\nb")));               /* LF not folding */
    assert_false(dec('h', S("X\0a\rb")));               /* bare CR */
    assert_false(dec('h', S("X\0a\r\n")));              /* line break at the end */
    assert_false(dec('h', S("X\0a\n")));
    assert_false(dec('h', S("X\0a\n \n b")));            /* white-space-only line */
    assert_false(dec('h', S("X\0a\r\n\t\r\n b")));
    assert_false(dec('h', S("X\0a\n\t ")));
    assert_true(dec('h', S("X\0a\n \tb")));
    assert_false(dec('h', S("X\0a\x01")));              /* control octet */
    assert_false(dec('h', S("X\0a\x7f")));
    assert_false(dec('i', S("\0\0\0X\0v")));            /* short index */
    assert_false(dec('m', "\0\0", 2));
    memset(d, 'a', sizeof(d));
    memcpy(d, "X\0", 2);
    d[2 + MILTER_VALUE_MAX] = 0;
    assert_true(dec('h', d, 3 + MILTER_VALUE_MAX));
    d[2 + MILTER_VALUE_MAX] = 'a';
    d[3 + MILTER_VALUE_MAX] = 0;
    assert_false(dec('h', d, 4 + MILTER_VALUE_MAX));    /* value too long */
    memset(d, 'N', MILTER_NAME_MAX + 1);
    d[MILTER_NAME_MAX + 1] = 0;
    d[MILTER_NAME_MAX + 2] = 0;
    assert_false(dec('h', d, MILTER_NAME_MAX + 3));     /* name too long */
    d[MILTER_NAME_MAX] = 0;
    assert_true(dec('h', d, MILTER_NAME_MAX + 2));
}

static void test_envelope_edits(void **state)
{
    char d[ADDR_PATH_MAX + 16];

    (void)state;
    assert_true(dec('+', S("<new@example.org>")));
    assert_int_equal(r.value_len, 15);
    assert_memory_equal(r.value, "new@example.org", 15);
    assert_null(r.args);
    assert_true(dec('+', S("bare@example.org")));
    assert_int_equal(r.value_len, 16);
    assert_true(dec('-', S("<old@example.org>")));
    assert_true(dec('2', S("<a@b>\0NOTIFY=NEVER")));
    assert_string_equal(r.args, "NOTIFY=NEVER");
    assert_true(dec('2', S("<a@b>")));
    assert_null(r.args);
    assert_true(dec('e', S("<>")));                     /* null sender */
    assert_int_equal(r.value_len, 0);
    assert_true(dec('e', S("<s@x>\0")));                /* empty args: none */
    assert_null(r.args);

    assert_false(dec('+', S("<>")));                    /* empty recipient */
    assert_false(dec('-', S("")));
    assert_false(dec('+', N("<a@b>")));
    assert_false(dec('+', S("<a@b>\0extra")));          /* ADDRCPT has no args */
    assert_false(dec('2', N("<a@b>\0ARG")));            /* args without NUL */
    assert_false(dec('e', S("<a@b>\0A\tB")));           /* args not printable */
    assert_false(dec('+', S("<a\r\n@b>")));
    memset(d, 'a', sizeof(d));
    d[0] = '<';
    d[ADDR_PATH_MAX + 2] = '>';
    d[ADDR_PATH_MAX + 3] = 0;
    assert_false(dec('+', d, ADDR_PATH_MAX + 4));       /* too long */
    d[ADDR_PATH_MAX + 1] = '>';
    d[ADDR_PATH_MAX + 2] = 0;
    assert_true(dec('+', d, ADDR_PATH_MAX + 3));
}

static void test_quarantine_and_body(void **state)
{
    (void)state;
    assert_true(dec('q', S("suspicious attachment")));
    assert_string_equal(r.value, "suspicious attachment");
    assert_false(dec('q', N("x")));
    assert_false(dec('q', S("a\nb")));
    assert_true(dec('b', N("new body\r\n")));
    assert_int_equal(r.body_len, 10);
    assert_true(dec('b', "", 0));
}

static const char *reply(const char *text)
{
    if (!dec('y', text, strlen(text) + 1))
        return NULL;
    return r.reply;
}

static void test_replycode(void **state)
{
    (void)state;
    assert_string_equal(reply("554 5.7.1 Spam message rejected"),
                        "554 5.7.1 Spam message rejected");
    assert_string_equal(reply("451 4.7.1 Try later"), "451 4.7.1 Try later");
    assert_string_equal(reply("550 Go away"), "550 5.7.1 Go away");
    assert_string_equal(reply("421 busy"), "421 4.7.1 busy");
    assert_string_equal(reply("550"), "550 5.7.1 Command rejected");
    assert_string_equal(reply("450 4.2.0"), "450 4.2.0 Service unavailable - try again later");
    assert_string_equal(reply("550 5.7.1 100%% spam, 5% more"), "550 5.7.1 100% spam, 5 more");
    assert_string_equal(reply("550-5.7.1 first line\r\n550-5.7.1 second\r\n550 5.7.1 last"),
                        "550 5.7.1 first line second last");
    assert_string_equal(reply("550 2 many"), "550 5.7.1 2 many");
    assert_string_equal(reply("550 5.7.123 text"), "550 5.7.123 text");

    assert_null(reply("250 2.0.0 Ok"));                 /* not 4xx/5xx */
    assert_null(reply("650 bad"));
    assert_null(reply("561 5.7.1 no"));                 /* second digit 0-5 only */
    assert_null(reply("491 4.7.1 no"));
    assert_string_equal(reply("559 5.7.1 ok"), "559 5.7.1 ok");
    assert_null(reply("55 short"));
    assert_null(reply("5a0 x"));
    assert_null(reply(""));
    assert_null(reply("550 4.7.1 class mismatch"));
    assert_null(reply("450 5.7.1 class mismatch"));
    assert_null(reply("550 5.7 half a code"));
    assert_null(reply("550 5.7.1234 too long"));
    assert_null(reply("550 5.x.1 junk"));
    assert_null(reply("550-5.7.1 a\r\n451 4.7.1 b"));   /* codes differ */
    assert_null(reply("550 5.7.1 a\r\n550 5.7.1 b"));   /* SP before the last */
    assert_null(reply("550-5.7.1 a"));                  /* '-' on the last */
    assert_null(reply("550 5.7.1 a\r\n"));              /* trailing CRLF */
    assert_null(reply("550 5.7.1 a\nb"));               /* bare LF */
    assert_null(reply("550 5.7.1 caf\xc3\xa9"));        /* not ASCII */
    assert_null(reply("550x5.7.1"));
    assert_false(dec('y', N("550 5.7.1 no NUL")));
    assert_false(dec('y', S("550 5.7.1 a\0junk")));     /* NUL inside */
}

static void test_replycode_lengths(void **state)
{
    char line[MILTER_SMTP_LINE_MAX + 2], multi[3 * MILTER_SMTP_LINE_MAX];

    (void)state;
    memset(line, 'a', sizeof(line));
    memcpy(line, "550 ", 4);
    line[MILTER_SMTP_LINE_MAX] = 0;
    assert_non_null(reply(line));
    line[MILTER_SMTP_LINE_MAX] = 'a';
    line[MILTER_SMTP_LINE_MAX + 1] = 0;
    assert_null(reply(line));                           /* one line too long */
    /* Folding three long lines is cut to one SMTP line. */
    line[MILTER_SMTP_LINE_MAX - 4] = 0;
    snprintf(multi, sizeof(multi), "550-5.7.1 %s\r\n550-5.7.1 %s\r\n550 5.7.1 %s",
             line + 14, line + 14, line + 14);
    assert_non_null(reply(multi));
    assert_int_equal(strlen(r.reply), MILTER_SMTP_LINE_MAX);
    assert_memory_equal(r.reply, "550 5.7.1 aaa", 13);
}

static void test_overlong_packet(void **state)
{
    (void)state;
    memset(pk, 0, MILTER_PACKET_MAX + 1);
    pk[0] = 'b';
    assert_true(milter_reply_decode(pk, MILTER_PACKET_MAX, &r, err, sizeof(err)));
    assert_false(milter_reply_decode(pk, MILTER_PACKET_MAX + 1, &r, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_packet_length),
        cmocka_unit_test(test_simple_replies),
        cmocka_unit_test(test_optneg),
        cmocka_unit_test(test_header_edits),
        cmocka_unit_test(test_envelope_edits),
        cmocka_unit_test(test_quarantine_and_body),
        cmocka_unit_test(test_replycode),
        cmocka_unit_test(test_replycode_lengths),
        cmocka_unit_test(test_overlong_packet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

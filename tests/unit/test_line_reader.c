/*
 * test_line_reader.c - unit tests for smtpd/line_reader.c.
 *
 * Pins down the CRLF-only rule for command lines (bare CR and bare LF
 * are errors, never line ends), the max-length boundary (max counts the
 * CRLF), the consumed counts the session relies on for pipelining and
 * resynchronisation, and checks line_scan() against a byte-by-byte model
 * over every short input built from 'a', CR and LF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtpd/line_reader.h"

/* Length of a string literal that may hold NUL bytes. */
#define LIT(s) (s), (sizeof(s) - 1)

struct scan_result {
    enum line_status st;
    size_t line_len;
    size_t consumed;
};

static struct scan_result scan(const char *buf, size_t len, size_t max)
{
    struct scan_result r;

    r.line_len = 12345;
    r.consumed = 12345;
    r.st = line_scan(buf, len, max, &r.line_len, &r.consumed);
    return r;
}

static void expect(struct scan_result r, enum line_status st,
                   size_t line_len, size_t consumed)
{
    assert_int_equal(r.st, st);
    assert_int_equal(r.line_len, line_len);
    assert_int_equal(r.consumed, consumed);
}

static void test_simple_line(void **state)
{
    (void)state;
    expect(scan(LIT("NOOP\r\n"), 512), LINE_OK, 4, 6);
    expect(scan(LIT("\r\n"), 512), LINE_OK, 0, 2);
}

static void test_pipelined_lines(void **state)
{
    static const char buf[] = "NOOP\r\nQUIT\r\nRS";
    size_t len = sizeof(buf) - 1;
    struct scan_result r;

    (void)state;
    r = scan(buf, len, 512);
    expect(r, LINE_OK, 4, 6);
    assert_memory_equal(buf, "NOOP", 4);
    r = scan(buf + 6, len - 6, 512);
    expect(r, LINE_OK, 4, 6);
    assert_memory_equal(buf + 6, "QUIT", 4);
    expect(scan(buf + 12, len - 12, 512), LINE_NEED_MORE, 0, 0);
}

static void test_bare_lf(void **state)
{
    (void)state;
    expect(scan(LIT("NOOP\n"), 512), LINE_BAD_NEWLINE, 0, 5);
    expect(scan(LIT("\n"), 512), LINE_BAD_NEWLINE, 0, 1);
    expect(scan(LIT("NOOP\nQUIT\r\n"), 512), LINE_BAD_NEWLINE, 0, 5);
}

static void test_bare_cr(void **state)
{
    (void)state;
    expect(scan(LIT("NO\rOP\r\n"), 512), LINE_BAD_NEWLINE, 0, 7);
    expect(scan(LIT("\rNOOP\r\n"), 512), LINE_BAD_NEWLINE, 0, 7);
    expect(scan(LIT("NOOP\r\r\n"), 512), LINE_BAD_NEWLINE, 0, 7);
    expect(scan(LIT("\r\r\n"), 512), LINE_BAD_NEWLINE, 0, 3);
    /* A bare CR is no line end: the line goes on to the next LF. */
    expect(scan(LIT("MAIL\rRCPT\r\n"), 512), LINE_BAD_NEWLINE, 0, 11);
}

static void test_need_more(void **state)
{
    (void)state;
    expect(scan(LIT(""), 512), LINE_NEED_MORE, 0, 0);
    expect(scan(LIT("NOOP"), 512), LINE_NEED_MORE, 0, 0);
    expect(scan(LIT("NOOP\r"), 512), LINE_NEED_MORE, 0, 0);
    /* A bare CR is only judged once the line is complete. */
    expect(scan(LIT("NO\rOP"), 512), LINE_NEED_MORE, 0, 0);
    expect(scan(LIT(""), 0), LINE_NEED_MORE, 0, 0);
}

static void test_nul_is_not_judged(void **state)
{
    (void)state;
    expect(scan(LIT("NO\0OP\r\n"), 512), LINE_OK, 5, 7);
}

static void test_max_boundary_with_lf(void **state)
{
    (void)state;
    /* max = 6: "NOOP\r\n" is exactly 6 octets with its CRLF. */
    expect(scan(LIT("NOOP\r\n"), 6), LINE_OK, 4, 6);
    expect(scan(LIT("NOOPS\r\n"), 6), LINE_TOO_LONG, 0, 7);
    expect(scan(LIT("NOOP\r\nNOOP\r\n"), 6), LINE_OK, 4, 6);
    /* The LF may be far past max: consumed still reaches it. */
    expect(scan(LIT("NOOPNOOPNOOP\r\nQUIT\r\n"), 6), LINE_TOO_LONG, 0, 14);
    /* Too long wins over a bare newline. */
    expect(scan(LIT("NOOP\rNOOP\n"), 6), LINE_TOO_LONG, 0, 10);
    /* A bare-LF line of exactly max octets is judged by its newline. */
    expect(scan(LIT("NOOPS\n"), 6), LINE_BAD_NEWLINE, 0, 6);
}

static void test_max_boundary_without_lf(void **state)
{
    (void)state;
    /* Fewer than max bytes and no LF: the line may still fit. */
    expect(scan(LIT("NOOP\r"), 6), LINE_NEED_MORE, 0, 0);
    expect(scan(LIT("NOOPS"), 6), LINE_NEED_MORE, 0, 0);
    /* max bytes and no LF: with its LF it would be at least max + 1. */
    expect(scan(LIT("NOOPS\r"), 6), LINE_TOO_LONG, 0, 6);
    expect(scan(LIT("NOOPSS"), 6), LINE_TOO_LONG, 0, 6);
    expect(scan(LIT("NOOPSSSSSSSS"), 6), LINE_TOO_LONG, 0, 12);
}

static void test_skip_to_lf(void **state)
{
    int found = 7;

    (void)state;
    assert_int_equal(line_skip_to_lf(LIT("abc\ndef"), &found), 4);
    assert_int_equal(found, 1);
    assert_int_equal(line_skip_to_lf(LIT("\n"), &found), 1);
    assert_int_equal(found, 1);
    assert_int_equal(line_skip_to_lf(LIT("ab\r\n\n"), &found), 4);
    assert_int_equal(found, 1);
    found = 7;
    assert_int_equal(line_skip_to_lf(LIT("abc\r"), &found), 4);
    assert_int_equal(found, 0);
    found = 7;
    assert_int_equal(line_skip_to_lf(LIT(""), &found), 0);
    assert_int_equal(found, 0);
}

/*
 * A caller as the session is expected to be: a buffer of max bytes,
 * input arriving in chunks of `chunk` bytes, a too-long line discarded
 * up to its LF. Writes one status letter per line to log.
 */
struct mini_session {
    char buf[16];
    size_t have;
    int skipping;
    char log[64];
    size_t nlog;
};

static void mini_note(struct mini_session *m, char c)
{
    assert_true(m->nlog + 1 < sizeof(m->log));
    m->log[m->nlog++] = c;
    m->log[m->nlog] = '\0';
}

static void mini_drop(struct mini_session *m, size_t n)
{
    memmove(m->buf, m->buf + n, m->have - n);
    m->have -= n;
}

/* Process what is buffered; returns 0 when more input is needed. */
static int mini_step(struct mini_session *m, size_t max)
{
    size_t line_len, consumed;
    enum line_status st;
    int found;

    if (m->skipping) {
        mini_drop(m, line_skip_to_lf(m->buf, m->have, &found));
        m->skipping = !found;
        return found;
    }
    st = line_scan(m->buf, m->have, max, &line_len, &consumed);
    if (st == LINE_NEED_MORE)
        return 0;
    mini_note(m, st == LINE_OK ? 'O' : st == LINE_TOO_LONG ? 'L' : 'B');
    if (st == LINE_TOO_LONG && m->buf[consumed - 1] != '\n')
        m->skipping = 1;
    mini_drop(m, consumed);
    return 1;
}

static void mini_run(struct mini_session *m, const char *in, size_t len,
                     size_t max, size_t chunk)
{
    size_t pos = 0;

    memset(m, 0, sizeof(*m));
    assert_true(max <= sizeof(m->buf));
    while (pos < len) {
        size_t n = len - pos;
        if (n > chunk)
            n = chunk;
        if (n > max - m->have)
            n = max - m->have;
        if (n == 0)
            fail_msg("buffer full but line_scan asked for more");
        memcpy(m->buf + m->have, in + pos, n);
        m->have += n;
        pos += n;
        while (m->have > 0 && mini_step(m, max))
            ;
    }
}

static void test_resync_after_long_line(void **state)
{
    static const char in[] =
        "NOOP\r\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\nQUIT\r\nNO\nRSET\r\n";
    struct mini_session m;
    size_t chunk;

    (void)state;
    for (chunk = 1; chunk <= 16; chunk++) {
        mini_run(&m, in, sizeof(in) - 1, 8, chunk);
        assert_string_equal(m.log, "OLOBO");
        assert_int_equal(m.have, 0);
    }
}

/* A straightforward byte loop, written independently of line_reader.c. */
static struct scan_result model_scan(const char *buf, size_t len, size_t max)
{
    struct scan_result r = { LINE_NEED_MORE, 0, 0 };
    size_t lf = 0, i;

    while (lf < len && buf[lf] != '\n')
        lf++;
    if (lf == len) {
        if (len > 0 && len >= max) {
            r.st = LINE_TOO_LONG;
            r.consumed = len;
        }
        return r;
    }
    r.consumed = lf + 1;
    if (lf + 1 > max) {
        r.st = LINE_TOO_LONG;
        return r;
    }
    r.st = lf > 0 && buf[lf - 1] == '\r' ? LINE_OK : LINE_BAD_NEWLINE;
    for (i = 0; i + 1 < lf; i++)
        if (buf[i] == '\r')
            r.st = LINE_BAD_NEWLINE;
    if (r.st == LINE_OK)
        r.line_len = lf - 1;
    return r;
}

static void test_exhaustive_against_model(void **state)
{
    static const char alphabet[] = { 'a', '\r', '\n' };
    char buf[8];
    size_t len, max, k, n, combos;

    (void)state;
    for (len = 0; len <= sizeof(buf); len++) {
        for (combos = 1, k = 0; k < len; k++)
            combos *= 3;
        for (n = 0; n < combos; n++) {
            size_t v = n;
            for (k = 0; k < len; k++, v /= 3)
                buf[k] = alphabet[v % 3];
            for (max = 0; max <= len + 2; max++) {
                struct scan_result want = model_scan(buf, len, max);
                expect(scan(buf, len, max), want.st, want.line_len,
                       want.consumed);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_line),
        cmocka_unit_test(test_pipelined_lines),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_bare_cr),
        cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_nul_is_not_judged),
        cmocka_unit_test(test_max_boundary_with_lf),
        cmocka_unit_test(test_max_boundary_without_lf),
        cmocka_unit_test(test_skip_to_lf),
        cmocka_unit_test(test_resync_after_long_line),
        cmocka_unit_test(test_exhaustive_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_data_decoder.c - unit tests for smtpd/data_decoder.c.
 *
 * The decoder is the SMTP smuggling boundary (CVE-2023-51766 class):
 * these tests pin down that only CRLF "." CRLF ends DATA, that every
 * other dot-line variant stays message content and is flagged, that
 * only CRLF starts a new line (for unstuffing and for the end), that
 * line lengths are counted after unstuffing, and that the result never
 * depends on how the input is split. Every feed writes into a buffer of
 * exactly len + 2 bytes followed by a canary that must survive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "smtpd/data_decoder.h"

#define LIT(s) (s), (sizeof(s) - 1)
#define MAXIO 512
#define CANARY_LEN 16
#define CANARY_BYTE 0xA5
#define BIG_LINE 1000

enum mode { MODE_DATA, MODE_BDAT };

/* Everything observable about one decoding run. */
struct run {
    char out[MAXIO];
    size_t out_len;
    size_t consumed;
    unsigned flags;
    bool done;
};

static void check_canary(const char *buf, size_t from)
{
    size_t k;

    for (k = from; k < from + CANARY_LEN; k++)
        assert_int_equal((unsigned char)buf[k], CANARY_BYTE);
}

static void append(struct run *r, const char *buf, size_t n)
{
    assert_true(r->out_len + n <= sizeof(r->out));
    memcpy(r->out + r->out_len, buf, n);
    r->out_len += n;
}

/* One feed into a buffer of exactly n + 2 bytes plus a canary. */
static void feed_piece(struct data_decoder *d, const char *in, size_t n,
                       struct run *r)
{
    char buf[MAXIO + 2 + CANARY_LEN];
    bool was_done = d->done;
    size_t out_len = SIZE_MAX, used;

    assert_true(n <= MAXIO);
    memset(buf, CANARY_BYTE, sizeof(buf));
    used = data_decoder_feed(d, in, n, buf, &out_len);
    check_canary(buf, n + 2);
    assert_true(out_len <= n + 2);
    assert_true(used <= n);
    if (was_done) {
        assert_int_equal(used, 0);
        assert_int_equal(out_len, 0);
    } else if (!d->done) {
        assert_int_equal(used, n);
    } else {
        assert_true(used > 0 && in[used - 1] == '\n');
    }
    append(r, buf, out_len);
    r->consumed += used;
}

static void finish(struct data_decoder *d, struct run *r)
{
    char buf[2 + CANARY_LEN];
    size_t out_len = SIZE_MAX;

    memset(buf, CANARY_BYTE, sizeof(buf));
    data_decoder_finish(d, buf, &out_len);
    check_canary(buf, 2);
    assert_true(out_len <= 2);
    append(r, buf, out_len);
}

/*
 * Decode in[0..len) cut at cuts[0..ncuts) (ascending, <= len). In BDAT
 * mode data_decoder_finish() follows the last piece. Pieces after the
 * end of data are still fed, to check that they are left alone.
 */
static void run_cuts(enum mode m, size_t max_line, const char *in, size_t len,
                     const size_t *cuts, size_t ncuts, struct run *r)
{
    struct data_decoder d;
    size_t pos = 0, k;

    memset(r, 0, sizeof(*r));
    data_decoder_init(&d, m == MODE_DATA, max_line);
    for (k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        feed_piece(&d, in + pos, end - pos, r);
        pos = end;
    }
    if (m == MODE_BDAT)
        finish(&d, r);
    assert_int_equal(d.out_bytes, r->out_len);
    r->flags = d.flags;
    r->done = d.done;
}

static void run_whole(enum mode m, size_t max_line, const char *in,
                      size_t len, struct run *r)
{
    run_cuts(m, max_line, in, len, NULL, 0, r);
}

static void assert_same_run(const struct run *a, const struct run *b)
{
    assert_int_equal(a->out_len, b->out_len);
    assert_memory_equal(a->out, b->out, a->out_len);
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->done, b->done);
}

static void assert_run(const struct run *r, const char *out, size_t out_len,
                       size_t consumed, unsigned flags, bool done)
{
    assert_int_equal(r->out_len, out_len);
    assert_memory_equal(r->out, out, out_len);
    assert_int_equal(r->consumed, consumed);
    assert_int_equal(r->flags, flags);
    assert_int_equal(r->done, done);
}

/* DATA mode, whole input in one feed, max_line 1000. */
static void expect_data(const char *in, size_t len, const char *out,
                        size_t out_len, size_t consumed, unsigned flags,
                        bool done)
{
    struct run r;

    run_whole(MODE_DATA, BIG_LINE, in, len, &r);
    assert_run(&r, out, out_len, consumed, flags, done);
}

/* ---- end of data, unstuffing, CRLF ---------------------------------- */

static void test_empty_message(void **state)
{
    (void)state;
    expect_data(LIT(".\r\n"), LIT(""), 3, 0, true);
    expect_data(LIT(".\r\nQUIT\r\n"), LIT(""), 3, 0, true);
}

static void test_simple_message(void **state)
{
    (void)state;
    expect_data(LIT("Hello\r\n.\r\n"), LIT("Hello\r\n"), 10, 0, true);
    expect_data(LIT("\r\n.\r\n"), LIT("\r\n"), 5, 0, true);
}

static void test_crlf_kept_exactly(void **state)
{
    (void)state;
    expect_data(LIT("a\r\n\r\n\r\nb\r\n.\r\n"), LIT("a\r\n\r\n\r\nb\r\n"),
                13, 0, true);
}

static void test_pipelined_remainder(void **state)
{
    static const char in[] = "Hi\r\n.\r\nMAIL FROM:<a@b>\r\nQUIT\r\n";
    struct data_decoder d;
    char out[sizeof(in) + 2];
    size_t out_len, used;

    (void)state;
    data_decoder_init(&d, true, BIG_LINE);
    used = data_decoder_feed(&d, LIT(in), out, &out_len);
    assert_int_equal(used, 7);
    assert_true(d.done);
    assert_int_equal(out_len, 4);
    assert_memory_equal(out, "Hi\r\n", 4);
    assert_memory_equal(in + used, "MAIL FROM:<a@b>\r\n", 17);
    /* Once done, nothing more is taken. */
    assert_int_equal(data_decoder_feed(&d, in + used, sizeof(in) - 1 - used,
                                       out, &out_len), 0);
    assert_int_equal(out_len, 0);
    assert_int_equal(d.out_bytes, 4);
}

static void test_dot_unstuffing(void **state)
{
    (void)state;
    expect_data(LIT("..foo\r\n.bar\r\n...\r\n..\r\n.\r\n"),
                LIT(".foo\r\nbar\r\n..\r\n.\r\n"), 25, 0, true);
    /* The first line (right after the DATA command's CRLF) too. */
    expect_data(LIT(".foo\r\n.\r\n"), LIT("foo\r\n"), 9, 0, true);
}

static void test_dot_inside_line_kept(void **state)
{
    (void)state;
    expect_data(LIT("a.b\r\nx..\r\n a\r\n.\r\n"),
                LIT("a.b\r\nx..\r\n a\r\n"), 17, 0, true);
}

static void test_no_end_without_terminator(void **state)
{
    (void)state;
    expect_data(LIT("Hello\r\n"), LIT("Hello\r\n"), 7, 0, false);
    expect_data(LIT("Hello\r\n."), LIT("Hello\r\n"), 8, 0, false);
    /* "." CR at the start of a line is held back: it may be the end. */
    expect_data(LIT("Hello\r\n.\r"), LIT("Hello\r\n"), 9, 0, false);
}

/* ---- SMTP smuggling ------------------------------------------------- */

#define SMUG_PREFIX "From: a@example.org\r\nSubject: hi\r\n\r\nbody"
#define SMUG_INNER  "MAIL FROM:<x@evil.example>\r\n" \
                    "RCPT TO:<victim@example.org>\r\n" \
                    "DATA\r\n" \
                    "Subject: forged\r\n"
#define SMUG_END    ".\r\n"
#define SMUG_NEXT   "QUIT\r\n"

struct smuggle_case {
    const char *variant;    /* what follows "body" in the input      */
    const char *decoded;    /* what it must turn into in the output  */
    unsigned flags;
};

static const struct smuggle_case smuggle_cases[] = {
    { "\n.\n",       "\n.\n",       DATA_BAD_NEWLINE },
    { "\n.\r\n",     "\n.\r\n",     DATA_BAD_NEWLINE },
    { "\r.\r\n",     "\r.\r\n",     DATA_BAD_NEWLINE },
    { "\r\n.\r",     "\r\n\r",      DATA_BAD_NEWLINE },
    { "\r\n.\n",     "\r\n\n",      DATA_BAD_NEWLINE },
    { "\r.\n",       "\r.\n",       DATA_BAD_NEWLINE },
    { "\n.\r",       "\n.\r",       DATA_BAD_NEWLINE },
    { "\r.\r",       "\r.\r",       DATA_BAD_NEWLINE },
    { "\r\n.\r\r\n", "\r\n\r\r\n",  DATA_BAD_NEWLINE },
    { "\r\n.\n\r\n", "\r\n\n\r\n",  DATA_BAD_NEWLINE },
    { "\r\n..\r\n",  "\r\n.\r\n",   0 },    /* properly dot-stuffed */
};

/* True if needle occurs in hay[0..len). */
static bool contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle), p;

    for (p = 0; p + n <= len; p++)
        if (memcmp(hay + p, needle, n) == 0)
            return true;
    return false;
}

/* Build prefix + variant + inner (+ end + next) into buf. */
static size_t smuggle_input(char *buf, size_t size, const char *variant,
                            bool with_end)
{
    size_t n = 0;
    const char *parts[] = { SMUG_PREFIX, variant, SMUG_INNER,
                            with_end ? SMUG_END SMUG_NEXT : "" };
    size_t k;

    for (k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
        size_t l = strlen(parts[k]);
        assert_true(n + l <= size);
        memcpy(buf + n, parts[k], l);
        n += l;
    }
    return n;
}

static void check_smuggle_case(const struct smuggle_case *c)
{
    char in[MAXIO], want[MAXIO];
    size_t in_len, want_len;
    struct run r;

    /* Up to the real end: the variant did not end the message. */
    in_len = smuggle_input(in, sizeof(in), c->variant, false);
    run_whole(MODE_DATA, BIG_LINE, in, in_len, &r);
    assert_false(r.done);
    assert_int_equal(r.consumed, in_len);

    /* With the real CRLF "." CRLF: one message, the rest is next. */
    in_len = smuggle_input(in, sizeof(in), c->variant, true);
    want_len = smuggle_input(want, sizeof(want), c->decoded, false);
    run_whole(MODE_DATA, BIG_LINE, in, in_len, &r);
    assert_true(r.done);
    assert_int_equal(r.consumed, in_len - strlen(SMUG_NEXT));
    assert_int_equal(r.flags, c->flags);
    assert_int_equal(r.out_len, want_len);
    assert_memory_equal(r.out, want, want_len);
    assert_true(contains(r.out, r.out_len, "MAIL FROM:<x@evil.example>\r\n"));
    assert_true(contains(r.out, r.out_len, "\r\nDATA\r\n"));
}

static void test_smuggling_variants_are_content(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < sizeof(smuggle_cases) / sizeof(smuggle_cases[0]); k++)
        check_smuggle_case(&smuggle_cases[k]);
}

/* ---- only CRLF starts a line ---------------------------------------- */

static void test_no_line_start_after_bare_lf(void **state)
{
    (void)state;
    /* No unstuffing after a bare LF... */
    expect_data(LIT("a\n..b\r\n.\r\n"), LIT("a\n..b\r\n"), 10,
                DATA_BAD_NEWLINE, true);
    /* ...and no end of data: "\n.\r\n" is content. */
    expect_data(LIT("a\n.\r\nb\r\n.\r\n"), LIT("a\n.\r\nb\r\n"), 11,
                DATA_BAD_NEWLINE, true);
    /* A bare LF as the very first byte. */
    expect_data(LIT("\n.\r\n.\r\n"), LIT("\n.\r\n"), 7, DATA_BAD_NEWLINE,
                true);
}

static void test_no_line_start_after_bare_cr(void **state)
{
    (void)state;
    expect_data(LIT("a\r..b\r\n.\r\n"), LIT("a\r..b\r\n"), 10,
                DATA_BAD_NEWLINE, true);
    expect_data(LIT("a\r.\r\nb\r\n.\r\n"), LIT("a\r.\r\nb\r\n"), 11,
                DATA_BAD_NEWLINE, true);
    /* CR CR LF: the first CR is bare, the CR LF ends the line. */
    expect_data(LIT("a\r\r\n.\r\n"), LIT("a\r\r\n"), 7, DATA_BAD_NEWLINE,
                true);
    expect_data(LIT(".\r\r\n.\r\n"), LIT("\r\r\n"), 7, DATA_BAD_NEWLINE,
                true);
}

static void test_flags_do_not_stop_decoding(void **state)
{
    (void)state;
    expect_data(LIT("a\nb\rc\r\n..d\r\n.\r\nX"), LIT("a\nb\rc\r\n.d\r\n"), 15,
                DATA_BAD_NEWLINE, true);
}

/* ---- line length ---------------------------------------------------- */

static void expect_len(enum mode m, size_t max, const char *in, size_t len,
                       unsigned flags)
{
    struct run r;

    run_whole(m, max, in, len, &r);
    assert_int_equal(r.flags, flags);
}

static void test_line_length_boundary(void **state)
{
    (void)state;
    /* max 10: 8 octets + CRLF is fine, 9 + CRLF is too long. */
    expect_len(MODE_DATA, 10, LIT("12345678\r\n.\r\n"), 0);
    expect_len(MODE_DATA, 10, LIT("123456789\r\n.\r\n"), DATA_LINE_TOO_LONG);
    expect_len(MODE_DATA, 10,
               LIT("12345678\r\n12345678\r\n12345678\r\n.\r\n"), 0);
    expect_len(MODE_DATA, 10, LIT("\r\n12345678\r\n123456789\r\n.\r\n"),
               DATA_LINE_TOO_LONG);
    /* The LF of the terminator line is not counted. */
    expect_len(MODE_DATA, 2, LIT("\r\n.\r\n"), 0);
    expect_len(MODE_DATA, 2, LIT(".\r\n"), 0);
}

static void test_line_length_after_unstuffing(void **state)
{
    struct run r;

    (void)state;
    /* ".12345678\r\n" is 11 octets on the wire but 10 as a text line:
     * the transparency dot does not count (RFC 5321 4.5.3.1.6). */
    run_whole(MODE_DATA, 10, LIT(".12345678\r\n.\r\n"), &r);
    assert_run(&r, LIT("12345678\r\n"), 14, 0, true);
    /* "..2345678\r\n" is the text line ".2345678\r\n": 10, fine. */
    run_whole(MODE_DATA, 10, LIT("..2345678\r\n.\r\n"), &r);
    assert_run(&r, LIT(".2345678\r\n"), 14, 0, true);
    /* ".123456789\r\n" is 11 as a text line: too long. */
    run_whole(MODE_DATA, 10, LIT(".123456789\r\n.\r\n"), &r);
    assert_run(&r, LIT("123456789\r\n"), 15, DATA_LINE_TOO_LONG, true);
    /* In BDAT there is no stuffing: a leading dot is text and counts. */
    expect_len(MODE_BDAT, 10, LIT(".123456789\r\n"), DATA_LINE_TOO_LONG);
}

static void test_line_length_bare_newlines_do_not_reset(void **state)
{
    (void)state;
    expect_len(MODE_DATA, 10, LIT("12345\n1234\r\n.\r\n"),
               DATA_BAD_NEWLINE | DATA_LINE_TOO_LONG);
    expect_len(MODE_DATA, 10, LIT("12345\r1234\r\n.\r\n"),
               DATA_BAD_NEWLINE | DATA_LINE_TOO_LONG);
    expect_len(MODE_DATA, 10, LIT("1234\n123\r\n.\r\n"), DATA_BAD_NEWLINE);
}

static void test_line_length_unterminated(void **state)
{
    (void)state;
    /* DATA, no end yet: a line already longer than max is flagged. */
    expect_len(MODE_DATA, 10, LIT("12345678901"), DATA_LINE_TOO_LONG);
    expect_len(MODE_DATA, 10, LIT("1234567890"), 0);
    expect_len(MODE_BDAT, 10, LIT("12345678901"), DATA_LINE_TOO_LONG);
    expect_len(MODE_BDAT, 10, LIT("1234567890"), 0);
}

/* ---- BDAT mode ------------------------------------------------------ */

static void test_bdat_is_transparent(void **state)
{
    static const char in[] = ".\r\n..foo\r\n.bar\r\n.\r\n";
    struct run r;

    (void)state;
    run_whole(MODE_BDAT, BIG_LINE, LIT(in), &r);
    assert_run(&r, LIT(in), sizeof(in) - 1, 0, false);
}

static void test_bdat_flags(void **state)
{
    struct run r;

    (void)state;
    run_whole(MODE_BDAT, BIG_LINE, LIT("a\nb\r\n"), &r);
    assert_run(&r, LIT("a\nb\r\n"), 5, DATA_BAD_NEWLINE, false);
    run_whole(MODE_BDAT, BIG_LINE, LIT("a\rb\r\n"), &r);
    assert_run(&r, LIT("a\rb\r\n"), 5, DATA_BAD_NEWLINE, false);
    run_whole(MODE_BDAT, 4, LIT("abc\r\nabcd\r\n"), &r);
    assert_int_equal(r.flags, DATA_LINE_TOO_LONG);
    /* A message not ending in CRLF is accepted as is. */
    run_whole(MODE_BDAT, BIG_LINE, LIT("abc"), &r);
    assert_run(&r, LIT("abc"), 3, 0, false);
}

static void test_bdat_cr_across_chunks(void **state)
{
    static const size_t cut[] = { 4 };
    struct run r;

    (void)state;
    /* "abc\r" | "\ndef": a CRLF split between two chunks is fine. */
    run_cuts(MODE_BDAT, BIG_LINE, LIT("abc\r\ndef"), cut, 1, &r);
    assert_run(&r, LIT("abc\r\ndef"), 8, 0, false);
    /* "abc\r" | "def": bare CR. */
    run_cuts(MODE_BDAT, BIG_LINE, LIT("abc\rdef"), cut, 1, &r);
    assert_run(&r, LIT("abc\rdef"), 7, DATA_BAD_NEWLINE, false);
}

static void test_bdat_finish_trailing_cr(void **state)
{
    struct data_decoder d;
    char out[16], tail[2];
    size_t out_len, tail_len;

    (void)state;
    data_decoder_init(&d, false, BIG_LINE);
    assert_int_equal(data_decoder_feed(&d, LIT("abc\r"), out, &out_len), 4);
    assert_int_equal(d.flags, 0);       /* the LF may still come */
    data_decoder_finish(&d, tail, &tail_len);
    assert_true(out_len + tail_len == 4);
    memcpy(out + out_len, tail, tail_len);
    assert_memory_equal(out, "abc\r", 4);
    assert_int_equal(d.flags, DATA_BAD_NEWLINE);
    assert_int_equal(d.out_bytes, 4);
    assert_false(d.done);
}

static void test_finish_releases_held_dot_cr(void **state)
{
    struct data_decoder d;
    char out[16], tail[2];
    size_t out_len, tail_len;

    (void)state;
    /* A stream cut after "." CR: the held CR is a bare CR. */
    data_decoder_init(&d, true, BIG_LINE);
    assert_int_equal(data_decoder_feed(&d, LIT("a\r\n.\r"), out, &out_len), 5);
    assert_int_equal(out_len, 3);
    data_decoder_finish(&d, tail, &tail_len);
    assert_int_equal(tail_len, 1);
    assert_int_equal(tail[0], '\r');
    assert_int_equal(d.flags, DATA_BAD_NEWLINE);
    assert_int_equal(d.out_bytes, 4);
}

/* ---- output room ---------------------------------------------------- */

static void test_output_room_worst_case(void **state)
{
    static const size_t cuts[] = { 2, 3, 5, 7, 8 };
    struct run r;

    (void)state;
    /* ".\r" is held, then one byte releases two: the most per feed. */
    run_cuts(MODE_DATA, BIG_LINE, LIT(".\rX\r\n.\rY\r\n.\r\n"), cuts, 5, &r);
    assert_run(&r, LIT("\rX\r\n\rY\r\n"), 13, DATA_BAD_NEWLINE, true);
}

static void test_init_resets(void **state)
{
    struct data_decoder d;
    char out[16];
    size_t out_len;

    (void)state;
    data_decoder_init(&d, true, 4);
    data_decoder_feed(&d, LIT("abcdef\n\r\n.\r\n"), out, &out_len);
    assert_true(d.done);
    data_decoder_init(&d, true, 4);
    assert_int_equal(d.flags, 0);
    assert_false(d.done);
    assert_int_equal(d.out_bytes, 0);
    assert_int_equal(data_decoder_feed(&d, LIT(".\r\n"), out, &out_len), 3);
    assert_true(d.done);
    assert_int_equal(out_len, 0);
}

/* ---- split invariance ----------------------------------------------- */

/* Whole vs 1 byte at a time vs every 2- and 3-piece split. */
static void check_all_splits(enum mode m, size_t max, const char *in,
                             size_t len)
{
    struct run whole, r;
    size_t cuts[MAXIO];
    size_t i, j;

    assert_true(len <= MAXIO);
    run_whole(m, max, in, len, &whole);
    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    run_cuts(m, max, in, len, cuts, len > 0 ? len - 1 : 0, &r);
    assert_same_run(&whole, &r);
    for (i = 0; i <= len; i++) {
        for (j = i; j <= len; j++) {
            cuts[0] = i;
            cuts[1] = j;
            run_cuts(m, max, in, len, cuts, 2, &r);
            assert_same_run(&whole, &r);
        }
    }
}

static const char *const tricky_inputs[] = {
    ".\r\n",
    "Hello\r\n.\r\nQUIT\r\n",
    "..foo\r\n.bar\r\n...\r\n.\r\n",
    "\r\n.\r\n",
    "a\r\r\n.\r\n",
    ".\r\r\n.\r\n",
    ".\r.\r\n.\r\n",
    ".\r\n.\r\n",
    "a\n.\r\n.\r\n",
    "\n.\n\r\n.\r\n",
    "\r.\r\n\r\n.\r\n",
    "x\r\n.\rMAIL FROM:<a@b>\r\n.\r\n",
    "x\r\n.\nMAIL FROM:<a@b>\r\n.\r\n",
    "a line too long here\r\nshort\r\n.12345678\r\n.\r\n",
    "abc\r",
    ".\r",
    "x\r\n.",
    "x\r\n.\r",
    "12345\n1234\r\n123\r\n",
};

static void test_every_split_tricky(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < sizeof(tricky_inputs) / sizeof(tricky_inputs[0]); k++) {
        const char *in = tricky_inputs[k];
        check_all_splits(MODE_DATA, BIG_LINE, in, strlen(in));
        check_all_splits(MODE_DATA, 8, in, strlen(in));
        check_all_splits(MODE_BDAT, BIG_LINE, in, strlen(in));
        check_all_splits(MODE_BDAT, 8, in, strlen(in));
    }
}

static void test_every_split_smuggling(void **state)
{
    char in[MAXIO];
    size_t k, len;

    (void)state;
    for (k = 0; k < sizeof(smuggle_cases) / sizeof(smuggle_cases[0]); k++) {
        len = smuggle_input(in, sizeof(in), smuggle_cases[k].variant, true);
        check_all_splits(MODE_DATA, BIG_LINE, in, len);
        check_all_splits(MODE_DATA, 20, in, len);
    }
}

/* ---- exhaustive check against an independent model ------------------- */

/* True if position p of in starts a line: only CRLF ends a line. */
static bool model_bol(const char *in, size_t p)
{
    return p == 0 || (p >= 2 && in[p - 2] == '\r' && in[p - 1] == '\n');
}

static bool model_too_long(enum mode m, const char *in, size_t end, size_t max)
{
    size_t start = 0, p;

    for (p = 1; p <= end; p++) {
        if (p == end || model_bol(in, p)) {
            /* a transparency dot is not part of the text line */
            size_t dot = m == MODE_DATA && in[start] == '.' ? 1 : 0;

            if (p - start - dot > max)
                return true;
            start = p;
        }
    }
    return false;
}

static unsigned model_bad_newline(const char *in, size_t end)
{
    size_t p;

    for (p = 0; p < end; p++) {
        if (in[p] == '\n' && (p == 0 || in[p - 1] != '\r'))
            return DATA_BAD_NEWLINE;
        if (in[p] == '\r' && (p + 1 == end || in[p + 1] != '\n'))
            return DATA_BAD_NEWLINE;
    }
    return 0;
}

/*
 * The whole-buffer definition: the message is everything before the
 * first ".CRLF" at a line start; a "." at a line start is dropped. The
 * input is taken as complete (finish() is called when not done).
 */
static void model(enum mode m, size_t max, const char *in, size_t len,
                  struct run *r)
{
    size_t end = len, p;

    memset(r, 0, sizeof(*r));
    for (p = 0; m == MODE_DATA && p + 3 <= len; p++) {
        if (model_bol(in, p) && memcmp(in + p, ".\r\n", 3) == 0) {
            end = p;
            r->done = true;
            break;
        }
    }
    r->consumed = r->done ? end + 3 : len;
    for (p = 0; p < end; p++)
        if (m == MODE_BDAT || in[p] != '.' || !model_bol(in, p))
            r->out[r->out_len++] = in[p];
    r->flags = model_bad_newline(in, end);
    if (memchr(in, '\0', end))
        r->flags |= DATA_NUL;
    if (model_too_long(m, in, end, max))
        r->flags |= DATA_LINE_TOO_LONG;
}

/* Decode like the session does at the end: finish() unless done. */
static void decode_complete(enum mode m, size_t max, const char *in,
                            size_t len, const size_t *cuts, size_t ncuts,
                            struct run *r)
{
    struct data_decoder d;
    size_t pos = 0, k;

    memset(r, 0, sizeof(*r));
    data_decoder_init(&d, m == MODE_DATA, max);
    for (k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        feed_piece(&d, in + pos, end - pos, r);
        pos = end;
    }
    if (!d.done)
        finish(&d, r);
    assert_int_equal(d.out_bytes, r->out_len);
    r->flags = d.flags;
    r->done = d.done;
}

static void check_against_model(enum mode m, size_t max, const char *in,
                                size_t len)
{
    struct run want, got;
    size_t cuts[8], i;

    model(m, max, in, len, &want);
    decode_complete(m, max, in, len, NULL, 0, &got);
    assert_same_run(&want, &got);
    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    decode_complete(m, max, in, len, cuts, len > 0 ? len - 1 : 0, &got);
    assert_same_run(&want, &got);
    for (i = 0; i <= len; i++) {
        decode_complete(m, max, in, len, &i, 1, &got);
        assert_same_run(&want, &got);
    }
}

static void test_exhaustive_against_model(void **state)
{
    static const char alphabet[] = { '.', '\r', '\n', 'a', '\0' };
    char in[7];
    size_t len, k, n, combos, max;

    (void)state;
    for (len = 0; len <= sizeof(in); len++) {
        for (combos = 1, k = 0; k < len; k++)
            combos *= sizeof(alphabet);
        for (n = 0; n < combos; n++) {
            size_t v = n;
            for (k = 0; k < len; k++, v /= sizeof(alphabet))
                in[k] = alphabet[v % sizeof(alphabet)];
            for (max = 2; max <= 5; max++) {
                check_against_model(MODE_DATA, max, in, len);
                check_against_model(MODE_BDAT, max, in, len);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_simple_message),
        cmocka_unit_test(test_crlf_kept_exactly),
        cmocka_unit_test(test_pipelined_remainder),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_dot_inside_line_kept),
        cmocka_unit_test(test_no_end_without_terminator),
        cmocka_unit_test(test_smuggling_variants_are_content),
        cmocka_unit_test(test_no_line_start_after_bare_lf),
        cmocka_unit_test(test_no_line_start_after_bare_cr),
        cmocka_unit_test(test_flags_do_not_stop_decoding),
        cmocka_unit_test(test_line_length_boundary),
        cmocka_unit_test(test_line_length_after_unstuffing),
        cmocka_unit_test(test_line_length_bare_newlines_do_not_reset),
        cmocka_unit_test(test_line_length_unterminated),
        cmocka_unit_test(test_bdat_is_transparent),
        cmocka_unit_test(test_bdat_flags),
        cmocka_unit_test(test_bdat_cr_across_chunks),
        cmocka_unit_test(test_bdat_finish_trailing_cr),
        cmocka_unit_test(test_finish_releases_held_dot_cr),
        cmocka_unit_test(test_output_room_worst_case),
        cmocka_unit_test(test_init_resets),
        cmocka_unit_test(test_every_split_tricky),
        cmocka_unit_test(test_every_split_smuggling),
        cmocka_unit_test(test_exhaustive_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

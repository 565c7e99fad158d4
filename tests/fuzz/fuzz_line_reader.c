/*
 * fuzz_line_reader.c - libFuzzer target for the command line splitter
 * (src/smtpd/line_reader.c).
 *
 * Input layout: byte 0 gives max (1 + byte), byte 1 the number of split
 * points (0-15) followed by one byte each; the rest is what a client
 * sends. Checked:
 *  - line_scan and line_skip_to_lf against a reference written from
 *    line_reader.h, on the whole input and on every prefix;
 *  - a reader loop like the session's (at most max bytes looked at,
 *    discard to the next LF after an over-long line) gives the same
 *    sequence of lines and errors however the input arrives, and every
 *    accepted line is free of CR and LF.
 */
#include "fuzz.h"

#include "smtpd/line_reader.h"

static void check_scan(const char *buf, size_t len, size_t max)
{
    size_t line_len = 777, consumed = 777;
    enum line_status st = line_scan(buf, len, max, &line_len, &consumed);
    const char *lf = len ? memchr(buf, '\n', len) : NULL;

    if (st != LINE_OK)
        FUZZ_CHECK(line_len == 0);
    if (lf == NULL) {
        if (len == 0 || len < max) {
            FUZZ_CHECK(st == LINE_NEED_MORE && consumed == 0);
        } else {
            FUZZ_CHECK(st == LINE_TOO_LONG && consumed == len);
        }
        return;
    }
    size_t at = (size_t)(lf - buf);
    FUZZ_CHECK(consumed == at + 1);
    if (at + 1 > max) {
        FUZZ_CHECK(st == LINE_TOO_LONG);
        return;
    }
    bool bad = at == 0 || buf[at - 1] != '\r' || memchr(buf, '\r', at - 1) != NULL;
    if (bad) {
        FUZZ_CHECK(st == LINE_BAD_NEWLINE);
        return;
    }
    FUZZ_CHECK(st == LINE_OK && line_len == at - 1);
    FUZZ_CHECK(memchr(buf, '\r', line_len) == NULL && memchr(buf, '\n', line_len) == NULL);
}

static void check_skip(const char *buf, size_t len)
{
    int found = 7;
    size_t n = line_skip_to_lf(buf, len, &found);
    const char *lf = len ? memchr(buf, '\n', len) : NULL;

    if (lf == NULL)
        FUZZ_CHECK(found == 0 && n == len);
    else
        FUZZ_CHECK(found == 1 && n == (size_t)(lf - buf) + 1);
}

/* What the reader loop saw, as text: one record per event. */
struct events {
    char *text;
    size_t len, cap;
};

static void event(struct events *ev, char kind, const char *line, size_t n)
{
    if (ev->len + n + 2 > ev->cap) {
        ev->cap = (ev->len + n + 2) * 2;
        ev->text = realloc(ev->text, ev->cap);
        FUZZ_CHECK(ev->text != NULL);
    }
    ev->text[ev->len++] = kind;
    memcpy(ev->text + ev->len, line, n);
    ev->len += n;
    ev->text[ev->len++] = '\0';
}

/* The session's loop (smtpd/session.c) over input arriving in pieces. */
static void reader(const char *in, size_t len, size_t max, const size_t *cuts,
                   size_t ncuts, struct events *ev)
{
    char *buf = malloc(len + 1);
    size_t have = 0, start = 0;
    bool skipping = false;

    FUZZ_CHECK(buf != NULL);
    memset(ev, 0, sizeof(*ev));
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        memcpy(buf + have, in + start, end - start);
        have += end - start;
        start = end;
        for (;;) {
            if (skipping) {
                int found;
                size_t n = line_skip_to_lf(buf, have, &found);
                memmove(buf, buf + n, have - n);
                have -= n;
                if (!found)
                    break;
                skipping = false;
            }
            size_t want = have < max ? have : max, line_len, consumed;
            /* A copy of exactly want bytes: ASan catches reads past it. */
            char *p = malloc(want + 1);
            FUZZ_CHECK(p != NULL);
            memcpy(p, buf, want);
            enum line_status st = line_scan(p, want, max, &line_len, &consumed);
            if (st == LINE_NEED_MORE) {
                FUZZ_CHECK(consumed == 0);
                free(p);
                break;
            }
            FUZZ_CHECK(consumed >= 1 && consumed <= want);
            if (st == LINE_OK) {
                FUZZ_CHECK(line_len + 2 == consumed);
                FUZZ_CHECK(memchr(p, '\r', line_len) == NULL);
                FUZZ_CHECK(memchr(p, '\n', line_len) == NULL);
                event(ev, 'L', p, line_len);
            } else if (st == LINE_TOO_LONG) {
                if (p[consumed - 1] != '\n')
                    skipping = true;
                event(ev, 'T', "", 0);
            } else {
                FUZZ_CHECK(st == LINE_BAD_NEWLINE && p[consumed - 1] == '\n');
                event(ev, 'B', "", 0);
            }
            free(p);
            memmove(buf, buf + consumed, have - consumed);
            have -= consumed;
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    size_t max = 1 + (size_t)fuzz_byte(&in);
    size_t ncuts = fuzz_byte(&in) % 16;
    size_t cuts[16];
    uint8_t cut_bytes[16];

    for (size_t k = 0; k < ncuts; k++)
        cut_bytes[k] = fuzz_byte(&in);
    const char *s = (const char *)data + in.pos;
    size_t len = size - in.pos;
    for (size_t k = 0; k < ncuts; k++)
        cuts[k] = (size_t)cut_bytes[k] * len / 256;
    for (size_t a = 1; a < ncuts; a++)
        for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
            size_t t = cuts[b];
            cuts[b] = cuts[b - 1];
            cuts[b - 1] = t;
        }

    for (size_t n = 0; n <= len && n <= 512; n++) {
        check_scan(s, n, max);
        check_skip(s, n);
    }
    check_scan(s, len, max);
    check_skip(s, len);
    check_scan(s, len, SIZE_MAX);

    struct events whole, pieces;
    reader(s, len, max, NULL, 0, &whole);
    reader(s, len, max, cuts, ncuts, &pieces);
    FUZZ_CHECK(whole.len == pieces.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.text, pieces.text, whole.len) == 0);
    free(whole.text);
    free(pieces.text);
    return 0;
}

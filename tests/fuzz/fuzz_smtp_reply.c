/*
 * fuzz_smtp_reply.c - libFuzzer target for the pure parts of the SMTP
 * client (src/delivery/smtp_reply.c): the reply parser, enhanced status
 * codes, EHLO capabilities, the one-line reply format, and the DATA
 * dot-stuffing encoder.
 *
 * Input layout: byte 0 is the reply class for smtp_enhanced_code(),
 * byte 1 the number of split points (0-15) followed by one byte each;
 * the rest is what a remote server sends (parsed as a sequence of
 * replies, whole and in pieces) and also the message body given to the
 * dot-stuffer (whole and in pieces).
 *
 * Encoder invariant: the server side's data_decoder (DATA mode) reads
 * the encoded body back exactly, ends exactly at the final "." CRLF and
 * never before it, whatever the body holds.
 */
#include "fuzz.h"

#include "delivery/smtp_reply.h"
#include "smtpd/data_decoder.h"

/* Split points for a stream of len bytes, ascending. */
static size_t sorted_cuts(const uint8_t *raw, size_t n, size_t len, size_t *cuts)
{
    for (size_t k = 0; k < n; k++)
        cuts[k] = (size_t)raw[k] * len / 256;
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
            size_t t = cuts[b];
            cuts[b] = cuts[b - 1];
            cuts[b - 1] = t;
        }
    return n;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "c.sss.ddd" with class c, 1-3 digits each. */
static void check_dsn(const char *dsn, size_t size, int reply_class)
{
    size_t len = strnlen(dsn, size), i = 2, n;

    FUZZ_CHECK(len < size);
    FUZZ_CHECK(len >= 5 && dsn[0] == '0' + reply_class && dsn[1] == '.');
    for (n = 0; i < len && is_digit(dsn[i]); i++, n++)
        ;
    FUZZ_CHECK(n >= 1 && n <= 3 && i < len && dsn[i] == '.');
    for (i++, n = 0; i < len && is_digit(dsn[i]); i++, n++)
        ;
    FUZZ_CHECK(n >= 1 && n <= 3 && i == len);
}

static void check_reply(const struct smtp_reply *r)
{
    FUZZ_CHECK(r->code >= 200 && r->code <= 599);
    FUZZ_CHECK(r->lines >= 1 && r->lines <= SMTP_REPLY_LINES_MAX);
    FUZZ_CHECK(r->text_len < sizeof(r->text) && r->text[r->text_len] == '\0');
    if (r->code == 354)
        FUZZ_CHECK(strcmp(r->dsn, "3.0.0") == 0);
    else
        check_dsn(r->dsn, sizeof(r->dsn), r->code / 100);

    /* The lines, joined by '\n', are the text. */
    size_t pos = 0, len, count = 0, total = 0;
    const char *line;
    while (smtp_reply_next_line(r, &pos, &line, &len)) {
        FUZZ_CHECK(line >= r->text && line + len <= r->text + r->text_len);
        FUZZ_CHECK(memchr(line, '\n', len) == NULL);
        FUZZ_CHECK(count < SMTP_REPLY_LINES_MAX);
        total += len + (count > 0);
        count++;
    }
    FUZZ_CHECK(count == r->lines && total == r->text_len);

    /* One line for logs: no control bytes, bounded by any buffer. */
    for (size_t size = 1; size < 700; size = size * 3 + 1) {
        char *out = malloc(size);
        FUZZ_CHECK(out != NULL);
        smtp_reply_format(r, out, size);
        size_t olen = strnlen(out, size);
        FUZZ_CHECK(olen < size);
        FUZZ_CHECK(!fuzz_has_control(out, olen));
        free(out);
    }

    struct smtp_caps caps;
    smtp_caps_parse(&caps, r);
    FUZZ_CHECK(caps.esmtp);
    if (!caps.size)
        FUZZ_CHECK(caps.size_max == 0);
}

/* Replies and errors seen, as text, to compare two ways of reading. */
struct trace {
    char *text;
    size_t len, cap;
};

static void note(struct trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->text = realloc(t->text, t->cap);
        FUZZ_CHECK(t->text != NULL);
    }
    memcpy(t->text + t->len, p, n);
    t->len += n;
}

/* Read replies from in[0..len) arriving cut at cuts, like the client. */
static void read_replies(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                         struct smtp_reply *r, struct trace *t)
{
    char *buf = malloc(len + 1);
    size_t have = 0, start = 0;
    bool stopped = false;

    FUZZ_CHECK(buf != NULL);
    memset(t, 0, sizeof(*t));
    smtp_reply_init(r);
    for (size_t k = 0; k <= ncuts && !stopped; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        memcpy(buf + have, in + start, end - start);
        have += end - start;
        start = end;
        while (!stopped) {
            /* Exactly the buffered bytes, so reads past them are caught. */
            char *p = malloc(have ? have : 1);
            size_t consumed = 99;
            FUZZ_CHECK(p != NULL);
            memcpy(p, buf, have);
            enum smtp_reply_status st = smtp_reply_parse(r, p, have, &consumed);
            free(p);
            if (st != REPLY_NEED_MORE)
                note(t, &st, sizeof(st));
            if (st == REPLY_NEED_MORE) {
                FUZZ_CHECK(consumed == 0);
                break;
            }
            FUZZ_CHECK(smtp_reply_status_text(st) != NULL);
            if (st != REPLY_CONTINUE && st != REPLY_DONE) {
                FUZZ_CHECK(consumed == 0);
                stopped = true;         /* the client gives up the connection */
                break;
            }
            FUZZ_CHECK(consumed >= 1 && consumed <= have && consumed <= SMTP_REPLY_LINE_MAX);
            FUZZ_CHECK(buf[consumed - 1] == '\n');
            memmove(buf, buf + consumed, have - consumed);
            have -= consumed;
            if (st == REPLY_DONE) {
                check_reply(r);
                note(t, &r->code, sizeof(r->code));
                note(t, r->dsn, strlen(r->dsn));
                note(t, r->text, r->text_len + 1);
                smtp_reply_init(r);
            }
        }
    }
    free(buf);
}

static void check_enhanced(const char *s, size_t len, int reply_class)
{
    size_t dsnsize = 10 + (size_t)(len % 7);
    char *dsn = malloc(dsnsize);
    FUZZ_CHECK(dsn != NULL);
    dsn[0] = 'x';
    size_t n = smtp_enhanced_code(s, len, reply_class, dsn, dsnsize);
    if (n > 0) {
        FUZZ_CHECK(n <= len && n < dsnsize && strlen(dsn) == n);
        FUZZ_CHECK(memcmp(dsn, s, n) == 0);
        check_dsn(dsn, dsnsize, reply_class);
        FUZZ_CHECK(n == len || s[n] == ' ');
    } else {
        FUZZ_CHECK(dsn[0] == 'x');
    }
    free(dsn);
}

/* Encode body (in pieces), then decode with the server's decoder. */
static void check_dot_stuffing(const char *body, size_t len, const size_t *cuts, size_t ncuts)
{
    struct dot_stuffer st, st_whole;
    char *enc = malloc(2 * len + DOT_STUFF_END_MAX + 1);
    char *whole = malloc(2 * len + DOT_STUFF_END_MAX + 1);
    size_t elen = 0, wlen, start = 0;

    FUZZ_CHECK(enc != NULL && whole != NULL);
    dot_stuff_init(&st);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t n = end - start;
        char *out = malloc(2 * n + 1);          /* the promised 2 * len */
        FUZZ_CHECK(out != NULL);
        size_t o = dot_stuff(&st, body + start, n, out);
        FUZZ_CHECK(o >= n && o <= 2 * n);
        memcpy(enc + elen, out, o);
        elen += o;
        free(out);
        start = end;
    }
    char *tail = malloc(DOT_STUFF_END_MAX);
    FUZZ_CHECK(tail != NULL);
    size_t tlen = dot_stuff_end(&st, tail);
    FUZZ_CHECK(tlen >= 3 && tlen <= DOT_STUFF_END_MAX);
    memcpy(enc + elen, tail, tlen);
    elen += tlen;
    free(tail);

    dot_stuff_init(&st_whole);
    wlen = dot_stuff(&st_whole, body, len, whole);
    wlen += dot_stuff_end(&st_whole, whole + wlen);
    FUZZ_CHECK(wlen == elen && memcmp(whole, enc, elen) == 0);
    free(whole);

    /* What the body becomes: CRLF is added when it does not end in one. */
    char *expect = malloc(len + 2);
    size_t xlen = len;
    FUZZ_CHECK(expect != NULL);
    memcpy(expect, body, len);
    if (len > 0 && !(len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n')) {
        if (body[len - 1] != '\r')
            expect[xlen++] = '\r';
        expect[xlen++] = '\n';
    }
    bool clean = true;
    for (size_t i = 0; i < xlen; i++) {
        if (expect[i] == '\n' && (i == 0 || expect[i - 1] != '\r'))
            clean = false;
        if (expect[i] == '\r' && (i + 1 == xlen || expect[i + 1] != '\n'))
            clean = false;
    }

    struct data_decoder d;
    char *dec = malloc(elen + 2);
    size_t dlen = 0;
    FUZZ_CHECK(dec != NULL);
    data_decoder_init(&d, true, SIZE_MAX);
    size_t used = data_decoder_feed(&d, enc, elen, dec, &dlen);
    /* The end is found exactly at the end: the body cannot end early. */
    FUZZ_CHECK(d.done && used == elen);
    FUZZ_CHECK(((d.flags & DATA_BAD_NEWLINE) == 0) == clean);
    if (clean)
        FUZZ_CHECK(dlen == xlen && memcmp(dec, expect, xlen) == 0);
    free(dec);
    free(expect);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    int reply_class = fuzz_byte(&in) % 7;
    size_t ncuts = fuzz_byte(&in) % 16;
    uint8_t raw[16];
    size_t cuts[16];

    for (size_t k = 0; k < ncuts; k++)
        raw[k] = fuzz_byte(&in);
    const char *s = (const char *)data + in.pos;
    size_t len = size - in.pos;
    sorted_cuts(raw, ncuts, len, cuts);

    struct smtp_reply *r1 = malloc(sizeof(*r1)), *r2 = malloc(sizeof(*r2));
    struct trace t1, t2;
    FUZZ_CHECK(r1 != NULL && r2 != NULL);
    read_replies(s, len, NULL, 0, r1, &t1);
    read_replies(s, len, cuts, ncuts, r2, &t2);
    FUZZ_CHECK(t1.len == t2.len && (t1.len == 0 || memcmp(t1.text, t2.text, t1.len) == 0));
    free(t1.text);
    free(t2.text);
    free(r1);
    free(r2);

    check_enhanced(s, len, reply_class);
    struct smtp_caps caps;
    memset(&caps, 0, sizeof(caps));
    smtp_caps_line(&caps, s, len);

    check_dot_stuffing(s, len, cuts, ncuts);
    return 0;
}

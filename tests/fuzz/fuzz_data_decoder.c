/*
 * fuzz_data_decoder.c - libFuzzer target for the DATA/BDAT stream state
 * machine (src/smtpd/data_decoder.c), the code that must never let one
 * message be read as two (SMTP smuggling).
 *
 * Input layout: byte 0 picks the mode (bit 0: BDAT, else DATA) and
 * whether max_line is 1000 (bit 1); byte 1 gives max_line = 2 + byte
 * otherwise; byte 2 the number of split points (0-15), then one byte per
 * split point (its position as a fraction of the stream). The rest is
 * the stream after "354" (or the concatenated BDAT chunks).
 *
 * The stream is decoded three ways (in the derived chunks, byte by byte,
 * whole) and the results must be identical; each is compared with a
 * straightforward reference written from RFC 5321 4.5.2 and the
 * clarifications in data_decoder.h. Any difference aborts.
 */
#include "fuzz.h"

#include "smtpd/data_decoder.h"

struct result {
    char *out;
    size_t out_len;
    size_t consumed;
    unsigned flags;
    bool done;
    uint64_t out_bytes;
};

static void append(struct result *r, const char *p, size_t n)
{
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
}

/* Feed stream[0..len) cut at cuts[0..ncuts) (ascending, may repeat). */
static void decode(const char *stream, size_t len, bool bdat, size_t max_line,
                   const size_t *cuts, size_t ncuts, struct result *r)
{
    struct data_decoder d;
    size_t start = 0;

    memset(r, 0, sizeof(*r));
    r->out = malloc(len + 2);
    FUZZ_CHECK(r->out != NULL);
    data_decoder_init(&d, !bdat, max_line);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t n = end - start;
        /* Exactly the promised room, so ASan sees any write past it. */
        char *out = malloc(n + 2);
        size_t out_len = 12345;
        bool was_done = d.done;

        FUZZ_CHECK(out != NULL);
        size_t used = data_decoder_feed(&d, stream + start, n, out, &out_len);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(out_len <= n + 1);       /* data_decoder.h: at most len + 1 */
        if (was_done)
            FUZZ_CHECK(used == 0 && out_len == 0);
        else if (!d.done)
            FUZZ_CHECK(used == n);
        append(r, out, out_len);
        r->consumed += used;
        free(out);
        start = end;
    }
    if (bdat) {
        char *out = malloc(2);
        size_t out_len = 12345;

        FUZZ_CHECK(out != NULL);
        data_decoder_finish(&d, out, &out_len);
        FUZZ_CHECK(out_len <= 2);
        append(r, out, out_len);
        free(out);
    }
    FUZZ_CHECK(r->out_len <= r->consumed);
    FUZZ_CHECK(d.out_bytes == r->out_len);
    if (bdat)
        FUZZ_CHECK(!d.done && r->consumed == len);
    r->flags = d.flags;
    r->done = d.done;
    r->out_bytes = d.out_bytes;
}

static void same(const struct result *a, const struct result *b)
{
    FUZZ_CHECK(a->out_len == b->out_len);
    FUZZ_CHECK(memcmp(a->out, b->out, a->out_len) == 0);
    FUZZ_CHECK(a->consumed == b->consumed);
    FUZZ_CHECK(a->flags == b->flags);
    FUZZ_CHECK(a->done == b->done);
    FUZZ_CHECK(a->out_bytes == b->out_bytes);
}

static bool crlf_before(const char *s, size_t i)
{
    /* Position i starts a line: the stream start follows the CRLF of
     * the DATA command (or of the previous BDAT chunk's line). */
    return i == 0 || (i >= 2 && s[i - 2] == '\r' && s[i - 1] == '\n');
}

/*
 * The reference: where DATA ends (first CRLF "." CRLF, counting the
 * DATA command's CRLF), the unstuffed text, and the flags.
 */
static void reference(const char *s, size_t len, bool bdat, size_t max_line,
                      struct result *r)
{
    memset(r, 0, sizeof(*r));
    r->out = malloc(len + 1);
    FUZZ_CHECK(r->out != NULL);
    r->consumed = len;
    if (!bdat) {
        for (size_t i = 0; i + 3 <= len; i++) {
            if (crlf_before(s, i) && s[i] == '.' && s[i + 1] == '\r' && s[i + 2] == '\n') {
                r->done = true;
                r->consumed = i + 3;
                break;
            }
        }
    }
    size_t text_end = r->done ? r->consumed - 3 : r->consumed;

    /* Unstuff: drop a '.' that starts a line (DATA only). */
    for (size_t i = 0; i < text_end; i++) {
        if (!bdat && s[i] == '.' && crlf_before(s, i))
            continue;
        r->out[r->out_len++] = s[i];
    }

    /* Bare CR / bare LF in what was consumed. A CR at the very end is
     * judged only when nothing more can come (BDAT after finish). */
    for (size_t i = 0; i < r->consumed; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            r->flags |= DATA_BAD_NEWLINE;
        if (s[i] == '\r' && ((i + 1 < r->consumed && s[i + 1] != '\n') ||
                             (i + 1 == r->consumed && bdat)))
            r->flags |= DATA_BAD_NEWLINE;
    }

    /* A NUL octet anywhere in the message (before the end of data). */
    if (memchr(s, '\0', text_end) != NULL)
        r->flags |= DATA_NUL;

    /* Line lengths over the unstuffed text, lines ending in CRLF only.
     * The held "." CR of an unfinished end counts as its CR (1 octet). */
    size_t line = 0;
    for (size_t i = 0; i < r->out_len; i++) {
        line++;
        if (line > max_line)
            r->flags |= DATA_LINE_TOO_LONG;
        if (r->out[i] == '\n' && i > 0 && r->out[i - 1] == '\r' && line >= 2)
            line = 0;
    }

    /* An unfinished DATA stream ending in a line "." CR holds that CR. */
    if (!bdat && !r->done && len >= 2 && s[len - 1] == '\r' && s[len - 2] == '.' &&
        crlf_before(s, len - 2))
        r->out_len--;
    r->out_bytes = r->out_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    uint8_t mode = fuzz_byte(&in);
    uint8_t line_byte = fuzz_byte(&in);
    size_t ncuts = fuzz_byte(&in) % 16;
    uint8_t cut_bytes[16];
    size_t cuts[16];
    bool bdat = mode & 1;
    size_t max_line = (mode & 2) ? 1000 : 2 + (size_t)line_byte;

    for (size_t k = 0; k < ncuts; k++)
        cut_bytes[k] = fuzz_byte(&in);

    const char *stream = (const char *)data + in.pos;
    size_t len = size - in.pos;

    /* Split points, ascending. */
    for (size_t k = 0; k < ncuts; k++)
        cuts[k] = (size_t)cut_bytes[k] * len / 256;
    for (size_t a = 1; a < ncuts; a++)
        for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
            size_t t = cuts[b];
            cuts[b] = cuts[b - 1];
            cuts[b - 1] = t;
        }

    struct result chunked, whole, bytewise, ref;
    decode(stream, len, bdat, max_line, cuts, ncuts, &chunked);
    decode(stream, len, bdat, max_line, NULL, 0, &whole);

    /* Byte by byte: a cut after every byte. */
    size_t *every = malloc((len + 1) * sizeof(*every));
    FUZZ_CHECK(every != NULL);
    for (size_t i = 0; i < len; i++)
        every[i] = i + 1;
    decode(stream, len, bdat, max_line, every, len ? len - 1 : 0, &bytewise);
    free(every);

    reference(stream, len, bdat, max_line, &ref);

    same(&chunked, &whole);
    same(&bytewise, &whole);
    same(&ref, &whole);

    free(chunked.out);
    free(whole.out);
    free(bytewise.out);
    free(ref.out);
    return 0;
}

/*
 * fuzz_milter_apply.c - libFuzzer target for src/milter/milter_apply.c:
 * the header edits and body replacement a milter (a network peer) asks
 * for, applied to a stored message.
 *
 * Input layout: byte 0: bits 0-2 the number of edits (0-7), bit 3 the
 * body is replaced, bit 4 one hidden field; byte 1: the size limit (0:
 * 1 MiB, else 16 octets per unit). Then per edit: a kind byte (mod 6:
 * all six kinds, the envelope ones must be ignored), an index byte (255:
 * 4000000000), the name (fuzz_string, up to 40 octets) and the value
 * (fuzz_string, up to 255, repeated 1-8 times by the next byte, so lines
 * can pass 998 octets). With bit 3: the body (fuzz_string, any octets,
 * repeated likewise). The rest is the message, made what the spool holds:
 * LF becomes CRLF, CR and NUL become a space.
 *
 * Checked: a refusal has a printable reason; an accepted result is
 * exactly *out_size octets, within the limit, without NUL, every CR
 * followed by LF and every LF preceded by CR; when no input line is
 * longer than 998 octets no output line is; a kept body (after the first
 * empty line) ends the output unchanged; a replaced body ends the output
 * with its line ends made CRLF and a final CRLF.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "milter/milter_apply.h"
#include "util/fileio.h"

static char *repeated(struct fuzz_input *in, size_t max, size_t *len)
{
    char *s = fuzz_string(in, max);
    size_t n = strlen(s), times = (size_t)(fuzz_byte(in) % 8) + 1;
    char *out = malloc(n * times + 1);

    if (out == NULL)
        abort();
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * n, s, n);
    out[n * times] = '\0';
    *len = n * times;
    free(s);
    return out;
}

/* The body as fuzz_string gives it, NULs included: the length byte. */
static char *raw_body(struct fuzz_input *in, size_t *len)
{
    size_t n = fuzz_byte(in), times = (size_t)(fuzz_byte(in) % 8) + 1;
    char *out;

    if (n > in->len - in->pos)
        n = in->len - in->pos;
    out = malloc(n * times + 1);
    if (out == NULL)
        abort();
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * n, in->p + in->pos, n);
    in->pos += n;
    *len = n * times;
    return out;
}

static void read_edits(struct fuzz_input *in, struct milter_outcome *o, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        struct milter_edit *e = &o->edits[o->edit_count++];
        uint8_t idx;
        char *name;
        size_t vlen;

        e->kind = (enum milter_edit_kind)(fuzz_byte(in) % 6);
        idx = fuzz_byte(in);
        e->index = idx == 255 ? 4000000000u : idx;
        name = fuzz_string(in, 40);
        memcpy(e->name, name, strlen(name) + 1);
        free(name);
        e->value = repeated(in, 255, &vlen);
    }
}

/* The message as the spool holds it: CRLF only, no NUL. */
static char *spool_message(const uint8_t *p, size_t n, size_t *len)
{
    char *m = malloc(2 * n + 1);
    size_t o = 0;

    if (m == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            m[o++] = '\r';
            m[o++] = '\n';
        } else
            m[o++] = (p[i] == '\r' || p[i] == '\0') ? ' ' : (char)p[i];
    }
    *len = o;
    return m;
}

static size_t longest_line(const char *s, size_t len)
{
    size_t best = 0, start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '\n') {
            size_t l = i - start;

            if (l > 0 && i < len && s[i - 1] == '\r')
                l--;
            best = l > best ? l : best;
            start = i + 1;
        }
    }
    return best;
}

static bool ends_with(const char *s, size_t len, const char *tail, size_t tlen)
{
    return tlen <= len && memcmp(s + len - tlen, tail, tlen) == 0;
}

/* The replaced body as milter_apply must write it (it was accepted). */
static char *normal_body(const char *b, size_t len, size_t *out_len)
{
    char *out = malloc(2 * len + 3);
    size_t o = 0;

    if (out == NULL)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\r')
            continue;                    /* accepted: always before LF */
        if (b[i] == '\n')
            out[o++] = '\r';
        out[o++] = b[i];
    }
    if (o > 0 && out[o - 1] != '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    *out_len = o;
    return out;
}

static void check_output(const char *out, size_t n, size_t max)
{
    FUZZ_CHECK(n <= max);
    FUZZ_CHECK(memchr(out, '\0', n) == NULL);
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '\r')
            FUZZ_CHECK(i + 1 < n && out[i + 1] == '\n');
        if (out[i] == '\n')
            FUZZ_CHECK(i > 0 && out[i - 1] == '\r');
    }
}

static void check_body(const struct milter_outcome *o, const char *msg, size_t mlen,
                       const char *out, size_t n)
{
    if (o->body_replaced) {
        size_t blen;
        char *b = normal_body(o->body, o->body_len, &blen);

        FUZZ_CHECK(ends_with(out, n, b, blen));
        free(b);
    } else {
        const char *sep = memmem(msg, mlen, "\r\n\r\n", 4);

        if (sep != NULL) {
            size_t at = (size_t)(sep - msg) + 4;

            FUZZ_CHECK(ends_with(out, n, msg + at, mlen - at));
        }
    }
}

static void run(const struct milter_outcome *o, unsigned hidden, size_t max, const char *msg,
                size_t mlen)
{
    int in_fd = memfd_create("in", MFD_CLOEXEC), out_fd = memfd_create("out", MFD_CLOEXEC);
    size_t n = 0;
    char err[256] = "";
    char *out;

    FUZZ_CHECK(in_fd >= 0 && out_fd >= 0);
    FUZZ_CHECK(write_all(in_fd, "env\n\n", 5) && write_all(in_fd, msg, mlen));
    if (!milter_apply(in_fd, 5, mlen, o, hidden, out_fd, max, &n, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != '\0' && !fuzz_has_control(err, strlen(err)));
    } else {
        out = malloc(n + 1);
        if (out == NULL)
            abort();
        FUZZ_CHECK(pread(out_fd, out, n + 1, 0) == (ssize_t)n);
        check_output(out, n, max);
        if (longest_line(msg, mlen) <= MILTER_APPLY_LINE_MAX)
            FUZZ_CHECK(longest_line(out, n) <= MILTER_APPLY_LINE_MAX);
        check_body(o, msg, mlen, out, n);
        free(out);
    }
    close(in_fd);
    close(out_fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    static struct milter_outcome o;
    uint8_t flags = fuzz_byte(&in), limit = fuzz_byte(&in);
    size_t max = limit == 0 ? (size_t)1 << 20 : (size_t)limit * 16, mlen;
    char *msg;

    milter_outcome_init(&o);
    read_edits(&in, &o, flags & 7);
    if (flags & 8) {
        o.body_replaced = true;
        o.body = raw_body(&in, &o.body_len);
    }
    msg = spool_message(in.p + in.pos, in.len - in.pos, &mlen);
    run(&o, (flags & 16) ? 1 : 0, max, msg, mlen);
    free(msg);
    milter_outcome_clear(&o);
    return 0;
}

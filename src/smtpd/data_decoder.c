/*
 * data_decoder.c - the DATA/BDAT stream state machine (see data_decoder.h).
 *
 * TRUSTS: nothing in the input; any byte value may arrive, split at any
 * point between calls. It trusts the caller for the output room
 * (len + 2 bytes per feed, 2 for finish) and for max_line.
 *
 * MUST NEVER: end data on anything but CRLF "." CRLF, treat a bare CR or
 * bare LF as a line end, or give a result that depends on how the input
 * was split. It works one byte at a time with a state that says where
 * in a line we are; the only byte ever held back is the CR of a line
 * that so far is "." CR (it may be the end of data), so one feed writes
 * at most len + 1 bytes.
 */
#include "smtpd/data_decoder.h"

#include <stdint.h>

enum {
    ST_BOL,     /* at the beginning of a line (after CRLF, or at start) */
    ST_TEXT,    /* inside a line, last byte was not CR                  */
    ST_CR,      /* inside a line, last byte was CR (already written)    */
    ST_DOT,     /* line so far is "." (dropped: unstuffed or the end)   */
    ST_DOT_CR,  /* line so far is "." CR; the CR is held back           */
};

/* Where decoded bytes go: bounded by the caller's len + 2 contract. */
struct sink {
    char *buf;
    size_t len;
};

static void emit(struct sink *s, char c)
{
    s->buf[s->len++] = c;
}

/* Count one octet of the current line (the transparency dot excluded). */
static void count_octet(struct data_decoder *d)
{
    if (d->line_len < SIZE_MAX)
        d->line_len++;
    if (d->line_len > d->max_line)
        d->flags |= DATA_LINE_TOO_LONG;
}

/* An ordinary byte inside a line: nothing special can start here. */
static void step_text(struct data_decoder *d, char c, struct sink *s)
{
    emit(s, c);
    if (c == '\r') {
        d->state = ST_CR;
        return;
    }
    if (c == '\n')
        d->flags |= DATA_BAD_NEWLINE;       /* bare LF: line goes on */
    d->state = ST_TEXT;
}

/* The byte after a CR inside a line: LF ends the line, else CR was bare. */
static void step_cr(struct data_decoder *d, char c, struct sink *s)
{
    if (c == '\n') {
        emit(s, c);
        d->state = ST_BOL;
        d->line_len = 0;
        return;
    }
    d->flags |= DATA_BAD_NEWLINE;
    step_text(d, c, s);
}

/* First byte of a line: a leading "." is removed (RFC 5321 4.5.2). */
static void step_bol(struct data_decoder *d, char c, struct sink *s)
{
    if (d->dot_stuffing && c == '.') {
        d->state = ST_DOT;
        return;
    }
    step_text(d, c, s);
}

/* The byte after a leading ".": CR may start the end of data. */
static void step_dot(struct data_decoder *d, char c, struct sink *s)
{
    if (c == '\r') {
        d->state = ST_DOT_CR;
        return;
    }
    step_text(d, c, s);
}

/* The byte after "." CR (not LF): the held CR was bare, release it. */
static void step_dot_cr(struct data_decoder *d, char c, struct sink *s)
{
    d->flags |= DATA_BAD_NEWLINE;
    emit(s, '\r');
    step_text(d, c, s);
}

/* Decode one byte. Sets d->done on CRLF "." CRLF (that "." CRLF is not
 * written and not counted as a line). */
static void step(struct data_decoder *d, char c, struct sink *s)
{
    if (d->state == ST_DOT_CR && c == '\n') {
        d->done = true;
        return;
    }
    if (c == '\0')
        d->flags |= DATA_NUL;           /* content, and a reason to refuse */
    /* The transparency dot (RFC 5321 4.5.2) is not part of the line:
     * it does not count toward the limit (RFC 5321 4.5.3.1.6). */
    if (!(d->dot_stuffing && d->state == ST_BOL && c == '.'))
        count_octet(d);
    switch (d->state) {
    case ST_BOL:    step_bol(d, c, s);    break;
    case ST_CR:     step_cr(d, c, s);     break;
    case ST_DOT:    step_dot(d, c, s);    break;
    case ST_DOT_CR: step_dot_cr(d, c, s); break;
    default:        step_text(d, c, s);   break;
    }
}

void data_decoder_init(struct data_decoder *d, bool dot_stuffing, size_t max_line)
{
    d->state = ST_BOL;
    d->dot_stuffing = dot_stuffing;
    d->max_line = max_line;
    d->line_len = 0;
    d->flags = 0;
    d->out_bytes = 0;
    d->done = false;
}

size_t data_decoder_feed(struct data_decoder *d, const char *in, size_t len,
                         char *out, size_t *out_len)
{
    struct sink s = { out, 0 };
    size_t i = 0;

    while (i < len && !d->done)
        step(d, in[i++], &s);
    d->out_bytes += s.len;
    *out_len = s.len;
    return i;
}

void data_decoder_finish(struct data_decoder *d, char *out, size_t *out_len)
{
    struct sink s = { out, 0 };

    if (d->state == ST_DOT_CR)
        emit(&s, '\r');
    if (d->state == ST_DOT_CR || d->state == ST_CR)
        d->flags |= DATA_BAD_NEWLINE;       /* a trailing CR is bare */
    d->state = ST_BOL;
    d->line_len = 0;
    d->out_bytes += s.len;
    *out_len = s.len;
}

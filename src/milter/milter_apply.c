/*
 * milter_apply.c - the edited message: a stored message with the header
 * edits and body replacement of a milter outcome applied (see
 * milter_apply.h and docs/SMTP.md "Milter edits").
 *
 * Trusts: the caller for the descriptors; the stored message only for
 * its body (copied as is, in chunks); its header section is split with
 * the rule the role uses and a line not ending in CRLF is refused. Every
 * name, value and body octet of the outcome came from a milter and is
 * checked before anything is written. Never writes a bare CR, a bare LF
 * or a NUL that a milter sent, never a milter-made line over 998 octets,
 * never more than max_size octets.
 */
#include "milter/milter_apply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/ascii.h"
#include "util/errbuf.h"
#include "util/fd_writer.h"
#include "util/xalloc.h"

/* How the header section of the stored message ends. */
enum header_end {
    END_BLANK,          /* an empty line: the separator, then the body */
    END_BODY_LINE,      /* a line that is no field: the body, no separator */
    END_EOF,            /* the end of the message: no body */
};

struct field {
    size_t off;         /* stored field: where it starts in header.buf */
    char *owned;        /* a field a milter wrote (malloc'ed), else NULL */
    size_t len;         /* octets, its CRLF included */
    size_t name_len;
    bool hidden;        /* not shown to the milters: CHANGE skips it */
};

struct header {
    char *buf;          /* the header section as read (and a bit more) */
    size_t len;         /* octets read into buf */
    size_t cap;
    size_t consumed;    /* octets of the message before the body */
    enum header_end end;
    struct field *f;
    size_t n, fcap;
};

size_t milter_field_name_len(const char *line, size_t len)
{
    size_t n = 0, i;

    while (n < len && (unsigned char)line[n] > ' ' && (unsigned char)line[n] < 0x7f &&
           line[n] != ':')
        n++;
    if (n == 0)
        return 0;
    for (i = n; i < len && ascii_wsp((unsigned char)line[i]); i++)
        ;
    return i < len && line[i] == ':' ? n : 0;
}

static const char *field_text(const struct header *h, const struct field *f)
{
    return f->owned ? f->owned : h->buf + f->off;
}

/* Make room for one more field at index at (0..n). */
static struct field *field_insert(struct header *h, size_t at)
{
    if (h->n == h->fcap) {
        h->fcap = h->fcap ? h->fcap * 2 : 32;
        h->f = xrealloc(h->f, h->fcap * sizeof(*h->f));
    }
    memmove(&h->f[at + 1], &h->f[at], (h->n - at) * sizeof(*h->f));
    h->n++;
    memset(&h->f[at], 0, sizeof(h->f[at]));
    return &h->f[at];
}

static void field_remove(struct header *h, size_t at)
{
    free(h->f[at].owned);
    memmove(&h->f[at], &h->f[at + 1], (h->n - at - 1) * sizeof(*h->f));
    h->n--;
}

static void header_free(struct header *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->f[i].owned);
    free(h->f);
    free(h->buf);
}

/* Read up to MILTER_APPLY_CHUNK more octets of the message, never past
 * limit; two spare octets stay free for a CRLF the last line may lack. */
static bool read_more(int fd, off_t offset, size_t limit, struct header *h, char *err,
                      size_t errsize)
{
    size_t want = limit - h->len;
    ssize_t got;

    if (want > MILTER_APPLY_CHUNK)
        want = MILTER_APPLY_CHUNK;
    if (h->cap < h->len + want + 2) {
        h->cap = h->len + want + 2;
        h->buf = xrealloc(h->buf, h->cap);
    }
    do
        got = pread(fd, h->buf + h->len, want, offset + (off_t)h->len);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return errbuf_fail(err, errsize, "reading the message: %s", strerror(errno));
    if (got == 0)
        return errbuf_fail(err, errsize, "the message file ends before its size");
    h->len += (size_t)got;
    return true;
}

/* One line of the header section, buf[pos..next) with its CRLF, text_len
 * octets without it: a field, the rest of one, or the end. true: the
 * header section ends here (h->end and h->consumed set). */
static bool take_line(struct header *h, size_t pos, size_t text_len, size_t next)
{
    const char *line = h->buf + pos;
    size_t name_len;
    struct field *f;

    if (text_len == 0) {
        h->end = END_BLANK;
        h->consumed = next;
        return true;
    }
    if (ascii_wsp((unsigned char)line[0]) && h->n > 0) {
        h->f[h->n - 1].len = next - h->f[h->n - 1].off;
        return false;
    }
    name_len = ascii_wsp((unsigned char)line[0]) ? 0 : milter_field_name_len(line, text_len);
    if (name_len == 0) {
        h->end = END_BODY_LINE;
        h->consumed = pos;
        return true;
    }
    f = field_insert(h, h->n);
    f->off = pos;
    f->len = next - pos;
    f->name_len = name_len;
    return false;
}

/* A line of the stored header section must end in CRLF and hold no other
 * CR: anything else is not what the spool writes. */
static bool line_ok(const struct header *h, size_t pos, size_t lf, char *err, size_t errsize)
{
    if (lf == pos || h->buf[lf - 1] != '\r' || memchr(h->buf + pos, '\r', lf - 1 - pos))
        return errbuf_fail(err, errsize, "the stored header has a bare CR or LF");
    return true;
}

/* Read and split the header section of the message. */
static bool header_read(int fd, off_t offset, size_t size, struct header *h, char *err,
                        size_t errsize)
{
    size_t limit = size < MILTER_APPLY_HEADER_MAX ? size : MILTER_APPLY_HEADER_MAX;
    size_t pos = 0;

    for (;;) {
        const char *lf = h->len > pos ? memchr(h->buf + pos, '\n', h->len - pos) : NULL;

        if (lf != NULL) {
            size_t at = (size_t)(lf - h->buf);

            if (!line_ok(h, pos, at, err, errsize))
                return false;
            if (take_line(h, pos, at - 1 - pos, at + 1))
                return true;
            pos = at + 1;
        } else if (h->len < limit) {
            if (!read_more(fd, offset, limit, h, err, errsize))
                return false;
        } else if (h->len < size) {
            return errbuf_fail(err, errsize, "the header section is longer than %d octets",
                               MILTER_APPLY_HEADER_MAX);
        } else if (pos == h->len) {
            h->end = END_EOF;
            h->consumed = pos;
            return true;
        } else {
            /* The last line lacks its CRLF: give it one. */
            if (memchr(h->buf + pos, '\r', h->len - pos))
                return errbuf_fail(err, errsize, "the stored header has a bare CR or LF");
            memcpy(h->buf + h->len, "\r\n", 2);
            h->len += 2;
            size += 2;
            limit += 2;
        }
    }
}

static bool check_name(const char *name, char *err, size_t errsize)
{
    size_t n = strnlen(name, MILTER_NAME_MAX + 1);

    if (n == 0 || n > MILTER_NAME_MAX)
        return errbuf_fail(err, errsize, "milter header name is empty or too long");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c <= ' ' || c >= 0x7f || c == ':')
            return errbuf_fail(err, errsize, "milter header name has octet 0x%02x "
                               "(printable ASCII without ':' only)", c);
    }
    return true;
}

/* One line of a field a milter wrote ends at out[o): not only white
 * space (unless it is the first, which holds the name), not too long. */
static bool line_end_ok(size_t o, size_t line_start, bool has_text, const char *name, char *err,
                        size_t errsize)
{
    if (!has_text)
        return errbuf_fail(err, errsize, "milter header %s: a folded line of only white space",
                           name);
    if (o - line_start > MILTER_APPLY_LINE_MAX)
        return errbuf_fail(err, errsize, "milter header %s: a line longer than %d octets", name,
                           MILTER_APPLY_LINE_MAX);
    return true;
}

/* "name: value" CRLF, the milter's line breaks (LF or CRLF, each followed
 * by SP or HTAB) written as CRLF. NULL + err when the value is refused. */
static char *format_field(const char *name, const char *value, size_t *len, char *err,
                          size_t errsize)
{
    size_t nlen = strlen(name), vlen = strlen(value), o = 0, line_start = 0;
    char *out = xmalloc(nlen + 2 * vlen + 5);
    bool has_text = true;

    memcpy(out, name, nlen);
    o = nlen;
    out[o++] = ':';
    if (vlen > 0 && !ascii_wsp((unsigned char)value[0]) && value[0] != '\r' && value[0] != '\n')
        out[o++] = ' ';
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c == '\r' || c == '\n') {
            size_t skip = c == '\r' && value[i + 1] == '\n' ? 2 : 1;

            if ((c == '\r' && skip == 1) || !ascii_wsp((unsigned char)value[i + skip])) {
                free(out);
                errbuf_fail(err, errsize, "milter header %s: a bare CR or LF (a line break must be"
                            " followed by SP or HTAB)", name);
                return NULL;
            }
            if (!line_end_ok(o, line_start, has_text, name, err, errsize)) {
                free(out);
                return NULL;
            }
            out[o++] = '\r';
            out[o++] = '\n';
            line_start = o;
            has_text = false;
            i += skip - 1;
            continue;
        }
        if ((c < ' ' && c != '\t') || c == 0x7f) {
            free(out);
            errbuf_fail(err, errsize, "milter header %s: control octet 0x%02x in the value", name,
                        c);
            return NULL;
        }
        has_text = has_text || !ascii_wsp(c);
        out[o++] = (char)c;
    }
    if (!line_end_ok(o, line_start, has_text, name, err, errsize)) {
        free(out);
        return NULL;
    }
    out[o++] = '\r';
    out[o++] = '\n';
    *len = o;
    return out;
}

/* Put the field name: value at index at (0..n) of the header. */
static bool add_field(struct header *h, size_t at, const char *name, const char *value,
                      char *err, size_t errsize)
{
    size_t len;
    char *text = format_field(name, value, &len, err, errsize);
    struct field *f;

    if (text == NULL)
        return false;
    f = field_insert(h, at);
    f->owned = text;
    f->len = len;
    f->name_len = strlen(name);
    return true;
}

/* SMFIR_CHGHEADER: the index-th (1-based; 0 taken as 1) visible field
 * named name, case-insensitive. An empty value deletes it; a field not
 * there is added at the end (unless the value is empty). */
static bool change_field(struct header *h, uint32_t index, const char *name, const char *value,
                         char *err, size_t errsize)
{
    size_t nlen = strlen(name), want = index == 0 ? 1 : index, seen = 0, i;
    size_t len;
    char *text;

    for (i = 0; i < h->n; i++) {
        const struct field *f = &h->f[i];

        if (!f->hidden && f->name_len == nlen &&
            strncasecmp(field_text(h, f), name, nlen) == 0 && ++seen == want)
            break;
    }
    if (value[0] == '\0') {
        if (i < h->n)
            field_remove(h, i);
        return true;
    }
    if (i == h->n)
        return add_field(h, h->n, name, value, err, errsize);
    text = format_field(name, value, &len, err, errsize);
    if (text == NULL)
        return false;
    free(h->f[i].owned);
    h->f[i].owned = text;
    h->f[i].len = len;
    h->f[i].name_len = nlen;
    return true;
}

static bool apply_edit(struct header *h, const struct milter_edit *e, char *err, size_t errsize)
{
    const char *value = e->value ? e->value : "";

    switch (e->kind) {
    case MILTER_EDIT_ADD_HEADER:
    case MILTER_EDIT_INSERT_HEADER:
    case MILTER_EDIT_CHANGE_HEADER:
        break;
    default:
        return true;            /* envelope edits: the queue's */
    }
    if (!check_name(e->name, err, errsize))
        return false;
    if (e->kind == MILTER_EDIT_ADD_HEADER)
        return add_field(h, h->n, e->name, value, err, errsize);
    if (e->kind == MILTER_EDIT_INSERT_HEADER)
        return add_field(h, e->index < h->n ? e->index : h->n, e->name, value, err, errsize);
    return change_field(h, e->index, e->name, value, err, errsize);
}

/* The octets the replaced body will have once its line ends are CRLF and
 * it ends with one; false when it holds a NUL, a bare CR or a long line. */
static bool body_check(const char *b, size_t len, size_t *out_len, char *err, size_t errsize)
{
    size_t out = 0, line = 0;

    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\0')
            return errbuf_fail(err, errsize, "the milter's body has a NUL octet");
        if (b[i] == '\r' && (i + 1 == len || b[i + 1] != '\n'))
            return errbuf_fail(err, errsize, "the milter's body has a bare CR");
        if (b[i] == '\r' || b[i] == '\n') {
            i += b[i] == '\r';
            out += 2;
            line = 0;
            continue;
        }
        if (++line > MILTER_APPLY_LINE_MAX)
            return errbuf_fail(err, errsize, "the milter's body has a line longer than %d octets",
                               MILTER_APPLY_LINE_MAX);
        out++;
    }
    *out_len = out + (line > 0 ? 2 : 0);
    return true;
}

/* Write the checked replaced body with CRLF line ends. */
static void body_write(struct fd_writer *w, const char *b, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (b[i] != '\r' && b[i] != '\n')
            continue;
        fd_writer_write(w, b + start, i - start);
        fd_writer_write(w, "\r\n", 2);
        i += b[i] == '\r';
        start = i + 1;
    }
    if (start < len) {
        fd_writer_write(w, b + start, len - start);
        fd_writer_write(w, "\r\n", 2);
    }
}

/* Copy in_fd[from..to) to w in chunks. */
static bool body_copy(int fd, off_t from, off_t to, struct fd_writer *w, char *err,
                      size_t errsize)
{
    char *chunk = xmalloc(MILTER_APPLY_CHUNK);
    bool ok = true;

    while (ok && from < to) {
        size_t want = (size_t)(to - from) < MILTER_APPLY_CHUNK ? (size_t)(to - from)
                                                               : MILTER_APPLY_CHUNK;
        ssize_t got = pread(fd, chunk, want, from);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            ok = errbuf_fail(err, errsize, "reading the message: %s",
                             got < 0 ? strerror(errno) : "the file ends before its size");
        else {
            fd_writer_write(w, chunk, (size_t)got);
            from += got;
        }
    }
    free(chunk);
    return ok;
}

/* Write the edited message whose size was checked. */
static bool write_message(const struct header *h, const struct milter_outcome *o, bool separator,
                          int in_fd, off_t offset, size_t size, int out_fd, char *err,
                          size_t errsize)
{
    struct fd_writer *w = xmalloc(sizeof(*w));
    bool ok = true;

    fd_writer_init(w, out_fd);
    for (size_t i = 0; i < h->n; i++)
        fd_writer_write(w, field_text(h, &h->f[i]), h->f[i].len);
    if (separator)
        fd_writer_write(w, "\r\n", 2);
    if (o->body_replaced)
        body_write(w, o->body ? o->body : "", o->body ? o->body_len : 0);
    else if (h->end != END_EOF)
        ok = body_copy(in_fd, offset + (off_t)h->consumed, offset + (off_t)size, w, err,
                       errsize);
    if (!fd_writer_flush(w) && ok)
        ok = errbuf_fail(err, errsize, "writing the edited message: %s", strerror(w->error));
    free(w);
    return ok;
}

bool milter_apply(int in_fd, off_t offset, size_t size, const struct milter_outcome *o,
                  unsigned hidden_fields, int out_fd, size_t max_size, size_t *out_size,
                  char *err, size_t errsize)
{
    struct header h;
    size_t edits = o->edit_count < MILTER_EDITS_MAX ? o->edit_count : MILTER_EDITS_MAX;
    size_t total = 0, body = 0;
    bool ok, separator = false;

    memset(&h, 0, sizeof(h));
    ok = header_read(in_fd, offset, size, &h, err, errsize);
    for (size_t i = 0; ok && i < h.n && i < hidden_fields; i++)
        h.f[i].hidden = true;
    for (size_t i = 0; ok && i < edits; i++)
        ok = apply_edit(&h, &o->edits[i], err, errsize);
    if (ok && o->body_replaced)
        ok = body_check(o->body ? o->body : "", o->body ? o->body_len : 0, &body, err, errsize);
    else if (ok && h.end != END_EOF)
        body = size - h.consumed;
    if (ok) {
        /* A header-only message gets an empty line only when a body follows. */
        separator = h.end != END_EOF || body > 0;
        for (size_t i = 0; i < h.n; i++)
            total += h.f[i].len;
        total += (separator ? 2 : 0) + body;
        if (total > max_size)
            ok = errbuf_fail(err, errsize, "the edited message would be %zu octets, over the "
                             "limit of %zu", total, max_size);
    }
    if (ok)
        ok = write_message(&h, o, separator, in_fd, offset, size, out_fd, err, errsize);
    if (ok)
        *out_size = total;
    header_free(&h);
    return ok;
}

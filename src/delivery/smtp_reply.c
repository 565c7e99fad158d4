/*
 * smtp_reply.c - SMTP reply parser, enhanced status codes, EHLO
 * capabilities and dot-stuffing for the outbound client (see
 * smtp_reply.h).
 *
 * Trusts nothing it parses: reply lines are looked at only within
 * SMTP_REPLY_LINE_MAX bytes, at most SMTP_REPLY_LINES_MAX lines are
 * kept, and numbers are parsed with overflow checks. Never allocates.
 */
#include "delivery/smtp_reply.h"
#include "util/ascii.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void smtp_reply_init(struct smtp_reply *r)
{
    r->code = 0;
    r->lines = 0;
    r->text_len = 0;
    r->dsn[0] = '\0';
    r->text[0] = '\0';
}

const char *smtp_reply_status_text(enum smtp_reply_status st)
{
    switch (st) {
    case REPLY_ERR_TOO_LONG:
        return "reply line too long";
    case REPLY_ERR_TOO_MANY:
        return "too many reply lines";
    case REPLY_ERR_SYNTAX:
        return "malformed reply";
    case REPLY_ERR_MIXED:
        return "reply lines with different codes";
    default:
        return "no error";
    }
}

/* 1-3 digits at p[0..len); returns how many, 0 when none or too many. */
static size_t digits_1_3(const char *p, size_t len)
{
    size_t n = 0;

    while (n < len && ascii_digit((unsigned char)p[n]))
        n++;
    return n >= 1 && n <= 3 ? n : 0;
}

size_t smtp_enhanced_code(const char *text, size_t len, int reply_class, char *dsn,
                          size_t dsnsize)
{
    size_t i, n;

    if (len < 5 || text[0] != (char)('0' + reply_class) || text[1] != '.')
        return 0;
    if (reply_class != 2 && reply_class != 4 && reply_class != 5)
        return 0;
    i = 2;
    if ((n = digits_1_3(text + i, len - i)) == 0)
        return 0;
    i += n;
    if (i >= len || text[i] != '.')
        return 0;
    i++;
    if ((n = digits_1_3(text + i, len - i)) == 0)
        return 0;
    i += n;
    if (i < len && text[i] != ' ')
        return 0;
    if (i + 1 > dsnsize)
        return 0;
    memcpy(dsn, text, i);
    dsn[i] = '\0';
    return i;
}

static void reply_finish(struct smtp_reply *r)
{
    size_t pos = 0, len;
    const char *line;

    if (smtp_reply_next_line(r, &pos, &line, &len) &&
        smtp_enhanced_code(line, len, r->code / 100, r->dsn, sizeof(r->dsn)) > 0)
        return;
    snprintf(r->dsn, sizeof(r->dsn), "%d.0.0", r->code / 100);
}

enum smtp_reply_status smtp_reply_parse(struct smtp_reply *r, const char *buf, size_t len,
                                        size_t *consumed)
{
    size_t scan = len < SMTP_REPLY_LINE_MAX ? len : SMTP_REPLY_LINE_MAX;
    const char *lf = memchr(buf, '\n', scan);
    size_t line_len, text_len;
    bool last;
    int code;

    *consumed = 0;
    if (lf == NULL)
        return len >= SMTP_REPLY_LINE_MAX ? REPLY_ERR_TOO_LONG : REPLY_NEED_MORE;
    line_len = (size_t)(lf - buf);
    if (line_len > 0 && buf[line_len - 1] == '\r')
        line_len--;
    if (line_len < 3 || buf[0] < '2' || buf[0] > '5' || !ascii_digit((unsigned char)buf[1]) || !ascii_digit((unsigned char)buf[2]))
        return REPLY_ERR_SYNTAX;
    if (line_len > 3 && buf[3] != ' ' && buf[3] != '-')
        return REPLY_ERR_SYNTAX;
    code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
    if (r->lines > 0 && code != r->code)
        return REPLY_ERR_MIXED;
    if (r->lines >= SMTP_REPLY_LINES_MAX)
        return REPLY_ERR_TOO_MANY;
    last = line_len == 3 || buf[3] == ' ';
    text_len = line_len > 4 ? line_len - 4 : 0;
    /* 100 lines of at most 508 text bytes plus a separator always fit. */
    if (r->lines > 0)
        r->text[r->text_len++] = '\n';
    memcpy(r->text + r->text_len, buf + 4, text_len);
    r->text_len += text_len;
    r->text[r->text_len] = '\0';
    r->code = code;
    r->lines++;
    *consumed = (size_t)(lf - buf) + 1;
    if (!last)
        return REPLY_CONTINUE;
    reply_finish(r);
    return REPLY_DONE;
}

bool smtp_reply_next_line(const struct smtp_reply *r, size_t *pos, const char **line,
                          size_t *len)
{
    const char *start, *nl;

    if (*pos > r->text_len || r->lines == 0)
        return false;
    start = r->text + *pos;
    nl = memchr(start, '\n', r->text_len - *pos);
    *line = start;
    *len = nl ? (size_t)(nl - start) : r->text_len - *pos;
    *pos += *len + 1;       /* past the separator, or past the end */
    return true;
}

void smtp_reply_format(const struct smtp_reply *r, char *out, size_t outsize)
{
    size_t o, i;
    int n;

    if (outsize == 0)
        return;
    n = snprintf(out, outsize, "%d", r->code);
    o = n < 0 ? 0 : (size_t)n;
    if (o >= outsize) {
        out[outsize - 1] = '\0';
        return;
    }
    for (i = 0; i < r->text_len && o + 1 < outsize; i++) {
        unsigned char c = (unsigned char)r->text[i];

        if (i == 0 && o + 1 < outsize)
            out[o++] = ' ';
        if (o + 1 >= outsize)
            break;
        if (c == '\n')
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = '?';
        out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* A decimal number that fits in uint64_t; false on anything else. */
static bool parse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!ascii_digit((unsigned char)p[i]))
            return false;
        if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

static bool keyword_is(const char *kw, size_t kwlen, const char *name)
{
    return kwlen == strlen(name) && strncasecmp(kw, name, kwlen) == 0;
}

/* The mechanisms of an AUTH keyword line ("PLAIN LOGIN CRAM-MD5"). */
static void caps_auth(struct smtp_caps *caps, const char *arg, size_t arglen)
{
    size_t i = 0;

    while (i < arglen) {
        size_t start, wlen;

        while (i < arglen && arg[i] == ' ')
            i++;
        start = i;
        while (i < arglen && arg[i] != ' ')
            i++;
        wlen = i - start;
        if (keyword_is(arg + start, wlen, "PLAIN"))
            caps->auth_plain = true;
        else if (keyword_is(arg + start, wlen, "LOGIN"))
            caps->auth_login = true;
    }
}

bool smtp_caps_line(struct smtp_caps *caps, const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    size_t kwlen = sp ? (size_t)(sp - line) : len;
    const char *arg = sp ? sp + 1 : line + len;
    size_t arglen = (size_t)(line + len - arg);

    while (arglen > 0 && arg[arglen - 1] == ' ')
        arglen--;
    if (keyword_is(line, kwlen, "PIPELINING"))
        caps->pipelining = true;
    else if (keyword_is(line, kwlen, "8BITMIME"))
        caps->eightbitmime = true;
    else if (keyword_is(line, kwlen, "SMTPUTF8"))
        caps->smtputf8 = true;
    else if (keyword_is(line, kwlen, "STARTTLS"))
        caps->starttls = true;
    else if (keyword_is(line, kwlen, "CHUNKING"))
        caps->chunking = true;
    else if (keyword_is(line, kwlen, "DSN"))
        caps->dsn = true;
    else if (keyword_is(line, kwlen, "REQUIRETLS"))
        caps->requiretls = true;
    else if (keyword_is(line, kwlen, "AUTH"))
        caps_auth(caps, arg, arglen);
    else if (kwlen >= 5 && strncasecmp(line, "AUTH=", 5) == 0)
        caps_auth(caps, line + 5, len - 5);     /* pre-RFC 4954 servers */
    else if (keyword_is(line, kwlen, "SIZE")) {
        uint64_t v = 0;

        caps->size = true;
        /* RFC 1870: no number or 0 means no fixed limit. */
        caps->size_max = parse_u64(arg, arglen, &v) ? v : 0;
    } else
        return false;
    return true;
}

void smtp_caps_parse(struct smtp_caps *caps, const struct smtp_reply *ehlo)
{
    size_t pos = 0, len;
    const char *line;
    bool first = true;

    memset(caps, 0, sizeof(*caps));
    caps->esmtp = true;
    while (smtp_reply_next_line(ehlo, &pos, &line, &len)) {
        if (!first)
            smtp_caps_line(caps, line, len);
        first = false;
    }
}

void dot_stuff_init(struct dot_stuffer *d)
{
    d->line_start = true;
    d->prev = '\0';
    d->last = '\0';
    d->any = false;
}

size_t dot_stuff(struct dot_stuffer *d, const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;

    if (len == 0)
        return 0;
    while (i < len) {
        const char *lf;
        size_t n;

        if (d->line_start && in[i] == '.')
            out[o++] = '.';
        lf = memchr(in + i, '\n', len - i);
        n = lf ? (size_t)(lf - (in + i)) + 1 : len - i;
        memcpy(out + o, in + i, n);
        o += n;
        i += n;
        d->line_start = lf != NULL;
    }
    d->prev = len >= 2 ? in[len - 2] : d->last;
    d->last = in[len - 1];
    d->any = true;
    return o;
}

size_t dot_stuff_end(const struct dot_stuffer *d, char *out)
{
    size_t o = 0;

    if (d->any && !(d->prev == '\r' && d->last == '\n')) {
        if (d->last != '\r')
            out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}

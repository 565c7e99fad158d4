/*
 * header_fields.c - the streaming header-section scanner and the Date /
 * Message-ID formatters (see header_fields.h).
 *
 * Trusts nothing in the message octets; the formatters' arguments come
 * from the caller (queue id, config-checked hostname) and are still
 * bounded by the output buffer.
 */
#include "mail/header_fields.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/received.h"
#include "util/ascii.h"

enum scan_state {
    SCAN_FIRST,         /* start of the message: no field yet */
    SCAN_LINE_START,    /* start of a line after a field line */
    SCAN_NAME,          /* reading a field name (held back) */
    SCAN_NAME_WSP,      /* blanks after the name, before ':' (held back) */
    SCAN_VALUE,         /* in a field body */
    SCAN_DONE,          /* header section over: everything passes */
};

static bool is_ftext(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

void header_scan_init(struct header_scan *h, header_sink sink, header_at_end at_end, void *arg)
{
    memset(h, 0, sizeof(*h));
    h->state = SCAN_FIRST;
    h->sink = sink;
    h->at_end = at_end;
    h->arg = arg;
}

static void emit(struct header_scan *h, const char *p, size_t n)
{
    if (n)
        h->sink(h->arg, p, n);
}

/* The header section ends here (held octets are the start of the line
 * that ends it). */
static void section_end(struct header_scan *h, enum header_end how)
{
    h->end = how;
    h->state = SCAN_DONE;
    if (h->at_end)
        h->at_end(h->arg, h);
    if (how == HEADER_END_BODY_LINE)
        emit(h, "\r\n", 2);
    emit(h, h->hold, h->hold_len);
    h->hold_len = 0;
}

/* Which field (HEADER_HAS_*) the held name is, 0 for any other. */
static unsigned classify(const struct header_scan *h)
{
    size_t n = h->hold_len;

    while (n > 0 && ascii_wsp((unsigned char)h->hold[n - 1]))
        n--;
    if (n == 4 && strncasecmp(h->hold, "from", 4) == 0)
        return HEADER_HAS_FROM;
    if (n == 4 && strncasecmp(h->hold, "date", 4) == 0)
        return HEADER_HAS_DATE;
    if (n == 10 && strncasecmp(h->hold, "message-id", 10) == 0)
        return HEADER_HAS_MESSAGE_ID;
    return 0;
}

static void from_append(struct header_scan *h, const char *p, size_t n)
{
    if (h->from_overflow)
        return;
    if (n > sizeof(h->from) - h->from_len) {
        h->from_overflow = true;
        return;
    }
    memcpy(h->from + h->from_len, p, n);
    h->from_len += n;
}

/* A field name ended with ':'. */
static void field_start(struct header_scan *h)
{
    h->field = classify(h);
    h->seen |= h->field;
    if (h->field == HEADER_HAS_FROM && h->from_fields++ > 0)
        from_append(h, ",", 1);
    emit(h, h->hold, h->hold_len);
    h->hold_len = 0;
    h->prev_cr = false;
    h->state = SCAN_VALUE;
}

/* What became of an octet at a line start or in a name. */
enum octet_fate {
    OCTET_PASSED,       /* consumed, passed on with the run */
    OCTET_HELD,         /* consumed into hold */
    OCTET_ENDED,        /* not consumed: the header section ended before it */
};

static enum octet_fate line_start(struct header_scan *h, unsigned char c)
{
    h->prev_cr = false;
    if (c == '\r') {
        section_end(h, HEADER_END_BLANK);
        return OCTET_ENDED;
    }
    if (ascii_wsp(c) && h->state == SCAN_LINE_START) {
        h->state = SCAN_VALUE;          /* continuation of the same field */
        if (h->field == HEADER_HAS_FROM)
            from_append(h, (const char *)&c, 1);
        return OCTET_PASSED;
    }
    if (!is_ftext(c)) {
        section_end(h, HEADER_END_BODY_LINE);
        return OCTET_ENDED;
    }
    h->hold[0] = (char)c;
    h->hold_len = 1;
    h->state = SCAN_NAME;
    return OCTET_HELD;
}

static enum octet_fate name_octet(struct header_scan *h, unsigned char c)
{
    if (c == ':') {
        field_start(h);
        return OCTET_PASSED;
    }
    if (((h->state == SCAN_NAME && is_ftext(c)) || ascii_wsp(c)) &&
        h->hold_len < HEADER_NAME_MAX) {
        h->hold[h->hold_len++] = (char)c;
        if (ascii_wsp(c))
            h->state = SCAN_NAME_WSP;
        return OCTET_HELD;
    }
    section_end(h, HEADER_END_BODY_LINE);
    return OCTET_ENDED;
}

void header_scan_feed(struct header_scan *h, const char *in, size_t len)
{
    size_t run = 0;     /* in[run..i) is to be passed on */
    size_t i = 0;

    while (i < len && h->state != SCAN_DONE) {
        unsigned char c = (unsigned char)in[i];
        enum octet_fate fate;

        if (h->state == SCAN_VALUE) {
            if (c == '\n' && h->prev_cr)
                h->state = SCAN_LINE_START;
            else if (h->field == HEADER_HAS_FROM && c != '\r')
                from_append(h, (const char *)&c, 1);
            h->prev_cr = c == '\r';
            i++;
            continue;
        }
        if (h->state == SCAN_FIRST || h->state == SCAN_LINE_START) {
            emit(h, in + run, i - run);
            run = i;
            fate = line_start(h, c);
        } else {
            fate = name_octet(h, c);
        }
        if (fate == OCTET_HELD)
            run = ++i;
        else if (fate == OCTET_PASSED)
            i++;
    }
    emit(h, in + run, len - run);
}

void header_scan_finish(struct header_scan *h)
{
    switch (h->state) {
    case SCAN_DONE:
        return;
    case SCAN_NAME:
    case SCAN_NAME_WSP:     /* a last line without ':' is not a field */
        section_end(h, HEADER_END_BODY_LINE);
        return;
    case SCAN_VALUE:        /* the last field has no CRLF */
        if (h->prev_cr)
            emit(h, "\n", 1);   /* a final bare CR: the message is refused anyway */
        else
            emit(h, "\r\n", 2);
        break;
    default:
        break;
    }
    section_end(h, HEADER_END_EOF);
}

size_t header_format_date(char *out, size_t size, time_t when)
{
    char date[64];
    int n;

    rfc5322_date(when, date, sizeof(date));
    n = snprintf(out, size, "Date: %s\r\n", date);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

size_t header_format_message_id(char *out, size_t size, const char *unique, uint64_t nonce,
                                const char *host)
{
    char clean[64];
    size_t o = 0;
    int n;

    for (const char *p = unique; *p && o + 1 < sizeof(clean); p++) {
        if (ascii_alnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
            clean[o++] = *p;
    }
    clean[o] = '\0';
    n = snprintf(out, size, "Message-ID: <%s%s%016llx@%s>\r\n", clean, o ? "." : "",
                 (unsigned long long)nonce, host);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

size_t header_format_missing(const struct header_scan *h, char *out, size_t size,
                             time_t when, const char *unique, uint64_t nonce,
                             const char *host)
{
    size_t len = 0, n;

    if (!(h->seen & HEADER_HAS_DATE)) {
        if ((n = header_format_date(out, size, when)) == 0)
            return 0;
        len = n;
    }
    if (!(h->seen & HEADER_HAS_MESSAGE_ID)) {
        if ((n = header_format_message_id(out + len, size - len, unique, nonce, host)) == 0)
            return 0;
        len += n;
    }
    return len;
}

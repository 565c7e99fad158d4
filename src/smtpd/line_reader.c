/*
 * line_reader.c - find one SMTP command line in received bytes
 * (see line_reader.h).
 *
 * TRUSTS: nothing in buf; every byte value, including NUL, bare CR and
 * bare LF, may arrive from the network. Only buf[0..len) is ever read.
 * The caller's max is trusted (it comes from checked configuration).
 *
 * MUST NEVER: accept a bare LF or a bare CR as a line end, or report a
 * line longer than max as LINE_OK. It never writes to buf and keeps no
 * state between calls: the caller owns the buffer.
 */
#include "smtpd/line_reader.h"

#include <string.h>

/* True if line[0..n) holds a CR: in a command line, every such CR is
 * bare, because the CR of the terminating CRLF is not part of it. */
static int has_cr(const char *line, size_t n)
{
    return n > 0 && memchr(line, '\r', n) != NULL;
}

/* Classify a complete line buf[0..lf] whose LF is at index lf. */
static enum line_status classify_line(const char *buf, size_t lf, size_t max,
                                      size_t *line_len)
{
    if (lf + 1 > max)
        return LINE_TOO_LONG;
    if (lf == 0 || buf[lf - 1] != '\r')
        return LINE_BAD_NEWLINE;
    if (has_cr(buf, lf - 1))
        return LINE_BAD_NEWLINE;
    *line_len = lf - 1;
    return LINE_OK;
}

enum line_status line_scan(const char *buf, size_t len, size_t max,
                           size_t *line_len, size_t *consumed)
{
    const char *lf = len > 0 ? memchr(buf, '\n', len) : NULL;

    *line_len = 0;
    *consumed = 0;
    if (lf == NULL) {
        /* Without its LF the line is already at least len + 1 octets. */
        if (len == 0 || len < max)
            return LINE_NEED_MORE;
        *consumed = len;
        return LINE_TOO_LONG;
    }
    *consumed = (size_t)(lf - buf) + 1;
    return classify_line(buf, (size_t)(lf - buf), max, line_len);
}

size_t line_skip_to_lf(const char *buf, size_t len, int *found)
{
    const char *lf = len > 0 ? memchr(buf, '\n', len) : NULL;

    if (lf == NULL) {
        *found = 0;
        return len;
    }
    *found = 1;
    return (size_t)(lf - buf) + 1;
}

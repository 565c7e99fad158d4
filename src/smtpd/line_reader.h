/*
 * line_reader.h - find one SMTP command line in received bytes.
 *
 * Commands end with CRLF only (RFC 5321 2.3.8). A bare CR or bare LF in a
 * command line is an error, never a line end, so that a line can never be
 * read differently by sealpost and by a filter in front of it.
 */
#ifndef SEALPOST_SMTPD_LINE_READER_H
#define SEALPOST_SMTPD_LINE_READER_H

#include <stddef.h>

enum line_status {
    LINE_OK,            /* a line of *line_len bytes (CRLF excluded)      */
    LINE_NEED_MORE,     /* no LF yet and fewer than max bytes buffered    */
    LINE_BAD_NEWLINE,   /* line ends in bare LF, or holds a bare CR       */
    LINE_TOO_LONG,      /* line (with CRLF) longer than max               */
};

/*
 * Scan buf[0..len) for the first LF. max is the longest allowed line
 * including CRLF. On LINE_OK, LINE_BAD_NEWLINE and LINE_TOO_LONG with a
 * LF present, *consumed is the number of bytes up to and including that
 * LF. On LINE_TOO_LONG without a LF in the buffer, *consumed is len (the
 * caller discards it and keeps discarding up to the next LF: see
 * line_skip_to_lf). On LINE_NEED_MORE, *consumed is 0.
 *
 * Clarifications: *line_len is meaningful only on LINE_OK (it is 0
 * otherwise). A line that is both too long and holds a bare CR/LF is
 * reported as LINE_TOO_LONG. An empty buffer is always LINE_NEED_MORE.
 * Bytes other than CR and LF (NUL included) are not judged here.
 */
enum line_status line_scan(const char *buf, size_t len, size_t max,
                           size_t *line_len, size_t *consumed);

/* Returns how many leading bytes of buf to discard to get past the next
 * LF (inclusive), and sets *found to 1 if a LF was seen, else 0 (then the
 * whole buffer is discarded). */
size_t line_skip_to_lf(const char *buf, size_t len, int *found);

#endif

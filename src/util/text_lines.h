/*
 * text_lines.h - walk the lines of a buffer that is not NUL-terminated
 * (a file snapshot's bytes): LF ends a line, a CR before it is dropped,
 * the last line may lack its LF. Trusts nothing: every step stays within
 * len. For the line-per-entry files of the config (users, senders).
 */
#ifndef SEALPOST_UTIL_TEXT_LINES_H
#define SEALPOST_UTIL_TEXT_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The line at *pos into *line and *llen (without LF or CRLF); *pos moves past
 * it. false at the end of data. */
static inline bool text_next_line(const char *data, size_t len, size_t *pos,
                                  const char **line, size_t *llen)
{
    const char *nl;

    if (*pos >= len)
        return false;
    *line = data + *pos;
    nl = memchr(*line, '\n', len - *pos);
    *llen = nl ? (size_t)(nl - *line) : len - *pos;
    *pos += *llen + (nl != NULL);
    if (*llen > 0 && (*line)[*llen - 1] == '\r')
        (*llen)--;
    return true;
}

#endif

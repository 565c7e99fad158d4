/*
 * errbuf.h - the "format a reason into the caller's err buffer and fail"
 * helper the parsers and builders that report errors as (err, errsize)
 * share. Trusts its callers for the format; the text is cut to errsize.
 */
#ifndef SEALPOST_UTIL_ERRBUF_H
#define SEALPOST_UTIL_ERRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* vsnprintf the reason into err (NUL-terminated, cut to errsize octets;
 * nothing written when errsize is 0) and return false, so a check reads
 * `return errbuf_fail(err, errsize, "bad %s", what);`. */
bool errbuf_fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

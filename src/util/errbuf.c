/*
 * errbuf.c - errbuf_fail (see errbuf.h). Trusts its callers' formats.
 */
#include "util/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

bool errbuf_fail(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    if (errsize > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return false;
}

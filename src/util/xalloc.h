/*
 * xalloc.h - allocation that never returns NULL.
 *
 * Out of memory is fatal: the daemon logs and exits rather than limping
 * on with half-built state. Sizes are checked for overflow.
 */
#ifndef SEALPOST_UTIL_XALLOC_H
#define SEALPOST_UTIL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

#endif

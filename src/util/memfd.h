/*
 * memfd.h - sealed memory files: how one process hands another a block
 * of bytes that neither can change afterwards (the master gives each
 * role it starts the config it read and a snapshot of the files it
 * loaded; see sandbox/role.h).
 *
 * Trusts nothing it reads: memfd_read_sealed() refuses a descriptor that
 * is not a memory file sealed against writes and resizing, or that holds
 * more than the caller's bound.
 */
#ifndef SEALPOST_UTIL_MEMFD_H
#define SEALPOST_UTIL_MEMFD_H

#include <stdbool.h>
#include <stddef.h>

/* A new close-on-exec memory file holding data[0..len), sealed against
 * every change (write, grow, shrink, further seals). -1 + errno. */
int memfd_sealed(const char *name, const void *data, size_t len);

/*
 * Read all of fd, a memory file sealed by memfd_sealed(), into a fresh
 * allocation (*data, *len; one NUL byte follows, not counted). At most
 * max bytes. false + why on error; fd is left open at any offset.
 */
bool memfd_read_sealed(int fd, size_t max, unsigned char **data, size_t *len,
                       char *why, size_t whysize);

#endif

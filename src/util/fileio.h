/*
 * fileio.h - small descriptor and file helpers shared by the spool, the
 * Maildir code and the blocking clients of the lmtp and milter roles.
 */
#ifndef SEALPOST_UTIL_FILEIO_H
#define SEALPOST_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* write(2) until everything is written; false with errno on failure. */
bool write_all(int fd, const void *data, size_t len);

/* Wait up to timeout seconds until fd is ready for events (POLLIN,
 * POLLOUT), retrying on EINTR: the step timeout of the blocking clients
 * (LMTP, milters). false with errno (ETIMEDOUT when the time ran out). */
bool fd_wait(int fd, short events, unsigned timeout);

/* mkdir -p: create path and its missing parents with mode. 0 or -1/errno. */
int mkdir_parents(const char *path, mode_t mode);

#endif

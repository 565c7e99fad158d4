/*
 * fileio.h - small file helpers shared by the spool and Maildir code.
 */
#ifndef SEALPOST_UTIL_FILEIO_H
#define SEALPOST_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* write(2) until everything is written; false with errno on failure. */
bool write_all(int fd, const void *data, size_t len);

/* mkdir -p: create path and its missing parents with mode. 0 or -1/errno. */
int mkdir_parents(const char *path, mode_t mode);

#endif

/*
 * fd_writer.h - buffered writes to a file descriptor, remembering the
 * first error: the spool writes a message in many small pieces (one per
 * network read) and checks once at the end.
 *
 * Trusts: the caller for the descriptor. Holds FD_WRITER_BUF bytes at most.
 */
#ifndef SEALPOST_UTIL_FD_WRITER_H
#define SEALPOST_UTIL_FD_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#define FD_WRITER_BUF (64 * 1024)

struct fd_writer {
    int fd;
    int error;                  /* errno of the first failure, 0 if none */
    size_t buffered;
    char buf[FD_WRITER_BUF];
};

void fd_writer_init(struct fd_writer *w, int fd);
/* Append (buffered). false once any write failed. */
bool fd_writer_write(struct fd_writer *w, const void *data, size_t len);
/* Write out what is buffered. false once any write failed. */
bool fd_writer_flush(struct fd_writer *w);

#endif

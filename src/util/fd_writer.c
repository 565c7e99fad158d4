/*
 * fd_writer.c - buffered writes with a sticky error (see fd_writer.h).
 */
#include "util/fd_writer.h"

#include <errno.h>
#include <string.h>

#include "util/fileio.h"

void fd_writer_init(struct fd_writer *w, int fd)
{
    w->fd = fd;
    w->error = 0;
    w->buffered = 0;
}

bool fd_writer_flush(struct fd_writer *w)
{
    if (w->error)
        return false;
    if (w->buffered && !write_all(w->fd, w->buf, w->buffered))
        w->error = errno ? errno : EIO;
    w->buffered = 0;
    return w->error == 0;
}

bool fd_writer_write(struct fd_writer *w, const void *data, size_t len)
{
    if (w->error)
        return false;
    if (len >= sizeof(w->buf)) {
        if (!fd_writer_flush(w))
            return false;
        if (!write_all(w->fd, data, len))
            w->error = errno ? errno : EIO;
        return w->error == 0;
    }
    if (w->buffered + len > sizeof(w->buf) && !fd_writer_flush(w))
        return false;
    memcpy(w->buf + w->buffered, data, len);
    w->buffered += len;
    return true;
}

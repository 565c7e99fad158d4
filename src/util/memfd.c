/*
 * memfd.c - sealed memory files (see memfd.h).
 */
#define _GNU_SOURCE 1
#include "util/memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/xalloc.h"

#define FULL_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

int memfd_sealed(const char *name, const void *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int saved;

    if (fd < 0)
        return -1;
    if (write_all(fd, data, len) && fcntl(fd, F_ADD_SEALS, FULL_SEALS) == 0)
        return fd;
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

bool memfd_read_sealed(int fd, size_t max, unsigned char **data, size_t *len,
                       char *why, size_t whysize)
{
    struct stat st;
    unsigned char *buf;
    size_t got = 0;
    int seals = fcntl(fd, F_GET_SEALS);

    if (seals < 0 || (seals & FULL_SEALS) != FULL_SEALS) {
        snprintf(why, whysize, "descriptor %d is not a sealed memory file", fd);
        return false;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(why, whysize, "descriptor %d: %s", fd, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0) {
        snprintf(why, whysize, "descriptor %d is not a memory file", fd);
        return false;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(why, whysize, "descriptor %d holds %lld bytes, more than %zu", fd,
                 (long long)st.st_size, max);
        return false;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whysize, "descriptor %d: %s", fd, n < 0 ? strerror(errno)
                     : "shorter than its size");
            free(buf);
            return false;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return true;
}

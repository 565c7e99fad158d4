/*
 * sts_store.c - the MTA-STS policy cache under the spool (see
 * sts_store.h). Trusts the spool folder only; every record, from the
 * delivery process or from a file, goes through sts_record_decode.
 */
#define _GNU_SOURCE 1
#include "queue/sts_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/sts_codec.h"
#include "util/fileio.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

struct sts_store {
    int dir_fd;
    struct sts_record rec;              /* scratch: 64 KiB, not on the stack */
    struct sts_policy pol;
    char buf[STS_RECORD_MAX];
};

struct sts_store *sts_store_open(const char *spool, char *err, size_t errsize)
{
    struct sts_store *st;
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/sts", spool);
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsize, "mkdir %s: %s", path, strerror(errno));
        return NULL;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsize, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    st = xcalloc(1, sizeof(*st));
    st->dir_fd = fd;
    return st;
}

void sts_store_close(struct sts_store *st)
{
    if (st == NULL)
        return;
    close(st->dir_fd);
    free(st);
}

static size_t count_files(struct sts_store *st)
{
    DIR *d = fdopendir(dup(st->dir_fd));
    struct dirent *de;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* tmp + fsync + rename + fsync(dir): the file is whole or absent. */
static bool write_atomic(struct sts_store *st, const char *name, const void *data,
                         size_t len, char *err, size_t errsize)
{
    char tmp[STS_DOMAIN_MAX + 16];
    int fd;

    snprintf(tmp, sizeof(tmp), ".tmp.%s", name);
    fd = openat(st->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !write_all(fd, data, len) || fsync(fd) < 0) {
        snprintf(err, errsize, "write sts/%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlinkat(st->dir_fd, tmp, 0);
        return false;
    }
    close(fd);
    if (renameat(st->dir_fd, tmp, st->dir_fd, name) < 0) {
        snprintf(err, errsize, "rename sts/%s: %s", name, strerror(errno));
        unlinkat(st->dir_fd, tmp, 0);
        return false;
    }
    fsync(st->dir_fd);
    return true;
}

bool sts_store_put(struct sts_store *st, const void *data, size_t len, char *err,
                   size_t errsize)
{
    struct stat sb;

    if (!sts_record_decode(data, len, &st->rec, &st->pol, err, errsize))
        return false;
    if (sts_record_expired(&st->rec, &st->pol, time(NULL))) {
        snprintf(err, errsize, "policy already expired");
        return false;
    }
    if (fstatat(st->dir_fd, st->rec.domain, &sb, 0) < 0 &&
        count_files(st) >= STS_STORE_MAX_FILES) {
        snprintf(err, errsize, "the policy cache is full (%d domains)", STS_STORE_MAX_FILES);
        return false;
    }
    /* Written as encoded here, from the checked fields. */
    len = sts_record_encode(&st->rec, st->buf, sizeof(st->buf));
    return len > 0 && write_atomic(st, st->rec.domain, st->buf, len, err, errsize);
}

/* Read sts/name into st->buf; its length, or -1. */
static ssize_t read_file(struct sts_store *st, const char *name)
{
    int fd = openat(st->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n, total = 0;

    if (fd < 0)
        return -1;
    while ((size_t)total < sizeof(st->buf) &&
           (n = read(fd, st->buf + total, sizeof(st->buf) - (size_t)total)) > 0)
        total += n;
    /* one more octet means too long */
    if ((size_t)total == sizeof(st->buf) && read(fd, &n, 1) > 0)
        total = -1;
    close(fd);
    return total;
}

/* Check one file: send it if valid and current, else remove it. */
static int send_one(struct sts_store *st, const char *name, int channel)
{
    ssize_t n = read_file(st, name);
    char err[200] = "too long or unreadable";

    if (n < 0 || !sts_record_decode(st->buf, (size_t)n, &st->rec, &st->pol, err,
                                    sizeof(err)) ||
        strcmp(st->rec.domain, name) != 0) {
        log_warn("event=sts_cache_dropped file=sts/%s reason=\"%s\"", name,
                 n >= 0 && err[0] ? err : "unreadable");
        unlinkat(st->dir_fd, name, 0);
        return 0;
    }
    if (sts_record_expired(&st->rec, &st->pol, time(NULL))) {
        log_info("event=sts_cache_expired domain=%s", name);
        unlinkat(st->dir_fd, name, 0);
        return 0;
    }
    return ipc_send(channel, IPC_STS_CACHE, st->buf, (size_t)n, -1) ? 1 : -1;
}

int sts_store_send_all(struct sts_store *st, int channel)
{
    DIR *d = fdopendir(dup(st->dir_fd));
    struct dirent *de;
    int sent = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        int r;

        if (de->d_name[0] == '.') {
            if (strncmp(de->d_name, ".tmp.", 5) == 0)
                unlinkat(st->dir_fd, de->d_name, 0);    /* a write cut short */
            continue;
        }
        if (!sts_domain_valid(de->d_name)) {
            char q[sizeof(de->d_name) * 4 + 8];
            log_warn("event=sts_cache_ignored file=%s reason=\"not a domain name\"",
                     log_value(q, sizeof(q), de->d_name));
            continue;
        }
        r = send_one(st, de->d_name, channel);
        if (r < 0) {
            sent = -1;
            break;
        }
        sent += r;
    }
    closedir(d);
    return sent;
}

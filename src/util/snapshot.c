/*
 * snapshot.c - file snapshots (see snapshot.h).
 *
 * Serialized form (native byte order: writer and reader are the same
 * binary on the same machine):
 *
 *   "SPSNAP01"  u32 count
 *   count x  { u32 path_len  u64 data_len  path[path_len]  data[data_len] }
 */
#define _GNU_SOURCE 1
#include "util/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/memfd.h"
#include "util/xalloc.h"

#define MAGIC "SPSNAP01"
#define MAGIC_LEN 8
#define ENTRY_HEAD (sizeof(uint32_t) + sizeof(uint64_t))
/* The most a serialized snapshot can take. */
#define SEALED_MAX (MAGIC_LEN + sizeof(uint32_t) + \
                    (size_t)SNAPSHOT_MAX_FILES * (ENTRY_HEAD + SNAPSHOT_PATH_MAX) + \
                    SNAPSHOT_TOTAL_MAX)

struct file_snapshot *snapshot_new(void)
{
    return xcalloc(1, sizeof(struct file_snapshot));
}

static void drop_file(struct snapshot_file *f)
{
    if (f->data)
        explicit_bzero(f->data, f->len);
    free(f->data);
    free(f->path);
    memset(f, 0, sizeof(*f));
}

void snapshot_free(struct file_snapshot *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        drop_file(&s->files[i]);
    free(s);
}

const struct snapshot_file *snapshot_find(const struct file_snapshot *s, const char *path)
{
    for (size_t i = 0; s && i < s->count; i++) {
        if (strcmp(s->files[i].path, path) == 0)
            return &s->files[i];
    }
    return NULL;
}

static size_t total_bytes(const struct file_snapshot *s)
{
    size_t sum = 0;

    for (size_t i = 0; i < s->count; i++)
        sum += s->files[i].len;
    return sum;
}

/* Take path and data (len bytes, NUL after) into s; false when full. */
static bool put_file(struct file_snapshot *s, const char *path, unsigned char *data, size_t len)
{
    struct snapshot_file *f = (struct snapshot_file *)snapshot_find(s, path);

    if (f == NULL) {
        if (s->count == SNAPSHOT_MAX_FILES)
            return false;
        f = &s->files[s->count++];
        f->path = xstrdup(path);
    } else {
        explicit_bzero(f->data, f->len);
        free(f->data);
    }
    f->data = data;
    f->len = len;
    return true;
}

int snapshot_open(const char *path, char *why, size_t whysize)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        snprintf(why, whysize, "%s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0)
        snprintf(why, whysize, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, whysize, "not a regular file");
    else if (st.st_size > SNAPSHOT_FILE_MAX)
        snprintf(why, whysize, "larger than %u bytes", SNAPSHOT_FILE_MAX);
    else
        return fd;
    close(fd);
    return -1;
}

bool snapshot_read_fd(struct file_snapshot *s, const char *path, int fd,
                      char *why, size_t whysize)
{
    size_t cap = 4096, len = 0;
    unsigned char *buf = xmalloc(cap + 1);
    ssize_t n;

    while ((n = read(fd, buf + len, cap - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || len + (size_t)n > SNAPSHOT_FILE_MAX) {
            snprintf(why, whysize, "%s", n < 0 ? strerror(errno) : "grew too large");
            goto fail;
        }
        len += (size_t)n;
        if (len == cap) {
            cap = cap * 2 > SNAPSHOT_FILE_MAX ? SNAPSHOT_FILE_MAX + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    buf[len] = '\0';
    if (strlen(path) >= SNAPSHOT_PATH_MAX || total_bytes(s) + len > SNAPSHOT_TOTAL_MAX ||
        !put_file(s, path, buf, len)) {
        snprintf(why, whysize, "too many or too large files to keep (at most %d files, "
                 "%u bytes)", SNAPSHOT_MAX_FILES, SNAPSHOT_TOTAL_MAX);
        goto fail;
    }
    return true;
fail:
    explicit_bzero(buf, len);
    free(buf);
    return false;
}

bool snapshot_put(struct file_snapshot *s, const char *name, const void *data, size_t len)
{
    unsigned char *copy;

    if (strlen(name) >= SNAPSHOT_PATH_MAX || len > SNAPSHOT_FILE_MAX ||
        total_bytes(s) + len > SNAPSHOT_TOTAL_MAX)
        return false;
    copy = xmalloc(len + 1);
    memcpy(copy, data, len);
    copy[len] = '\0';
    if (put_file(s, name, copy, len))
        return true;
    explicit_bzero(copy, len);
    free(copy);
    return false;
}

bool snapshot_read_file(struct file_snapshot *s, const char *path, char *why, size_t whysize)
{
    int fd = snapshot_open(path, why, whysize);
    bool ok;

    if (fd < 0)
        return false;
    ok = snapshot_read_fd(s, path, fd, why, whysize);
    close(fd);
    return ok;
}

FILE *snapshot_fopen(const struct file_snapshot *s, const char *path)
{
    const struct snapshot_file *f = snapshot_find(s, path);

    if (f == NULL) {
        errno = ENOENT;
        return NULL;
    }
    return fmemopen(f->data, f->len, "r");
}

/* ---- serialized form -------------------------------------------------- */

struct writer {
    unsigned char *buf;
    size_t len;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (w->buf)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* One pass sizes (w->buf NULL), the next writes. false when too big. */
static bool encode(struct writer *w, const struct file_snapshot *const *parts, size_t n)
{
    const struct snapshot_file *seen[SNAPSHOT_MAX_FILES];
    uint32_t count = 0;
    size_t total = 0, count_at;

    put(w, MAGIC, MAGIC_LEN);
    count_at = w->len;
    put(w, &count, sizeof(count));
    for (size_t p = 0; p < n; p++) {
        for (size_t i = 0; parts[p] && i < parts[p]->count; i++) {
            const struct snapshot_file *f = &parts[p]->files[i];
            uint32_t plen = (uint32_t)strlen(f->path);
            uint64_t dlen = f->len;
            bool dup = false;

            for (uint32_t j = 0; j < count && !dup; j++)
                dup = strcmp(seen[j]->path, f->path) == 0;
            if (dup)
                continue;
            if (count == SNAPSHOT_MAX_FILES || (total += f->len) > SNAPSHOT_TOTAL_MAX)
                return false;
            seen[count++] = f;
            put(w, &plen, sizeof(plen));
            put(w, &dlen, sizeof(dlen));
            put(w, f->path, plen);
            put(w, f->data, f->len);
        }
    }
    if (w->buf)
        memcpy(w->buf + count_at, &count, sizeof(count));
    return true;
}

int snapshot_seal(const char *name, const struct file_snapshot *const *parts, size_t n)
{
    struct writer w = { NULL, 0 };
    int fd, saved;

    if (!encode(&w, parts, n)) {
        errno = E2BIG;
        return -1;
    }
    w.buf = xmalloc(w.len);
    w.len = 0;
    encode(&w, parts, n);
    fd = memfd_sealed(name, w.buf, w.len);
    saved = errno;
    explicit_bzero(w.buf, w.len);
    free(w.buf);
    errno = saved;
    return fd;
}

struct reader {
    const unsigned char *p;
    size_t left;
};

static bool take(struct reader *r, void *out, size_t n)
{
    if (n > r->left)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* One file from r into s; false + why. */
static bool decode_file(struct reader *r, struct file_snapshot *s, char *why, size_t whysize)
{
    char path[SNAPSHOT_PATH_MAX];
    uint32_t plen;
    uint64_t dlen;
    unsigned char *data;

    if (!take(r, &plen, sizeof(plen)) || !take(r, &dlen, sizeof(dlen))) {
        snprintf(why, whysize, "snapshot: truncated file header");
        return false;
    }
    if (plen == 0 || plen >= sizeof(path) || !take(r, path, plen) ||
        memchr(path, '\0', plen) != NULL) {
        snprintf(why, whysize, "snapshot: bad path");
        return false;
    }
    path[plen] = '\0';
    if (dlen > SNAPSHOT_FILE_MAX || dlen > r->left || snapshot_find(s, path) ||
        total_bytes(s) + dlen > SNAPSHOT_TOTAL_MAX) {
        snprintf(why, whysize, "snapshot: bad length or repeated file");
        return false;
    }
    data = xmalloc((size_t)dlen + 1);
    take(r, data, (size_t)dlen);
    data[dlen] = '\0';
    put_file(s, path, data, (size_t)dlen);
    return true;
}

struct file_snapshot *snapshot_from_fd(int fd, char *why, size_t whysize)
{
    unsigned char *buf, magic[MAGIC_LEN];
    size_t len;
    struct reader r;
    uint32_t count;
    struct file_snapshot *s = NULL;

    if (!memfd_read_sealed(fd, SEALED_MAX, &buf, &len, why, whysize))
        return NULL;
    r = (struct reader){ buf, len };
    if (!take(&r, magic, MAGIC_LEN) || memcmp(magic, MAGIC, MAGIC_LEN) != 0 ||
        !take(&r, &count, sizeof(count)) || count > SNAPSHOT_MAX_FILES) {
        snprintf(why, whysize, "snapshot: bad header");
        goto out;
    }
    s = snapshot_new();
    for (uint32_t i = 0; i < count; i++) {
        if (!decode_file(&r, s, why, whysize))
            goto fail;
    }
    if (r.left == 0)
        goto out;
    snprintf(why, whysize, "snapshot: %zu bytes after the last file", r.left);
fail:
    snapshot_free(s);
    s = NULL;
out:
    explicit_bzero(buf, len);
    free(buf);
    return s;
}

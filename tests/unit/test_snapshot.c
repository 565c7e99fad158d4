/*
 * test_snapshot.c - unit tests for file snapshots and sealed memory
 * files (util/snapshot.h, util/memfd.h): the round trip from files on
 * disk through a sealed memory file to another reader, and the reader's
 * refusal of everything that is not a well-formed, sealed snapshot (it is
 * input from another process).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/memfd.h"
#include "util/snapshot.h"

static char why[512];

/* A file with text in a fresh temporary folder; path into out. */
static void temp_file(char *out, size_t size, const char *text)
{
    char dir[] = "/tmp/sealpost-snapshot-XXXXXX";
    FILE *fp;

    assert_non_null(mkdtemp(dir));
    snprintf(out, size, "%s/file", dir);
    fp = fopen(out, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void remove_temp(const char *path)
{
    char dir[512];

    snprintf(dir, sizeof(dir), "%s", path);
    unlink(path);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);
}

static void test_round_trip(void **state)
{
    char path[512];
    struct file_snapshot *a = snapshot_new(), *b = snapshot_new(), *back;
    const struct file_snapshot *parts[3];
    const struct snapshot_file *f;
    char line[64];
    FILE *fp;
    int fd;

    (void)state;
    temp_file(path, sizeof(path), "alice\nbob\n");
    assert_true(snapshot_read_file(a, path, why, sizeof(why)));
    assert_true(snapshot_put(b, "made", "\0\1\2", 3));
    assert_true(snapshot_put(b, path, "shadowed", 8));     /* the first part wins */
    parts[0] = a;
    parts[1] = NULL;
    parts[2] = b;
    fd = snapshot_seal("test", parts, 3);
    assert_true(fd >= 0);
    remove_temp(path);              /* the copy does not need the file */
    back = snapshot_from_fd(fd, why, sizeof(why));
    assert_non_null(back);
    assert_int_equal(back->count, 2);
    f = snapshot_find(back, path);
    assert_non_null(f);
    assert_int_equal(f->len, 10);
    assert_memory_equal(f->data, "alice\nbob\n", 10);
    f = snapshot_find(back, "made");
    assert_non_null(f);
    assert_int_equal(f->len, 3);
    assert_memory_equal(f->data, "\0\1\2", 3);
    fp = snapshot_fopen(back, path);
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp));
    assert_string_equal(line, "alice\n");
    fclose(fp);
    assert_null(snapshot_fopen(back, "/nonexistent"));
    close(fd);
    snapshot_free(back);
    snapshot_free(a);
    snapshot_free(b);
}

static void test_empty_snapshot(void **state)
{
    int fd = snapshot_seal("empty", NULL, 0);
    struct file_snapshot *s;

    (void)state;
    assert_true(fd >= 0);
    s = snapshot_from_fd(fd, why, sizeof(why));
    assert_non_null(s);
    assert_int_equal(s->count, 0);
    snapshot_free(s);
    close(fd);
}

static void test_unreadable_files(void **state)
{
    struct file_snapshot *s = snapshot_new();

    (void)state;
    assert_false(snapshot_read_file(s, "/nonexistent/file", why, sizeof(why)));
    assert_string_equal(why, "No such file or directory");
    assert_false(snapshot_read_file(s, "/dev/null", why, sizeof(why)));
    assert_string_equal(why, "not a regular file");
    assert_false(snapshot_read_file(s, "/tmp", why, sizeof(why)));
    assert_string_equal(why, "not a regular file");
    assert_int_equal(s->count, 0);
    snapshot_free(s);
}

/* ---- the reader's checks ------------------------------------------------ */

struct blob {
    unsigned char b[256];
    size_t len;
};

static void add(struct blob *x, const void *p, size_t n)
{
    memcpy(x->b + x->len, p, n);
    x->len += n;
}

static void header(struct blob *x, uint32_t count)
{
    add(x, "SPSNAP01", 8);
    add(x, &count, 4);
}

static void entry(struct blob *x, uint32_t plen, uint64_t dlen, const char *path,
                  const char *data, size_t real_dlen)
{
    add(x, &plen, 4);
    add(x, &dlen, 8);
    add(x, path, strlen(path));
    add(x, data, real_dlen);
}

static void expect_refused(const struct blob *x, const char *part)
{
    int fd = memfd_sealed("bad", x->b, x->len);
    struct file_snapshot *s;

    assert_true(fd >= 0);
    s = snapshot_from_fd(fd, why, sizeof(why));
    close(fd);
    if (s != NULL)
        fail_msg("accepted a snapshot that should fail with '%s'", part);
    if (strstr(why, part) == NULL)
        fail_msg("error '%s' lacks '%s'", why, part);
}

static void test_malformed_snapshots(void **state)
{
    struct blob x;

    (void)state;
    x = (struct blob){ .len = 0 };
    expect_refused(&x, "bad header");                       /* empty */
    x = (struct blob){ .len = 0 };
    add(&x, "SPSNAP02", 8);
    add(&x, "\0\0\0\0", 4);
    expect_refused(&x, "bad header");                       /* other version */
    x = (struct blob){ .len = 0 };
    header(&x, 100000);
    expect_refused(&x, "bad header");                       /* too many files */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    expect_refused(&x, "truncated");                        /* file missing */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 0, 1, "", "x", 1);
    expect_refused(&x, "bad path");                         /* empty path */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 4, 1, "/abc", "x", 1);
    x.b[8 + 4 + 12 + 1] = '\0';
    expect_refused(&x, "bad path");                         /* NUL in path */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 9, 0, "/a", "", 0);
    expect_refused(&x, "bad path");                         /* path runs past the end */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 2, 5, "/a", "xy", 2);
    expect_refused(&x, "bad length");                       /* data runs past the end */
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 2, UINT64_MAX, "/a", "xy", 2);
    expect_refused(&x, "bad length");                       /* absurd length */
    x = (struct blob){ .len = 0 };
    header(&x, 2);
    entry(&x, 2, 1, "/a", "x", 1);
    entry(&x, 2, 1, "/a", "y", 1);
    expect_refused(&x, "repeated file");
    x = (struct blob){ .len = 0 };
    header(&x, 1);
    entry(&x, 2, 1, "/a", "xz", 2);
    expect_refused(&x, "after the last file");
}

static void test_unsealed_descriptor_refused(void **state)
{
    int fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    unsigned char *data;
    size_t len;
    int p[2];

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "SPSNAP01\0\0\0\0", 12), 12);
    assert_null(snapshot_from_fd(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "not a sealed memory file"));
    /* sealed against resizing only: still writable, still refused */
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
    assert_false(memfd_read_sealed(fd, 100, &data, &len, why, sizeof(why)));
    close(fd);
    /* a pipe is no memory file at all */
    assert_int_equal(pipe(p), 0);
    assert_false(memfd_read_sealed(p[0], 100, &data, &len, why, sizeof(why)));
    close(p[0]);
    close(p[1]);
}

static void test_memfd_bound(void **state)
{
    int fd = memfd_sealed("big", "0123456789", 10);
    unsigned char *data;
    size_t len;

    (void)state;
    assert_true(fd >= 0);
    assert_false(memfd_read_sealed(fd, 9, &data, &len, why, sizeof(why)));
    assert_non_null(strstr(why, "more than 9"));
    assert_true(memfd_read_sealed(fd, 10, &data, &len, why, sizeof(why)));
    assert_int_equal(len, 10);
    assert_int_equal(data[10], '\0');
    free(data);
    /* sealed: nobody can change it any more */
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(ftruncate(fd, 0), -1);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_unreadable_files),
        cmocka_unit_test(test_malformed_snapshots),
        cmocka_unit_test(test_unsealed_descriptor_refused),
        cmocka_unit_test(test_memfd_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

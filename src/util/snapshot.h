/*
 * snapshot.h - a file snapshot: the bytes of a few named files as one
 * process read them, passed to another in a sealed memory file, so that
 * both work from the same bytes even when the files change on disk in
 * between. The master reads the certificates, keys and mailbox lists
 * (the files a SIGHUP reloads) and keeps the last set that loaded; each
 * role it starts parses that copy, never the files.
 *
 * Trusts: the files it is asked to read (the operator's). A serialized
 * snapshot read back from a descriptor comes from another process and
 * is checked: the memory file must be sealed against change, every
 * length must fit in what is left, paths are bounded and NUL-free, no
 * path appears twice and nothing follows the last file.
 */
#ifndef SEALPOST_UTIL_SNAPSHOT_H
#define SEALPOST_UTIL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define SNAPSHOT_FILE_MAX  (64u << 20)  /* bytes in one file */
#define SNAPSHOT_MAX_FILES 256          /* files in one snapshot */
#define SNAPSHOT_PATH_MAX  4096         /* bytes in a path, NUL included */
#define SNAPSHOT_TOTAL_MAX (256u << 20) /* bytes of all files together */

struct snapshot_file {
    char *path;                 /* as the config names it */
    unsigned char *data;        /* len bytes, then a NUL (not counted) */
    size_t len;
};

struct file_snapshot {
    struct snapshot_file files[SNAPSHOT_MAX_FILES];
    size_t count;
};

struct file_snapshot *snapshot_new(void);
/* Frees s, zeroing every file's bytes first (private keys live here). */
void snapshot_free(struct file_snapshot *s);

/* Open path for reading into a snapshot: a regular file, no larger than
 * SNAPSHOT_FILE_MAX. -1 + why ("No such file or directory", "not a
 * regular file", ...; without the path). */
int snapshot_open(const char *path, char *why, size_t whysize);
/* Read fd (from snapshot_open) to its end into s under path, replacing a
 * file of that path already there. false + why (also when s would hold
 * more than SNAPSHOT_MAX_FILES files or SNAPSHOT_TOTAL_MAX bytes). */
bool snapshot_read_fd(struct file_snapshot *s, const char *path, int fd,
                      char *why, size_t whysize);
/* Keep len bytes of data under name (a copy), as if read from a file:
 * for bytes the master makes rather than reads. false when full. */
bool snapshot_put(struct file_snapshot *s, const char *name, const void *data, size_t len);
/* snapshot_open + snapshot_read_fd + close. */
bool snapshot_read_file(struct file_snapshot *s, const char *path, char *why, size_t whysize);

/* The file of that path, or NULL. */
const struct snapshot_file *snapshot_find(const struct file_snapshot *s, const char *path);
/* A read-only stream over that file's bytes (fmemopen); NULL + errno
 * (ENOENT when the snapshot has no such file). The snapshot must outlive
 * the stream. */
FILE *snapshot_fopen(const struct file_snapshot *s, const char *path);

/* Serialize the files of parts[0..n) (any may be NULL; a path in two
 * parts is taken from the first) into a new sealed memory file named
 * name. -1 + errno (E2BIG: more than the limits above). */
int snapshot_seal(const char *name, const struct file_snapshot *const *parts, size_t n);
/* Read back a snapshot that snapshot_seal wrote. NULL + why. */
struct file_snapshot *snapshot_from_fd(int fd, char *why, size_t whysize);

#endif

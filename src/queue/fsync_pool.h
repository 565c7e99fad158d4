/*
 * fsync_pool.h - fsync several files at once (queue process, group
 * commit).
 *
 * A group commit used to fsync its message files one after another. On a
 * journaled file system each fsync waits for a journal commit of its own;
 * fsyncs issued together join the same commit (ext4/jbd2 batches them),
 * and on a disk with a queue they overlap. The caller still renames and
 * fsyncs the directory only after every file's fsync has returned, so a
 * 250 means exactly what it meant before. Trusts: nothing; owns no file.
 */
#ifndef SEALPOST_QUEUE_FSYNC_POOL_H
#define SEALPOST_QUEUE_FSYNC_POOL_H

#include <stddef.h>

#define FSYNC_POOL_THREADS 8

struct fsync_pool;

/* NULL if no thread could be started (the caller then fsyncs in turn). */
struct fsync_pool *fsync_pool_new(void);
/* fsync fds[0..n) concurrently (the calling thread takes part); errors[i]
 * is 0 or the errno of fds[i]'s fsync. Returns when all have returned. */
void fsync_pool_run(struct fsync_pool *p, const int *fds, int *errors, size_t n);
void fsync_pool_free(struct fsync_pool *p);

#endif

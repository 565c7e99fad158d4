/*
 * fsync_pool.c - a few threads that fsync the files of one group commit
 * together (see fsync_pool.h). One batch at a time: fsync_pool_run hands
 * out indexes under a lock, every thread (the caller too) takes the next
 * one until none is left, and the caller waits until all are finished.
 */
#include "queue/fsync_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/xalloc.h"

struct fsync_pool {
    pthread_t threads[FSYNC_POOL_THREADS];
    size_t started;
    pthread_mutex_t lock;
    pthread_cond_t work, finished;
    const int *fds;
    int *errors;
    size_t n, next, done;
    unsigned long batch;            /* bumped for every run */
    bool stop;
};

/* Take and fsync indexes until none is left; called with the lock held. */
static void drain(struct fsync_pool *p)
{
    while (p->next < p->n) {
        size_t i = p->next++;
        int fd = p->fds[i], e;

        pthread_mutex_unlock(&p->lock);
        e = fsync(fd) == 0 ? 0 : (errno ? errno : EIO);
        pthread_mutex_lock(&p->lock);
        p->errors[i] = e;
        if (++p->done == p->n)
            pthread_cond_signal(&p->finished);
    }
}

static void *worker(void *arg)
{
    struct fsync_pool *p = arg;
    unsigned long seen = 0;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->batch == seen)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        seen = p->batch;
        drain(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct fsync_pool *fsync_pool_new(void)
{
    struct fsync_pool *p = xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->finished, NULL);
    while (p->started < FSYNC_POOL_THREADS &&
           pthread_create(&p->threads[p->started], NULL, worker, p) == 0)
        p->started++;
    if (p->started == 0) {
        fsync_pool_free(p);
        return NULL;
    }
    return p;
}

void fsync_pool_run(struct fsync_pool *p, const int *fds, int *errors, size_t n)
{
    pthread_mutex_lock(&p->lock);
    p->fds = fds;
    p->errors = errors;
    p->n = n;
    p->next = p->done = 0;
    p->batch++;
    if (n > 1)
        pthread_cond_broadcast(&p->work);
    drain(p);
    while (p->done < p->n)
        pthread_cond_wait(&p->finished, &p->lock);
    p->n = p->next = 0;             /* late wakers find nothing to take */
    pthread_mutex_unlock(&p->lock);
}

void fsync_pool_free(struct fsync_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->finished);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

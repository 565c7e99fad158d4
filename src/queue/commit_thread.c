/*
 * commit_thread.c - group commits on their own thread (see
 * commit_thread.h).
 *
 * Two arrays: `queued` (main thread only) collects commits; `group`
 * belongs to the commit thread from the moment it is handed over until
 * the thread writes the eventfd, after which the main thread reads the
 * results and takes it back. `busy` says which side holds `group`.
 */
#include "queue/commit_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

struct entries {
    struct commit_entry *v;
    size_t n, alloc;
};

struct commit_thread {
    struct queue *q;
    commit_done_cb done;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;
    bool has_work, finished, stop;  /* under lock */
    bool busy;                      /* main thread: group is with the thread */
    int done_fd;                    /* eventfd: a group is finished */
    struct event *done_ev;
    struct entries queued, group;
};

static void entries_push(struct entries *e, const struct commit_entry *x)
{
    if (e->n == e->alloc) {
        e->alloc = e->alloc ? e->alloc * 2 : 64;
        e->v = xrealloc(e->v, e->alloc * sizeof(*e->v));
    }
    e->v[e->n++] = *x;
}

/* The durable part: as queue_server did it in line before. */
static void commit_group(struct queue *q, struct entries *g)
{
    struct queue_msg **msgs = xcalloc(g->n, sizeof(*msgs));
    bool *ok = xcalloc(g->n, sizeof(*ok));
    int *errors = xcalloc(g->n, sizeof(*errors));

    for (size_t i = 0; i < g->n; i++)
        msgs[i] = g->v[i].msg;
    metrics_observe(METRICS_H_COMMIT_GROUP, g->n);
    queue_commit_group(q, msgs, g->n, ok, errors);     /* frees the messages */
    for (size_t i = 0; i < g->n; i++) {
        g->v[i].msg = NULL;
        g->v[i].ok = ok[i];
        g->v[i].error = errors[i];
    }
    free(msgs);
    free(ok);
    free(errors);
}

static void *run(void *arg)
{
    struct commit_thread *ct = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&ct->lock);
    for (;;) {
        while (!ct->has_work && !ct->stop)
            pthread_cond_wait(&ct->work, &ct->lock);
        if (!ct->has_work)
            break;                  /* stop, and nothing handed over */
        ct->has_work = false;
        pthread_mutex_unlock(&ct->lock);
        commit_group(ct->q, &ct->group);
        pthread_mutex_lock(&ct->lock);
        ct->finished = true;        /* the lock publishes the results */
        if (write(ct->done_fd, &one, sizeof(one)) < 0) {
            /* eventfd counter overflow: cannot happen with one group */
        }
    }
    pthread_mutex_unlock(&ct->lock);
    return NULL;
}

/* Main thread: the group came back. */
static void group_finished(struct commit_thread *ct)
{
    ct->busy = false;
    ct->done(ct->group.v, ct->group.n, ct->arg);
    ct->group.n = 0;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct commit_thread *ct = arg;
    uint64_t n;
    bool finished;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0)
        return;                     /* spurious */
    pthread_mutex_lock(&ct->lock);
    finished = ct->finished;
    ct->finished = false;
    pthread_mutex_unlock(&ct->lock);
    if (!finished || !ct->busy)
        return;
    group_finished(ct);
    commit_thread_kick(ct);         /* what queued up meanwhile */
}

void commit_thread_add(struct commit_thread *ct, unsigned long channel, struct queue_msg *msg)
{
    struct commit_entry e;

    memset(&e, 0, sizeof(e));
    e.channel = channel;
    e.msg = msg;
    memcpy(e.id, queue_msg_id(msg), sizeof(e.id));
    entries_push(&ct->queued, &e);
}

void commit_thread_kick(struct commit_thread *ct)
{
    struct entries swap;

    if (ct->busy || ct->queued.n == 0)
        return;
    swap = ct->group;               /* empty, keeps its buffer */
    ct->group = ct->queued;
    ct->queued = swap;
    ct->busy = true;
    pthread_mutex_lock(&ct->lock);
    ct->has_work = true;
    pthread_cond_signal(&ct->work);
    pthread_mutex_unlock(&ct->lock);
}

struct commit_thread *commit_thread_start(struct event_base *base, struct queue *q,
                                          commit_done_cb done, void *arg)
{
    struct commit_thread *ct = xcalloc(1, sizeof(*ct));

    ct->q = q;
    ct->done = done;
    ct->arg = arg;
    ct->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&ct->lock, NULL);
    pthread_cond_init(&ct->work, NULL);
    if (ct->done_fd < 0 || pthread_create(&ct->thread, NULL, run, ct) != 0) {
        log_warn("event=commit_thread_disabled error=\"%s\"", strerror(errno));
        if (ct->done_fd >= 0)
            close(ct->done_fd);
        pthread_cond_destroy(&ct->work);
        pthread_mutex_destroy(&ct->lock);
        free(ct);
        return NULL;
    }
    ct->done_ev = event_new(base, ct->done_fd, EV_READ | EV_PERSIST, on_done, ct);
    event_add(ct->done_ev, NULL);
    return ct;
}

void commit_thread_stop(struct commit_thread *ct)
{
    if (ct == NULL)
        return;
    pthread_mutex_lock(&ct->lock);
    ct->stop = true;
    pthread_cond_signal(&ct->work);
    pthread_mutex_unlock(&ct->lock);
    pthread_join(ct->thread, NULL);
    /* The thread finished any group it had before it saw stop. */
    ct->finished = false;
    if (ct->busy)
        group_finished(ct);
    if (ct->queued.n) {             /* never handed over: commit it here */
        commit_group(ct->q, &ct->queued);
        ct->done(ct->queued.v, ct->queued.n, ct->arg);
    }
    event_free(ct->done_ev);
    close(ct->done_fd);
    pthread_cond_destroy(&ct->work);
    pthread_mutex_destroy(&ct->lock);
    free(ct->queued.v);
    free(ct->group.v);
    free(ct);
}

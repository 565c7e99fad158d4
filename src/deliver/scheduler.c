/*
 * scheduler.c - the delivery thread (see scheduler.h).
 *
 * Jobs are queue ids with a due time. A message leaves the queue only
 * when every recipient is final and durable. Per-recipient retry times
 * are stored in the spool (queue_record), so a restart keeps the
 * schedule.
 */
#include "deliver/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver/maildir.h"
#include "util/log.h"
#include "util/xalloc.h"

struct job {
    char id[QUEUE_ID_LEN + 1];
    time_t due;
};

struct scheduler {
    const struct config *cfg;
    struct queue *queue;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct job *jobs;
    size_t count, alloc;
};

static void add_job_locked(struct scheduler *s, const char *id, time_t due)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->jobs[i].id, id) == 0) {
            if (due < s->jobs[i].due)
                s->jobs[i].due = due;
            return;
        }
    }
    if (s->count == s->alloc) {
        s->alloc = s->alloc ? s->alloc * 2 : 64;
        s->jobs = xrealloc(s->jobs, s->alloc * sizeof(*s->jobs));
    }
    snprintf(s->jobs[s->count].id, sizeof(s->jobs[0].id), "%s", id);
    s->jobs[s->count++].due = due;
}

void scheduler_enqueue(const char *id, void *arg)
{
    struct scheduler *s = arg;

    if (s->cfg->queue.hold)
        return;     /* [queue] hold = yes: mail stays queued until restart without hold */
    pthread_mutex_lock(&s->lock);
    add_job_locked(s, id, 0);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/* Deliver one recipient; returns true when it is final. */
static bool deliver_rcpt(struct scheduler *s, struct queued_message *m, size_t i, time_t now)
{
    const struct envelope_rcpt *r = &m->env.rcpts[i];
    struct rcpt_state st = m->state[i];
    char path[4096], err[512];
    bool ok;

    ok = maildir_path_for(s->cfg, r->addr, path, sizeof(path), err, sizeof(err)) &&
         maildir_deliver(path, s->cfg->hostname, m->env.from, r->addr, m->fd,
                         m->body_offset, m->body_size, err, sizeof(err));
    st.attempts++;
    if (ok) {
        st.status = RCPT_DELIVERED;
        st.next_attempt = 0;
        log_info("event=delivered id=%s to=<%s> relay=maildir path=\"%s\" delay=%llds "
                 "attempts=%u status=sent", m->env.id, r->addr, path,
                 (long long)(now - m->env.arrival), st.attempts);
    } else {
        st.next_attempt = now + (time_t)s->cfg->delivery_retry;
        log_warn("event=deferred id=%s to=<%s> relay=maildir reason=\"%s\" attempts=%u "
                 "retry_in=%us status=deferred", m->env.id, r->addr, err, st.attempts,
                 s->cfg->delivery_retry);
    }
    if (!queue_record(s->queue, m, i, &st)) {
        log_error("event=state_write_failed id=%s error=\"%s\"", m->env.id, strerror(errno));
        m->state[i] = st;   /* keep going in memory; at worst a duplicate later */
    }
    return ok;
}

/* Work on one message; returns when to look at it again, 0 if never. */
static time_t deliver_message(struct scheduler *s, const char *id)
{
    struct queued_message m;
    char err[256];
    time_t now = time(NULL), next = 0;
    bool all_final = true;

    if (!queue_load(s->queue, id, &m, err, sizeof(err))) {
        if (strcmp(err, "open: No such file or directory") != 0)
            log_error("event=queue_load_failed id=%s error=\"%s\"", id, err);
        return 0;
    }
    for (size_t i = 0; i < m.env.rcpt_count; i++) {
        if (m.state[i].status != RCPT_PENDING)
            continue;
        if (m.state[i].next_attempt <= now && deliver_rcpt(s, &m, i, now))
            continue;
        all_final = false;
        if (next == 0 || m.state[i].next_attempt < next)
            next = (time_t)m.state[i].next_attempt;
    }
    queue_unload(&m);
    if (all_final) {
        queue_remove(s->queue, id);
        log_info("event=removed id=%s", id);
        return 0;
    }
    return next;
}

/* Index of the earliest job, or -1. */
static long earliest(const struct scheduler *s)
{
    long best = -1;

    for (size_t i = 0; i < s->count; i++) {
        if (best < 0 || s->jobs[i].due < s->jobs[best].due)
            best = (long)i;
    }
    return best;
}

static void *run(void *arg)
{
    struct scheduler *s = arg;

    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        long i = earliest(s);
        time_t now = time(NULL);

        if (i < 0) {
            pthread_cond_wait(&s->wake, &s->lock);
        } else if (s->jobs[i].due > now) {
            struct timespec until = { .tv_sec = s->jobs[i].due, .tv_nsec = 0 };
            pthread_cond_timedwait(&s->wake, &s->lock, &until);
        } else {
            struct job job = s->jobs[i];
            time_t again;

            s->jobs[i] = s->jobs[--s->count];
            pthread_mutex_unlock(&s->lock);
            again = deliver_message(s, job.id);
            pthread_mutex_lock(&s->lock);
            if (again)
                add_job_locked(s, job.id, again);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct scheduler *scheduler_start(const struct config *cfg, struct queue *q)
{
    struct scheduler *s = xcalloc(1, sizeof(*s));

    s->cfg = cfg;
    s->queue = q;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);  /* CLOCK_REALTIME: due times are wall clock */
    if (pthread_create(&s->thread, NULL, run, s) != 0)
        fatal("event=scheduler_start_failed error=\"%s\"", strerror(errno));
    return s;
}

void scheduler_stop(struct scheduler *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s->jobs);
    free(s);
}

/*
 * queue.c - spool directory, message commit and recipient state
 * (see queue.h and docs/SPOOL.md).
 *
 * Trusts: the spool directory (owned by us, mode 0700). Does not trust
 * envelope content beyond what envelope.c checks when reading back.
 * Must never: acknowledge a commit before fsync of the file and of the
 * queue directory has returned success.
 */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "queue/fsync_pool.h"
#include "util/fd_writer.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"


struct queue {
    char *dir;
    int incoming_fd;
    int queue_fd;
    _Atomic unsigned counter;       /* queue ids are made by more than one thread */
    struct fsync_pool *fsync_pool;  /* group commits' fsyncs, made at first use */
    queue_notify_cb notify;
    void *notify_arg;
};

struct queue_msg {
    struct queue *q;
    char id[QUEUE_ID_LEN + 1];
    struct fd_writer out;           /* the spool file */
};

#define STATE_LINE_MAX  128
/* An "error IDX TEXT" line (QUEUE_ERROR_MAX octets of text at most): what
 * load_state reads lines into. */
#define STATE_READ_MAX  (STATE_LINE_MAX + QUEUE_ERROR_MAX)



static int open_subdir(const char *spool, const char *name, char *err, size_t errsize)
{
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", spool, name);
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsize, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errsize, "open %s: %s", path, strerror(errno));
    return fd;
}

/* Remove leftovers of messages that were never committed. */
static void purge_incoming(int dirfd)
{
    DIR *d = fdopendir(dup(dirfd));
    struct dirent *de;
    unsigned n = 0;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd, de->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    if (n)
        log_info("event=spool_purge removed=%u reason=uncommitted", n);
}

struct queue *queue_open(const char *spool_dir, char *err, size_t errsize)
{
    struct queue *q;

    if (mkdir_parents(spool_dir, 0700) < 0) {
        snprintf(err, errsize, "cannot create spool %s: %s", spool_dir, strerror(errno));
        return NULL;
    }
    q = xcalloc(1, sizeof(*q));
    q->dir = xstrdup(spool_dir);
    q->incoming_fd = open_subdir(spool_dir, "incoming", err, errsize);
    q->queue_fd = q->incoming_fd < 0 ? -1 : open_subdir(spool_dir, "queue", err, errsize);
    if (q->queue_fd < 0) {
        queue_close(q);
        return NULL;
    }
    purge_incoming(q->incoming_fd);
    return q;
}

void queue_close(struct queue *q)
{
    if (q == NULL)
        return;
    fsync_pool_free(q->fsync_pool);
    if (q->incoming_fd >= 0)
        close(q->incoming_fd);
    if (q->queue_fd >= 0)
        close(q->queue_fd);
    free(q->dir);
    free(q);
}

void queue_set_notify(struct queue *q, queue_notify_cb cb, void *arg)
{
    q->notify = cb;
    q->notify_arg = arg;
}

/* 13 hex digits of microseconds since the epoch, 3 of a counter. */
static void make_id(struct queue *q, char *id)
{
    struct timeval tv;
    uint64_t usec;

    gettimeofday(&tv, NULL);
    usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    snprintf(id, QUEUE_ID_LEN + 1, "%013" PRIX64 "%03X",
             (uint64_t)(usec & 0xFFFFFFFFFFFFFull), q->counter++ & 0xFFFu);
}

struct queue_msg *queue_msg_new(struct queue *q, struct envelope *env)
{
    struct queue_msg *msg;
    char *text;
    size_t len;
    bool ok;

    msg = xmalloc(sizeof(*msg));

    msg->q = q;
    for (int tries = 0;; tries++) {
        make_id(q, msg->id);
        fd_writer_init(&msg->out, openat(q->incoming_fd, msg->id,
                                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (msg->out.fd >= 0 || errno != EEXIST || tries > 100)
            break;
    }
    if (msg->out.fd < 0) {
        int saved = errno;
        free(msg);
        errno = saved;
        return NULL;
    }
    memcpy(env->id, msg->id, sizeof(env->id));
    text = envelope_serialize(env, &len);
    ok = queue_msg_write(msg, text, len);
    free(text);
    if (!ok) {
        int saved = msg->out.error;
        queue_msg_abort(msg);
        errno = saved;
        return NULL;
    }
    return msg;
}

const char *queue_msg_id(const struct queue_msg *msg)
{
    return msg->id;
}

static bool flush_buffer(struct queue_msg *msg)
{
    return fd_writer_flush(&msg->out);
}

bool queue_msg_write(struct queue_msg *msg, const void *data, size_t len)
{
    return fd_writer_write(&msg->out, data, len);
}

int queue_msg_error(const struct queue_msg *msg)
{
    return msg->out.error;
}

bool queue_msg_flush(struct queue_msg *msg)
{
    return flush_buffer(msg);
}

int queue_msg_fd(const struct queue_msg *msg)
{
    return msg->out.fd;
}

int queue_msg_open_append(const struct queue_msg *msg)
{
    return openat(msg->q->incoming_fd, msg->id, O_WRONLY | O_APPEND | O_CLOEXEC);
}

int queue_msg_open_read(const struct queue_msg *msg)
{
    return openat(msg->q->incoming_fd, msg->id, O_RDONLY | O_CLOEXEC);
}

/* Copy len octets of in from offset to w. */
static bool copy_range(struct fd_writer *w, int in, off_t offset, uint64_t len)
{
    char buf[16384];

    while (len > 0) {
        size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        ssize_t n = pread(in, buf, want, offset);

        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            w->error = n < 0 ? errno : EIO;     /* shorter than promised */
            return false;
        }
        if (!fd_writer_write(w, buf, (size_t)n))
            return false;
        offset += n;
        len -= (uint64_t)n;
    }
    return true;
}

bool queue_msg_replace(struct queue_msg *msg, struct envelope *env, int content_fd,
                       off_t offset, uint64_t len)
{
    struct queue *q = msg->q;
    char tmp[QUEUE_ID_LEN + 8];
    struct fd_writer *w = xmalloc(sizeof(*w));
    char *text;
    size_t text_len;
    bool ok;
    int saved;

    snprintf(tmp, sizeof(tmp), "%s.new", msg->id);
    unlinkat(q->incoming_fd, tmp, 0);
    fd_writer_init(w, openat(q->incoming_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                             0600));
    if (w->fd < 0) {
        saved = errno;
        free(w);
        errno = saved;
        return false;
    }
    memcpy(env->id, msg->id, sizeof(env->id));
    text = envelope_serialize(env, &text_len);
    ok = fd_writer_write(w, text, text_len) && copy_range(w, content_fd, offset, len) &&
         fd_writer_flush(w);
    free(text);
    if (ok && renameat(q->incoming_fd, tmp, q->incoming_fd, msg->id) < 0) {
        w->error = errno;
        ok = false;
    }
    saved = w->error ? w->error : EIO;
    if (!ok) {
        close(w->fd);
        unlinkat(q->incoming_fd, tmp, 0);
        free(w);
        errno = saved;
        return false;
    }
    close(msg->out.fd);
    fd_writer_init(&msg->out, w->fd);
    free(w);
    return true;
}

/* Microseconds of the monotonic clock: the fsync histogram's unit. */
static uint64_t usec_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool commit_now(struct queue_msg *msg)
{
    struct queue *q = msg->q;
    uint64_t t0 = usec_now(), t1;

    if (!flush_buffer(msg))
        return false;
    if (fsync(msg->out.fd) < 0) {
        msg->out.error = errno;
        return false;
    }
    t1 = usec_now();
    if (renameat(q->incoming_fd, msg->id, q->queue_fd, msg->id) < 0) {
        msg->out.error = errno;
        return false;
    }
    t0 = usec_now() - (t1 - t0);    /* the rename does not count */
    if (fsync(q->queue_fd) < 0) {
        /* The entry may or may not be durable: never acknowledge it. */
        msg->out.error = errno;
        unlinkat(q->queue_fd, msg->id, 0);
        return false;
    }
    metrics_observe(METRICS_H_FSYNC_USEC, usec_now() - t0);
    metrics_add(METRICS_C_QUEUED, 1);
    return true;
}

void queue_commit_group(struct queue *q, struct queue_msg **msgs, size_t n, bool *ok,
                        int *errors)
{
    bool any_moved = false, dir_ok = true;
    int *fds = xcalloc(n, sizeof(int)), *sync_errors = xcalloc(n, sizeof(int));
    size_t nsync = 0;
    uint64_t t0, fsync_usec;

    /* Every file's bytes out, then all the fsyncs at once (fsync_pool.h),
     * then the renames: a name in queue/ always points at synced data. */
    for (size_t i = 0; i < n; i++) {
        ok[i] = flush_buffer(msgs[i]);
        if (ok[i])
            fds[nsync++] = msgs[i]->out.fd;
        else if (msgs[i]->out.error == 0)
            msgs[i]->out.error = errno ? errno : EIO;
    }
    if (nsync > 1 && q->fsync_pool == NULL)
        q->fsync_pool = fsync_pool_new();
    t0 = usec_now();
    if (nsync > 1 && q->fsync_pool) {
        fsync_pool_run(q->fsync_pool, fds, sync_errors, nsync);
    } else {
        for (size_t k = 0; k < nsync; k++)
            sync_errors[k] = fsync(fds[k]) == 0 ? 0 : (errno ? errno : EIO);
    }
    fsync_usec = usec_now() - t0;
    for (size_t i = 0, k = 0; i < n; i++) {
        struct queue_msg *m = msgs[i];

        if (!ok[i])
            continue;
        if (sync_errors[k++] != 0) {
            ok[i] = false;
            m->out.error = sync_errors[k - 1];
            continue;
        }
        if (renameat(q->incoming_fd, m->id, q->queue_fd, m->id) < 0) {
            ok[i] = false;
            m->out.error = errno ? errno : EIO;
        }
        any_moved |= ok[i];
    }
    free(fds);
    free(sync_errors);
    t0 = usec_now();
    dir_ok = !any_moved || fsync(q->queue_fd) == 0;
    fsync_usec += usec_now() - t0;
    if (!dir_ok) {
        int e = errno;

        dir_ok = false;
        for (size_t i = 0; i < n; i++) {
            if (ok[i]) {        /* maybe durable, maybe not: never acknowledge */
                unlinkat(q->queue_fd, msgs[i]->id, 0);
                msgs[i]->out.error = e;
                ok[i] = false;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct queue_msg *m = msgs[i];

        errors[i] = ok[i] ? 0 : m->out.error;
        if (!ok[i]) {
            log_error("event=commit_failed id=%s error=\"%s\"%s", m->id, strerror(m->out.error),
                      dir_ok ? "" : " step=directory_fsync");
            unlinkat(q->incoming_fd, m->id, 0);
        }
        close(m->out.fd);
    }
    if (nsync > 0)
        metrics_observe(METRICS_H_FSYNC_USEC, fsync_usec);
    for (size_t i = 0; i < n; i++) {
        metrics_add(METRICS_C_QUEUED, ok[i]);
        if (ok[i] && q->notify)
            q->notify(msgs[i]->id, q->notify_arg);
        free(msgs[i]);
    }
    if (n > 1)
        log_debug("event=group_commit messages=%zu", n);
}

void queue_msg_commit(struct queue_msg *msg, queue_commit_cb cb, void *arg)
{
    struct queue *q = msg->q;
    bool ok;
    char id[QUEUE_ID_LEN + 1];

    ok = commit_now(msg);
    memcpy(id, msg->id, sizeof(id));
    if (!ok) {
        log_error("event=commit_failed id=%s error=\"%s\"", msg->id, strerror(msg->out.error));
        unlinkat(q->incoming_fd, msg->id, 0);
    }
    close(msg->out.fd);
    msg->out.fd = -1;
    cb(msg, ok, arg);
    free(msg);
    if (ok && q->notify)
        q->notify(id, q->notify_arg);
}

struct commit_wait {
    bool done, ok;
};

static void commit_waited(struct queue_msg *msg, bool ok, void *arg)
{
    struct commit_wait *w = arg;

    (void)msg;
    w->done = true;
    w->ok = ok;
}

bool queue_msg_commit_now(struct queue_msg *msg)
{
    struct commit_wait w = { false, false };
    char id[QUEUE_ID_LEN + 1];

    memcpy(id, msg->id, sizeof(id));
    /* queue_msg_commit calls back before it returns in this process; w
     * lives on this stack, so anything else is a bug. */
    queue_msg_commit(msg, commit_waited, &w);
    if (!w.done)
        fatal("event=commit_async id=%s: a synchronous commit was expected", id);
    return w.ok;
}

void queue_msg_abort(struct queue_msg *msg)
{
    if (msg->out.fd >= 0)
        close(msg->out.fd);
    unlinkat(msg->q->incoming_fd, msg->id, 0);
    free(msg);
}

/* "ID.state" whose message is gone (crash inside queue_remove). */
static bool is_orphan_state(struct queue *q, const char *name)
{
    char id[QUEUE_ID_LEN + 1];
    struct stat st;

    if (strlen(name) != QUEUE_ID_LEN + 6 || strcmp(name + QUEUE_ID_LEN, ".state") != 0)
        return false;
    memcpy(id, name, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    return queue_id_valid(id) && fstatat(q->queue_fd, id, &st, 0) < 0 && errno == ENOENT;
}

void queue_scan(struct queue *q, queue_notify_cb fn, void *arg)
{
    DIR *d = fdopendir(dup(q->queue_fd));
    struct dirent *de;

    if (d == NULL) {
        log_error("event=queue_scan_failed error=\"%s\"", strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (queue_id_valid(de->d_name))
            fn(de->d_name, arg);
        else if (is_orphan_state(q, de->d_name))
            unlinkat(q->queue_fd, de->d_name, 0);
    }
    closedir(d);
}

static void state_name(char *out, size_t size, const char *id)
{
    snprintf(out, size, "%s.state", id);
}

static void alloc_errors(struct queued_message *m)
{
    if (m->last_error != NULL)
        return;
    m->last_error = xcalloc(m->env.rcpt_count, sizeof(*m->last_error));
    m->error_unsaved = xcalloc(m->env.rcpt_count, sizeof(*m->error_unsaved));
}

/* "error IDX TEXT\n": recipient IDX's last error (sealpost queue show). */
static void load_error(struct queued_message *m, const char *line)
{
    unsigned long idx;
    char *end;
    size_t len;

    idx = strtoul(line + 6, &end, 10);
    if (end == line + 6 || *end != ' ' || idx >= m->env.rcpt_count)
        return;
    len = strcspn(end + 1, "\n");
    alloc_errors(m);
    free(m->last_error[idx]);
    m->last_error[idx] = xstrndup(end + 1, len);
}

/* Apply "index status attempts next" lines; the last line for an index
 * wins. Also "warned", "hold"/"release" (the last wins) and "error". */
static void load_state(struct queue *q, struct queued_message *m)
{
    char name[QUEUE_ID_LEN + 8], line[STATE_READ_MAX];
    int fd;
    FILE *fp;

    state_name(name, sizeof(name), m->env.id);
    fd = openat(q->queue_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    fp = fdopen(fd, "r");
    if (fp == NULL) {
        close(fd);
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        unsigned long idx, attempts;
        int status;
        long long next;

        if (strcmp(line, "warned\n") == 0) {
            m->warned = true;
            continue;
        }
        if (strcmp(line, "hold\n") == 0 || strcmp(line, "release\n") == 0) {
            m->held = line[0] == 'h';
            continue;
        }
        if (strncmp(line, "error ", 6) == 0) {
            load_error(m, line);
            continue;
        }
        if (sscanf(line, "%lu %d %lu %lld", &idx, &status, &attempts, &next) != 4)
            continue;       /* a torn last line after a crash */
        if (idx >= m->env.rcpt_count || status < RCPT_PENDING || status > RCPT_FAILED)
            continue;
        m->state[idx].status = (enum rcpt_status)status;
        m->state[idx].attempts = (unsigned)attempts;
        m->state[idx].next_attempt = next;
    }
    fclose(fp);
}

bool queue_load(struct queue *q, const char *id, struct queued_message *out,
                char *err, size_t errsize)
{
    int fd = openat(q->queue_fd, id, O_RDONLY | O_CLOEXEC);
    FILE *fp;
    struct stat st;
    bool ok;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (fd < 0) {
        snprintf(err, errsize, "open: %s", strerror(errno));
        return false;
    }
    fp = fdopen(dup(fd), "r");
    if (fp == NULL) {
        snprintf(err, errsize, "fdopen: %s", strerror(errno));
        close(fd);
        return false;
    }
    ok = envelope_read(fp, &out->env, &out->body_offset, err, errsize);
    fclose(fp);
    if (!ok || fstat(fd, &st) < 0 || st.st_size < out->body_offset) {
        if (ok)
            snprintf(err, errsize, "bad spool file size");
        envelope_clear(&out->env);
        close(fd);
        return false;
    }
    out->fd = fd;
    out->body_size = (uint64_t)(st.st_size - out->body_offset);
    out->state = xcalloc(out->env.rcpt_count, sizeof(*out->state));
    load_state(q, out);
    return true;
}

void queue_unload(struct queued_message *m)
{
    if (m->fd >= 0)
        close(m->fd);
    for (size_t i = 0; m->last_error && i < m->env.rcpt_count; i++)
        free(m->last_error[i]);
    free(m->last_error);
    free(m->error_unsaved);
    m->last_error = NULL;
    m->error_unsaved = NULL;
    free(m->state);
    envelope_clear(&m->env);
    m->state = NULL;
    m->fd = -1;
}

/* Append one line to ID.state and fsync it. */
static bool append_state(struct queue *q, const char *id, const char *line, size_t len)
{
    char name[QUEUE_ID_LEN + 8];
    int fd;
    bool ok;

    state_name(name, sizeof(name), id);
    fd = openat(q->queue_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    ok = write_all(fd, line, len) && fsync(fd) == 0;
    close(fd);
    return ok;
}

bool queue_record(struct queue *q, struct queued_message *m, const size_t *rcpt_index,
                  size_t n)
{
    const size_t per = STATE_LINE_MAX + sizeof("error  \n") + 24 + QUEUE_ERROR_MAX;
    char *lines;
    size_t len = 0;
    bool ok;

    if (n == 0)
        return true;
    lines = xmalloc(n * per);
    for (size_t k = 0; k < n; k++) {
        size_t i = rcpt_index[k];
        const struct rcpt_state *st = &m->state[i];
        int w = snprintf(lines + len, STATE_LINE_MAX, "%zu %d %u %" PRId64 "\n",
                         i, (int)st->status, st->attempts, st->next_attempt);

        len += (size_t)w;
        if (m->last_error && m->last_error[i] && m->error_unsaved[i] &&
            st->status != RCPT_DELIVERED) {
            w = snprintf(lines + len, per - STATE_LINE_MAX, "error %zu %s\n", i,
                         m->last_error[i]);
            len += (size_t)w;
        }
    }
    ok = append_state(q, m->env.id, lines, len);
    free(lines);
    for (size_t k = 0; ok && m->error_unsaved && k < n; k++)
        m->error_unsaved[rcpt_index[k]] = false;
    return ok;
}

void queue_note_error(struct queued_message *m, size_t i, const char *dsn, const char *text)
{
    char buf[QUEUE_ERROR_MAX + 1];

    if (i >= m->env.rcpt_count)
        return;
    text = text ? text : "";
    if (dsn == NULL || (text[0] >= '0' && text[0] <= '9'))
        dsn = "";           /* a reply line says its codes itself */
    snprintf(buf, sizeof(buf), "%s%s%s", dsn, dsn[0] ? " " : "", text);
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    }
    alloc_errors(m);
    if (m->last_error[i] && strcmp(m->last_error[i], buf) == 0)
        return;             /* the same as before: ID.state has it already */
    free(m->last_error[i]);
    m->last_error[i] = xstrdup(buf);
    m->error_unsaved[i] = true;
}

bool queue_record_hold(struct queue *q, const char *id, bool hold)
{
    return hold ? append_state(q, id, "hold\n", 5) : append_state(q, id, "release\n", 8);
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

char (*queue_list_ids(struct queue *q, size_t *count))[QUEUE_ID_LEN + 1]
{
    DIR *d = fdopendir(dup(q->queue_fd));
    struct dirent *de;
    char (*ids)[QUEUE_ID_LEN + 1] = NULL;
    size_t n = 0, alloc = 0;

    *count = 0;
    if (d == NULL)
        return NULL;
    rewinddir(d);           /* the dup shares queue_fd's offset: from the start */
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            ids = xrealloc(ids, alloc * sizeof(*ids));
        }
        memcpy(ids[n++], de->d_name, QUEUE_ID_LEN + 1);
    }
    closedir(d);
    if (n > 1)
        qsort(ids, n, sizeof(*ids), compare_ids);
    *count = n;
    return ids;
}

bool queue_record_warned(struct queue *q, struct queued_message *m)
{
    if (!append_state(q, m->env.id, "warned\n", 7))
        return false;
    m->warned = true;
    return true;
}

void queue_remove(struct queue *q, const char *id)
{
    char name[QUEUE_ID_LEN + 8];

    state_name(name, sizeof(name), id);
    /* Message first: a state file without its message is harmless and
     * is never read; the reverse would redeliver finished recipients. */
    if (unlinkat(q->queue_fd, id, 0) < 0 && errno != ENOENT)
        log_error("event=queue_remove_failed id=%s error=\"%s\"", id, strerror(errno));
    unlinkat(q->queue_fd, name, 0);
}

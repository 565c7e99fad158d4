/*
 * ipc_outq.c - non-blocking, ordered, bounded IPC output (see
 * ipc_outq.h). A message is sent at once only when nothing waits before
 * it, so the peer sees every message in the order it was given.
 */
#include "util/ipc_outq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/xalloc.h"

struct queued {
    struct queued *next;
    enum ipc_type type;
    int fd;                         /* our own copy, or -1 */
    size_t len;
    char payload[];
};

struct ipc_outq {
    int sock;
    size_t max_queued, queued;
    struct queued *head, **tail;
    struct event *writable;
    ipc_outq_error_cb on_error;
    void *arg;
};

static void drop(struct queued *m)
{
    if (m->fd >= 0)
        close(m->fd);
    free(m);
}

/* Send what waits, oldest first, until the channel is full again. */
static void flush(evutil_socket_t sock, short what, void *arg)
{
    struct ipc_outq *q = arg;

    (void)sock;
    (void)what;
    while (q->head) {
        struct queued *m = q->head;

        if (!ipc_try_send(q->sock, m->type, m->payload, m->len, m->fd)) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(q->writable, NULL);
                return;
            }
            q->on_error(errno, q->arg);     /* may free q: touch nothing after */
            return;
        }
        q->head = m->next;
        if (q->head == NULL)
            q->tail = &q->head;
        q->queued--;
        drop(m);
    }
}

struct ipc_outq *ipc_outq_new(struct event_base *base, int sock, size_t max_queued,
                              ipc_outq_error_cb on_error, void *arg)
{
    struct ipc_outq *q = xcalloc(1, sizeof(*q));

    q->sock = sock;
    q->max_queued = max_queued;
    q->tail = &q->head;
    q->on_error = on_error;
    q->arg = arg;
    q->writable = event_new(base, sock, EV_WRITE, flush, q);
    return q;
}

void ipc_outq_free(struct ipc_outq *q)
{
    if (q == NULL)
        return;
    while (q->head) {
        struct queued *m = q->head;
        q->head = m->next;
        drop(m);
    }
    event_free(q->writable);
    free(q);
}

static bool enqueue(struct ipc_outq *q, enum ipc_type type, const void *payload, size_t len,
                    int fd_to_pass)
{
    struct queued *m;

    if (q->queued >= q->max_queued) {
        errno = ENOBUFS;
        return false;
    }
    m = xmalloc(sizeof(*m) + len);
    m->next = NULL;
    m->type = type;
    m->len = len;
    memcpy(m->payload, payload, len);
    m->fd = -1;
    if (fd_to_pass >= 0 && (m->fd = fcntl(fd_to_pass, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(m);
        return false;
    }
    *q->tail = m;
    q->tail = &m->next;
    q->queued++;
    event_add(q->writable, NULL);
    return true;
}

bool ipc_outq_send(struct ipc_outq *q, enum ipc_type type, const void *payload, size_t len,
                   int fd_to_pass)
{
    if (len > IPC_MAX_PAYLOAD) {
        errno = EMSGSIZE;
        return false;
    }
    if (q->head == NULL) {
        if (ipc_try_send(q->sock, type, payload, len, fd_to_pass))
            return true;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
    }
    return enqueue(q, type, payload, len, fd_to_pass);
}

size_t ipc_outq_pending(const struct ipc_outq *q)
{
    return q->queued;
}

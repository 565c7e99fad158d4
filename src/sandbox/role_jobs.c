/*
 * role_jobs.c - the job channel of a role (see role_jobs.h).
 * Trusts: the queue as far as util/ipc.c checks its messages.
 */
#include "sandbox/role_jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/role.h"
#include "util/log.h"
#include "util/xalloc.h"

struct role_jobs {
    struct event *ev;
    const char *role;
    enum ipc_type type;
    void *buf;
    size_t bufsize;
    role_job_cb cb;
    void *arg;
    enum ipc_type type2;            /* IPC_NONE, or a second kind of job */
    role_job_cb cb2;
};

void role_jobs_stop(struct role_jobs *rj, const char *why)
{
    log_info("event=%s_stopping reason=\"%s\"", rj->role, why);
    event_del(rj->ev);
    event_base_loopexit(event_get_base(rj->ev), NULL);
}

static void channel_read(evutil_socket_t fd, short what, void *arg)
{
    struct role_jobs *rj = arg;

    (void)what;
    for (;;) {
        enum ipc_type type;
        size_t len;
        int passed;
        enum ipc_status st = ipc_recv(fd, &type, rj->buf, rj->bufsize, &len, true, &passed);

        if (st == IPC_AGAIN)
            return;
        if (st == IPC_EOF || st == IPC_ERROR) {
            role_jobs_stop(rj, st == IPC_EOF ? "queue closed the channel" : strerror(errno));
            return;
        }
        if (st == IPC_OK && type == rj->type2 && rj->type2 != IPC_NONE) {
            rj->cb2(rj->arg, len, passed);
            continue;
        }
        if (st != IPC_OK || type != rj->type)
            fatal("event=ipc_garbage peer=queue type=%d", st == IPC_OK ? (int)type : -1);
        rj->cb(rj->arg, len, passed);
    }
}

struct role_jobs *role_jobs_start(struct event_base *base, const char *role,
                                  enum ipc_type type, void *buf, size_t bufsize,
                                  role_job_cb cb, void *arg)
{
    struct role_jobs *rj = xcalloc(1, sizeof(*rj));

    *rj = (struct role_jobs){ NULL, role, type, buf, bufsize, cb, arg, IPC_NONE, NULL };
    evutil_make_socket_nonblocking(ROLE_FD_CHANNEL);
    rj->ev = event_new(base, ROLE_FD_CHANNEL, EV_READ | EV_PERSIST, channel_read, rj);
    event_add(rj->ev, NULL);
    return rj;
}

void role_jobs_also(struct role_jobs *rj, enum ipc_type type, role_job_cb cb)
{
    rj->type2 = type;
    rj->cb2 = cb;
}

void role_jobs_free(struct role_jobs *rj)
{
    if (rj == NULL)
        return;
    event_free(rj->ev);
    free(rj);
}

/*
 * queue_role.c - the queue role: owns the spool ([server] queue_user, no
 * chroot, seccomp allow-list without network). Serves the workers' and
 * the delivery process's channels (queue_server.h), which the master
 * hands it over its control channel, and runs the scheduler that sends
 * remote jobs to the delivery process and local jobs for [domain]
 * owners other than the queue user to their local delivery processes.
 *
 * Trusts: the master's control channel (role.h); worker channels only as
 * far as queue_server.c checks them.
 */
#include "queue/queue_role.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "mail/credentials.h"
#include "mail/recipient.h"
#include "queue/bounce.h"
#include "queue/pickup.h"
#include "queue/scheduler.h"
#include "queue/queue_server.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

struct queue_role {
    struct queue *q;
    struct queue_server *qs;
    struct scheduler *sched;
    struct recipient_policy *recipients;    /* until the queue server takes it */
    struct credentials *users;              /* the same for [submission] users */
    struct pickup *pickup;                  /* sealpost sendmail's maildrop */
};

static void delivery_channel(int fd, void *sched)
{
    scheduler_set_delivery_channel(sched, fd);
}

static void local_channel(int32_t slot, int fd, void *sched)
{
    scheduler_set_local_channel(sched, slot, fd);
}

/* Before the drop: the mailbox lists every envelope is checked against
 * (the master's snapshot, like the workers'). */
static void queue_prepare(struct role_ctx *ctx)
{
    struct queue_role *r = xcalloc(1, sizeof(*r));
    char err[1024] = "";

    ctx->state = r;
    r->recipients = recipient_policy_new(ctx->cfg, ctx->files, err, sizeof(err));
    if (r->recipients == NULL ||
        !queue_server_read_users(ctx->cfg, ctx->files, &r->users, err, sizeof(err)))
        fatal("event=start_failed role=queue error=\"%s\"", err);
}

/* The listening socket of `sealpost queue` the master passed
 * (queue_control.h). */
static int control_fd(void)
{
    struct stat st;

    if (fstat(ROLE_FD_QUEUE_CONTROL, &st) < 0 || !S_ISSOCK(st.st_mode))
        fatal("event=start_failed role=queue error=\"descriptor %d is not the control socket\"",
              ROLE_FD_QUEUE_CONTROL);
    return ROLE_FD_QUEUE_CONTROL;
}

/* After the drop: the spool is opened as queue_user. */
static void queue_start(struct role_ctx *ctx)
{
    struct queue_role *r = ctx->state;
    char err[512] = "";

    r->q = queue_open(ctx->cfg->spool, err, sizeof(err));
    if (r->q == NULL)
        fatal("event=start_failed role=queue error=\"%s\"", err);
    r->qs = queue_server_new(ctx->base, r->q, ROLE_FD_CHANNEL);
    queue_server_set_policy(r->qs, ctx->cfg, r->recipients);
    r->recipients = NULL;
    if (!queue_server_set_users(r->qs, r->users, err, sizeof(err)))
        fatal("event=start_failed role=queue error=\"%s\"", err);
    r->users = NULL;
    bounce_set_expander(queue_server_expand, r->qs);    /* before any bounce */
    r->sched = scheduler_start(ctx->cfg, r->q);
    queue_server_on_delivery_channel(r->qs, delivery_channel, local_channel, r->sched);
    scheduler_set_control(r->sched, control_fd());
    queue_set_notify(r->q, scheduler_enqueue, r->sched);
    queue_scan(r->q, scheduler_enqueue, r->sched);
    scheduler_start_reports(r->sched);
    r->pickup = pickup_start(ctx->base, ctx->cfg, r->q, r->qs);
    queue_server_ready(r->qs);
}

static void queue_cleanup(struct role_ctx *ctx)
{
    struct queue_role *r = ctx->state;

    pickup_free(r->pickup);
    scheduler_stop(r->sched);
    queue_server_free(r->qs);
    queue_close(r->q);
    free(r);
    ctx->state = NULL;
}

const struct role_ops role_queue_ops = {
    .name = "queue",
    .sandbox = SANDBOX_QUEUE,
    .prepare = queue_prepare,
    .start = queue_start,
    .cleanup = queue_cleanup,
};

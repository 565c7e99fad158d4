/*
 * local_role.c - the local delivery role (see local_role.h).
 *
 * The master starts one process per distinct [domain] owner other than
 * the queue user (slot k delivers for config_local_owners()[k]), with
 * that owner's uid and gid and no other group, no chroot, the Landlock
 * rights to create and write files only beneath the Maildir roots of the
 * owner's domains, and the queue's seccomp allow-list (files, no
 * network, no exec, no privilege change).
 *
 * The queue sends the same job messages it sends the delivery process
 * (mail/remote_codec.h: the envelope subset and a read-only descriptor
 * of the spool file). This process does not take a path from the
 * queue: it computes each recipient's Maildir from its own copy of the
 * master's config, and refuses (defers) a recipient whose domain belongs
 * to another owner, so a subverted queue can make it write only where
 * the owner's own mail goes. Each result is delivered (2.0.0) or
 * deferred (4.2.0 with the reason); the queue treats anything but
 * "delivered" as a deferral.
 *
 * Jobs are carried out one at a time, in the event callback: this
 * process does nothing else, and the queue never waits for it (it sends
 * without blocking), so the blocking send of a result cannot deadlock.
 *
 * Trusts: the master's descriptors and config; the job only as far as
 * remote_job_decode checks it.
 */
#include "local/local_role.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "mail/remote_codec.h"
#include "sandbox/role_jobs.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

struct local_role {
    const struct config *cfg;
    int slot;
    const char *owner;
    struct role_jobs *jobs;
    char *roots[CONFIG_MAX_DOMAINS];    /* the Maildir roots Landlock opens */
    size_t root_count;
    char buf[IPC_MAX_PAYLOAD];
};

/* One recipient: into its Maildir if its domain is this owner's. */
static void deliver_one(struct local_role *lr, const struct remote_job_msg *m, size_t i,
                        int fd, struct smtp_result *r)
{
    const char *addr = m->env.rcpts[i].addr;
    const struct domain_config *dc = NULL;
    char path[4096], err[512] = "";
    char qaddr[4 * ADDR_PATH_MAX + 16], qpath[4 * 4096 + 8], qerr[4 * 512 + 8];

    memset(r, 0, sizeof(*r));
    if (maildir_target_for(lr->cfg, addr, path, sizeof(path), &dc, err, sizeof(err)) &&
        config_owner_slot(lr->cfg, dc) != lr->slot)
        snprintf(err, sizeof(err), "domain %s does not belong to owner %s", dc->name,
                 lr->owner);
    else if (dc && maildir_deliver(path, lr->cfg->hostname, m->env.from, addr, fd,
                                   (off_t)m->body_offset, m->body_size, err, sizeof(err))) {
        r->outcome = SMTP_DELIVERED;
        r->code = 250;
        snprintf(r->dsn, sizeof(r->dsn), "2.0.0");
        snprintf(r->text, sizeof(r->text), "delivered to Maildir");
        log_debug("event=local_delivered to=%s path=%s", log_value(qaddr, sizeof(qaddr), addr),
                  log_quote(qpath, sizeof(qpath), path, strlen(path)));
        return;
    }
    r->outcome = SMTP_DEFERRED;
    snprintf(r->dsn, sizeof(r->dsn), "4.2.0");
    snprintf(r->text, sizeof(r->text), "%s", err);
    log_info("event=local_deferred to=%s reason=%s", log_value(qaddr, sizeof(qaddr), addr),
             log_quote(qerr, sizeof(qerr), err, strlen(err)));
}

static void take_job(void *arg, size_t len, int fd)
{
    struct local_role *lr = arg;
    static struct remote_job_msg m;         /* large: not on the stack */
    static struct remote_result_msg res;
    char err[256];
    size_t out;

    if (fd < 0 || !remote_job_decode(lr->buf, len, &m, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"%s\"",
              fd < 0 ? "job without a message file" : err);
    memset(&res, 0, sizeof(res));
    res.job_id = m.job_id;
    res.count = m.env.rcpt_count;
    for (size_t i = 0; i < m.env.rcpt_count; i++)
        deliver_one(lr, &m, i, fd, &res.results[i]);
    close(fd);
    envelope_clear(&m.env);
    out = remote_result_encode(&res, lr->buf, sizeof(lr->buf));
    if (out == 0)
        fatal("event=remote_result_too_large");     /* bounded by construction */
    if (!ipc_send(ROLE_FD_CHANNEL, IPC_REMOTE_RESULT, lr->buf, out, -1)) {
        char why[160];

        snprintf(why, sizeof(why), "queue channel broken: %s", strerror(errno));
        role_jobs_stop(lr->jobs, why);
    }
}

/* The Maildir roots of this owner's domains (what Landlock allows). */
static void collect_roots(struct local_role *lr)
{
    for (size_t i = 0; i < lr->cfg->domain_count; i++) {
        const struct domain_config *dc = &lr->cfg->domains[i];
        char root[PATH_MAX];
        bool seen = false;

        if (config_owner_slot(lr->cfg, dc) != lr->slot)
            continue;
        config_maildir_root(dc->maildir, root, sizeof(root));
        for (size_t k = 0; k < lr->root_count && !seen; k++)
            seen = strcmp(lr->roots[k], root) == 0;
        if (!seen && root[0])
            lr->roots[lr->root_count++] = xstrdup(root);
    }
}

static void local_prepare(struct role_ctx *ctx)
{
    struct local_role *lr = xcalloc(1, sizeof(*lr));
    const char *owners[CONFIG_MAX_DOMAINS];
    size_t n = config_local_owners(ctx->cfg, owners);

    if (ctx->slot >= n)
        fatal("event=start_failed role=local slot=%u error=\"no [domain] owner for this "
              "slot\"", ctx->slot);
    lr->cfg = ctx->cfg;
    lr->slot = (int)ctx->slot;
    lr->owner = owners[ctx->slot];
    collect_roots(lr);
    ctx->state = lr;
    ctx->fs_paths = (const char *const *)lr->roots;
    ctx->fs_path_count = lr->root_count;
}

static void local_start(struct role_ctx *ctx)
{
    struct local_role *lr = ctx->state;

    lr->jobs = role_jobs_start(ctx->base, "local", IPC_REMOTE_JOB, lr->buf, sizeof(lr->buf),
                               take_job, lr);
    log_info("event=local_ready slot=%u owner=%s roots=%zu", ctx->slot, lr->owner,
             lr->root_count);
}

/* Tell the queue this is an orderly stop; a job cut short (none can be:
 * jobs run whole inside one callback) would be retried by the queue. */
static void local_cleanup(struct role_ctx *ctx)
{
    struct local_role *lr = ctx->state;

    ipc_try_send(ROLE_FD_CHANNEL, IPC_REMOTE_BYE, NULL, 0, -1);
    close(ROLE_FD_CHANNEL);
    role_jobs_free(lr->jobs);
    for (size_t k = 0; k < lr->root_count; k++)
        free(lr->roots[k]);
    free(lr);
    ctx->state = NULL;
}

const struct role_ops role_local_ops = {
    .name = "local",
    .sandbox = SANDBOX_LOCAL,
    .slotted = true,
    .prepare = local_prepare,
    .start = local_start,
    .cleanup = local_cleanup,
};

/*
 * lmtp_role.c - the LMTP delivery role (see lmtp_role.h).
 *
 * The master starts it as [server] delivery_user, chrooted into the
 * folder of the lmtp:unix: sockets (config_finish allows one folder), or
 * into the spool's empty folder when every target is TCP; Landlock
 * denies every file access (connecting to a socket is not a file access
 * to Landlock, so the chroot is what limits which sockets it can reach:
 * those in that one folder that the user may connect to), and seccomp
 * allows the delivery process's calls plus AF_UNIX sockets.
 *
 * The queue sends the delivery process's job messages (mail/remote_codec.h)
 * with a read-only descriptor of the spool file. This process takes no
 * target from the queue: the job's destination must be one of its own
 * config's LMTP domains and every recipient must be in it; any other is
 * deferred (4.3.5), so a subverted queue can send mail only where the
 * config already sends it.
 *
 * Jobs run one at a time inside the event callback (blocking I/O with a
 * timeout per step, lmtp_client.h); the queue sends without blocking, so
 * nothing waits on this process but its own jobs.
 *
 * Trusts: the master's descriptors and config; the job only as far as
 * remote_job_decode checks it; nothing from the LMTP server.
 */
#include "lmtp/lmtp_role.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lmtp/lmtp_client.h"
#include "mail/remote_codec.h"
#include "sandbox/role_jobs.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

struct lmtp_role {
    const struct config *cfg;
    bool chrooted;
    struct role_jobs *jobs;
    struct event *idle_ev;
    char buf[IPC_MAX_PAYLOAD];
};

static void defer_rcpt(struct smtp_result *r, const char *dsn, const char *why)
{
    memset(r, 0, sizeof(*r));
    r->outcome = SMTP_DEFERRED;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    snprintf(r->text, sizeof(r->text), "%s", why);
}

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : "";
}

static void log_results(const struct remote_job_msg *m, const struct remote_result_msg *res)
{
    for (size_t i = 0; i < res->count; i++) {
        char qto[4 * ADDR_PATH_MAX + 16], qtext[4 * 512 + 8];

        log_debug("event=lmtp_reply id=%s to=%s relay=%s reply=%s", m->env.id,
                  log_value(qto, sizeof(qto), m->env.rcpts[i].addr), res->relay,
                  log_quote(qtext, sizeof(qtext), res->results[i].text,
                            strlen(res->results[i].text)));
    }
}

/* The job's recipients that belong to its destination go over LMTP;
 * the rest are deferred (only a subverted queue sends such). */
static void run_job(struct lmtp_role *lr, const struct remote_job_msg *m, int fd,
                    struct remote_result_msg *res)
{
    const struct domain_config *dc = config_find_domain(lr->cfg, m->destination);
    const char *rcpts[REMOTE_JOB_MAX_RCPTS];
    size_t idx[REMOTE_JOB_MAX_RCPTS], n = 0;
    static struct smtp_result out[REMOTE_JOB_MAX_RCPTS];
    struct lmtp_target t;
    struct lmtp_conn *c;
    char err[300] = "";

    if (!config_lmtp_target(dc, &t)) {
        for (size_t i = 0; i < m->env.rcpt_count; i++)
            defer_rcpt(&res->results[i], "4.3.5", "destination is not an LMTP domain here");
        return;
    }
    lmtp_target_name(&t, res->relay, sizeof(res->relay));
    for (size_t i = 0; i < m->env.rcpt_count; i++) {
        if (strcasecmp(domain_of(m->env.rcpts[i].addr), m->destination) == 0) {
            idx[n] = i;
            rcpts[n++] = m->env.rcpts[i].addr;
        } else {
            defer_rcpt(&res->results[i], "4.3.5", "recipient is not in the job's domain");
        }
    }
    if (n == 0)
        return;
    c = lmtp_connect(&t, lr->chrooted, lr->cfg->hostname, dc->lmtp_timeout, err, sizeof(err));
    if (c == NULL) {
        log_info("event=lmtp_unavailable relay=%s reason=\"%s\"", res->relay, err);
        for (size_t k = 0; k < n; k++)
            defer_rcpt(&res->results[idx[k]], "4.4.1", err);
        return;
    }
    struct lmtp_tx tx = {
        .env = &m->env, .rcpts = rcpts, .rcpt_count = n, .fd = fd,
        .body_offset = (off_t)m->body_offset, .body_size = m->body_size,
        .timeout = dc->lmtp_timeout, .hostname = lr->cfg->hostname,
    };
    lmtp_transaction(c, &tx, out);
    for (size_t k = 0; k < n; k++)
        res->results[idx[k]] = out[k];
}

static void take_job(void *arg, size_t len, int fd)
{
    struct lmtp_role *lr = arg;
    static struct remote_job_msg m;         /* large: not on the stack */
    static struct remote_result_msg res;
    char err[256];
    size_t out;
    struct timeval idle = { LMTP_IDLE_SECONDS, 0 };

    if (fd < 0 || !remote_job_decode(lr->buf, len, &m, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"%s\"",
              fd < 0 ? "job without a message file" : err);
    memset(&res, 0, sizeof(res));
    res.job_id = m.job_id;
    res.count = m.env.rcpt_count;
    run_job(lr, &m, fd, &res);
    log_results(&m, &res);
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
    evtimer_add(lr->idle_ev, &idle);
}

/* Connections nobody used for LMTP_IDLE_SECONDS are closed (QUIT is not
 * needed: LMTP servers take a close at a transaction boundary). */
static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    lmtp_close_idle(time(NULL), false);
}

static void lmtp_prepare(struct role_ctx *ctx)
{
    struct lmtp_role *lr = xcalloc(1, sizeof(*lr));

    lr->cfg = ctx->cfg;
    lr->chrooted = ctx->plan.chroot_dir != NULL;
    ctx->state = lr;
}

static void lmtp_start(struct role_ctx *ctx)
{
    struct lmtp_role *lr = ctx->state;
    char dir[LMTP_TARGET_MAX];

    lr->jobs = role_jobs_start(ctx->base, "lmtp", IPC_REMOTE_JOB, lr->buf, sizeof(lr->buf),
                               take_job, lr);
    lr->idle_ev = evtimer_new(ctx->base, idle_cb, lr);
    config_lmtp_socket_dir(lr->cfg, dir, sizeof(dir));
    log_info("event=lmtp_ready socket_dir=\"%s\" chrooted=%s", dir[0] ? dir : "none",
             lr->chrooted ? "yes" : "no");
}

static void lmtp_cleanup(struct role_ctx *ctx)
{
    struct lmtp_role *lr = ctx->state;

    ipc_try_send(ROLE_FD_CHANNEL, IPC_REMOTE_BYE, NULL, 0, -1);
    close(ROLE_FD_CHANNEL);
    lmtp_close_idle(0, true);
    role_jobs_free(lr->jobs);
    if (lr->idle_ev)
        event_free(lr->idle_ev);
    free(lr);
    ctx->state = NULL;
}

const struct role_ops role_lmtp_ops = {
    .name = "lmtp",
    .sandbox = SANDBOX_LMTP,
    .prepare = lmtp_prepare,
    .start = lmtp_start,
    .cleanup = lmtp_cleanup,
};

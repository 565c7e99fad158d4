/*
 * delivery_role.c - the delivery role: remote delivery jobs from the
 * queue over its channel, carried out by delivery/remote_server.h (DNS,
 * SMTP client, TLS). Runs as [server] delivery_user, chrooted into an
 * empty folder, under a seccomp filter that allows new IPv4/IPv6 sockets
 * and nothing on the file system.
 *
 * Trusts: the master's descriptors (role.h); the queue's channel within
 * remote_job_decode's checks.
 */
#include "delivery/delivery_role.h"

#include <sys/prctl.h>

#include "delivery/remote_server.h"
#include "mail/relay_credentials.h"
#include "util/log.h"
#include "util/snapshot.h"

/* The smart host's credentials file, from the master's snapshot (the
 * master checked its mode, owner and form): parsed into the outbound
 * state; the parse buffer is wiped here, the snapshot by role_main. The
 * process then holds a password: no core dump (the user switch makes
 * it so too, unless fs.suid_dumpable says otherwise; this covers a
 * start without one). */
static void take_relay_credentials(struct role_ctx *ctx)
{
    const char *path = ctx->cfg->relay.relayhost_credentials;
    const struct snapshot_file *f = path ? snapshot_find(ctx->files, path) : NULL;
    struct relay_credentials rc;
    char err[256];

    if (path == NULL)
        return;
    if (f == NULL)
        fatal("event=start_failed role=delivery error=\"relayhost_credentials: not in the "
              "master's snapshot\"");
    if (!relay_credentials_parse((const char *)f->data, f->len, &rc, err, sizeof(err)))
        fatal("event=start_failed role=delivery error=\"relayhost_credentials %s: %s\"",
              path, err);
    remote_server_set_relay_credentials(ctx->state, &rc);
    relay_credentials_wipe(&rc);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_warn("event=no_dump_failed role=delivery reason=\"prctl(PR_SET_DUMPABLE) failed\"");
}

/* DNS trust anchors, resolver config and CA files are read here, before
 * the chroot takes the file system away. */
static void delivery_prepare(struct role_ctx *ctx)
{
    char err[512] = "";

    ctx->state = remote_server_new(ctx->base, ctx->cfg, err, sizeof(err));
    if (ctx->state == NULL)
        fatal("event=start_failed role=delivery error=\"%s\"", err);
    take_relay_credentials(ctx);
}

static void delivery_start(struct role_ctx *ctx)
{
    remote_server_start(ctx->state, ROLE_FD_CHANNEL);
}

/* Jobs cut short are retried by the queue. */
static void delivery_cleanup(struct role_ctx *ctx)
{
    remote_server_free(ctx->state);
    ctx->state = NULL;
}

const struct role_ops role_delivery_ops = {
    .name = "delivery",
    .sandbox = SANDBOX_DELIVERY,
    .prepare = delivery_prepare,
    .start = delivery_start,
    .cleanup = delivery_cleanup,
};

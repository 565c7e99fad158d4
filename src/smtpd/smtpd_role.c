/*
 * smtpd_role.c - the smtpd worker role: the SMTP server (smtpd/server.h)
 * on the listening sockets the master passed, one of several workers
 * told apart by their slot. Runs as [server] user, chrooted into an
 * empty folder, under the strictest seccomp filter (sandbox.h).
 *
 * Before the drop it parses what it needs from the master's snapshot
 * (mailbox lists; certificates and keys into an OpenSSL context) and maps
 * the shared connection-limit table; after it, it reaches the spool only
 * through its channel to the queue.
 *
 * Trusts: the master's descriptors and snapshot (role.h). Everything a
 * client sends is handled in smtpd/session*.c.
 */
#define _GNU_SOURCE 1
#include "smtpd/smtpd_role.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/recipient.h"
#include "smtpd/queue_client.h"
#include "smtpd/conn_limits.h"
#include "smtpd/server.h"
#include "tls/tls_server.h"
#include "util/log.h"
#include "util/xalloc.h"

struct smtpd {
    struct server srv;
    struct listen_socket socks[SERVER_MAX_SOCKETS];
    size_t sock_count;
};

/* fd is a stream socket of the address's family. (Whether it still
 * listens is not checked: the master shuts the sockets down when it
 * stops, and a worker starting just then stops at once too.) */
static bool is_listener(int fd, const struct listen_address *la)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type = 0;
    socklen_t optlen = sizeof(type);

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) == 0 && type == SOCK_STREAM &&
           getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
           ss.ss_family == la->addr.ss_family;
}

/* The master opened one socket per configured address, in config order
 * (server_open_sockets), and passed them from ROLE_FD_LISTEN on. */
static void inherited_sockets(const struct config *cfg, struct smtpd *w)
{
    int fd = ROLE_FD_LISTEN;

    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct listener_config *lc = &cfg->listeners[i];

        for (size_t a = 0; a < lc->address_count && w->sock_count < SERVER_MAX_SOCKETS; a++) {
            if (!is_listener(fd, &lc->addresses[a]))
                fatal("event=start_failed role=smtpd error=\"descriptor %d is not the "
                      "listening socket for %s\"", fd, lc->addresses[a].text);
            w->socks[w->sock_count++] = (struct listen_socket){ fd, lc, lc->addresses[a].text };
            fd++;
        }
    }
}

static void smtpd_prepare(struct role_ctx *ctx)
{
    struct smtpd *w = xcalloc(1, sizeof(*w));
    const struct config *cfg = ctx->cfg;
    char err[1024];

    ctx->state = w;
    w->srv.cfg = cfg;
    w->srv.base = ctx->base;
    w->srv.slot = ctx->slot;
    w->srv.recipients = recipient_policy_new(cfg, ctx->files, err, sizeof(err));
    if (w->srv.recipients == NULL)
        fatal("event=start_failed role=smtpd error=\"%s\"", err);
    if (tls_server_wanted(cfg)) {
        w->srv.tls = tls_server_new(&cfg->tls, ctx->files, err, sizeof(err));
        if (w->srv.tls == NULL)
            fatal("event=start_failed role=smtpd error=\"TLS: %s\"", err);
    }
    w->srv.limits = conn_limits_attach(ROLE_FD_LIMITS, ctx->workers,
                                       conn_limits_capacity(cfg, ctx->workers), ctx->slot,
                                       err, sizeof(err));
    if (w->srv.limits == NULL)
        fatal("event=start_failed role=smtpd error=\"%s\"", err);
    close(ROLE_FD_LIMITS);          /* the mapping stays */
    inherited_sockets(cfg, w);
}

static void drained(struct server *srv)
{
    event_base_loopexit(srv->base, NULL);
}

/* The queue channel failed. The queue is gone (it died; the master
 * restarts it): keep accepting, but refuse mail with 421/451 4.3.0
 * until the master replaces this worker once a new queue is ready. A
 * fault on a channel the queue still serves: accept no more; the
 * sessions still here end on their own (they cannot queue), then the
 * master starts a new worker. */
static void channel_broken(void *arg, bool queue_gone)
{
    if (queue_gone)
        server_no_queue(arg);
    else
        server_retire(arg);
}

static void smtpd_start(struct role_ctx *ctx)
{
    struct smtpd *w = ctx->state;

    w->srv.queue = queue_link_new(ROLE_FD_CHANNEL, ctx->base);
    queue_link_on_broken(w->srv.queue, channel_broken, &w->srv);
    w->srv.on_drained = drained;
    server_listen_sockets(&w->srv, w->socks, w->sock_count);
}

static void smtpd_stop(struct role_ctx *ctx)
{
    struct smtpd *w = ctx->state;

    server_shutdown(&w->srv);
}

static void smtpd_retire(struct role_ctx *ctx)
{
    struct smtpd *w = ctx->state;

    server_retire(&w->srv);
}

static void smtpd_cleanup(struct role_ctx *ctx)
{
    struct smtpd *w = ctx->state;

    server_free(&w->srv);
    queue_link_free(w->srv.queue);
    tls_server_free(w->srv.tls);
    recipient_policy_free(w->srv.recipients);
    conn_limits_detach(w->srv.limits);
    free(w);
    ctx->state = NULL;
}

const struct role_ops role_smtpd_ops = {
    .name = "smtpd",
    .sandbox = SANDBOX_SMTPD,
    .slotted = true,
    .prepare = smtpd_prepare,
    .start = smtpd_start,
    .stop = smtpd_stop,
    .retire = smtpd_retire,
    .cleanup = smtpd_cleanup,
};

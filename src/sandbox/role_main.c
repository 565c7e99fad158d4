/*
 * role_main.c - the one main loop every role runs (see role.h).
 *
 * Trusts: the role's hooks and the context role_start.c built from what
 * the master passed.
 */
#include "sandbox/role.h"

#include <signal.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/snapshot.h"

struct role_loop {
    const struct role_ops *ops;
    struct role_ctx *ctx;
};

void role_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, ROLE_SIG_RETIRE);
    sigaddset(set, ROLE_SIG_STOP);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct role_loop *loop = arg;

    (void)sig;
    (void)what;
    if (loop->ops->stop)
        loop->ops->stop(loop->ctx);
    else
        event_base_loopexit(loop->ctx->base, NULL);
}

static void on_retire(evutil_socket_t sig, short what, void *arg)
{
    struct role_loop *loop = arg;

    (void)sig;
    (void)what;
    loop->ops->retire(loop->ctx);
}

int role_main(const struct role_ops *ops, struct role_ctx *ctx)
{
    struct role_loop loop = { ops, ctx };
    struct event *stop, *retire = NULL;
    sigset_t early;

    ctx->base = event_base_new();
    if (ctx->base == NULL)
        fatal("event=start_failed role=%s error=\"event base\"", ops->name);
    if (ops->prepare)
        ops->prepare(ctx);
    /* What the role needed of the snapshot is parsed: the keys' bytes go
     * before anything else runs. */
    snapshot_free(ctx->files);
    ctx->files = NULL;
    privsep_drop(&ctx->plan);
    ops->start(ctx);
    /* Stops and reloads are the master's (role.h): what a terminal or
     * systemd sends the whole group is not for the roles. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    stop = evsignal_new(ctx->base, ROLE_SIG_STOP, on_stop, &loop);
    evsignal_add(stop, NULL);
    if (ops->retire) {
        retire = evsignal_new(ctx->base, ROLE_SIG_RETIRE, on_retire, &loop);
        evsignal_add(retire, NULL);
    }
    role_signals(&early);               /* what arrived meanwhile: now */
    sigprocmask(SIG_UNBLOCK, &early, NULL);
    sandbox_enter_paths(ops->sandbox, ctx->fs_paths, ctx->fs_path_count);
    event_base_dispatch(ctx->base);
    event_free(stop);
    if (retire)
        event_free(retire);
    /* Stopping already: a second stop must not cut the cleanup short.
     * After event_free, which puts back the handler it found. */
    signal(ROLE_SIG_STOP, SIG_IGN);
    if (ops->cleanup)
        ops->cleanup(ctx);
    event_base_free(ctx->base);
    ctx->base = NULL;
    if (ops->slotted)
        log_info("event=stop role=%s slot=%u", ops->name, ctx->slot);
    else
        log_info("event=stop role=%s", ops->name);
    return 0;
}

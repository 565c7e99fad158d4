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
    sigaddset(set, SIGUSR1);
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
    struct event *term, *intr, *usr1 = NULL;
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
    signal(SIGHUP, SIG_IGN);            /* reloads are the master's */
    term = evsignal_new(ctx->base, SIGTERM, on_stop, &loop);
    intr = evsignal_new(ctx->base, SIGINT, on_stop, &loop);
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    if (ops->retire) {
        usr1 = evsignal_new(ctx->base, SIGUSR1, on_retire, &loop);
        evsignal_add(usr1, NULL);
    }
    role_signals(&early);               /* what arrived meanwhile: now */
    sigprocmask(SIG_UNBLOCK, &early, NULL);
    sandbox_enter(ops->sandbox);
    event_base_dispatch(ctx->base);
    event_free(term);
    event_free(intr);
    if (usr1)
        event_free(usr1);
    /* Stopping already: a second TERM (Ctrl-C reaches the whole process
     * group, then the master asks too) must not cut the cleanup short.
     * After event_free, which puts back the handler it found. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
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

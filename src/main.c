/*
 * main.c - the sealpost command: subcommand dispatch.
 *
 *   sealpost serve [-c FILE]   run the server in the foreground
 *   sealpost check [-c FILE]   validate the config, print effective settings
 *   sealpost version
 *
 * Trusts its command line and the config file it is pointed at.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "deliver/scheduler.h"
#include "policy/recipient.h"
#include "queue/queue.h"
#include "smtp/server.h"
#include "tls/tls_server.h"
#include "util/log.h"

#define DEFAULT_CONFIG "/etc/sealpost/sealpost.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost serve [-c FILE]   run the mail server in the foreground\n"
            "       sealpost check [-c FILE]   check the configuration and print it\n"
            "       sealpost version           print the version\n"
            "FILE defaults to " DEFAULT_CONFIG ".\n");
}

/* Parse "-c FILE" after the subcommand; NULL on a usage error. */
static const char *config_arg(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int opt;

    optind = 2;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c')
            return NULL;
        path = optarg;
    }
    return optind == argc ? path : NULL;
}

static struct config *load_or_report(const char *path)
{
    char err[1024];
    struct config *cfg = config_load(path, err, sizeof(err));

    if (cfg == NULL)
        fprintf(stderr, "sealpost: %s\n", err);
    return cfg;
}

static int cmd_check(const char *path)
{
    struct config *cfg = load_or_report(path);
    struct recipient_policy *rp;
    char err[1024];

    if (cfg == NULL)
        return 1;
    rp = recipient_policy_new(cfg, err, sizeof(err));
    if (rp == NULL) {
        fprintf(stderr, "sealpost: %s\n", err);
        config_free(cfg);
        return 1;
    }
    recipient_policy_free(rp);
    config_print(cfg, stdout);
    config_free(cfg);
    return 0;
}

static void on_drained(struct server *srv)
{
    log_info("event=shutdown_drained");
    event_base_loopexit(srv->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;

    (void)what;
    log_info("event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
    server_shutdown(srv);
}

/*
 * SIGHUP: re-read the certificate and key files and the mailboxes files
 * named in the running config. On any error the old ones stay in use.
 * Other settings need a restart (see docs/OPERATIONS.md).
 */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    struct recipient_policy *rp;
    char err[1024];

    (void)sig;
    (void)what;
    log_info("event=signal signal=HUP action=reload");
    if (srv->tls) {
        if (tls_server_reload(srv->tls, err, sizeof(err)))
            log_info("event=reload what=tls status=ok");
        else
            log_error("event=reload what=tls status=failed keeping=old error=\"%s\"", err);
    }
    rp = recipient_policy_new(srv->cfg, err, sizeof(err));
    if (rp == NULL) {
        log_error("event=reload what=mailboxes status=failed keeping=old error=\"%s\"", err);
        return;
    }
    recipient_policy_free(srv->recipients);
    srv->recipients = rp;
    log_info("event=reload what=mailboxes status=ok");
}

/* TLS is needed as soon as a listener offers it. */
static struct tls_server *start_tls(const struct config *cfg)
{
    struct tls_server *ts;
    char err[1024];
    bool wanted = false;

    for (size_t i = 0; i < cfg->listener_count; i++)
        wanted |= cfg->listeners[i].tls != LTLS_NONE;
    if (!wanted)
        return NULL;
    ts = tls_server_new(&cfg->tls, err, sizeof(err));
    if (ts == NULL)
        fatal("event=start_failed error=\"TLS: %s\"", err);
    return ts;
}

static int cmd_serve(const char *path)
{
    struct config *cfg = load_or_report(path);
    struct server srv;
    struct scheduler *sched;
    struct event *sigterm, *sigint, *sighup;
    char err[1024];

    if (cfg == NULL)
        return 1;
    log_set_level((enum log_level)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.on_drained = on_drained;
    srv.base = event_base_new();
    if (srv.base == NULL)
        fatal("event=start_failed error=\"cannot create event base\"");
    srv.recipients = recipient_policy_new(cfg, err, sizeof(err));
    if (srv.recipients == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    srv.tls = start_tls(cfg);
    srv.queue = queue_open(cfg->spool, err, sizeof(err));
    if (srv.queue == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    if (!server_listen(&srv, err, sizeof(err)))
        fatal("event=start_failed error=\"%s\"", err);

    sched = scheduler_start(cfg, srv.queue);
    queue_set_notify(srv.queue, scheduler_enqueue, sched);
    queue_scan(srv.queue, scheduler_enqueue, sched);

    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    sighup = evsignal_new(srv.base, SIGHUP, on_reload, &srv);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sighup, NULL);
    log_info("event=start version=%s config=\"%s\" hostname=%s spool=\"%s\"",
             SEALPOST_VERSION, cfg->path, cfg->hostname, cfg->spool);

    event_base_dispatch(srv.base);

    scheduler_stop(sched);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    server_free(&srv);
    tls_server_free(srv.tls);
    queue_close(srv.queue);
    recipient_policy_free(srv.recipients);
    event_base_free(srv.base);
    log_info("event=stop");
    config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("sealpost %s\n", SEALPOST_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "sealpost: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    path = config_arg(argc, argv);
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    return strcmp(argv[1], "serve") == 0 ? cmd_serve(path) : cmd_check(path);
}

/*
 * role_start.c - `sealpost role NAME ...`: the first thing a role process
 * runs after the master executed it (see role.h). Reads the command line
 * and the descriptors the master passed into a role context, then hands
 * over to role_main().
 *
 * Trusts: its parent, the master (root), for what it passed; checks the
 * form of all of it anyway (sealed memory files, bounded lengths, a
 * socket where a channel belongs), and stops with a usage error when
 * started by hand without them.
 */
#define _GNU_SOURCE 1
#include "master/role_start.h"

#include "master/log_sink.h"

#include "delivery/delivery_role.h"
#include "lmtp/lmtp_role.h"
#include "milter/milter_role.h"
#include "local/local_role.h"
#include "metrics/metrics_role.h"
#include "queue/queue_role.h"
#include "sandbox/role.h"
#include "smtpd/smtpd_role.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/memfd.h"
#include "util/metrics.h"
#include "util/snapshot.h"

struct role_args {
    const struct role_ops *ops;
    const char *config;             /* the master's cfg->path */
    const char *hostname;           /* the master's cfg->hostname */
    const char *user;               /* for the log: whom the ids belong to */
    const char *chroot;
    unsigned long slot, workers, uid, gid, metrics_fd;
    bool have_uid, have_gid, have_metrics;
};

static const struct role_ops *const roles[] = {
    &role_queue_ops, &role_smtpd_ops, &role_delivery_ops, &role_local_ops, &role_lmtp_ops,
    &role_metrics_ops, &role_milter_ops,
};

static bool parse_number(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(s, &end, 10);
    return *s >= '0' && *s <= '9' && *end == '\0' && errno == 0 && *out <= max;
}

/* "--key value" pairs after the role name. */
static bool parse_option(struct role_args *a, const char *key, const char *value)
{
    if (strcmp(key, "--config") == 0)
        a->config = value;
    else if (strcmp(key, "--hostname") == 0)
        a->hostname = value;
    else if (strcmp(key, "--user") == 0)
        a->user = value;
    else if (strcmp(key, "--chroot") == 0)
        a->chroot = value;
    else if (strcmp(key, "--slot") == 0)
        return parse_number(value, 1024, &a->slot);
    else if (strcmp(key, "--workers") == 0)
        return parse_number(value, 1024, &a->workers);
    else if (strcmp(key, "--metrics") == 0)
        return (a->have_metrics = parse_number(value, 1024, &a->metrics_fd));
    else if (strcmp(key, "--uid") == 0)
        return (a->have_uid = parse_number(value, (uid_t)-2, &a->uid));
    else if (strcmp(key, "--gid") == 0)
        return (a->have_gid = parse_number(value, (gid_t)-2, &a->gid));
    else
        return false;
    return true;
}

static bool parse_args(int argc, char **argv, struct role_args *a)
{
    memset(a, 0, sizeof(*a));
    if (argc < 3)
        return false;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(argv[2], roles[i]->name) == 0)
            a->ops = roles[i];
    }
    if (a->ops == NULL || (argc - 3) % 2 != 0)
        return false;
    for (int i = 3; i < argc; i += 2) {
        if (!parse_option(a, argv[i], argv[i + 1]))
            return false;
    }
    return a->config && a->hostname && a->have_uid == a->have_gid &&
           (!a->have_uid || a->user);
}

/* The config the master read, from ROLE_FD_CONFIG. */
static struct config *master_config(const struct role_args *a)
{
    unsigned char *text;
    size_t len;
    char err[1024];
    struct config *cfg;

    if (!memfd_read_sealed(ROLE_FD_CONFIG, CONFIG_FILE_MAX, &text, &len, err, sizeof(err)))
        fatal("event=start_failed role=%s error=\"config: %s\"", a->ops->name, err);
    cfg = config_load_copy((const char *)text, len, a->config, a->hostname, err, sizeof(err));
    free(text);
    if (cfg == NULL)
        fatal("event=start_failed role=%s error=\"%s\"", a->ops->name, err);
    close(ROLE_FD_CONFIG);
    return cfg;
}

static struct file_snapshot *master_files(const struct role_args *a)
{
    char err[512];
    struct file_snapshot *files = snapshot_from_fd(ROLE_FD_FILES, err, sizeof(err));

    if (files == NULL)
        fatal("event=start_failed role=%s error=\"files: %s\"", a->ops->name, err);
    close(ROLE_FD_FILES);
    return files;
}

static void check_channel(const struct role_args *a)
{
    struct stat st;

    if (fstat(ROLE_FD_CHANNEL, &st) < 0 || !S_ISSOCK(st.st_mode))
        fatal("event=start_failed role=%s error=\"descriptor %d is not a channel\"",
              a->ops->name, ROLE_FD_CHANNEL);
}

/* The role's own metric block (util/metrics.h), read-write: the master
 * named its descriptor with --metrics. */
static void attach_metrics(const struct role_args *a)
{
    char why[256];

    if (!a->have_metrics)
        return;
    metrics_self = metrics_attach((int)a->metrics_fd, true, why, sizeof(why));
    if (metrics_self == NULL)
        fatal("event=start_failed role=%s error=\"metrics: %s\"", a->ops->name, why);
    close((int)a->metrics_fd);
}

int role_run(int argc, char **argv)
{
    struct role_args a;
    struct role_ctx ctx;
    struct config *cfg;
    int status;

    if (!parse_args(argc, argv, &a) || fcntl(ROLE_FD_CONFIG, F_GETFD) < 0) {
        fprintf(stderr, "sealpost: 'role' is started by 'sealpost serve', not by hand\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    tzset();                        /* before a chroot hides the zone files */
    cfg = master_config(&a);
    log_set_level((enum log_level)cfg->log_level);
    log_sink_role(cfg);
    check_channel(&a);
    attach_metrics(&a);
    memset(&ctx, 0, sizeof(ctx));
    ctx.name = a.ops->name;
    ctx.cfg = cfg;
    ctx.files = master_files(&a);
    ctx.slot = (unsigned)a.slot;
    ctx.workers = (unsigned)a.workers;
    ctx.plan = (struct drop_plan){ .role = a.ops->name, .user = a.user,
                                   .chroot_dir = a.chroot, .uid = (uid_t)a.uid,
                                   .gid = (gid_t)a.gid, .switch_user = a.have_uid };
    status = role_main(a.ops, &ctx);
    snapshot_free(ctx.files);
    config_free(cfg);
    return status;
}

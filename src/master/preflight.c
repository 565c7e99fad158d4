/*
 * preflight.c - everything `serve` would refuse, found before it starts
 * (see preflight.h).
 *
 * File access is judged the way the kernel would judge the role that
 * needs it: each folder on the way must be searchable and the last one
 * writable by that role's uid, gid and supplementary groups (root passes
 * everything, as it does at run time). What is missing the master makes
 * at start, for the queue user (the spool) and each domain's owner (the
 * Maildir roots; [domain] owner, default the queue user). That
 * catches a spool under a 0700 parent, or a Maildir root the queue user
 * cannot write, which otherwise show up only as deferrals in the log.
 *
 * Trusts: the config and the local user database.
 */
#define _GNU_SOURCE 1
#include "master/preflight.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/dns.h"
#include "master/master_files.h"
#include "tls/tls_server.h"
#include "util/snapshot.h"

#define MAX_GROUPS 64

/* Who a role runs as: root (or the caller, unprivileged) when no user. */
struct identity {
    const char *role;
    const char *user;               /* for messages */
    uid_t uid;
    gid_t groups[MAX_GROUPS];
    int ngroups;
    bool all_access;                /* root, or no switch and we are root */
};

struct preflight {
    FILE *out;
    unsigned problems;
};

static void problem(struct preflight *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct preflight *p, const char *fmt, ...)
{
    va_list ap;

    fputs("sealpost: ", p->out);
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    p->problems++;
}

/* The identity of a role that runs as user (empty: no switch). false
 * (and a problem) when the user does not exist or is root. */
static bool identity_of(struct preflight *p, const char *role, const char *key,
                        const char *user, struct identity *id)
{
    struct passwd *pw;

    memset(id, 0, sizeof(*id));
    id->role = role;
    id->user = user;
    if (user[0] == '\0' || geteuid() != 0) {
        id->uid = geteuid();
        id->all_access = id->uid == 0;
        id->groups[0] = getegid();
        id->ngroups = 1;
        return true;
    }
    pw = getpwnam(user);
    if (pw == NULL) {
        if (strncmp(key, "owner", 5) == 0)
            problem(p, "%s = %s: no such user (create it, e.g. useradd --system %s)", key,
                    user, user);
        else
            problem(p, "[server] %s = %s: no such user (make install creates it)", key, user);
        return false;
    }
    if (pw->pw_uid == 0) {
        problem(p, "%s%s = %s: the user is root", strncmp(key, "owner", 5) == 0 ? "" :
                "[server] ", key, user);
        return false;
    }
    id->uid = pw->pw_uid;
    id->ngroups = MAX_GROUPS;
    if (getgrouplist(user, pw->pw_gid, id->groups, &id->ngroups) < 0)
        id->ngroups = MAX_GROUPS;
    return true;
}

/* Would id get want (R_OK | W_OK | X_OK bits) on st? */
static bool allowed(const struct identity *id, const struct stat *st, int want)
{
    int shift = 0;

    if (id->all_access)
        return true;
    if (st->st_uid == id->uid) {
        shift = 6;
    } else {
        shift = 0;
        for (int i = 0; i < id->ngroups; i++) {
            if (st->st_gid == id->groups[i]) {
                shift = 3;
                break;
            }
        }
    }
    return (((int)(st->st_mode >> shift) & 7) & want) == want;
}

/*
 * Can id use the folder path once the master (root) has made what is
 * missing? Every existing folder on the way must be searchable by id, and
 * path itself, when it exists already, usable (rwx) unless the master
 * gives it to id at every start. master_owns (the spool): the master
 * makes the folder itself but not its parents (a typo must not build a
 * tree); otherwise (Maildir roots) it makes every missing level.
 */
static void check_folder(struct preflight *p, const struct identity *id, const char *what,
                         const char *path, bool master_owns)
{
    char buf[PATH_MAX], *slash;
    struct stat st;
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf) || path[0] != '/') {
        problem(p, "%s %s: not an absolute path", what, path);
        return;
    }
    memcpy(buf, path, len + 1);
    for (slash = buf + 1;; slash++) {
        char keep;

        slash = strchr(slash, '/');
        keep = slash ? *slash : '\0';
        if (slash)
            *slash = '\0';
        if (stat(buf, &st) < 0) {
            if (errno != ENOENT)
                problem(p, "%s %s: %s: %s", what, path, buf, strerror(errno));
            else if (master_owns && slash)
                problem(p, "%s %s: %s does not exist", what, path, buf);
            return;                 /* the master makes the rest, for id */
        }
        if (!S_ISDIR(st.st_mode)) {
            problem(p, "%s %s: %s is not a folder", what, path, buf);
            return;
        }
        if (!allowed(id, &st, X_OK)) {
            problem(p, "%s %s: the %s process (user %s) cannot enter %s (mode %04o)", what,
                    path, id->role, id->user[0] ? id->user : "(unchanged)", buf,
                    (unsigned)(st.st_mode & 07777));
            return;
        }
        if (!slash)
            break;
        *slash = keep;
    }
    if (!master_owns && !allowed(id, &st, R_OK | W_OK | X_OK))
        problem(p, "%s %s: the %s process (user %s) cannot write it (mode %04o)", what, path,
                id->role, id->user[0] ? id->user : "(unchanged)",
                (unsigned)(st.st_mode & 07777));
}

/*
 * A domain's Maildir root, as the user who delivers into it: its owner
 * (the queue user unless [domain] owner names another, whose local
 * delivery process then writes it). queue: the queue's identity, NULL
 * when the queue user is already a problem. Two domains whose Maildir
 * roots are one folder must have one owner: the master can give a
 * folder to one user only.
 */
static void check_domain_owner(struct preflight *p, const struct config *cfg, size_t i,
                               const struct identity *queue)
{
    const struct domain_config *dc = &cfg->domains[i];
    struct identity owner;
    const struct identity *id = queue;
    char root[PATH_MAX], what[300], key[300];

    if (dc->maildir == NULL)            /* deliver = lmtp: no Maildir */
        return;
    config_maildir_root(dc->maildir, root, sizeof(root));
    for (size_t j = 0; j < i; j++) {
        char other[PATH_MAX];

        config_maildir_root(cfg->domains[j].maildir, other, sizeof(other));
        if (strcmp(root, other) == 0 && strcmp(dc->owner, cfg->domains[j].owner) != 0) {
            problem(p, "[domain %s] owner = %s: its Maildir root %s is also that of "
                    "[domain %s] (owner %s); give them one owner or separate roots",
                    dc->name, dc->owner, root, cfg->domains[j].name, cfg->domains[j].owner);
            return;
        }
    }
    if (config_owner_slot(cfg, dc) >= 0) {
        snprintf(key, sizeof(key), "owner in [domain %s]", dc->name);
        id = identity_of(p, "local delivery", key, dc->owner, &owner) ? &owner : NULL;
    }
    if (id == NULL)
        return;
    snprintf(what, sizeof(what), "[domain %s] maildir root", dc->name);
    check_folder(p, id, what, root, false);
}

/* The files serve loads, loaded the same way (master_files.h). */
static void check_files(struct preflight *p, const struct config *cfg)
{
    char err[1024];
    struct file_snapshot *files = master_files_read_mailboxes(cfg, err, sizeof(err));

    if (files == NULL)
        problem(p, "%s", err);
    snapshot_free(files);
    if ((files = master_files_read_users(cfg, err, sizeof(err))) == NULL)
        problem(p, "%s", err);
    snapshot_free(files);
    if ((files = master_files_read_relay(cfg, err, sizeof(err))) == NULL)
        problem(p, "%s", err);
    snapshot_free(files);
    if (!tls_server_wanted(cfg))
        return;
    if ((files = master_files_read_tls(cfg, err, sizeof(err))) == NULL)
        problem(p, "TLS: %s", err);
    snapshot_free(files);
}

unsigned preflight_check(const struct config *cfg, FILE *out)
{
    struct preflight p = { out, 0 };
    struct identity queue, smtpd, delivery;
    bool have_queue = identity_of(&p, "queue", "queue_user", cfg->queue_user, &queue);

    identity_of(&p, "smtpd", "user", cfg->user, &smtpd);
    identity_of(&p, "delivery", "delivery_user", cfg->delivery_user, &delivery);
    check_files(&p, cfg);
    if (have_queue)     /* the master (root) makes the spool; the queue user must reach it */
        check_folder(&p, &queue, "spool", cfg->spool, true);
    for (size_t i = 0; i < cfg->domain_count; i++)
        check_domain_owner(&p, cfg, i, have_queue ? &queue : NULL);
    return p.problems;
}

#define PREFLIGHT_DNS_TIMEOUT_MS 5000u      /* `check` waits at most this long */
#define SYSTEM_ROOT_KEY_FILE "/usr/share/dns/root.key"

unsigned preflight_dns(const struct config *cfg, FILE *out)
{
    const struct relay_config *rc = &cfg->relay;
    struct dns_config dc = { rc->resolver, rc->trust_anchor, rc->unbound_config, 0 };
    unsigned timeout = rc->dns_timeout * 1000u;
    struct dns_probe_result res;

    if (rc->trust_anchor == NULL && rc->unbound_config == NULL &&
        access(SYSTEM_ROOT_KEY_FILE, R_OK) != 0) {
        fprintf(out, "sealpost: note: no DNSSEC trust anchor ([relay] trust_anchor, or %s "
                "from Debian's dns-root-data): outbound DANE is off\n", SYSTEM_ROOT_KEY_FILE);
        return 0;
    }
    if (timeout == 0 || timeout > PREFLIGHT_DNS_TIMEOUT_MS)
        timeout = PREFLIGHT_DNS_TIMEOUT_MS;
    switch (dns_probe_dnssec_now(&dc, timeout, &res)) {
    case DNS_PROBE_BROKEN:
        fprintf(out, "sealpost: DNS: the resolver path cannot deliver DNSSEC (zone %s: %s): "
                "sealpost would treat every answer as insecure and DANE would be off; "
                "check [relay] resolver (a forwarder must pass DNSSEC records) and the "
                "trust anchor\n", res.zone, res.why);
        return 1;
    case DNS_PROBE_UNKNOWN:
        fprintf(out, "sealpost: note: cannot tell whether the resolver path delivers DNSSEC "
                "(zone %s: %s)\n", res.zone[0] ? res.zone : ".", res.why);
        return 0;
    case DNS_PROBE_NO_ANCHOR:
        fprintf(out, "sealpost: note: no DNSSEC trust anchor: outbound DANE is off\n");
        return 0;
    case DNS_PROBE_SECURE:
        break;
    }
    return 0;
}

/*
 * drop.c - privilege drop in a fixed, fatal-on-error order (see drop.h).
 */
#define _GNU_SOURCE 1
#include "sandbox/drop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

void privsep_plan(struct drop_plan *plan)
{
    struct passwd *pw;

    plan->switch_user = false;
    if (geteuid() != 0) {
        log_warn("event=privsep_limited role=%s reason=\"not started as root: no chroot, "
                 "no user switch; the seccomp sandbox still applies\"", plan->role);
        plan->chroot_dir = NULL;
        return;
    }
    if (plan->user == NULL || plan->user[0] == '\0') {
        log_warn("event=privsep_limited role=%s reason=\"no user configured: running as "
                 "root%s\"", plan->role, plan->chroot_dir ? " (chrooted)" : "");
        return;
    }
    errno = 0;
    pw = getpwnam(plan->user);
    if (pw == NULL)
        fatal("event=start_failed role=%s error=\"user '%s' does not exist: create it "
              "(see docs/SECURITY.md) or set %s\"", plan->role, plan->user,
              strcmp(plan->role, "queue") == 0      ? "[server] queue_user"
              : strcmp(plan->role, "delivery") == 0 ? "[server] delivery_user"
              : strcmp(plan->role, "local") == 0    ? "[domain] owner"
              : strcmp(plan->role, "lmtp") == 0 || strcmp(plan->role, "milter") == 0
                  ? "[server] delivery_user" : "[server] user");
    if (pw->pw_uid == 0)
        fatal("event=start_failed role=%s error=\"user '%s' is root\"", plan->role, plan->user);
    plan->uid = pw->pw_uid;
    plan->gid = pw->pw_gid;
    plan->switch_user = true;
}

void privsep_drop(const struct drop_plan *plan)
{
    if (plan->chroot_dir) {
        if (chroot(plan->chroot_dir) < 0)
            fatal("event=privsep_failed role=%s step=chroot dir=\"%s\" error=\"%s\"",
                  plan->role, plan->chroot_dir, strerror(errno));
        if (chdir("/") < 0)
            fatal("event=privsep_failed role=%s step=chdir error=\"%s\"", plan->role,
                  strerror(errno));
    }
    if (plan->switch_user) {
        if (setgroups(1, &plan->gid) < 0)
            fatal("event=privsep_failed role=%s step=setgroups error=\"%s\"", plan->role,
                  strerror(errno));
        if (setresgid(plan->gid, plan->gid, plan->gid) < 0)
            fatal("event=privsep_failed role=%s step=setresgid error=\"%s\"", plan->role,
                  strerror(errno));
        if (setresuid(plan->uid, plan->uid, plan->uid) < 0)
            fatal("event=privsep_failed role=%s step=setresuid error=\"%s\"", plan->role,
                  strerror(errno));
        if (setuid(0) == 0)
            fatal("event=privsep_failed role=%s step=verify error=\"could regain root\"",
                  plan->role);
    }
    log_info("event=privsep role=%s user=%s uid=%ld chroot=%s", plan->role,
             plan->switch_user ? plan->user : "(unchanged)", (long)getuid(),
             plan->chroot_dir ? plan->chroot_dir : "none");
}

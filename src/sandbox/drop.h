/*
 * drop.h - give up privileges, in one fixed order, fatal on any error:
 * chroot -> chdir -> setgroups -> setresgid -> setresuid. Every role calls
 * privsep_drop(); the seccomp filter (sandbox.h) comes last.
 *
 * Trusts: the config (user names, chroot folder).
 */
#ifndef SEALPOST_SANDBOX_DROP_H
#define SEALPOST_SANDBOX_DROP_H

#include <stdbool.h>
#include <sys/types.h>

struct drop_plan {
    const char *role;           /* for log lines: "smtpd", "queue" */
    const char *user;           /* "" or NULL: keep the current user */
    const char *chroot_dir;     /* NULL: no chroot */
    uid_t uid;                  /* filled by privsep_plan() */
    gid_t gid;
    bool switch_user;
};

/*
 * Resolve the user (getpwnam) before any chroot. When not running as
 * root nothing can be switched: the plan then keeps the current user and
 * no chroot, and a warning is logged. Fatal when running as root and the
 * user does not exist.
 */
void privsep_plan(struct drop_plan *plan);

/* Carry out the plan (fatal on error); logs what was done. */
void privsep_drop(const struct drop_plan *plan);

#endif

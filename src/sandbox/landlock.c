/*
 * landlock.c - Landlock rulesets: none allowed, or Maildir work beneath
 * given folders (see landlock.h).
 *
 * The rights are spelled out by number per ABI version, so that the
 * build does not depend on how new the installed kernel headers are.
 */
#define _GNU_SOURCE 1
#include "sandbox/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define RULE_PATH_BENEATH 1

/* struct landlock_path_beneath_attr (packed in the kernel's ABI). */
struct path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

/* WRITE_FILE, READ_FILE, READ_DIR, REMOVE_FILE, MAKE_DIR, MAKE_REG,
 * REFER (ABI 2), TRUNCATE (ABI 3). */
#define MAILDIR_RIGHTS ((1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 5) | \
                        (1ULL << 7) | (1ULL << 8) | (1ULL << 13) | (1ULL << 14))
#define CREATE_RULESET_VERSION (1U << 0)

/* struct landlock_ruleset_attr as of ABI 4 (the kernel takes the size). */
struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};

/* File-system rights by ABI: 1 = bits 0-12, 2 adds REFER (13), 3 adds
 * TRUNCATE (14), 5 adds IOCTL_DEV (15). */
static uint64_t fs_rights(int abi)
{
    uint64_t r = (1ULL << 13) - 1;

    if (abi >= 2)
        r |= 1ULL << 13;
    if (abi >= 3)
        r |= 1ULL << 14;
    if (abi >= 5)
        r |= 1ULL << 15;
    return r;
}

int landlock_deny_files(const char *role, bool deny_tcp)
{
    struct ruleset_attr attr;
    size_t size = sizeof(attr.handled_access_fs);
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, CREATE_RULESET_VERSION);
    int fd;

    if (abi < 1) {
        log_warn("event=landlock role=%s status=unavailable reason=\"%s\"", role,
                 strerror(errno));
        return 0;
    }
    memset(&attr, 0, sizeof(attr));
    attr.handled_access_fs = fs_rights((int)abi);
    if (deny_tcp && abi >= 4) {
        attr.handled_access_net = 3;    /* BIND_TCP | CONNECT_TCP */
        size = sizeof(attr);
    }
    fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0)
        fatal("event=landlock_failed role=%s step=create error=\"%s\"", role, strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_landlock_restrict_self, fd, 0) < 0)
        fatal("event=landlock_failed role=%s step=restrict error=\"%s\"", role, strerror(errno));
    close(fd);
    log_info("event=landlock role=%s status=active abi=%ld files=none%s", role, abi,
             size == sizeof(attr) ? " tcp_bind_connect=none" : "");
    return (int)abi;
}

/* A rule for each path that opens; returns how many were added. */
static size_t add_beneath_rules(const char *role, int ruleset, uint64_t handled,
                                const char *const *paths, size_t n)
{
    size_t added = 0;

    for (size_t i = 0; i < n; i++) {
        struct path_beneath pb;
        int fd = open(paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0) {
            log_error("event=landlock role=%s path=\"%s\" status=skipped error=\"%s\"", role,
                      paths[i], strerror(errno));
            continue;
        }
        memset(&pb, 0, sizeof(pb));
        pb.allowed_access = MAILDIR_RIGHTS & handled;
        pb.parent_fd = fd;
        if (syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &pb, 0) < 0)
            fatal("event=landlock_failed role=%s step=add_rule path=\"%s\" error=\"%s\"", role,
                  paths[i], strerror(errno));
        close(fd);
        added++;
    }
    return added;
}

int landlock_allow_beneath(const char *role, const char *const *paths, size_t n)
{
    struct ruleset_attr attr;
    size_t size = sizeof(attr.handled_access_fs), added;
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, CREATE_RULESET_VERSION);
    int fd;

    if (abi < 1) {
        log_warn("event=landlock role=%s status=unavailable reason=\"%s\"", role,
                 strerror(errno));
        return 0;
    }
    memset(&attr, 0, sizeof(attr));
    attr.handled_access_fs = fs_rights((int)abi);
    if (abi >= 4) {
        attr.handled_access_net = 3;    /* BIND_TCP | CONNECT_TCP */
        size = sizeof(attr);
    }
    fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0)
        fatal("event=landlock_failed role=%s step=create error=\"%s\"", role, strerror(errno));
    added = add_beneath_rules(role, fd, attr.handled_access_fs, paths, n);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_landlock_restrict_self, fd, 0) < 0)
        fatal("event=landlock_failed role=%s step=restrict error=\"%s\"", role, strerror(errno));
    close(fd);
    log_info("event=landlock role=%s status=active abi=%ld files=maildir_roots roots=%zu%s",
             role, abi, added, size == sizeof(attr) ? " tcp_bind_connect=none" : "");
    return (int)abi;
}

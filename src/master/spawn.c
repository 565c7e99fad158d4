/*
 * spawn.c - fork and exec a role (see spawn.h). Between fork and exec
 * the child calls only async-signal-safe functions.
 */
#define _GNU_SOURCE 1
#include "master/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sandbox/role.h"
#include "util/log.h"

/* The signals the master handles (libevent's handlers write into a pipe
 * the child would share): back to their defaults before they unblock. */
static const int handled[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };

int spawn_open_self(void)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        fatal("event=start_failed error=\"open /proc/self/exe: %s\"", strerror(errno));
    return fd;
}

static void child_fail(const char *what)
{
    static const char head[] = "level=error event=spawn_failed step=";
    char tail[96] = " error=\"";
    size_t n = strlen(tail);
    const char *why = strerrordesc_np(errno);   /* a constant: no locale, no allocation */

    while (why && *why && n < sizeof(tail) - 3)
        tail[n++] = *why++;
    tail[n++] = '"';
    tail[n++] = '\n';
    if (write(STDERR_FILENO, head, sizeof(head) - 1) < 0 ||
        write(STDERR_FILENO, what, strlen(what)) < 0 || write(STDERR_FILENO, tail, n) < 0) {
        /* nothing left to report with */
    }
    _exit(127);
}

/* Every descriptor from first on: close-on-exec. */
static void cloexec_from(int first)
{
    struct rlimit rl;

    if (close_range((unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    /* Kernels before 5.11: one by one, up to the descriptor limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > (1u << 20))
        rl.rlim_cur = 1u << 20;
    for (int fd = first; fd < (int)rl.rlim_cur; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* In the child: fds[i] to ROLE_FD_CONFIG + i. Copies above every target
 * first, so that no move overwrites a descriptor still to be moved (the
 * binary's too: returns its new number). */
static int place_fds(int exe, const int *fds, size_t n)
{
    int high[SPAWN_MAX_FDS];
    int end = ROLE_FD_CONFIG + (int)n;

    exe = fcntl(exe, F_DUPFD_CLOEXEC, end);
    if (exe < 0)
        child_fail("dup");
    for (size_t i = 0; i < n; i++) {
        high[i] = fcntl(fds[i], F_DUPFD, end);
        if (high[i] < 0)
            child_fail("dup");
    }
    for (size_t i = 0; i < n; i++) {
        if (dup2(high[i], ROLE_FD_CONFIG + (int)i) < 0)     /* clears close-on-exec */
            child_fail("dup2");
    }
    cloexec_from(end);
    return exe;
}

static void exec_child(pid_t master, int exe, char *const argv[], const int *fds, size_t n,
                       const sigset_t *mask)
{
    struct sigaction dfl;
    sigset_t start_mask, early;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master)
        _exit(1);
    exe = place_fds(exe, fds, n);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaction(handled[i], &dfl, NULL);
    /* The role's own signals stay blocked across the exec, until it has
     * its handlers (role.h). */
    role_signals(&early);
    sigorset(&start_mask, mask, &early);
    sigprocmask(SIG_SETMASK, &start_mask, NULL);
    fexecve(exe, argv, environ);
    child_fail("exec");
}

pid_t spawn_role(int exe, char *const argv[], const int *fds, size_t n)
{
    sigset_t all, old;
    pid_t master = getpid(), pid;
    int saved;

    if (n > SPAWN_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        exec_child(master, exe, argv, fds, n, &old);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
}

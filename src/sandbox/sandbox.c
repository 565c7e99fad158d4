/*
 * sandbox.c - seccomp filters (see sandbox.h). A forbidden call in the
 * smtpd role traps: the handler writes one log line naming the system
 * call, then the process dies with SIGSYS.
 */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/landlock.h"
#include "util/log.h"

/* Sanitizer builds, and profiling builds (cmake -DSEALPOST_PROFILE=ON,
 * for valgrind, which cannot run under a seccomp filter), have none. */
#if defined(__SANITIZE_ADDRESS__) || defined(SEALPOST_NO_SANDBOX)
#define NO_SANDBOX_BUILD 1
#else
#define NO_SANDBOX_BUILD 0
#endif

static const int smtpd_allowed[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(close), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
    SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(accept), SCMP_SYS(accept4),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_create1), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(ioctl), SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt), SCMP_SYS(shutdown), SCMP_SYS(mmap), SCMP_SYS(munmap),
    SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(madvise), SCMP_SYS(mprotect),
    SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getuid), SCMP_SYS(geteuid),
    SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(exit), SCMP_SYS(exit_group),
    SCMP_SYS(getrandom), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(restart_syscall), SCMP_SYS(sched_yield), SCMP_SYS(tgkill), SCMP_SYS(eventfd2),
    SCMP_SYS(pipe2), SCMP_SYS(prlimit64), SCMP_SYS(getrlimit), SCMP_SYS(uname),
    SCMP_SYS(getppid), SCMP_SYS(kill),
};

/* Files and new sockets: refused, not fatal (libraries may try lazily).
 * lseek too: the message descriptor is append-only anyway, and nothing
 * else a worker holds is seekable. */
static const int smtpd_refused[] = {
    SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(stat), SCMP_SYS(access),
    SCMP_SYS(lseek),
};

/* The delivery role, on top of smtpd_allowed: new sockets (DNS over UDP
 * and TCP, SMTP client; socket() itself is limited to IPv4 and IPv6 by an
 * argument rule), and threads (libunbound resolves in one). */
static const int delivery_allowed[] = {
    SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg),
    SCMP_SYS(select), SCMP_SYS(pselect6), SCMP_SYS(clone), SCMP_SYS(clone3),
    SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(set_tid_address),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(sysinfo), SCMP_SYS(dup), SCMP_SYS(dup2),
    SCMP_SYS(dup3), SCMP_SYS(fcntl), SCMP_SYS(lseek),
};

/* The delivery role: files are refused (a library that looks for one
 * lazily gets EACCES); a socket of any other family traps. */
static const int delivery_refused[] = {
    SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(stat), SCMP_SYS(access),
};

/* The queue role: spool files, Maildirs, the scheduler thread. No network
 * at all: remote delivery is the delivery process's job. */
static const int queue_allowed[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(creat),
    SCMP_SYS(stat), SCMP_SYS(fstat), SCMP_SYS(lstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
    SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink),
    SCMP_SYS(readlinkat), SCMP_SYS(lseek), SCMP_SYS(fsync), SCMP_SYS(fdatasync),
    SCMP_SYS(ftruncate), SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(rename),
    SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
    SCMP_SYS(link), SCMP_SYS(linkat), SCMP_SYS(getdents64), SCMP_SYS(fchmod),
    SCMP_SYS(umask), SCMP_SYS(getcwd), SCMP_SYS(flock), SCMP_SYS(dup), SCMP_SYS(dup2),
    SCMP_SYS(dup3), SCMP_SYS(fcntl), SCMP_SYS(ioctl), SCMP_SYS(pipe2), SCMP_SYS(eventfd2),
    SCMP_SYS(getsockname), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(shutdown),
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(poll), SCMP_SYS(ppoll),
    SCMP_SYS(select), SCMP_SYS(pselect6), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(mmap), SCMP_SYS(munmap),
    SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk),
    SCMP_SYS(futex), SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq), SCMP_SYS(set_tid_address), SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(exit), SCMP_SYS(exit_group),
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
    SCMP_SYS(getegid), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall),
    SCMP_SYS(tgkill), SCMP_SYS(getrandom), SCMP_SYS(uname), SCMP_SYS(sysinfo),
    SCMP_SYS(prlimit64), SCMP_SYS(getrlimit), SCMP_SYS(arch_prctl),
    SCMP_SYS(accept4),      /* `sealpost queue` on the control socket */
};

/* Never, in any role: killed on sight. */
static const int queue_denied[] = {
    SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
    SCMP_SYS(process_vm_writev), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
    SCMP_SYS(chroot), SCMP_SYS(init_module), SCMP_SYS(finit_module),
    SCMP_SYS(delete_module), SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load),
    SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(setuid),
    SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid), SCMP_SYS(setresuid),
    SCMP_SYS(setresgid), SCMP_SYS(setgroups), SCMP_SYS(setfsuid), SCMP_SYS(setfsgid),
    SCMP_SYS(capset), SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd),
    SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key), SCMP_SYS(unshare),
    SCMP_SYS(setns), SCMP_SYS(acct), SCMP_SYS(settimeofday), SCMP_SYS(clock_settime),
    SCMP_SYS(adjtimex), SCMP_SYS(sethostname), SCMP_SYS(setdomainname), SCMP_SYS(iopl),
    SCMP_SYS(ioperm), SCMP_SYS(mknod), SCMP_SYS(mknodat), SCMP_SYS(open_by_handle_at),
    SCMP_SYS(name_to_handle_at), SCMP_SYS(fanotify_init), SCMP_SYS(quotactl),
};

/* async-signal-safe: report the system call that was refused, then die. */
static void on_sigsys(int sig, siginfo_t *info, void *ctx)
{
    char line[96] = "level=error event=seccomp_violation syscall=";
    size_t n = strlen(line);
    char digits[16];
    int len = 0, nr = info->si_syscall;

    (void)ctx;
    do {
        digits[len++] = (char)('0' + nr % 10);
        nr /= 10;
    } while (nr > 0 && len < (int)sizeof(digits));
    while (len > 0 && n < sizeof(line) - 24)
        line[n++] = digits[--len];
    memcpy(line + n, " action=kill\n", 13);
    if (write(STDERR_FILENO, line, n + 13) < 0) {
        /* nothing left to do */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void add_rules(scmp_filter_ctx ctx, uint32_t action, const int *calls, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (calls[i] < 0)
            continue;       /* not on this architecture */
        if (seccomp_rule_add(ctx, action, calls[i], 0) < 0)
            fatal("event=sandbox_failed error=\"rule for syscall %d\"", calls[i]);
    }
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Trap (log, then die) on anything not listed. */
static scmp_filter_ctx trapping_filter(const char *name)
{
    struct sigaction sa;
    scmp_filter_ctx ctx;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    ctx = seccomp_init(SCMP_ACT_TRAP);
    if (ctx == NULL)
        fatal("event=sandbox_failed role=%s", name);
    add_rules(ctx, SCMP_ACT_ALLOW, smtpd_allowed, COUNT(smtpd_allowed));
    return ctx;
}

/*
 * A worker's message descriptor is append-only (the queue opened it with
 * O_APPEND after writing the envelope): fcntl may do anything but clear
 * that flag, so the worker can add the message body and never rewrite
 * the envelope. F_SETFL without O_APPEND fails with EPERM.
 */
static void allow_fcntl_keeping_append(scmp_filter_ctx ctx)
{
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                         SCMP_A1(SCMP_CMP_NE, F_SETFL)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2,
                         SCMP_A1(SCMP_CMP_EQ, F_SETFL),
                         SCMP_A2(SCMP_CMP_MASKED_EQ, O_APPEND, O_APPEND)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fcntl), 2,
                         SCMP_A1(SCMP_CMP_EQ, F_SETFL),
                         SCMP_A2(SCMP_CMP_MASKED_EQ, O_APPEND, 0)) < 0)
        fatal("event=sandbox_failed error=\"fcntl rules\"");
}

static void allow_inet_sockets(scmp_filter_ctx ctx)
{
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_EQ, AF_INET)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_EQ, AF_INET6)) < 0)
        fatal("event=sandbox_failed error=\"socket rules\"");
}

void sandbox_enter(enum sandbox_role role)
{
    sandbox_enter_paths(role, NULL, 0);
}

void sandbox_enter_paths(enum sandbox_role role, const char *const *paths, size_t n)
{
    const char *name = role == SANDBOX_SMTPD ? "smtpd"
                     : role == SANDBOX_DELIVERY ? "delivery"
                     : role == SANDBOX_LOCAL ? "local"
                     : role == SANDBOX_LMTP ? "lmtp"
                     : role == SANDBOX_MILTER ? "milter"
                     : role == SANDBOX_METRICS ? "metrics" : "queue";
    scmp_filter_ctx ctx;

    if (NO_SANDBOX_BUILD) {
        log_warn("event=sandbox role=%s status=disabled reason=\"sanitizer or profiling "
                 "build\"", name);
        return;
    }
    /* Landlock first: its system calls are not on the seccomp lists. */
    if (role == SANDBOX_SMTPD || role == SANDBOX_METRICS)
        landlock_deny_files(name, true);        /* workers never connect or bind */
    else if (role == SANDBOX_DELIVERY || role == SANDBOX_LMTP || role == SANDBOX_MILTER)
        landlock_deny_files(name, false);       /* delivery connects out */
    else if (role == SANDBOX_LOCAL)
        landlock_allow_beneath(name, paths, n); /* its Maildir roots only */
    if (role == SANDBOX_SMTPD || role == SANDBOX_METRICS) {
        ctx = trapping_filter(name);
        add_rules(ctx, SCMP_ACT_ERRNO(EACCES), smtpd_refused, COUNT(smtpd_refused));
        allow_fcntl_keeping_append(ctx);
    } else if (role == SANDBOX_DELIVERY || role == SANDBOX_LMTP || role == SANDBOX_MILTER) {
        ctx = trapping_filter(name);
        add_rules(ctx, SCMP_ACT_ALLOW, delivery_allowed, COUNT(delivery_allowed));
        add_rules(ctx, SCMP_ACT_ERRNO(EACCES), delivery_refused, COUNT(delivery_refused));
        allow_inet_sockets(ctx);
        if ((role == SANDBOX_LMTP || role == SANDBOX_MILTER) &&  /* unix: sockets (the
                                                                   chroot limits which) */
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                             SCMP_A0(SCMP_CMP_EQ, AF_UNIX)) < 0)
            fatal("event=sandbox_failed error=\"socket rules\"");
        /* the milter role hands a rewritten message to the queue in a
         * sealed memory file */
        if (role == SANDBOX_MILTER &&
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(memfd_create), 0) < 0)
            fatal("event=sandbox_failed error=\"memfd rule\"");
    } else {
        /* Anything not listed fails with EPERM (a rare code path in a
         * library fails instead of taking delivery down); the dangerous
         * calls kill. */
        ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (ctx == NULL)
            fatal("event=sandbox_failed role=%s", name);
        add_rules(ctx, SCMP_ACT_ALLOW, queue_allowed, COUNT(queue_allowed));
        add_rules(ctx, SCMP_ACT_KILL_PROCESS, queue_denied, COUNT(queue_denied));
    }
    /* Threads already running get the filter too. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) < 0 || seccomp_load(ctx) < 0)
        fatal("event=sandbox_failed role=%s error=\"seccomp_load: %s\"", name, strerror(errno));
    seccomp_release(ctx);
    log_info("event=sandbox role=%s status=active mode=allow-list", name);
}

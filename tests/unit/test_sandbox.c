/*
 * test_sandbox.c - the smtpd worker's seccomp filter (sandbox/sandbox.c)
 * on the running kernel, for what keeps the queue the only authority
 * over the envelope: on an append-only descriptor (as the queue lends
 * one per message) the worker can append, but cannot clear O_APPEND,
 * seek, or write at an offset. Each case runs in a forked child (a
 * filter cannot be undone). Skipped in sanitizer builds, which run
 * without a filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static char path[64];

static int append_only_stays_append_only(void)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

    if (fd < 0)
        return 10;
    sandbox_enter(SANDBOX_SMTPD);
    if (write(fd, "body", 4) != 4)
        return 11;                      /* appending is the job */
    if (fcntl(fd, F_SETFL, 0) != -1 || errno != EPERM)
        return 12;                      /* clearing O_APPEND is refused */
    if (fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK) != 0)
        return 13;                      /* other flags may change */
    if (!(fcntl(fd, F_GETFL) & O_APPEND))
        return 14;
    if (lseek(fd, 0, SEEK_SET) != -1 || errno != EACCES)
        return 15;
    if (write(fd, "!", 1) != 1)
        return 16;
    return 0;
}

static int pwrite_is_fatal(void)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

    if (fd < 0)
        return 10;
    sandbox_enter(SANDBOX_SMTPD);
    if (pwrite(fd, "X", 1, 0) >= 0)
        return 11;
    return 12;                          /* not reached: the filter kills */
}

/* Run fn in a child; its wait status. */
static int in_child(int (*fn)(void))
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        /* the filter's violation report goes to stderr: keep it quiet */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        _exit(fn());
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_envelope_cannot_be_rewritten(void **state)
{
    char buf[64] = "";
    int status, fd;
    ssize_t n;

    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip();
#endif
    snprintf(path, sizeof(path), "/tmp/sealpost-sandbox-test.%ld", (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "envelope\n", 9), 9);
    close(fd);

    status = in_child(append_only_stays_append_only);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    status = in_child(pwrite_is_fatal);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);

    fd = open(path, O_RDONLY);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    assert_string_equal(buf, "envelope\nbody!");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_cannot_be_rewritten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_landlock.c - sandbox/landlock.c on the running kernel: after
 * landlock_deny_files() a process can open no file and (with deny_tcp,
 * ABI 4+) connect no TCP socket, while descriptors it already had keep
 * working. Each case runs in a forked child (Landlock cannot be undone).
 * Skipped when the kernel has no Landlock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/landlock.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif

static long kernel_abi(void)
{
    return syscall(SYS_landlock_create_ruleset, NULL, 0, 1U);
}

/* Run fn in a child; its exit status is the test's verdict. */
static int in_child(int (*fn)(void))
{
    int status;
    pid_t pid = fork();

    if (pid == 0)
        _exit(fn());
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int files_denied(void)
{
    char buf[16];
    int before = open("/proc/self/status", O_RDONLY);

    if (before < 0 || landlock_deny_files("test", false) < 1)
        return 10;
    if (open("/etc/hostname", O_RDONLY) >= 0 || errno != EACCES)
        return 11;                              /* reading a new file */
    if (open("/tmp/sealpost-landlock-test", O_WRONLY | O_CREAT, 0600) >= 0)
        return 12;                              /* creating one */
    if (read(before, buf, sizeof(buf)) <= 0)
        return 13;                              /* an old descriptor still works */
    return 0;
}

static int tcp_connect_denied(void)
{
    struct sockaddr_in sin;
    int s = socket(AF_INET, SOCK_STREAM, 0);

    if (s < 0 || landlock_deny_files("test", true) < 4)
        return 20;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno != EACCES)
        return 21;
    return 0;
}

static void test_no_file_can_be_opened(void **state)
{
    (void)state;
    if (kernel_abi() < 1)
        skip();
    assert_int_equal(in_child(files_denied), 0);
}

static void test_no_tcp_connect_with_deny_tcp(void **state)
{
    (void)state;
    if (kernel_abi() < 4)
        skip();
    assert_int_equal(in_child(tcp_connect_denied), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_file_can_be_opened),
        cmocka_unit_test(test_no_tcp_connect_with_deny_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

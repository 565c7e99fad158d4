/*
 * test_metrics.c - unit tests for util/metrics.c and metrics/metrics_render.c:
 * a block made by the master, counted into by forked writers (as roles
 * are), read back through a read-only descriptor that cannot be mapped
 * for writing, refused when it is not a block, and rendered: HELP/TYPE
 * lines, sums over blocks, cumulative histogram buckets.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/metrics_render.h"
#include "util/memfd.h"
#include "util/metrics.h"

static char *render(const struct config *cfg, const struct metrics_block *const *b, size_t n)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    char *text;

    metrics_render(out, cfg, b, n, 1000);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    return text;
}

static void test_writers_in_other_processes_add_up(void **state)
{
    int fd, ro;
    struct metrics_block *b = metrics_create("test", &fd);
    const struct metrics_block *r;
    char why[256];

    (void)state;
    assert_non_null(b);
    for (int child = 0; child < 4; child++) {
        pid_t pid = fork();

        if (pid == 0) {
            metrics_self = metrics_attach(fd, true, why, sizeof(why));
            for (int i = 0; i < 10000; i++)
                metrics_rcpt(METRICS_RCPT_ACCEPTED);
            _exit(metrics_self ? 0 : 1);
        }
    }
    for (int child = 0; child < 4; child++) {
        int st;

        assert_true(wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ro = metrics_reopen_readonly(fd);
    assert_true(ro >= 0);
    r = metrics_attach(ro, false, why, sizeof(why));
    assert_non_null(r);
    assert_int_equal(r->counter[METRICS_C_RCPT + METRICS_RCPT_ACCEPTED], 40000);
    /* the read-only descriptor cannot become a writable mapping */
    assert_true(mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
    assert_null(metrics_attach(ro, true, why, sizeof(why)));
    metrics_detach(r);
    metrics_detach(b);
    close(ro);
    close(fd);
}

static void test_not_a_block_is_refused(void **state)
{
    char junk[sizeof(struct metrics_block)];
    char why[256];
    int fd;

    (void)state;
    memset(junk, 0x41, sizeof(junk));
    fd = memfd_sealed("junk", junk, sizeof(junk));
    assert_true(fd >= 0);
    assert_null(metrics_attach(fd, false, why, sizeof(why)));
    assert_non_null(strstr(why, "header"));
    close(fd);
    fd = memfd_sealed("short", junk, 16);
    assert_null(metrics_attach(fd, false, why, sizeof(why)));
    close(fd);
    assert_null(metrics_attach(0, false, why, sizeof(why)));
}

static void test_calls_without_a_block_do_nothing(void **state)
{
    (void)state;
    metrics_self = NULL;
    metrics_rcpt(METRICS_RCPT_ACCEPTED);
    metrics_observe(METRICS_H_FSYNC_USEC, 5);
    metrics_gauge_set(METRICS_G_QUEUE_MESSAGES, 3);
}

static void test_render_sums_blocks(void **state)
{
    static struct config cfg;
    int fd1, fd2;
    struct metrics_block *a = metrics_create("a", &fd1), *b = metrics_create("b", &fd2);
    const struct metrics_block *blocks[2] = { a, b };
    char *text;

    (void)state;
    snprintf(cfg.listeners[0].name, sizeof(cfg.listeners[0].name), "mx");
    cfg.listener_count = 1;
    metrics_self = a;
    metrics_connection(0, METRICS_CONN_STARTTLS);
    metrics_connection(99, METRICS_CONN_STARTTLS);     /* out of range: nothing */
    metrics_outcome(METRICS_TRANSPORT_MAILDIR, METRICS_OUTCOME_DELIVERED);
    metrics_observe(METRICS_H_FSYNC_USEC, 700);         /* 0.0007 s: le=0.001 */
    metrics_gauge_set(METRICS_G_QUEUE_OLDEST_ARRIVAL, 990);
    metrics_self = b;
    metrics_connection(0, METRICS_CONN_STARTTLS);
    metrics_tls(METRICS_DIR_INBOUND, 0x0304);
    metrics_observe(METRICS_H_FSYNC_USEC, 2000000);     /* 2 s: le=5 */
    metrics_gauge_set(METRICS_G_QUEUE_MESSAGES, 4);
    metrics_self = NULL;
    text = render(&cfg, blocks, 2);
    assert_non_null(strstr(text, "# TYPE sealpost_smtpd_connections_total counter\n"));
    assert_non_null(strstr(text, "sealpost_smtpd_connections_total{listener=\"mx\","
                                 "tls=\"starttls\"} 2\n"));
    assert_non_null(strstr(text, "sealpost_deliveries_total{transport=\"maildir\","
                                 "outcome=\"delivered\"} 1\n"));
    assert_non_null(strstr(text, "sealpost_tls_sessions_total{direction=\"inbound\","
                                 "version=\"TLSv1.3\"} 1\n"));
    assert_non_null(strstr(text, "sealpost_queue_messages 4\n"));
    assert_non_null(strstr(text, "sealpost_queue_oldest_message_age_seconds 10\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_bucket{le=\"5\"} 2\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_sum 2.0007\n"));
    assert_non_null(strstr(text, "sealpost_queue_fsync_seconds_count 2\n"));
    free(text);
    metrics_detach(a);
    metrics_detach(b);
    close(fd1);
    close(fd2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers_in_other_processes_add_up),
        cmocka_unit_test(test_not_a_block_is_refused),
        cmocka_unit_test(test_calls_without_a_block_do_nothing),
        cmocka_unit_test(test_render_sums_blocks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_remote_codec.c - unit tests for mail/remote_codec.c, the job
 * and result messages between the queue and the delivery process: round
 * trips, the largest job still fitting one IPC message, and results a
 * compromised delivery process could send (refused or cleaned).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/remote_codec.h"
#include "util/ipc.h"

static char buf[IPC_MAX_PAYLOAD];
static struct remote_result_msg res, back;
static struct remote_job_msg job;

static void fill_envelope(struct envelope *env, size_t rcpts, bool longest)
{
    char addr[ADDR_PATH_MAX + 1], orcpt[DSN_ORCPT_MAX + 1];

    envelope_init(env);
    snprintf(env->id, sizeof(env->id), "0123456789ABCDEF");
    env->arrival = 1700000000;
    snprintf(env->client, sizeof(env->client), "192.0.2.1");
    snprintf(env->helo, sizeof(env->helo), "client.example");
    snprintf(env->from, sizeof(env->from), "alice@example.test");
    if (longest) {
        memset(env->helo, 'h', sizeof(env->helo) - 1);
        memset(env->from, 'f', sizeof(env->from) - 20);
        memcpy(env->from + sizeof(env->from) - 20, "@example.test", 14);
        memset(env->envid, 'e', sizeof(env->envid) - 1);
    }
    for (size_t i = 0; i < rcpts; i++) {
        snprintf(addr, sizeof(addr), "user%zu@example.net", i);
        orcpt[0] = '\0';
        if (longest) {
            memset(addr, 'a', ADDR_PATH_MAX - 2 - 13);
            snprintf(addr + ADDR_PATH_MAX - 2 - 13, 14, "@example.test");
            memset(orcpt, 'o', DSN_ORCPT_MAX);
            memcpy(orcpt, "rfc822;", 7);
            orcpt[DSN_ORCPT_MAX] = '\0';
        }
        envelope_add_rcpt(env, addr, 0xf & ~0u, orcpt);
    }
}

static void test_job_round_trip_picks_the_recipients(void **state)
{
    struct envelope env;
    size_t pick[] = { 3, 0 };
    size_t len;
    char err[128];

    (void)state;
    fill_envelope(&env, 5, false);
    assert_true(remote_job_encode(42, "example.net", &env, pick, 2, 1234, 99, buf,
                                  sizeof(buf), &len));
    assert_true(remote_job_decode(buf, len, &job, err, sizeof(err)));
    assert_int_equal(job.job_id, 42);
    assert_int_equal(job.body_offset, 1234);
    assert_int_equal(job.body_size, 99);
    assert_string_equal(job.destination, "example.net");
    assert_int_equal(job.env.rcpt_count, 2);
    assert_string_equal(job.env.rcpts[0].addr, "user3@example.net");
    assert_string_equal(job.env.rcpts[1].addr, "user0@example.net");
    assert_string_equal(job.env.from, "alice@example.test");
    assert_string_equal(job.env.id, env.id);
    envelope_clear(&job.env);
    envelope_clear(&env);
}

static void test_largest_job_fits_one_message(void **state)
{
    struct envelope env;
    size_t pick[REMOTE_JOB_MAX_RCPTS];
    size_t len;
    char err[128];

    (void)state;
    fill_envelope(&env, REMOTE_JOB_MAX_RCPTS + 1, true);
    for (size_t i = 0; i < REMOTE_JOB_MAX_RCPTS; i++)
        pick[i] = i;
    assert_true(remote_job_encode(1, "example.test", &env, pick, REMOTE_JOB_MAX_RCPTS, 0, 1,
                                  buf, sizeof(buf), &len));
    assert_true(len <= IPC_MAX_PAYLOAD);
    assert_true(remote_job_decode(buf, len, &job, err, sizeof(err)));
    assert_int_equal(job.env.rcpt_count, REMOTE_JOB_MAX_RCPTS);
    assert_int_equal(strlen(job.env.rcpts[0].orcpt), DSN_ORCPT_MAX);
    envelope_clear(&job.env);
    /* one more recipient than a job may carry, or none: refused */
    size_t many[REMOTE_JOB_MAX_RCPTS + 1];
    for (size_t i = 0; i <= REMOTE_JOB_MAX_RCPTS; i++)
        many[i] = i;
    assert_false(remote_job_encode(1, "example.test", &env, many, REMOTE_JOB_MAX_RCPTS + 1, 0,
                                   1, buf, sizeof(buf), &len));
    assert_false(remote_job_encode(1, "example.test", &env, many, 0, 0, 1, buf, sizeof(buf),
                                   &len));
    envelope_clear(&env);
}

static void test_job_decode_refuses_damage(void **state)
{
    struct envelope env;
    size_t pick[] = { 0 };
    size_t len;
    char err[128];

    (void)state;
    fill_envelope(&env, 1, false);
    assert_true(remote_job_encode(7, "example.net", &env, pick, 1, 10, 10, buf, sizeof(buf),
                                  &len));
    envelope_clear(&env);
    /* cut anywhere: never accepted */
    for (size_t cut = 0; cut < len; cut++)
        assert_false(remote_job_decode(buf, cut, &job, err, sizeof(err)));
    /* a destination with a space or upper case */
    char copy[sizeof(buf)];
    memcpy(copy, buf, len);
    memcpy(copy + 24, "Exa mple", 8);
    assert_false(remote_job_decode(copy, len, &job, err, sizeof(err)));
    /* a negative body offset */
    memcpy(copy, buf, len);
    int64_t neg = -1;
    memcpy(copy + 8, &neg, sizeof(neg));
    assert_false(remote_job_decode(copy, len, &job, err, sizeof(err)));
}

static void sample_result(size_t count)
{
    memset(&res, 0, sizeof(res));
    res.job_id = 9;
    res.dsn_passed = true;
    snprintf(res.relay, sizeof(res.relay), "mx.example.net[192.0.2.7]:25");
    snprintf(res.tls, sizeof(res.tls), "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384");
    res.count = count;
    for (size_t i = 0; i < count; i++) {
        res.results[i].outcome = i % 3 == 0 ? SMTP_DELIVERED : i % 3 == 1 ? SMTP_DEFERRED
                                                                          : SMTP_FAILED;
        res.results[i].code = i % 3 == 0 ? 250 : i % 3 == 1 ? 451 : 550;
        snprintf(res.results[i].dsn, sizeof(res.results[i].dsn), "%s",
                 i % 3 == 0 ? "2.0.0" : i % 3 == 1 ? "4.7.1" : "5.1.1");
        snprintf(res.results[i].text, sizeof(res.results[i].text), "reply %zu", i);
    }
}

static void test_result_round_trip(void **state)
{
    size_t len;
    char err[128];

    (void)state;
    sample_result(REMOTE_JOB_MAX_RCPTS);
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_true(len > 0 && len <= IPC_MAX_PAYLOAD);
    assert_true(remote_result_decode(buf, len, &back, err, sizeof(err)));
    assert_int_equal(back.job_id, 9);
    assert_true(back.dsn_passed);
    assert_string_equal(back.relay, res.relay);
    assert_string_equal(back.tls, res.tls);
    assert_int_equal(back.count, REMOTE_JOB_MAX_RCPTS);
    for (size_t i = 0; i < back.count; i++) {
        assert_int_equal(back.results[i].outcome, res.results[i].outcome);
        assert_int_equal(back.results[i].code, res.results[i].code);
        assert_string_equal(back.results[i].dsn, res.results[i].dsn);
        assert_string_equal(back.results[i].text, res.results[i].text);
    }
    sample_result(0);
    assert_int_equal(remote_result_encode(&res, buf, sizeof(buf)), 0);
}

/* Offsets in the wire form: header 8 + 4 + 4 + 300 + 256 (+ 4 padding to
 * the 8-byte alignment of its first field), then items of 4 + 4 + 16 + 512. */
#define HDR 576
#define ITEM 536

static void test_result_structural_faults_are_refused(void **state)
{
    size_t len;
    char err[128], copy[sizeof(buf)];
    uint32_t v;
    int32_t code;

    (void)state;
    sample_result(2);
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_int_equal(len, HDR + 2 * ITEM);
    for (size_t cut = 0; cut < len; cut++)
        assert_false(remote_result_decode(buf, cut, &back, err, sizeof(err)));
    /* count says 3, two items follow */
    memcpy(copy, buf, len);
    v = 3;
    memcpy(copy + 12, &v, 4);
    assert_false(remote_result_decode(copy, len, &back, err, sizeof(err)));
    /* count 0 */
    v = 0;
    memcpy(copy + 12, &v, 4);
    assert_false(remote_result_decode(copy, HDR, &back, err, sizeof(err)));
    /* relay without its NUL */
    memcpy(copy, buf, len);
    memset(copy + 16, 'r', 300);
    assert_false(remote_result_decode(copy, len, &back, err, sizeof(err)));
    /* an outcome out of range */
    memcpy(copy, buf, len);
    v = 3;
    memcpy(copy + HDR, &v, 4);
    assert_false(remote_result_decode(copy, len, &back, err, sizeof(err)));
    /* a reply code out of range */
    memcpy(copy, buf, len);
    code = 700;
    memcpy(copy + HDR + 4, &code, 4);
    assert_false(remote_result_decode(copy, len, &back, err, sizeof(err)));
    /* text without its NUL */
    memcpy(copy, buf, len);
    memset(copy + HDR + ITEM + 24, 'x', 512);
    assert_false(remote_result_decode(copy, len, &back, err, sizeof(err)));
}

static void test_result_text_is_cleaned_not_refused(void **state)
{
    size_t len;
    char err[128];

    (void)state;
    sample_result(3);
    snprintf(res.results[0].text, sizeof(res.results[0].text), "ok\r\nBcc: x\x1b[1m");
    snprintf(res.results[1].dsn, sizeof(res.results[1].dsn), "4.77777.1");
    snprintf(res.results[2].dsn, sizeof(res.results[2].dsn), "9.1.1");
    snprintf(res.relay, sizeof(res.relay), "evil\nrelay");
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_true(remote_result_decode(buf, len, &back, err, sizeof(err)));
    assert_string_equal(back.results[0].text, "ok??Bcc: x?[1m");
    assert_string_equal(back.results[1].dsn, "4.0.0");     /* by its outcome */
    assert_string_equal(back.results[2].dsn, "5.0.0");
    assert_string_equal(back.relay, "evil?relay");
    /* an empty status code gets the default of its outcome too */
    res.results[0].dsn[0] = '\0';
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_true(remote_result_decode(buf, len, &back, err, sizeof(err)));
    assert_string_equal(back.results[0].dsn, "2.0.0");
}

/* An outcome its own status contradicts is refused (remote_codec.h). */
static void test_result_outcome_must_agree_with_status(void **state)
{
    static const struct {
        enum smtp_outcome outcome;
        int code;
        const char *dsn;
        bool ok;
    } cases[] = {
        { SMTP_DELIVERED, 250, "2.0.0", true },
        { SMTP_DELIVERED, 250, "5.1.1", false },    /* the example */
        { SMTP_DELIVERED, 250, "4.2.0", false },
        { SMTP_DELIVERED, 550, "2.0.0", false },
        { SMTP_DELIVERED, 451, "4.3.0", false },
        { SMTP_DELIVERED, 0, "2.0.0", false },      /* no reply, no delivery */
        { SMTP_DEFERRED, 250, "4.5.0", true },      /* a reply out of turn */
        { SMTP_DEFERRED, 0, "2.0.0", false },
        { SMTP_DEFERRED, 550, "5.1.1", true },      /* next MX may take it */
        { SMTP_FAILED, 550, "2.1.5", false },
        { SMTP_FAILED, 250, "5.0.0", false },
        { SMTP_FAILED, 0, "5.3.4", true },
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;

        sample_result(1);
        res.results[0].outcome = cases[i].outcome;
        res.results[0].code = cases[i].code;
        snprintf(res.results[0].dsn, sizeof(res.results[0].dsn), "%s", cases[i].dsn);
        len = remote_result_encode(&res, buf, sizeof(buf));
        assert_true(len > 0);
        if (remote_result_decode(buf, len, &back, err, sizeof(err)) != cases[i].ok)
            fail_msg("case %zu: outcome %d code %d dsn %s", i, cases[i].outcome,
                     cases[i].code, cases[i].dsn);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip_picks_the_recipients),
        cmocka_unit_test(test_largest_job_fits_one_message),
        cmocka_unit_test(test_job_decode_refuses_damage),
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_result_structural_faults_are_refused),
        cmocka_unit_test(test_result_text_is_cleaned_not_refused),
        cmocka_unit_test(test_result_outcome_must_agree_with_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

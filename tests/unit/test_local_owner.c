/*
 * test_local_owner.c - unit tests for [domain] owner: its default (the
 * queue user), the list of local delivery slots (config_local_owners,
 * which the master, the queue and each local process must compute the
 * same way), a domain's slot, and maildir_target_for naming the domain
 * whose owner delivers (also after the postmaster redirect), which is
 * what the local process checks a job's recipients against. Also a
 * local job through the job codec the local channel uses: only the
 * job's recipients arrive, and a result claiming delivery with a
 * failure status is refused.
 *
 * Configs are parsed from memory (config_load_copy): no files.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "mail/maildir.h"
#include "mail/remote_codec.h"
#include "util/ipc.h"

#define HEAD \
    "[server]\nqueue_user = sealpost-queue\n" \
    "[listener mx]\naddress = 127.0.0.1:2525\n"

static struct config *load(const char *text)
{
    char err[1024] = "";
    struct config *cfg = config_load_copy(text, strlen(text), "/etc/sealpost/sealpost.conf",
                                          "mx.example.test", err, sizeof(err));

    if (cfg == NULL)
        fail_msg("config: %s", err);
    return cfg;
}

static void test_owner_defaults_to_queue_user(void **state)
{
    struct config *cfg = load(HEAD "[domain a.test]\nmaildir = /m/{domain}/{local}\n");
    const char *owners[CONFIG_MAX_DOMAINS];

    (void)state;
    assert_string_equal(cfg->domains[0].owner, "sealpost-queue");
    assert_int_equal(config_local_owners(cfg, owners), 0);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[0]), -1);
    config_free(cfg);
}

static void test_slots_follow_first_use(void **state)
{
    struct config *cfg = load(HEAD
        "[domain a.test]\nmaildir = /v/{domain}/{local}\nowner = vmail\n"
        "[domain b.test]\nmaildir = /m/{domain}/{local}\n"
        "[domain c.test]\nmaildir = /w/{domain}/{local}\nowner = web\n"
        "[domain d.test]\nmaildir = /v/{domain}/{local}\nowner = vmail\n"
        "[domain e.test]\nmaildir = /m/{domain}/{local}\nowner = sealpost-queue\n");
    const char *owners[CONFIG_MAX_DOMAINS];

    (void)state;
    assert_int_equal(config_local_owners(cfg, owners), 2);
    assert_string_equal(owners[0], "vmail");
    assert_string_equal(owners[1], "web");
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[0]), 0);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[1]), -1);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[2]), 1);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[3]), 0);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[4]), -1);   /* the queue user, named */
    config_free(cfg);
}

/* No user switch at all (queue_user empty, as in development): an owner
 * still gets its own process. */
static void test_empty_queue_user(void **state)
{
    struct config *cfg = load("[server]\nqueue_user =\n[listener mx]\naddress = 127.0.0.1:2525\n"
                              "[domain a.test]\nmaildir = /m/{local}\n"
                              "[domain b.test]\nmaildir = /v/{local}\nowner = vmail\n");
    const char *owners[CONFIG_MAX_DOMAINS];

    (void)state;
    assert_string_equal(cfg->domains[0].owner, "");
    assert_int_equal(config_local_owners(cfg, owners), 1);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[0]), -1);
    assert_int_equal(config_owner_slot(cfg, &cfg->domains[1]), 0);
    config_free(cfg);
}

static void test_bad_owner_refused(void **state)
{
    const char *text = HEAD "[domain a.test]\nmaildir = /m/{local}\nowner = bad user\n";
    char err[1024] = "";

    (void)state;
    assert_null(config_load_copy(text, strlen(text), "/etc/sealpost/sealpost.conf",
                                 "mx.example.test", err, sizeof(err)));
    assert_non_null(strstr(err, "owner"));
}

static void test_target_names_the_owning_domain(void **state)
{
    struct config *cfg = load(HEAD
        "[domain a.test]\nmaildir = /m/{domain}/{local}\n"
        "[domain v.test]\nmaildir = /v/{domain}/{local}\nowner = vmail\n");
    const struct domain_config *dc = NULL;
    char path[4096], err[256];

    (void)state;
    assert_true(maildir_target_for(cfg, "Dan@V.test", path, sizeof(path), &dc, err,
                                   sizeof(err)));
    assert_string_equal(path, "/v/v.test/dan");
    assert_string_equal(dc->name, "v.test");
    assert_int_equal(config_owner_slot(cfg, dc), 0);
    /* postmaster@ every domain goes to [server] postmaster (postmaster@a.test) */
    assert_true(maildir_target_for(cfg, "postmaster@v.test", path, sizeof(path), &dc, err,
                                   sizeof(err)));
    assert_string_equal(path, "/m/a.test/postmaster");
    assert_int_equal(config_owner_slot(cfg, dc), -1);
    assert_false(maildir_target_for(cfg, "x@other.test", path, sizeof(path), &dc, err,
                                    sizeof(err)));
    config_free(cfg);
}

/* A job to a local process carries only its recipients; its answer is
 * checked like any result. */
static void test_local_job_and_result(void **state)
{
    static struct remote_job_msg job;
    static struct remote_result_msg res, back;
    static char buf[IPC_MAX_PAYLOAD];
    struct envelope env;
    size_t idx[2] = { 2, 0 }, len;
    char err[256];

    (void)state;
    envelope_init(&env);
    snprintf(env.id, sizeof(env.id), "661D7153CC62F000");
    env.arrival = 1700000000;
    snprintf(env.client, sizeof(env.client), "192.0.2.1");
    snprintf(env.helo, sizeof(env.helo), "client.example");
    snprintf(env.from, sizeof(env.from), "x@example.net");
    envelope_add_rcpt(&env, "dan@v.test", 0, "");
    envelope_add_rcpt(&env, "alice@a.test", 0, "");
    envelope_add_rcpt(&env, "erin@v.test", 0, "");
    assert_true(remote_job_encode(7, "maildir", &env, idx, 2, 100, 5, buf, sizeof(buf), &len));
    assert_true(remote_job_decode(buf, len, &job, err, sizeof(err)));
    assert_int_equal(job.env.rcpt_count, 2);
    assert_string_equal(job.env.rcpts[0].addr, "erin@v.test");
    assert_string_equal(job.env.rcpts[1].addr, "dan@v.test");
    assert_string_equal(job.destination, "maildir");
    envelope_clear(&job.env);
    envelope_clear(&env);

    memset(&res, 0, sizeof(res));
    res.job_id = 7;
    res.count = 2;
    res.results[0] = (struct smtp_result){ .outcome = SMTP_DELIVERED, .code = 250,
                                           .dsn = "2.0.0", .text = "delivered to Maildir" };
    res.results[1] = (struct smtp_result){ .outcome = SMTP_DEFERRED, .dsn = "4.2.0",
                                           .text = "mkdir /v/x: Permission\ndenied" };
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_true(len > 0);
    assert_true(remote_result_decode(buf, len, &back, err, sizeof(err)));
    assert_int_equal(back.results[0].outcome, SMTP_DELIVERED);
    assert_string_equal(back.results[1].text, "mkdir /v/x: Permission?denied");
    /* "delivered" with a failure status: refused (the queue drops the channel) */
    res.results[0].code = 0;
    len = remote_result_encode(&res, buf, sizeof(buf));
    assert_false(remote_result_decode(buf, len, &back, err, sizeof(err)));
    assert_false(remote_result_decode(buf, len - 1, &back, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_defaults_to_queue_user),
        cmocka_unit_test(test_slots_follow_first_use),
        cmocka_unit_test(test_empty_queue_user),
        cmocka_unit_test(test_bad_owner_refused),
        cmocka_unit_test(test_target_names_the_owning_domain),
        cmocka_unit_test(test_local_job_and_result),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

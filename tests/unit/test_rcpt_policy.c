/*
 * test_rcpt_policy.c - mail/rcpt_policy.c: the recipient decision the
 * smtpd worker makes at RCPT and the queue makes again for every NEW.
 * The envelope check is what stands between a compromised worker and an
 * open relay: each case below is an envelope a worker could forge - a
 * relay recipient for a client outside trusted_networks, a mailbox that
 * does not exist, a protected mailbox in cleartext, too many recipients,
 * REQUIRETLS without TLS - and the queue must refuse every one of them,
 * while the same envelope from an allowed client passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/rcpt_policy.h"
#include "util/snapshot.h"
#include "unit_files.h"

static char dir[64];
static struct config *cfg;
static struct recipient_policy *rp;

static void write_file(const char *name, const char *text)
{
    unit_write_file(dir, name, text);
}

static int setup(void **state)
{
    char path[128], err[512];
    struct file_snapshot *files;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sealpost-rcpt-policy.%ld", (long)getpid());
    if (mkdir(dir, 0700) < 0)
        return -1;
    write_file("users", "alice\nbob\n");
    write_file("sealpost.conf",
               "[server]\nhostname = mx.example.test\nspool = spool\nmax_recipients = 3\n"
               "[listener mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
               "[domain example.test]\nmailboxes = users\nmaildir = mail/{domain}/{local}\n"
               "[relay]\ntrusted_networks = 192.0.2.0/24\n");
    snprintf(path, sizeof(path), "%s/sealpost.conf", dir);
    cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    /* require_tls needs a certificate to load; the policy does not. The
     * default cleartext_recipients are postmaster and abuse. */
    cfg->listeners[0].require_tls = true;
    files = recipient_read_files(cfg, err, sizeof(err));
    rp = files ? recipient_policy_new(cfg, files, err, sizeof(err)) : NULL;
    snapshot_free(files);
    return rp ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    recipient_policy_free(rp);
    config_free(cfg);
    snprintf(cmd, sizeof(cmd), "%s/users", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/sealpost.conf", dir);
    unlink(cmd);
    rmdir(dir);
    return 0;
}

static struct rcpt_context context(const char *client, bool tls)
{
    return (struct rcpt_context){ cfg, rp, &cfg->listeners[0], client, tls, NULL };
}

/* An envelope as a worker would send it, recipients as stored. */
static void envelope_of(struct envelope *env, const char *const *rcpts, bool cleartext)
{
    envelope_init(env);
    snprintf(env->from, sizeof(env->from), "sender@example.net");
    env->dsn_content_withheld = cleartext;
    for (size_t i = 0; rcpts[i]; i++)
        envelope_add_rcpt(env, rcpts[i], cleartext ? DSN_NOTIFY_FAILURE : 0, "");
}

static bool verdict(const char *client, bool tls, const char *const *rcpts, bool cleartext)
{
    struct rcpt_context ctx = context(client, tls);
    struct envelope env;
    char why[160];
    bool ok;

    envelope_of(&env, rcpts, cleartext);
    ok = rcpt_policy_check_envelope(&ctx, &env, why, sizeof(why));
    envelope_clear(&env);
    return ok;
}

static void test_local_mailboxes(void **state)
{
    static const char *const known[] = { "alice@example.test", "bob@example.test", NULL };
    static const char *const unknown[] = { "alice@example.test", "mallory@example.test", NULL };
    static const char *const quoted[] = { "\"alice\"@example.test", NULL };

    (void)state;
    assert_true(verdict("203.0.113.9", true, known, false));
    assert_false(verdict("203.0.113.9", true, unknown, false));     /* no such mailbox */
    assert_true(verdict("203.0.113.9", true, quoted, false));       /* same mailbox */
}

static void test_relay_needs_a_trusted_client(void **state)
{
    static const char *const remote[] = { "victim@elsewhere.example", NULL };

    (void)state;
    assert_true(verdict("192.0.2.7", true, remote, false));
    assert_false(verdict("203.0.113.9", true, remote, false));     /* forged open relay */
    assert_false(verdict("not-an-ip", true, remote, false));
}

static void test_cleartext_policy(void **state)
{
    static const char *const postmaster[] = { "postmaster@example.test", NULL };
    static const char *const alice[] = { "alice@example.test", NULL };
    struct rcpt_context ctx = context("203.0.113.9", false);
    struct envelope env;
    char why[160];

    (void)state;
    assert_true(verdict("203.0.113.9", false, postmaster, true));
    assert_false(verdict("203.0.113.9", false, alice, true));      /* protected mailbox */
    /* a cleartext transaction must be marked: no DSN content ... */
    assert_false(verdict("203.0.113.9", false, postmaster, false));
    /* ... and no success or delay notices */
    envelope_of(&env, postmaster, true);
    env.rcpts[0].notify = DSN_NOTIFY_SUCCESS;
    assert_false(rcpt_policy_check_envelope(&ctx, &env, why, sizeof(why)));
    assert_non_null(strstr(why, "notices"));
    envelope_clear(&env);
}

static void test_limits_and_requiretls(void **state)
{
    static const char *const four[] = { "alice@example.test", "bob@example.test",
                                        "postmaster@example.test", "abuse@elsewhere.example",
                                        NULL };
    static const char *const none[] = { NULL };
    static const char *const alice[] = { "alice@example.test", NULL };
    struct rcpt_context ctx = context("192.0.2.7", false);
    struct envelope env;
    char why[160];

    (void)state;
    assert_false(verdict("192.0.2.7", true, four, false));          /* max_recipients = 3 */
    assert_false(verdict("192.0.2.7", true, none, false));
    assert_false(verdict("192.0.2.7", true, (const char *const[]){ "<>", NULL }, false));
    envelope_of(&env, alice, false);
    env.requiretls = true;
    ctx.listener = &cfg->listeners[0];
    assert_false(rcpt_policy_check_envelope(&ctx, &env, why, sizeof(why)));
    envelope_clear(&env);
}

static void test_decisions_are_named(void **state)
{
    (void)state;
    assert_string_equal(rcpt_decision_name(RCPT_ACCEPT), "accepted");
    assert_string_equal(rcpt_decision_name(RCPT_RELAY_DENIED), "relay_denied");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_mailboxes),
        cmocka_unit_test(test_relay_needs_a_trusted_client),
        cmocka_unit_test(test_cleartext_policy),
        cmocka_unit_test(test_limits_and_requiretls),
        cmocka_unit_test(test_decisions_are_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

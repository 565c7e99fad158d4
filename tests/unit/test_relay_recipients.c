/*
 * test_relay_recipients.c - mail/relay_recipients.c, the [relay]
 * relay_recipients file: what a line may be (an address or "@domain" of
 * a relay domain; anything else refuses the file with PATH:LINE), how a
 * recipient is matched (case, quoted local parts, "@domain"), and the
 * decision mail/rcpt_policy.c makes with it - the one the queue makes
 * again for every envelope, so a worker cannot slip an unlisted
 * recipient past it, also for a trusted or authenticated client.
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
#include "mail/relay_recipients.h"
#include "util/snapshot.h"
#include "unit_files.h"

static char *domains[] = { "backup.test", "intranet.test", "empty.test" };

static struct relay_recipients *parse(const char *text, char *err, size_t errsize)
{
    return relay_recipients_parse(text, strlen(text), "rr", domains, 3, err, errsize);
}

static struct mailbox mb_of(const char *addr)
{
    char path[ADDR_PATH_MAX + 3];
    struct mailbox mb;
    size_t consumed;
    int n = snprintf(path, sizeof(path), "<%s>", addr);

    assert_int_equal(address_parse_path(path, (size_t)n, true, &mb, &consumed), ADDR_OK);
    return mb;
}

static bool allows(const struct relay_recipients *t, const char *addr)
{
    struct mailbox mb = mb_of(addr);

    return relay_recipients_allows(t, &mb);
}

static void test_listed_addresses_and_domains(void **state)
{
    char err[256] = "";
    struct relay_recipients *t = parse("# backup MX for backup.test\n"
                                       "\n"
                                       "  Alice@Backup.test  \r\n"
                                       "\t\"bob.smith\"@backup.test\n"
                                       "alice@backup.test\n"           /* a duplicate */
                                       "@INTRANET.test\n"
                                       "   # indented comment\n"
                                       "carol@backup.test", err, sizeof(err));

    (void)state;
    assert_non_null(t);
    assert_int_equal(relay_recipients_count(t), 5);
    assert_true(allows(t, "alice@backup.test"));
    assert_true(allows(t, "ALICE@BACKUP.TEST"));
    assert_true(allows(t, "bob.smith@backup.test"));       /* quoted = unquoted */
    assert_true(allows(t, "\"Bob.Smith\"@backup.test"));
    assert_true(allows(t, "carol@backup.test"));           /* last line without LF */
    assert_false(allows(t, "mallory@backup.test"));
    assert_false(allows(t, "alice@backup.test.evil"));
    assert_false(allows(t, "\"\"@backup.test"));
    assert_true(allows(t, "anyone@intranet.test"));        /* "@domain": any local part */
    assert_true(allows(t, "x@Intranet.Test"));
    assert_false(allows(t, "alice@empty.test"));           /* no line: nobody */
    relay_recipients_free(t);
}

static void test_empty_file_lists_nobody(void **state)
{
    char err[256];
    struct relay_recipients *t = parse("# nobody yet\n\n", err, sizeof(err));

    (void)state;
    assert_non_null(t);
    assert_int_equal(relay_recipients_count(t), 0);
    assert_false(allows(t, "alice@backup.test"));
    relay_recipients_free(t);
    t = relay_recipients_parse("", 0, "rr", domains, 3, err, sizeof(err));
    assert_non_null(t);
    relay_recipients_free(t);
}

static void expect_refused(const char *text, const char *message)
{
    char err[256] = "";
    struct relay_recipients *t = parse(text, err, sizeof(err));

    assert_null(t);
    if (strcmp(err, message) != 0)
        fail_msg("for %s: got \"%s\", expected \"%s\"", text, err, message);
}

static void test_bad_lines_name_file_and_line(void **state)
{
    (void)state;
    expect_refused("a@backup.test\nnot an address\n",
                   "rr:2: not an address: expected user@domain or @domain");
    expect_refused("# c\nalice\n", "rr:2: not an address: expected user@domain or @domain");
    expect_refused("<alice@backup.test>\n",
                   "rr:1: not an address: expected user@domain or @domain");
    expect_refused("alice@backup.test # trailing comment\n",
                   "rr:1: not an address: expected user@domain or @domain");
    expect_refused("alice@backup.test bob@backup.test\n",
                   "rr:1: not an address: expected user@domain or @domain");
    expect_refused("\n\nalice@elsewhere.test\n",
                   "rr:3: elsewhere.test is not in [relay] relay_domains");
    expect_refused("@Backup.tst\n", "rr:1: backup.tst is not in [relay] relay_domains");
    expect_refused("@\n", "rr:1: not a domain: expected @domain");
    expect_refused("@@backup.test\n", "rr:1: not a domain: expected @domain");
    expect_refused("@backup.test:x@backup.test\n", "rr:1: not a domain: expected @domain");
    expect_refused("@a,@b:x@backup.test\n", "rr:1: not a domain: expected @domain");
    expect_refused("alice@[192.0.2.1]\n", "rr:1: an address literal is not a relay domain");
    expect_refused("\"\"@backup.test\n", "rr:1: an empty local part names no recipient");
    expect_refused("postmaster\n", "rr:1: not an address: expected user@domain or @domain");
    expect_refused("a\x01@backup.test\n",
                   "rr:1: not an address: expected user@domain or @domain");
}

static void test_nul_and_overlong_lines(void **state)
{
    static const char nul[] = "alice@backup.test\nbo\0b@backup.test\n";
    char err[256] = "", line[400];
    struct relay_recipients *t;

    (void)state;
    t = relay_recipients_parse(nul, sizeof(nul) - 1, "rr", domains, 3, err, sizeof(err));
    assert_null(t);
    assert_string_equal(err, "rr:2: not an address: expected user@domain or @domain");
    memset(line, 'a', 65);      /* a local part over ADDR_LOCAL_MAX */
    snprintf(line + 65, sizeof(line) - 65, "@backup.test\n");
    expect_refused(line, "rr:1: not an address: expected user@domain or @domain");
    memset(line, 'a', 64);      /* exactly ADDR_LOCAL_MAX */
    snprintf(line + 64, sizeof(line) - 64, "@backup.test\n");
    t = parse(line, err, sizeof(err));
    assert_non_null(t);
    relay_recipients_free(t);
}

/* --- the decision, through a real config and its snapshot ----------- */

static char dir[64];

static void write_file(const char *name, const char *text)
{
    unit_write_file(dir, name, text);
}

static void remove_file(const char *name)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static struct config *load(const char *relay, char *err, size_t errsize)
{
    char conf[1024], path[128];

    snprintf(conf, sizeof(conf),
             "[server]\nhostname = mx.example.test\nspool = spool\n"
             "[listener mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
             "[domain example.test]\nmaildir = mail/{domain}/{local}\n"
             "[relay]\ntrusted_networks = 192.0.2.0/24\n%s", relay);
    write_file("sealpost.conf", conf);
    snprintf(path, sizeof(path), "%s/sealpost.conf", dir);
    return config_load(path, err, errsize);
}

static struct recipient_policy *policy(const struct config *cfg, char *err, size_t errsize)
{
    struct file_snapshot *files = recipient_read_files(cfg, err, errsize);
    struct recipient_policy *rp = files ? recipient_policy_new(cfg, files, err, errsize) : NULL;

    snapshot_free(files);
    return rp;
}

static enum rcpt_decision decide(const struct config *cfg, const struct recipient_policy *rp,
                                 const char *client, const char *auth_user, const char *addr)
{
    struct rcpt_context ctx = { cfg, rp, &cfg->listeners[0], client, true, auth_user };
    struct mailbox mb = mb_of(addr);

    return rcpt_policy_decide(&ctx, &mb);
}

/* The queue's check of a whole envelope with one recipient. */
static bool queue_accepts(const struct config *cfg, const struct recipient_policy *rp,
                          const char *client, const char *addr)
{
    struct rcpt_context ctx = { cfg, rp, &cfg->listeners[0], client, true, NULL };
    struct envelope env;
    char why[160] = "";
    bool ok;

    envelope_init(&env);
    snprintf(env.from, sizeof(env.from), "sender@example.net");
    envelope_add_rcpt(&env, addr, 0, "");
    ok = rcpt_policy_check_envelope(&ctx, &env, why, sizeof(why));
    if (!ok)
        assert_non_null(strstr(why, "unknown_relay_user"));
    envelope_clear(&env);
    return ok;
}

static void test_policy_applies_the_list_to_every_client(void **state)
{
    char err[512] = "";
    struct config *cfg;
    struct recipient_policy *rp;

    (void)state;
    write_file("rr", "alice@backup.test\n@intranet.test\n");
    cfg = load("relay_domains = backup.test, intranet.test, empty.test\n"
               "relay_recipients = rr\n", err, sizeof(err));
    assert_non_null(cfg);
    rp = policy(cfg, err, sizeof(err));
    assert_non_null(rp);
    /* anyone, a trusted network, an authenticated user: the same list */
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "alice@backup.test"), RCPT_ACCEPT);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "bob@backup.test"),
                     RCPT_UNKNOWN_RELAY_USER);
    assert_int_equal(decide(cfg, rp, "192.0.2.9", NULL, "bob@backup.test"),
                     RCPT_UNKNOWN_RELAY_USER);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", "alice", "bob@backup.test"),
                     RCPT_UNKNOWN_RELAY_USER);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "anyone@intranet.test"),
                     RCPT_ACCEPT);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "anyone@empty.test"),
                     RCPT_UNKNOWN_RELAY_USER);
    /* other domains: unchanged (relaying for trusted clients only) */
    assert_int_equal(decide(cfg, rp, "192.0.2.9", NULL, "x@elsewhere.test"), RCPT_ACCEPT);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "x@elsewhere.test"),
                     RCPT_RELAY_DENIED);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "anyone@example.test"),
                     RCPT_ACCEPT);
    /* the queue makes the same decision again */
    assert_true(queue_accepts(cfg, rp, "198.51.100.7", "Alice@Backup.Test"));
    assert_false(queue_accepts(cfg, rp, "192.0.2.9", "bob@backup.test"));
    assert_string_equal(rcpt_decision_name(RCPT_UNKNOWN_RELAY_USER), "unknown_relay_user");
    recipient_policy_free(rp);
    config_free(cfg);
    remove_file("rr");
}

static void test_without_a_list_nothing_changes(void **state)
{
    char err[512] = "";
    struct config *cfg = load("relay_domains = backup.test\n", err, sizeof(err));
    struct recipient_policy *rp;

    (void)state;
    assert_non_null(cfg);
    rp = policy(cfg, err, sizeof(err));
    assert_non_null(rp);
    assert_int_equal(decide(cfg, rp, "198.51.100.7", NULL, "whoever@backup.test"),
                     RCPT_ACCEPT);
    recipient_policy_free(rp);
    config_free(cfg);
}

static void test_config_and_file_errors(void **state)
{
    char err[512] = "";
    struct config *cfg;

    (void)state;
    write_file("rr", "alice@backup.test\n");
    cfg = load("relay_recipients = rr\n", err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "relay_recipients needs relay_domains in [relay]"));
    write_file("rr", "alice@backup.test\nbob@other.test\n");
    cfg = load("relay_domains = backup.test\nrelay_recipients = rr\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_null(policy(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "/rr:2: other.test is not in [relay] relay_domains"));
    config_free(cfg);
    remove_file("rr");
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sealpost-relay-rcpts.%ld", (long)getpid());
    return mkdir(dir, 0700);
}

static int teardown(void **state)
{
    (void)state;
    remove_file("sealpost.conf");
    remove_file("rr");
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed_addresses_and_domains),
        cmocka_unit_test(test_empty_file_lists_nobody),
        cmocka_unit_test(test_bad_lines_name_file_and_line),
        cmocka_unit_test(test_nul_and_overlong_lines),
        cmocka_unit_test(test_policy_applies_the_list_to_every_client),
        cmocka_unit_test(test_without_a_list_nothing_changes),
        cmocka_unit_test(test_config_and_file_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_alias.c - mail/alias.c (the strict alias file parser) and the
 * expansion built on it (recipient_expand in mail/recipient.c, the
 * envelope expansion in mail/alias_expand.c): targets, the catch-all,
 * refused forms named with file:line, chains, loops, the depth and size
 * limits, repeats removed, ORCPT set to the original recipient.
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

#include "mail/alias.h"
#include "mail/alias_expand.h"
#include "mail/recipient.h"
#include "util/snapshot.h"
#include "unit_files.h"

static struct alias_table *parse(const char *text, char *err, size_t errsize)
{
    return alias_table_parse(text, strlen(text), "/etc/aliases", "example.test", err, errsize);
}

static void test_parse_ok(void **state)
{
    char err[512] = "";
    struct alias_table *t = parse("# comment\n\n  info: alice, Bob@Example.ORG\n"
                                  "Sales :alice\r\n@: catch\n  # indented comment\n"
                                  "dup: x, x\n", err, sizeof(err));
    const struct alias_entry *e;

    (void)state;
    assert_non_null(t);
    assert_int_equal(alias_table_count(t), 4);
    e = alias_table_find(t, "INFO");
    assert_non_null(e);
    assert_int_equal(e->count, 2);
    assert_string_equal(e->targets[0], "alice@example.test");
    assert_string_equal(e->targets[1], "Bob@example.org");
    assert_int_equal(e->line, 3);
    assert_non_null(alias_table_find(t, "sales"));
    assert_int_equal(alias_table_find(t, "dup")->count, 1);
    assert_null(alias_table_find(t, "alice"));
    e = alias_table_catchall(t);
    assert_non_null(e);
    assert_string_equal(e->targets[0], "catch@example.test");
    alias_table_free(t);
}

static void expect_error(const char *text, const char *want)
{
    char err[512] = "";
    struct alias_table *t = parse(text, err, sizeof(err));

    if (t != NULL)
        fail_msg("accepted: '%s'", text);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_parse_refused(void **state)
{
    char big[ALIAS_LINE_MAX + 64];

    (void)state;
    expect_error("a: b\nprog: |/usr/bin/procmail\n",
                 "/etc/aliases:2: '|/usr/bin/procmail': delivery to a command");
    expect_error("list: :include:/etc/list\n", "/etc/aliases:1: ':include:/etc/list': "
                                               ":include: is not supported");
    expect_error("\n\nlog: /var/log/mail\n", "/etc/aliases:3: '/var/log/mail': delivery to a "
                                             "file is not supported");
    expect_error("x: a, |cmd\n", "delivery to a command");
    expect_error("noseparator\n", "/etc/aliases:1: expected");
    expect_error("x:\n", "no target");
    expect_error("x: a,,b\n", "empty target");
    expect_error("x: a,\n", "empty target");
    expect_error("x: a\nX: b\n", "/etc/aliases:2: 'x': a second line");
    expect_error("@: a\n@: b\n", "/etc/aliases:2: a second catch-all");
    expect_error("a@b: c\n", "not a local part");
    expect_error("\"q\": c\n", "not a local part");
    expect_error("x: not an address@\n", "not an address");
    expect_error("x: a@b@c\n", "not an address");
    expect_error("x: caf\xc3\xa9\n", "not an address");
    expect_error("x: a\x01\n", "control character");
    memset(big, 'a', sizeof(big) - 1);
    big[0] = 'x';
    big[1] = ':';
    big[sizeof(big) - 1] = '\0';
    expect_error(big, "longer than");
}

static void test_parse_nul(void **state)
{
    char err[256];
    static const char text[] = "x: a\0b\n";

    (void)state;
    assert_null(alias_table_parse(text, sizeof(text) - 1, "f", "example.test", err,
                                  sizeof(err)));
    assert_non_null(strstr(err, "f:1: a control character"));
}

/* --- expansion, with a real config and files ---------------------------- */

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
    snprintf(dir, sizeof(dir), "/tmp/sealpost-alias.%ld", (long)getpid());
    if (mkdir(dir, 0700) < 0)
        return -1;
    write_file("users", "alice\nbob\n");
    write_file("other-users", "carol\n");
    write_file("aliases",
               "info: alice, bob\n"
               "sales: info, carol@other.test, friend@remote.example\n"
               "bob: bob, bob@remote.example\n"
               "loop1: loop2\nloop2: loop3\nloop3: loop1\n"
               "self: self\n"
               "ghost: nobody\n"
               "c1: c2\nc2: c3\nc3: c4\nc4: c5\nc5: c6\nc6: c7\nc7: c8\nc8: c9\nc9: c10\n"
               "c10: c11\nc11: alice\n"
               "d1: c3\n"
               "big: a1@r.example, a2@r.example, a3@r.example, a4@r.example\n");
    write_file("other-aliases", "@: carol\nback: info@example.test\n");
    write_file("sealpost.conf",
               "[server]\nhostname = mx.example.test\nspool = spool\nmax_alias_recipients = 3\n"
               "[listener mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
               "[domain example.test]\nmailboxes = users\naliases = aliases\n"
               "maildir = mail/{domain}/{local}\n"
               "[domain other.test]\nmailboxes = other-users\naliases = other-aliases\n"
               "maildir = mail/{domain}/{local}\n");
    snprintf(path, sizeof(path), "%s/sealpost.conf", dir);
    cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    files = recipient_read_files(cfg, err, sizeof(err));
    rp = files ? recipient_policy_new(cfg, files, err, sizeof(err)) : NULL;
    snapshot_free(files);
    if (rp == NULL)
        fprintf(stderr, "%s\n", err);
    return rp ? 0 : -1;
}

static int teardown(void **state)
{
    static const char *names[] = { "users", "other-users", "aliases", "other-aliases",
                                   "sealpost.conf" };
    char path[128];

    (void)state;
    recipient_policy_free(rp);
    config_free(cfg);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

/* The expansion of addr as "a b c" (in order), or the error's number. */
static void expect_expansion(const char *addr, size_t max, enum expand_result want,
                             const char *list)
{
    struct recipient_expansion ex = { .max = max };
    enum expand_result r = recipient_expand(rp, addr, &ex);
    char got[2048] = "";

    assert_int_equal(r, want);
    for (size_t i = 0; r == EXPAND_OK && i < ex.count; i++) {
        strncat(got, i ? " " : "", sizeof(got) - strlen(got) - 1);
        strncat(got, ex.addrs[i], sizeof(got) - strlen(got) - 1);
    }
    if (list)
        assert_string_equal(got, list);
    recipient_expansion_clear(&ex);
}

static void test_expand(void **state)
{
    (void)state;
    expect_expansion("alice@example.test", 10, EXPAND_OK, "alice@example.test");
    expect_expansion("info@EXAMPLE.test", 10, EXPAND_OK,
                     "alice@example.test bob@example.test bob@remote.example");
    expect_expansion("sales@example.test", 10, EXPAND_OK,
                     "alice@example.test bob@example.test bob@remote.example "
                     "carol@other.test friend@remote.example");
    expect_expansion("someone@remote.example", 10, EXPAND_OK, "someone@remote.example");
    /* catch-all of other.test, and an alias there back into example.test */
    expect_expansion("whoever@other.test", 10, EXPAND_OK, "carol@other.test");
    expect_expansion("back@other.test", 10, EXPAND_OK,
                     "alice@example.test bob@example.test bob@remote.example");
    expect_expansion("loop2@example.test", 10, EXPAND_LOOP, NULL);
    expect_expansion("self@example.test", 10, EXPAND_LOOP, NULL);
    expect_expansion("ghost@example.test", 10, EXPAND_UNKNOWN, NULL);
    expect_expansion("nobody@example.test", 10, EXPAND_UNKNOWN, NULL);
    /* c1 is 11 alias lines deep, d1 nine: RECIPIENT_ALIAS_DEPTH is 10 */
    expect_expansion("c1@example.test", 10, EXPAND_TOO_DEEP, NULL);
    expect_expansion("d1@example.test", 10, EXPAND_OK, "alice@example.test");
    expect_expansion("big@example.test", 3, EXPAND_TOO_MANY, NULL);
    expect_expansion("big@example.test", 4, EXPAND_OK, NULL);
}

static void test_expand_envelope(void **state)
{
    struct envelope in, out;
    char why[256] = "";

    (void)state;
    envelope_init(&in);
    snprintf(in.from, sizeof(in.from), "sender@remote.example");
    envelope_add_rcpt(&in, "info@example.test", 2, "");
    envelope_add_rcpt(&in, "alice@example.test", 1, "");
    envelope_add_rcpt(&in, "whoever@other.test", 0, "rfc822;Whoever@other.test");
    assert_true(alias_expand_envelope(rp, 10, &in, &out, why, sizeof(why)));
    assert_string_equal(out.from, "sender@remote.example");
    assert_int_equal(out.rcpt_count, 4);
    assert_string_equal(out.rcpts[0].addr, "alice@example.test");
    assert_string_equal(out.rcpts[0].orcpt, "rfc822;info@example.test");
    assert_int_equal(out.rcpts[0].notify, 2);
    assert_string_equal(out.rcpts[1].addr, "bob@example.test");
    assert_string_equal(out.rcpts[2].addr, "bob@remote.example");
    assert_string_equal(out.rcpts[2].orcpt, "rfc822;info@example.test");
    /* the client's own ORCPT is kept */
    assert_string_equal(out.rcpts[3].addr, "carol@other.test");
    assert_string_equal(out.rcpts[3].orcpt, "rfc822;Whoever@other.test");
    envelope_clear(&out);
    envelope_add_rcpt(&in, "loop1@example.test", 0, "");
    assert_false(alias_expand_envelope(rp, 10, &in, &out, why, sizeof(why)));
    assert_non_null(strstr(why, "loop1@example.test: alias loop"));
    assert_int_equal(out.rcpt_count, 0);
    envelope_clear(&in);
}

static void test_orcpt(void **state)
{
    char out[64];

    (void)state;
    alias_orcpt("a+b=c d@x", out, sizeof(out));
    assert_string_equal(out, "rfc822;a+2Bb+3Dc+20d@x");
    alias_orcpt("caf\xc3\xa9@x", out, sizeof(out));
    assert_string_equal(out, "");
    alias_orcpt("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x", out, 32);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_parse_nul),
        cmocka_unit_test(test_orcpt),
        cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand_envelope, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

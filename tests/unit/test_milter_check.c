/*
 * test_milter_check.c - unit tests for the milter question asked at
 * connect, MAIL and RCPT (mail/milter_check.c): what round-trips, and
 * what a hostile worker's question is refused for.
 *
 * Trusts: nothing; pure functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/milter_check.h"

static struct milter_check in, out;

static void base(int stage)
{
    memset(&in, 0, sizeof(in));
    envelope_init(&in.env);
    in.id = 7;
    in.stage = stage;
    in.client_port = 40123;
    in.facts.tls = true;
    snprintf(in.facts.listener, sizeof(in.facts.listener), "mx");
    snprintf(in.env.client, sizeof(in.env.client), "192.0.2.7");
    if (stage != MILTER_AT_CONNECT) {
        snprintf(in.env.helo, sizeof(in.env.helo), "client.example.net");
        snprintf(in.env.from, sizeof(in.env.from), "sender@example.net");
        snprintf(in.env.envid, sizeof(in.env.envid), "ENV1");
        in.env.ret = DSN_RET_HDRS;
    }
    if (stage == MILTER_AT_RCPT)
        envelope_add_rcpt(&in.env, "alice@example.test", DSN_NOTIFY_FAILURE,
                          "rfc822;alice@example.test");
}

/* Encode in, decode into out: the decoder's verdict. */
static bool round_trip(void)
{
    char err[200] = "";
    size_t len = 0;
    char *wire = milter_check_encode(&in, &len);
    bool ok;

    assert_non_null(wire);
    ok = milter_check_decode(wire, len, &out, err, sizeof(err));
    assert_true(ok || err[0]);
    free(wire);
    envelope_clear(&in.env);
    return ok;
}

static void test_each_stage_round_trips(void **state)
{
    (void)state;
    for (int stage = MILTER_AT_CONNECT; stage <= MILTER_AT_RCPT; stage++) {
        base(stage);
        assert_true(round_trip());
        assert_int_equal(out.id, 7);
        assert_int_equal(out.stage, stage);
        assert_int_equal(out.client_port, 40123);
        assert_true(out.facts.tls);
        assert_string_equal(out.facts.listener, "mx");
        assert_string_equal(out.env.client, "192.0.2.7");
        assert_string_equal(out.env.id, "");
        assert_int_equal(out.env.rcpt_count, stage == MILTER_AT_RCPT ? 1 : 0);
        if (stage == MILTER_AT_RCPT) {
            assert_string_equal(out.env.rcpts[0].addr, "alice@example.test");
            assert_int_equal(out.env.rcpts[0].notify, DSN_NOTIFY_FAILURE);
            assert_string_equal(out.env.rcpts[0].orcpt, "rfc822;alice@example.test");
        }
        if (stage != MILTER_AT_CONNECT) {
            assert_string_equal(out.env.from, "sender@example.net");
            assert_string_equal(out.env.envid, "ENV1");
            assert_int_equal(out.env.ret, DSN_RET_HDRS);
        }
        envelope_clear(&out.env);
    }
}

static void test_the_queue_names_the_user(void **state)
{
    (void)state;
    base(MILTER_AT_MAIL);
    snprintf(in.auth_user, sizeof(in.auth_user), "alice");
    snprintf(in.auth_type, sizeof(in.auth_type), "LOGIN");
    assert_true(round_trip());
    assert_string_equal(out.auth_user, "alice");
    assert_string_equal(out.auth_type, "LOGIN");
    envelope_clear(&out.env);
    /* and how that user authenticated, always with the user */
    base(MILTER_AT_MAIL);
    snprintf(in.auth_user, sizeof(in.auth_user), "alice");
    assert_false(round_trip());
    snprintf(in.auth_type, sizeof(in.auth_type), "DIGEST-MD5");
    assert_false(round_trip());
}

static void test_envelope_must_fit_the_stage(void **state)
{
    (void)state;
    base(MILTER_AT_CONNECT);                /* a sender before MAIL */
    snprintf(in.env.from, sizeof(in.env.from), "sender@example.net");
    assert_false(round_trip());
    base(MILTER_AT_MAIL);                   /* a recipient at MAIL */
    envelope_add_rcpt(&in.env, "alice@example.test", 0, "");
    assert_false(round_trip());
    base(MILTER_AT_RCPT);                   /* two recipients at RCPT */
    envelope_add_rcpt(&in.env, "bob@example.test", 0, "");
    assert_false(round_trip());
    base(MILTER_AT_MAIL);                   /* a queue id */
    snprintf(in.env.id, sizeof(in.env.id), "0123456789ABCDEF");
    assert_false(round_trip());
}

static void test_hostile_fields_are_refused(void **state)
{
    (void)state;
    base(MILTER_AT_MAIL);                   /* not an IP address */
    snprintf(in.env.client, sizeof(in.env.client), "mx.example.net");
    assert_false(round_trip());
    base(MILTER_AT_MAIL);                   /* a control octet for the milter */
    snprintf(in.env.helo, sizeof(in.env.helo), "evil\rhelo");
    assert_false(round_trip());
    base(MILTER_AT_MAIL);                   /* not an SMTP path */
    snprintf(in.env.from, sizeof(in.env.from), "two words@example.net");
    assert_false(round_trip());
    base(MILTER_AT_RCPT);                   /* the null path as a recipient */
    snprintf(in.env.rcpts[0].addr, sizeof(in.env.rcpts[0].addr), "%s", "");
    assert_false(round_trip());
    base(MILTER_AT_MAIL);
    snprintf(in.facts.listener, sizeof(in.facts.listener), "m\x01x");
    assert_false(round_trip());
}

static void test_malformed_wire_is_refused(void **state)
{
    static const char *const bad[] = {
        "", "check\n", "check 1 data 25\n", "check x mail 25\n", "check 1 mail 70000\n",
        "check 1 mail 25 extra\n", "check 1 mail 25\nauth \n", "check 1 mail 25",
        "check 1 mail 25\nauth alice\n", "check 1 mail 25\nauth alice\nauth_type \n",
        "check 1 mail 25\nauth alice\nauth_type XOAUTH2\n",
    };
    char err[200];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(milter_check_decode(bad[i], strlen(bad[i]), &out, err, sizeof(err)));
        assert_true(err[0] != '\0');
        assert_null(out.env.rcpts);
    }
    {   /* a question refused for its content can still be answered */
        uint64_t id = 0;
        const char *q = "check 9 rcpt 25\nnot a request";

        assert_false(milter_check_decode(q, strlen(q), &out, err, sizeof(err)));
        assert_true(milter_check_peek_id(q, strlen(q), &id));
        assert_int_equal(id, 9);
        assert_false(milter_check_peek_id("check x", 7, &id));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_stage_round_trips),
        cmocka_unit_test(test_the_queue_names_the_user),
        cmocka_unit_test(test_envelope_must_fit_the_stage),
        cmocka_unit_test(test_hostile_fields_are_refused),
        cmocka_unit_test(test_malformed_wire_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_milter_codec.c - unit tests for what the queue and the milter
 * role tell each other (mail/milter_codec.c) and for the [milter] socket
 * syntax (config_parse_milter_socket).
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

#include "config/config.h"
#include "mail/milter_codec.h"

static struct milter_result_msg res, out;
static char buf[65536];

static bool decode_text(const char *text)
{
    char err[200] = "";
    bool ok = milter_result_decode(text, strlen(text), &out, err, sizeof(err));

    assert_true(ok || err[0]);
    return ok;
}

static void test_result_round_trip(void **state)
{
    char err[200];
    size_t len;

    (void)state;
    memset(&res, 0, sizeof(res));
    res.job_id = 42;
    res.verdict = MILTER_RESULT_ACCEPT;
    snprintf(res.milter, sizeof(res.milter), "opendkim");
    res.quarantine = true;
    snprintf(res.reason, sizeof(res.reason), "looks odd");
    res.content = true;
    res.change_from = true;
    snprintf(res.from, sizeof(res.from), "bounces@example.org");
    res.add_count = 1;
    snprintf(res.add[0], sizeof(res.add[0]), "archive@example.org");
    res.delete_count = 1;
    snprintf(res.del[0], sizeof(res.del[0]), "bob@example.org");
    len = milter_result_encode(&res, buf, sizeof(buf));
    assert_true(len > 0);
    assert_true(milter_result_decode(buf, len, &out, err, sizeof(err)));
    assert_memory_equal(&res, &out, sizeof(res));
}

static void test_result_refusals(void **state)
{
    (void)state;
    assert_true(decode_text("job 1\nverdict reject\nreply 554 5.7.1 Gtube pattern\n"));
    assert_true(decode_text("job 1\nverdict tempfail\nreply 451 4.7.1 Try later\n"));
    assert_true(decode_text("job 1\nverdict discard\n"));
    /* a reply of the wrong class, or none, or one with an accepting verdict */
    assert_false(decode_text("job 1\nverdict reject\nreply 451 4.7.1 x\n"));
    assert_false(decode_text("job 1\nverdict reject\nreply 550 4.7.1 x\n"));
    assert_false(decode_text("job 1\nverdict reject\n"));
    assert_false(decode_text("job 1\nverdict accept\nreply 250 ok\n"));
    assert_false(decode_text("job 1\nverdict tempfail\nreply 4511 x\n"));
    /* unknown, repeated, missing keys; control bytes; no final newline */
    assert_false(decode_text("job 1\nverdict accept\nfoo bar\n"));
    assert_false(decode_text("job 1\njob 2\nverdict accept\n"));
    assert_false(decode_text("verdict accept\n"));
    assert_false(decode_text("job 1\nverdict maybe\n"));
    assert_false(decode_text("job 1\nverdict accept\nadd a\tb@c\n"));
    assert_false(decode_text("job 1\nverdict accept"));
    assert_false(decode_text("job x\nverdict accept\n"));
    assert_false(decode_text("job 1\nverdict accept\ncontent no\n"));
    assert_false(decode_text("job 1\nverdict accept\nadd \n"));
    /* a milter name is a section name: nothing that could split a log field */
    assert_true(decode_text("job 1\nverdict discard\nmilter rspamd-1_x\n"));
    assert_false(decode_text("job 1\nverdict discard\nmilter a b=c\n"));
    assert_false(decode_text("job 1\nverdict discard\nmilter a\"b\n"));
}

static void test_result_recipient_cap(void **state)
{
    char text[32 * (MILTER_CODEC_RCPT_EDITS + 4)];
    size_t n = (size_t)snprintf(text, sizeof(text), "job 1\nverdict accept\n");

    (void)state;
    for (int i = 0; i < MILTER_CODEC_RCPT_EDITS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "add r%d@example.org\n", i);
    assert_true(decode_text(text));
    assert_int_equal(out.add_count, MILTER_CODEC_RCPT_EDITS);
    snprintf(text + n, sizeof(text) - n, "delete one@example.org\n");
    assert_false(decode_text(text));
}

static void test_job(void **state)
{
    struct milter_job_msg job = { .job_id = 7, .tls = true }, back;
    char err[200];
    size_t len;

    (void)state;
    snprintf(job.listener, sizeof(job.listener), "mx");
    snprintf(job.auth_user, sizeof(job.auth_user), "alice");
    snprintf(job.auth_type, sizeof(job.auth_type), "LOGIN");
    len = milter_job_encode(&job, buf, sizeof(buf));
    assert_true(milter_job_decode(buf, len, &back, err, sizeof(err)));
    assert_memory_equal(&job, &back, sizeof(job));
    /* the user and the mechanism come together, the mechanism one we know */
    static const char *const bad_auth[] = {
        "job 7\nlistener mx\nauth alice\ntls yes\n",
        "job 7\nlistener mx\nauth_type PLAIN\ntls yes\n",
        "job 7\nlistener mx\nauth alice\nauth_type CRAM-MD5\ntls yes\n",
        "job 7\nlistener mx\nauth alice\nauth_type plain\ntls yes\n",
        "job 7\nlistener mx\nauth alice\nauth_type PLAIN\nauth_type LOGIN\ntls yes\n",
    };
    for (size_t i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++)
        assert_false(milter_job_decode(bad_auth[i], strlen(bad_auth[i]), &back, err,
                                       sizeof(err)));
    {
        static const char plain[] = "job 7\nlistener mx\nauth alice\nauth_type PLAIN\ntls no\n";

        assert_true(milter_job_decode(plain, strlen(plain), &back, err, sizeof(err)));
    }
    assert_string_equal(back.auth_type, "PLAIN");
    assert_false(milter_job_decode("job 7\ntls yes\n", 14, &back, err, sizeof(err)));
    assert_false(milter_job_decode("job 7\nlistener mx\ntls perhaps\n", 31, &back, err,
                                   sizeof(err)));
}

static void test_reply_valid(void **state)
{
    (void)state;
    assert_true(milter_reply_valid("550 5.7.1 Command rejected", false));
    assert_true(milter_reply_valid("554 Gtube pattern", false));
    assert_true(milter_reply_valid("451 4.7.1 Service unavailable - try again later", true));
    assert_false(milter_reply_valid("451 4.7.1 x", false));
    assert_false(milter_reply_valid("550 4.7.1 x", false));
    assert_false(milter_reply_valid("250 2.0.0 ok", false));
    assert_false(milter_reply_valid("550-5.7.1 x", false));
    assert_false(milter_reply_valid("550 5.7.1 a\r\n550 b", false));
    assert_false(milter_reply_valid("55", false));
}

static void test_socket_syntax(void **state)
{
    struct lmtp_target t;
    char err[200];

    (void)state;
    assert_true(config_parse_milter_socket("inet:127.0.0.1:11332", &t, err, sizeof(err)));
    assert_false(t.unix_socket);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 11332);
    assert_true(config_parse_milter_socket("inet:8891@localhost", &t, err, sizeof(err)));
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 8891);
    assert_true(config_parse_milter_socket("inet6:[::1]:8891", &t, err, sizeof(err)));
    assert_string_equal(t.host, "::1");
    assert_true(config_parse_milter_socket("unix:/run/opendkim/opendkim.sock", &t, err,
                                           sizeof(err)));
    assert_true(t.unix_socket);
    assert_string_equal(t.path, "/run/opendkim/opendkim.sock");
    assert_false(config_parse_milter_socket("inet:mx.example.org:25", &t, err, sizeof(err)));
    assert_false(config_parse_milter_socket("inet:127.0.0.1:0", &t, err, sizeof(err)));
    assert_false(config_parse_milter_socket("inet:127.0.0.1:70000", &t, err, sizeof(err)));
    assert_false(config_parse_milter_socket("inet:127.0.0.1", &t, err, sizeof(err)));
    assert_false(config_parse_milter_socket("unix:relative.sock", &t, err, sizeof(err)));
    assert_false(config_parse_milter_socket("tcp:127.0.0.1:1", &t, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_result_refusals),
        cmocka_unit_test(test_result_recipient_cap),
        cmocka_unit_test(test_job),
        cmocka_unit_test(test_reply_valid),
        cmocka_unit_test(test_socket_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

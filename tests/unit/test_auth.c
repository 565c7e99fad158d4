/*
 * test_auth.c - unit tests for the submission users file (credentials.c),
 * the sender map (senders.c) and the AUTH IPC messages (auth_codec.c):
 * what each accepts and refuses, and that refusals never echo a hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/auth_codec.h"
#include "mail/credentials.h"
#include "mail/senders.h"

#define HASH "$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9YB2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1"

static struct credentials *users(const char *text, char *err, size_t errsize)
{
    return credentials_parse(text, strlen(text), err, errsize);
}

static void test_users_file(void **state)
{
    char err[256];
    struct credentials *c;

    (void)state;
    c = users("# comment\n\nalice:" HASH "\r\nbob:" HASH ":1000:1000::/home/bob\n", err,
              sizeof(err));
    assert_non_null(c);
    assert_int_equal(credentials_count(c), 2);
    assert_string_equal(credentials_hash(c, "alice"), HASH);
    assert_string_equal(credentials_hash(c, "bob"), HASH);    /* Dovecot's extra fields */
    assert_null(credentials_hash(c, "carol"));
    credentials_free(c);
    assert_null(users("alice:" HASH "\nalice:" HASH "\n", err, sizeof(err)));
    assert_non_null(strstr(err, "twice"));
    assert_null(users("alice:secret\n", err, sizeof(err)));
    assert_non_null(strstr(err, "line 1"));
    assert_null(strstr(err, "secret"));                        /* never echoed */
    assert_null(users("al ice:" HASH "\n", err, sizeof(err)));
    assert_null(users("no colon here\n", err, sizeof(err)));
    assert_null(users(":" HASH "\n", err, sizeof(err)));
    c = users("", err, sizeof(err));
    assert_non_null(c);
    assert_null(credentials_hash(c, "alice"));
    credentials_free(c);
}

static void test_sender_map(void **state)
{
    const char *text = "alice@example.test alice\n  @Other.Test\talice \n"
                       "shared@example.test bob\nshared@example.test alice\n";
    char err[256];
    struct sender_map *m = sender_map_parse(text, strlen(text), err, sizeof(err));

    (void)state;
    assert_non_null(m);
    assert_true(sender_map_allows(m, "alice", "alice@example.test"));
    assert_true(sender_map_allows(m, "alice", "ALICE@Example.Test"));
    assert_true(sender_map_allows(m, "alice", "x@other.test"));
    assert_false(sender_map_allows(m, "bob", "x@other.test"));
    assert_true(sender_map_allows(m, "bob", "shared@example.test"));
    assert_true(sender_map_allows(m, "alice", "shared@example.test"));
    assert_false(sender_map_allows(m, "bob", "alice@example.test"));
    assert_true(sender_map_allows(m, "bob", ""));              /* <> */
    sender_map_free(m);
    assert_true(sender_map_allows(NULL, "a@b.test", "A@B.test"));    /* no map: itself */
    assert_false(sender_map_allows(NULL, "alice", "alice@example.test"));
    assert_null(sender_map_parse("noat alice\n", 11, err, sizeof(err)));
    assert_null(sender_map_parse("a@b.test\n", 9, err, sizeof(err)));
    assert_null(sender_map_parse("a@b@c alice\n", 12, err, sizeof(err)));
}

static void test_codec(void **state)
{
    struct auth_request req, got;
    struct auth_answer ans, back;

    (void)state;
    memset(&req, 0, sizeof(req));
    req.id = 7;
    snprintf(req.client, sizeof(req.client), "2001:db8::1");
    snprintf(req.user, sizeof(req.user), "alice");
    snprintf(req.password, sizeof(req.password), "pw");
    assert_true(auth_request_decode(&req, sizeof(req), &got));
    assert_string_equal(got.user, "alice");
    assert_false(auth_request_decode(&req, sizeof(req) - 1, &got));
    req.password[0] = '\0';
    assert_false(auth_request_decode(&req, sizeof(req), &got));        /* empty password */
    req.password[0] = 'p';
    memset(req.user, 'u', sizeof(req.user));
    assert_false(auth_request_decode(&req, sizeof(req), &got));        /* unterminated */
    assert_string_equal(got.password, "");                             /* wiped */
    snprintf(req.user, sizeof(req.user), "alice");
    snprintf(req.client, sizeof(req.client), "1.2.3.4; rm");
    assert_false(auth_request_decode(&req, sizeof(req), &got));
    snprintf(req.client, sizeof(req.client), "192.0.2.1");
    req.mechanism = AUTH_MECH_LOGIN;
    assert_true(auth_request_decode(&req, sizeof(req), &got));
    assert_string_equal(auth_mechanism_name(got.mechanism), "LOGIN");
    req.mechanism = AUTH_MECH_MAX + 1;                                 /* no such mechanism */
    assert_false(auth_request_decode(&req, sizeof(req), &got));
    assert_null(auth_mechanism_name(AUTH_MECH_MAX + 1));
    assert_true(auth_mechanism_known("PLAIN") && auth_mechanism_known("LOGIN"));
    assert_false(auth_mechanism_known("login") || auth_mechanism_known(""));

    memset(&ans, 0, sizeof(ans));
    ans.verdict = AUTH_OK;
    memset(ans.token, 'a', AUTH_TOKEN_LEN);
    assert_true(auth_answer_decode(&ans, sizeof(ans), &back));
    ans.token[3] = 'G';
    assert_false(auth_answer_decode(&ans, sizeof(ans), &back));
    memset(ans.token, 0, sizeof(ans.token));
    ans.verdict = AUTH_FAILED;
    assert_true(auth_answer_decode(&ans, sizeof(ans), &back));
    ans.verdict = AUTH_VERDICT_MAX + 1;
    assert_false(auth_answer_decode(&ans, sizeof(ans), &back));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users_file),
        cmocka_unit_test(test_sender_map),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

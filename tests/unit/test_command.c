/*
 * test_command.c - unit tests for smtpd/command.c: verb split, MAIL/RCPT
 * arguments and every ESMTP parameter, BDAT and HELO/EHLO.
 *
 * Inputs are copied into heap buffers of exactly their length so that
 * AddressSanitizer catches any read past the end of the line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/command.h"

static const struct param_features NO_FEATURES = { .requiretls = false, .dsn = false };
static const struct param_features ALL_FEATURES = { .requiretls = true, .dsn = true };
static const struct param_features DSN_ONLY = { .requiretls = false, .dsn = true };

/* Heap copy of exactly len bytes (no terminator). */
static char *dup_exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);

    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

/* ---- helpers ---- */

static enum param_status mail_n(const char *s, size_t len,
                                const struct param_features *feat,
                                struct mail_args *out)
{
    char *buf = dup_exact(s, len);
    enum param_status st = command_parse_mail(buf, len, feat, out);

    free(buf);
    return st;
}

static enum param_status rcpt_n(const char *s, size_t len, bool utf8,
                                const struct param_features *feat,
                                struct rcpt_args *out)
{
    char *buf = dup_exact(s, len);
    enum param_status st = command_parse_rcpt(buf, len, utf8, feat, out);

    free(buf);
    return st;
}

static enum param_status mail(const char *s, const struct param_features *feat,
                              struct mail_args *out)
{
    return mail_n(s, strlen(s), feat, out);
}

static enum param_status rcpt(const char *s, bool utf8,
                              const struct param_features *feat,
                              struct rcpt_args *out)
{
    return rcpt_n(s, strlen(s), utf8, feat, out);
}

static void check_mail(const char *s, const struct param_features *feat,
                       enum param_status want, const char *file, int line)
{
    struct mail_args a;

    _assert_int_equal(mail(s, feat, &a), want, file, line);
}

static void check_rcpt(const char *s, bool utf8, const struct param_features *feat,
                       enum param_status want, const char *file, int line)
{
    struct rcpt_args a;

    _assert_int_equal(rcpt(s, utf8, feat, &a), want, file, line);
}

#define MAIL(s, feat, want) check_mail((s), (feat), (want), __FILE__, __LINE__)
#define RCPT(s, utf8, feat, want) check_rcpt((s), (utf8), (feat), (want), __FILE__, __LINE__)

static bool split(const char *s, size_t len, struct smtp_command *cmd,
                  size_t *args_off)
{
    char *buf = dup_exact(s, len);
    bool ok = command_split(buf, len, cmd);

    *args_off = (size_t)(cmd->args - buf);
    free(buf);
    cmd->args = NULL;   /* points into freed memory */
    return ok;
}

static void check_split(const char *s, enum smtp_verb verb, size_t off,
                        size_t args_len, const char *file, int line)
{
    struct smtp_command cmd;
    size_t got_off;

    _assert_true(split(s, strlen(s), &cmd, &got_off), s, file, line);
    _assert_int_equal(cmd.verb, verb, file, line);
    _assert_int_equal(got_off, off, file, line);
    _assert_int_equal(cmd.args_len, args_len, file, line);
}

#define SPLIT(s, verb, off, args_len) check_split((s), (verb), (off), (args_len), __FILE__, __LINE__)

static bool bdat(const char *s, size_t len, uint64_t *size, bool *last)
{
    char *buf = dup_exact(s, len);
    bool ok = command_parse_bdat(buf, len, size, last);

    free(buf);
    return ok;
}

static void check_bdat(const char *s, bool ok, uint64_t want_size, bool want_last,
                       const char *file, int line)
{
    uint64_t size = 77;
    bool last = true;

    _assert_int_equal(bdat(s, strlen(s), &size, &last), ok, file, line);
    _assert_int_equal(size, ok ? want_size : 0, file, line);
    _assert_int_equal(last, ok ? want_last : false, file, line);
}

#define BDAT_OK(s, size, last) check_bdat((s), true, (size), (last), __FILE__, __LINE__)
#define BDAT_BAD(s) check_bdat((s), false, 0, false, __FILE__, __LINE__)

static bool helo_n(const char *s, size_t len, char *out, size_t outsize)
{
    char *buf = dup_exact(s, len);
    bool ok = command_parse_helo(buf, len, out, outsize);

    free(buf);
    return ok;
}

static void check_helo(const char *s, size_t len, const char *want,
                       const char *file, int line)
{
    char out[300];

    memset(out, 'X', sizeof(out));
    if (want == NULL) {
        _assert_true(!helo_n(s, len, out, sizeof(out)), "rejected", file, line);
        _assert_int_equal(out[0], '\0', file, line);
    } else {
        _assert_true(helo_n(s, len, out, sizeof(out)), "accepted", file, line);
        _assert_string_equal(out, want, file, line);
    }
}

#define HELO(s, want) check_helo((s), strlen(s), (want), __FILE__, __LINE__)
#define HELO_N(s, n, want) check_helo((s), (n), (want), __FILE__, __LINE__)

/* ---- command_split ---- */

static void test_split_verbs(void **state)
{
    static const struct { const char *name; enum smtp_verb verb; } all[] = {
        { "HELO", VERB_HELO }, { "EHLO", VERB_EHLO }, { "MAIL", VERB_MAIL },
        { "RCPT", VERB_RCPT }, { "DATA", VERB_DATA }, { "BDAT", VERB_BDAT },
        { "RSET", VERB_RSET }, { "NOOP", VERB_NOOP }, { "QUIT", VERB_QUIT },
        { "VRFY", VERB_VRFY }, { "EXPN", VERB_EXPN }, { "HELP", VERB_HELP },
        { "STARTTLS", VERB_STARTTLS }, { "AUTH", VERB_AUTH },
        { "helo", VERB_HELO }, { "StartTls", VERB_STARTTLS }, { "qUiT", VERB_QUIT },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        size_t n = strlen(all[i].name);

        SPLIT(all[i].name, all[i].verb, n, 0);
    }
}

static void test_split_args(void **state)
{
    (void)state;
    SPLIT("MAIL FROM:<a@b>", VERB_MAIL, 5, 10);
    SPLIT("mail from:<a@b>", VERB_MAIL, 5, 10);
    SPLIT("QUIT", VERB_QUIT, 4, 0);
    SPLIT("QUIT ", VERB_QUIT, 5, 0);
    SPLIT("MAIL  FROM:<>", VERB_MAIL, 5, 8);        /* second SP is args */
    SPLIT("EHLO example.com", VERB_EHLO, 5, 11);
    SPLIT("BDAT 100 LAST", VERB_BDAT, 5, 8);
    SPLIT("AUTH PLAIN AGFiYwBkZWY=", VERB_AUTH, 5, 18);
}

static void test_split_unknown(void **state)
{
    struct smtp_command cmd;
    size_t off;

    (void)state;
    SPLIT("FOO bar", VERB_UNKNOWN, 4, 3);
    SPLIT("MAILX FROM:<>", VERB_UNKNOWN, 6, 7);
    SPLIT("MAI", VERB_UNKNOWN, 3, 0);
    SPLIT("STARTTLSX", VERB_UNKNOWN, 9, 0);
    SPLIT("XCLIENT", VERB_UNKNOWN, 7, 0);
    /* Verb followed by something else than SP or end. */
    SPLIT("MAIL:FROM", VERB_UNKNOWN, 4, 5);
    SPLIT("STARTTLS2", VERB_UNKNOWN, 8, 1);
    SPLIT("HELO\texample.com", VERB_UNKNOWN, 4, 12);
    SPLIT("QUIT\r", VERB_UNKNOWN, 4, 1);
    assert_true(split("DATA\0", 5, &cmd, &off));
    assert_int_equal(cmd.verb, VERB_UNKNOWN);
}

static void test_split_rejects(void **state)
{
    struct smtp_command cmd;
    size_t off;

    (void)state;
    assert_false(split("", 0, &cmd, &off));
    assert_false(split(" MAIL FROM:<>", 13, &cmd, &off));
    assert_false(split("1MAIL", 5, &cmd, &off));
    assert_false(split(":", 1, &cmd, &off));
    assert_false(split("\r\n", 2, &cmd, &off));
    assert_false(split("\0MAIL", 5, &cmd, &off));
    assert_false(split("\xc3\xa9", 2, &cmd, &off));
    assert_false(command_split(NULL, 0, &cmd));
}

/* ---- MAIL ---- */

static void test_mail_basic(void **state)
{
    struct mail_args a;

    (void)state;
    assert_int_equal(mail("FROM:<a@example.com>", &NO_FEATURES, &a), PARAM_OK);
    assert_string_equal(a.from.local, "a");
    assert_string_equal(a.from.domain, "example.com");
    assert_false(a.from.is_null);
    assert_false(a.has_size);
    assert_int_equal(a.size, 0);
    assert_int_equal(a.body, BODY_UNSPECIFIED);
    assert_false(a.smtputf8);
    assert_false(a.requiretls);
    assert_int_equal(a.ret, DSN_RET_UNSPECIFIED);
    assert_string_equal(a.envid, "");

    assert_int_equal(mail("FROM:<>", &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.from.is_null);

    MAIL("from:<a@b>", &NO_FEATURES, PARAM_OK);
    MAIL("From: <a@b>", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:    <a@b>", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<a@b>   ", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<a@b> ", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<@r.example:a@b>", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<\"a b\"@[192.0.2.1]>", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<> SIZE=0", &NO_FEATURES, PARAM_OK);
}

static void test_mail_syntax(void **state)
{
    (void)state;
    MAIL("", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:   ", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM <a@b>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM :<a@b>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FRM:<a@b>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FRO", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL(" FROM:<a@b>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("TO:<a@b>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:\t<a@b>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a@b>x", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b>SIZE=1", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b>\tSIZE=1", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b>\r", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b>>", &NO_FEATURES, PARAM_ERR_SYNTAX);
    assert_int_equal(command_parse_mail(NULL, 0, &NO_FEATURES, &(struct mail_args){ 0 }),
                     PARAM_ERR_SYNTAX);
}

static void test_mail_address_errors(void **state)
{
    char buf[400];

    (void)state;
    MAIL("FROM:a@b", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a@b", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a..b@c>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a@-c>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<Postmaster>", &NO_FEATURES, PARAM_ERR_ADDRESS);   /* only RCPT */
    MAIL("FROM:<a@b> <c@d>", &NO_FEATURES, PARAM_ERR_SYNTAX);     /* not a param */
    /* Address errors are reported before parameter errors. */
    MAIL("FROM:<a..b@c> FOO=1", &NO_FEATURES, PARAM_ERR_ADDRESS);
    /* Too long. */
    memcpy(buf, "FROM:<", 6);
    memset(buf + 6, 'x', 65);
    memcpy(buf + 71, "@b>", 4);
    MAIL(buf, &NO_FEATURES, PARAM_ERR_ADDRESS);
    /* NUL and control characters in the path. */
    {
        struct mail_args a;

        assert_int_equal(mail_n("FROM:<a\0b@c>", 12, &NO_FEATURES, &a), PARAM_ERR_ADDRESS);
    }
    MAIL("FROM:<a\rb@c>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a@c\n>", &NO_FEATURES, PARAM_ERR_ADDRESS);
}

static void test_mail_utf8(void **state)
{
    struct mail_args a;

    (void)state;
    MAIL("FROM:<jos\xc3\xa9@example.com>", &NO_FEATURES, PARAM_ERR_ADDRESS_UTF8);
    MAIL("FROM:<a@b\xc3\xbc" "cher.example>", &NO_FEATURES, PARAM_ERR_ADDRESS_UTF8);
    MAIL("FROM:<@\xc3\xa9.example:a@b>", &NO_FEATURES, PARAM_ERR_ADDRESS_UTF8);
    MAIL("FROM:<jos\xc3\xa9@example.com> SIZE=10", &NO_FEATURES, PARAM_ERR_ADDRESS_UTF8);

    assert_int_equal(mail("FROM:<jos\xc3\xa9@example.com> SMTPUTF8", &NO_FEATURES, &a),
                     PARAM_OK);
    assert_true(a.smtputf8);
    assert_true(a.from.has_utf8);
    assert_string_equal(a.from.local, "jos\xc3\xa9");
    MAIL("FROM:<jos\xc3\xa9@example.com> BODY=8BITMIME smtputf8", &NO_FEATURES, PARAM_OK);
    MAIL("FROM:<@\xc3\xa9.example:a@b> SMTPUTF8", &NO_FEATURES, PARAM_OK);

    /* Ill-formed UTF-8 is an address error whatever the parameters say. */
    MAIL("FROM:<jos\xc3@example.com> SMTPUTF8", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<jos\xc3@example.com>", &NO_FEATURES, PARAM_ERR_ADDRESS);
    MAIL("FROM:<a\xed\xa0\x80@example.com> SMTPUTF8", &NO_FEATURES, PARAM_ERR_ADDRESS);

    /* SMTPUTF8 with a value: the parameter error comes first. */
    MAIL("FROM:<jos\xc3\xa9@example.com> SMTPUTF8=YES", &NO_FEATURES, PARAM_ERR_VALUE);
    /* A parameter error before the UTF-8 verdict. */
    MAIL("FROM:<jos\xc3\xa9@example.com> FOO", &NO_FEATURES, PARAM_ERR_UNKNOWN);

    /* UTF-8 in esmtp-value only with SMTPUTF8, and well-formed. */
    MAIL("FROM:<a@b> SMTPUTF8 X-TAG=caf\xc3\xa9", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> X-TAG=caf\xc3\xa9 SMTPUTF8", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> X-TAG=caf\xc3\xa9", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SMTPUTF8 X-TAG=caf\xc3", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SMTPUTF8 X-TAG=\xc2\x85", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SMTPUTF8 ENVID=caf\xc3\xa9", &DSN_ONLY, PARAM_ERR_VALUE);
}

static void test_mail_size(void **state)
{
    struct mail_args a;

    (void)state;
    assert_int_equal(mail("FROM:<a@b> SIZE=12345", &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.has_size);
    assert_int_equal(a.size, 12345);
    assert_int_equal(mail("FROM:<a@b> size=0", &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.has_size);
    assert_int_equal(a.size, 0);
    assert_int_equal(mail("FROM:<a@b> SIZE=18446744073709551615", &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.size == UINT64_MAX);
    assert_int_equal(mail("FROM:<a@b> SIZE=00000000000000000001", &NO_FEATURES, &a), PARAM_OK);
    assert_int_equal(a.size, 1);

    MAIL("FROM:<a@b> SIZE=18446744073709551616", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=99999999999999999999", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=000000000000000000001", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=abc", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=12a", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=-1", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=+1", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SIZE==1", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SIZE=1 SIZE=2", &NO_FEATURES, PARAM_ERR_DUPLICATE);
    MAIL("FROM:<a@b> SIZE=1 size=1", &NO_FEATURES, PARAM_ERR_DUPLICATE);
}

static void test_mail_body(void **state)
{
    struct mail_args a;

    (void)state;
    assert_int_equal(mail("FROM:<a@b> BODY=7BIT", &NO_FEATURES, &a), PARAM_OK);
    assert_int_equal(a.body, BODY_7BIT);
    assert_int_equal(mail("FROM:<a@b> BODY=8BITMIME", &NO_FEATURES, &a), PARAM_OK);
    assert_int_equal(a.body, BODY_8BITMIME);
    assert_int_equal(mail("FROM:<a@b> body=8bitmime", &NO_FEATURES, &a), PARAM_OK);
    assert_int_equal(a.body, BODY_8BITMIME);
    assert_int_equal(mail("FROM:<a@b> Body=7bit", &NO_FEATURES, &a), PARAM_OK);
    assert_int_equal(a.body, BODY_7BIT);

    MAIL("FROM:<a@b> BODY=BINARYMIME", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> BODY=8BIT", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> BODY=7BITX", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> BODY", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> BODY=7BIT BODY=7BIT", &NO_FEATURES, PARAM_ERR_DUPLICATE);
    MAIL("FROM:<a@b> BODY=7BIT body=8BITMIME", &NO_FEATURES, PARAM_ERR_DUPLICATE);
}

static void test_mail_smtputf8_requiretls(void **state)
{
    struct mail_args a;

    (void)state;
    assert_int_equal(mail("FROM:<a@b> SMTPUTF8", &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.smtputf8);
    MAIL("FROM:<a@b> SMTPUTF8=", &NO_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SMTPUTF8=1", &NO_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SMTPUTF8 SMTPUTF8", &NO_FEATURES, PARAM_ERR_DUPLICATE);
    MAIL("FROM:<a@b> SMTPUTF", &NO_FEATURES, PARAM_ERR_UNKNOWN);

    assert_int_equal(mail("FROM:<a@b> REQUIRETLS", &ALL_FEATURES, &a), PARAM_OK);
    assert_true(a.requiretls);
    assert_int_equal(mail("FROM:<a@b> requiretls", &ALL_FEATURES, &a), PARAM_OK);
    assert_true(a.requiretls);
    MAIL("FROM:<a@b> REQUIRETLS", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> REQUIRETLS", &DSN_ONLY, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> REQUIRETLS", NULL, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> REQUIRETLS=YES", &ALL_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> REQUIRETLS=YES", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> REQUIRETLS REQUIRETLS", &ALL_FEATURES, PARAM_ERR_DUPLICATE);
}

static void test_mail_dsn(void **state)
{
    struct mail_args a;
    char buf[200];

    (void)state;
    assert_int_equal(mail("FROM:<a@b> RET=FULL", &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(a.ret, DSN_RET_FULL);
    assert_int_equal(mail("FROM:<a@b> ret=hdrs", &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(a.ret, DSN_RET_HDRS);
    MAIL("FROM:<a@b> RET=PARTIAL", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> RET", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> RET=FULL RET=HDRS", &DSN_ONLY, PARAM_ERR_DUPLICATE);
    MAIL("FROM:<a@b> RET=FULL", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> RET=FULL", NULL, PARAM_ERR_UNKNOWN);

    assert_int_equal(mail("FROM:<a@b> ENVID=QQ314159", &DSN_ONLY, &a), PARAM_OK);
    assert_string_equal(a.envid, "QQ314159");
    assert_int_equal(mail("FROM:<a@b> ENVID=a+2Bb+3D+20!~", &DSN_ONLY, &a), PARAM_OK);
    assert_string_equal(a.envid, "a+2Bb+3D+20!~");
    MAIL("FROM:<a@b> ENVID=a+2bb", &DSN_ONLY, PARAM_ERR_VALUE);    /* lowercase hex */
    MAIL("FROM:<a@b> ENVID=a+2", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> ENVID=a+", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> ENVID=a+G0", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> ENVID=a=b", &DSN_ONLY, PARAM_ERR_SYNTAX);     /* '=' not esmtp-value */
    MAIL("FROM:<a@b> ENVID", &DSN_ONLY, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> ENVID=x ENVID=y", &DSN_ONLY, PARAM_ERR_DUPLICATE);
    MAIL("FROM:<a@b> ENVID=x", &NO_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> ENVID=x", &(struct param_features){ .requiretls = true }, PARAM_ERR_UNKNOWN);

    /* ENVID length: 100 octets as given, one more is refused. */
    memcpy(buf, "FROM:<a@b> ENVID=", 17);
    memset(buf + 17, 'e', 100);
    buf[117] = '\0';
    assert_int_equal(mail(buf, &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(strlen(a.envid), 100);
    buf[117] = 'e';
    buf[118] = '\0';
    MAIL(buf, &DSN_ONLY, PARAM_ERR_VALUE);
}

static void test_mail_params_general(void **state)
{
    struct mail_args a;

    (void)state;
    assert_int_equal(mail("FROM:<a@b>  SIZE=100   BODY=8BITMIME SMTPUTF8 REQUIRETLS "
                          "RET=HDRS ENVID=abc  ", &ALL_FEATURES, &a), PARAM_OK);
    assert_true(a.has_size);
    assert_int_equal(a.size, 100);
    assert_int_equal(a.body, BODY_8BITMIME);
    assert_true(a.smtputf8);
    assert_true(a.requiretls);
    assert_int_equal(a.ret, DSN_RET_HDRS);
    assert_string_equal(a.envid, "abc");

    MAIL("FROM:<a@b> FOO=bar", &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> FOO", &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> AUTH=<>", &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> NOTIFY=NEVER", &ALL_FEATURES, PARAM_ERR_UNKNOWN);   /* RCPT only */
    MAIL("FROM:<a@b> X-1=2", &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> 8=2", &ALL_FEATURES, PARAM_ERR_UNKNOWN);

    /* esmtp-keyword and esmtp-value syntax. */
    MAIL("FROM:<a@b> -FOO=1", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> FO_O=1", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> =1", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SIZE=1 =", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> FOO=a\x01" "b", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> FOO=a\x7f", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SIZE=1\t", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    MAIL("FROM:<a@b> SIZE=1\r\n", &ALL_FEATURES, PARAM_ERR_SYNTAX);
    assert_int_equal(mail_n("FROM:<a@b> SIZE=1\0", 18, &ALL_FEATURES, &a), PARAM_ERR_SYNTAX);
    assert_int_equal(mail_n("FROM:<a@b> SI\0ZE=1", 18, &ALL_FEATURES, &a), PARAM_ERR_SYNTAX);

    /* The first bad parameter decides. */
    MAIL("FROM:<a@b> FOO SIZE=x", &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    MAIL("FROM:<a@b> SIZE=x FOO", &ALL_FEATURES, PARAM_ERR_VALUE);
    MAIL("FROM:<a@b> SIZE=1 -X SIZE=2", &ALL_FEATURES, PARAM_ERR_SYNTAX);
}

/* ---- RCPT ---- */

static void test_rcpt_basic(void **state)
{
    struct rcpt_args a;

    (void)state;
    assert_int_equal(rcpt("TO:<a@example.com>", false, &NO_FEATURES, &a), PARAM_OK);
    assert_string_equal(a.to.local, "a");
    assert_string_equal(a.to.domain, "example.com");
    assert_int_equal(a.notify, 0);
    assert_string_equal(a.orcpt, "");

    assert_int_equal(rcpt("TO:<Postmaster>", false, &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.to.is_bare_postmaster);
    assert_int_equal(rcpt("to: <postmaster> ", false, &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.to.is_bare_postmaster);

    RCPT("to:<a@b>", false, &NO_FEATURES, PARAM_OK);
    RCPT("To:   <a@b>   ", false, &NO_FEATURES, PARAM_OK);
    RCPT("TO:<@x.example,@y.example:a@b>", false, &NO_FEATURES, PARAM_OK);

    RCPT("TO:<>", false, &NO_FEATURES, PARAM_ERR_ADDRESS);
    RCPT("TO:<> NOTIFY=NEVER", false, &DSN_ONLY, PARAM_ERR_ADDRESS);
    RCPT("TO:<a..b@c>", false, &NO_FEATURES, PARAM_ERR_ADDRESS);
    RCPT("TO:a@b", false, &NO_FEATURES, PARAM_ERR_ADDRESS);
    RCPT("TO:<a@b> FOO", false, &NO_FEATURES, PARAM_ERR_UNKNOWN);
    RCPT("TO:<a..b@c> FOO", false, &NO_FEATURES, PARAM_ERR_ADDRESS);

    RCPT("TO:", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("TO: ", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("TO <a@b>", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("T:<a@b>", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("FROM:<a@b>", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("TO:<a@b>x", false, &NO_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("TO:<a@b> SIZE=10", false, &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    RCPT("TO:<a@b> BODY=8BITMIME", false, &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    assert_int_equal(rcpt_n("TO:<a\0@b>", 9, true, &ALL_FEATURES, &a), PARAM_ERR_ADDRESS);
}

static void test_rcpt_utf8(void **state)
{
    struct rcpt_args a;

    (void)state;
    RCPT("TO:<jos\xc3\xa9@example.com>", false, &NO_FEATURES, PARAM_ERR_ADDRESS_UTF8);
    assert_int_equal(rcpt("TO:<jos\xc3\xa9@example.com>", true, &NO_FEATURES, &a), PARAM_OK);
    assert_true(a.to.has_utf8);
    RCPT("TO:<jos\xc3@example.com>", true, &NO_FEATURES, PARAM_ERR_ADDRESS);
    RCPT("TO:<jos\xc3@example.com>", false, &NO_FEATURES, PARAM_ERR_ADDRESS);
    /* SMTPUTF8 is a MAIL parameter; on RCPT it is unknown. */
    RCPT("TO:<a@b> SMTPUTF8", true, &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    /* UTF-8 in esmtp-value follows the transaction state. */
    RCPT("TO:<a@b> X=caf\xc3\xa9", true, &ALL_FEATURES, PARAM_ERR_UNKNOWN);
    RCPT("TO:<a@b> X=caf\xc3\xa9", false, &ALL_FEATURES, PARAM_ERR_SYNTAX);
    RCPT("TO:<a@b> X=caf\xc3", true, &ALL_FEATURES, PARAM_ERR_SYNTAX);
}

static void test_rcpt_notify(void **state)
{
    struct rcpt_args a;

    (void)state;
    assert_int_equal(rcpt("TO:<a@b> NOTIFY=NEVER", false, &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(a.notify, DSN_NOTIFY_NEVER);
    assert_int_equal(rcpt("TO:<a@b> NOTIFY=SUCCESS", false, &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(a.notify, DSN_NOTIFY_SUCCESS);
    assert_int_equal(rcpt("TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", false, &DSN_ONLY, &a),
                     PARAM_OK);
    assert_int_equal(a.notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
    assert_int_equal(rcpt("TO:<a@b> notify=delay,failure", false, &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(a.notify, DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);

    RCPT("TO:<a@b> NOTIFY=NEVER,SUCCESS", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=FAILURE,NEVER", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=SUCCESS,SUCCESS", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=NEVER,NEVER", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=SUCCESS,", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=,SUCCESS", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=SUCCESS,,DELAY", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=,", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=SOMETIMES", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=SUCCES", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> NOTIFY=", false, &DSN_ONLY, PARAM_ERR_SYNTAX);
    RCPT("TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", false, &DSN_ONLY, PARAM_ERR_DUPLICATE);
    RCPT("TO:<a@b> NOTIFY=NEVER", false, &NO_FEATURES, PARAM_ERR_UNKNOWN);
    RCPT("TO:<a@b> NOTIFY=NEVER", false, NULL, PARAM_ERR_UNKNOWN);
}

static void test_rcpt_orcpt(void **state)
{
    struct rcpt_args a;
    char buf[600];

    (void)state;
    assert_int_equal(rcpt("TO:<a@b> ORCPT=rfc822;a@b.example", false, &DSN_ONLY, &a),
                     PARAM_OK);
    assert_string_equal(a.orcpt, "rfc822;a@b.example");
    assert_int_equal(rcpt("TO:<a@b> ORCPT=rfc822;a+2Bb+20c@d", false, &DSN_ONLY, &a),
                     PARAM_OK);
    assert_string_equal(a.orcpt, "rfc822;a+2Bb+20c@d");
    assert_int_equal(rcpt("TO:<a@b> orcpt=utf-8;x NOTIFY=DELAY", false, &DSN_ONLY, &a),
                     PARAM_OK);
    assert_string_equal(a.orcpt, "utf-8;x");
    assert_int_equal(a.notify, DSN_NOTIFY_DELAY);

    RCPT("TO:<a@b> ORCPT=rfc822", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=;a@b", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rfc822;", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rfc822;a+zz", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rfc822;a+2", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rf(c;a", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rfc822;a=b", false, &DSN_ONLY, PARAM_ERR_SYNTAX);
    RCPT("TO:<a@b> ORCPT", false, &DSN_ONLY, PARAM_ERR_VALUE);
    RCPT("TO:<a@b> ORCPT=rfc822;a ORCPT=rfc822;b", false, &DSN_ONLY, PARAM_ERR_DUPLICATE);
    RCPT("TO:<a@b> ORCPT=rfc822;a", false, &NO_FEATURES, PARAM_ERR_UNKNOWN);
    RCPT("TO:<a@b> ORCPT=rfc822;caf\xc3\xa9", true, &DSN_ONLY, PARAM_ERR_VALUE);

    /* 500 octets as given are accepted, 501 are not. */
    memcpy(buf, "TO:<a@b> ORCPT=rfc822;", 22);
    memset(buf + 22, 'o', 493);
    buf[515] = '\0';
    assert_int_equal(rcpt(buf, false, &DSN_ONLY, &a), PARAM_OK);
    assert_int_equal(strlen(a.orcpt), 500);
    buf[515] = 'o';
    buf[516] = '\0';
    RCPT(buf, false, &DSN_ONLY, PARAM_ERR_VALUE);
}

/* ---- BDAT ---- */

static void test_bdat(void **state)
{
    uint64_t size;
    bool last;

    (void)state;
    BDAT_OK("100", 100, false);
    BDAT_OK("0", 0, false);
    BDAT_OK("0 LAST", 0, true);
    BDAT_OK("100 LAST", 100, true);
    BDAT_OK("100 last", 100, true);
    BDAT_OK("7 LaSt", 7, true);
    BDAT_OK("0000000000000000042", 42, false);
    BDAT_OK("1234567890123456789", 1234567890123456789ULL, false);
    BDAT_OK("9999999999999999999", 9999999999999999999ULL, false);
    BDAT_OK("9999999999999999999 LAST", 9999999999999999999ULL, true);

    BDAT_BAD("");
    BDAT_BAD("12345678901234567890");       /* 20 digits */
    BDAT_BAD("00000000000000000001");
    BDAT_BAD("LAST");
    BDAT_BAD(" 100");
    BDAT_BAD("100 ");
    BDAT_BAD("100  LAST");
    BDAT_BAD("100 LASTX");
    BDAT_BAD("100 LAS");
    BDAT_BAD("100 LAST ");
    BDAT_BAD("100 LAST x");
    BDAT_BAD("100\tLAST");
    BDAT_BAD("-1");
    BDAT_BAD("+1");
    BDAT_BAD("10x");
    BDAT_BAD("1 0");
    BDAT_BAD("0x10");
    size = 5;
    last = true;
    assert_false(bdat("100\0", 4, &size, &last));
    assert_int_equal(size, 0);
    assert_false(last);
    assert_false(bdat("100 LAST\0", 9, &size, &last));
    assert_false(command_parse_bdat(NULL, 0, &size, &last));
}

/* ---- HELO ---- */

static void test_helo_valid(void **state)
{
    (void)state;
    HELO("example.com", "example.com");
    HELO("Mail.EXAMPLE.org", "Mail.EXAMPLE.org");
    HELO("localhost", "localhost");
    HELO("my_host-1", "my_host-1");
    HELO("b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example");
    HELO("[192.0.2.1]", "[192.0.2.1]");
    HELO("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]");
    HELO("example.com extra text", "example.com");
    HELO("example.com  \x01garbage\r", "example.com");
    HELO("[192.0.2.1] (may be forged)", "[192.0.2.1]");
    HELO("exa mple", "exa");
    HELO("example.com ", "example.com");
}

static void test_helo_invalid(void **state)
{
    (void)state;
    HELO("", NULL);
    HELO(" example.com", NULL);
    HELO("exa\tmple", NULL);
    HELO("exa\rmple", NULL);
    HELO("example.com\r\n", NULL);
    HELO("exa\x7fmple", NULL);
    HELO("ex@mple", NULL);
    HELO("ex/mple", NULL);
    HELO("ex:mple", NULL);
    HELO("<example>", NULL);
    HELO("[192.0.2.1", NULL);
    HELO("[192.0.2.1]x", NULL);
    HELO("[192.0.2.1]]", NULL);
    HELO("[]", NULL);
    HELO("[", NULL);
    HELO("[a b]", NULL);
    HELO("[a[b]", NULL);
    HELO("[a\\b]", NULL);
    HELO("[a\rb]", NULL);
    HELO("b\xc3(cher", NULL);
    HELO("b\xc3", NULL);
    HELO("\xc0\xaf", NULL);
    HELO("\xed\xa0\x80", NULL);
    HELO("\xf4\x90\x80\x80", NULL);
    HELO("x\xc2\x85y", NULL);
    HELO("\x80", NULL);
    HELO_N("exam\0ple", 8, NULL);
    HELO_N("\0", 1, NULL);
    HELO_N("[1.2.3.4\0]", 10, NULL);
}

static void test_helo_limits(void **state)
{
    char in[300], out[300];

    (void)state;
    memset(in, 'h', 255);
    in[255] = '\0';
    HELO(in, in);
    in[255] = 'h';
    in[256] = '\0';
    HELO(in, NULL);

    /* The output buffer must hold the identity and its NUL. */
    assert_true(helo_n("example.com", 11, out, 12));
    assert_string_equal(out, "example.com");
    assert_false(helo_n("example.com", 11, out, 11));
    assert_int_equal(out[0], '\0');
    out[0] = 'Z';
    assert_false(helo_n("example.com", 11, out, 0));
    assert_int_equal(out[0], 'Z');
    assert_false(command_parse_helo("example.com", 11, NULL, 10));
    assert_false(command_parse_helo(NULL, 0, out, sizeof(out)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_verbs),
        cmocka_unit_test(test_split_args),
        cmocka_unit_test(test_split_unknown),
        cmocka_unit_test(test_split_rejects),
        cmocka_unit_test(test_mail_basic),
        cmocka_unit_test(test_mail_syntax),
        cmocka_unit_test(test_mail_address_errors),
        cmocka_unit_test(test_mail_utf8),
        cmocka_unit_test(test_mail_size),
        cmocka_unit_test(test_mail_body),
        cmocka_unit_test(test_mail_smtputf8_requiretls),
        cmocka_unit_test(test_mail_dsn),
        cmocka_unit_test(test_mail_params_general),
        cmocka_unit_test(test_rcpt_basic),
        cmocka_unit_test(test_rcpt_utf8),
        cmocka_unit_test(test_rcpt_notify),
        cmocka_unit_test(test_rcpt_orcpt),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_helo_valid),
        cmocka_unit_test(test_helo_invalid),
        cmocka_unit_test(test_helo_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

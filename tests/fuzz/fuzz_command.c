/*
 * fuzz_command.c - libFuzzer target for the SMTP command line parser
 * (src/smtpd/command.c, and through it src/mail/address.c).
 *
 * The input is one command line without its CRLF, exactly as the
 * session hands it over. It is split into verb and arguments, and both
 * the whole line and the split-off arguments are parsed as MAIL, RCPT
 * (with and without SMTPUTF8 and the optional extensions), BDAT and
 * HELO arguments. Besides memory errors (ASan) and undefined behaviour
 * (UBSan) it checks what command.h promises.
 */
#include "fuzz.h"

#include "smtpd/command.h"

static const struct param_features all_features = { .requiretls = true, .dsn = true };

static void check_mailbox(const struct mailbox *mb, bool utf8_allowed)
{
    size_t ll = strnlen(mb->local, sizeof(mb->local));
    size_t ul = strnlen(mb->local_unquoted, sizeof(mb->local_unquoted));
    size_t dl = strnlen(mb->domain, sizeof(mb->domain));

    FUZZ_CHECK(ll < sizeof(mb->local));
    FUZZ_CHECK(ul < sizeof(mb->local_unquoted));
    FUZZ_CHECK(dl < sizeof(mb->domain));
    FUZZ_CHECK(!fuzz_has_control(mb->local, ll));
    FUZZ_CHECK(!fuzz_has_control(mb->local_unquoted, ul));
    FUZZ_CHECK(!fuzz_has_control(mb->domain, dl));
    if (!utf8_allowed)
        FUZZ_CHECK(!mb->has_utf8);
}

static void parse_mail(const char *args, size_t len)
{
    struct mail_args plain, full;
    enum param_status st_plain = command_parse_mail(args, len, NULL, &plain);
    enum param_status st_full = command_parse_mail(args, len, &all_features, &full);

    if (st_plain == PARAM_OK) {
        check_mailbox(&plain.from, plain.smtputf8);
        FUZZ_CHECK(!plain.requiretls && plain.ret == DSN_RET_UNSPECIFIED);
        FUZZ_CHECK(plain.envid[0] == '\0');
        /* Turning extensions on never makes a valid command invalid. */
        FUZZ_CHECK(st_full == PARAM_OK);
    }
    if (st_full == PARAM_OK) {
        check_mailbox(&full.from, full.smtputf8);
        FUZZ_CHECK(!full.from.is_bare_postmaster);
        FUZZ_CHECK(strnlen(full.envid, sizeof(full.envid)) <= DSN_ENVID_MAX);
        FUZZ_CHECK(!fuzz_has_control(full.envid, strlen(full.envid)));
    }
}

static void parse_rcpt(const char *args, size_t len)
{
    for (int utf8 = 0; utf8 <= 1; utf8++) {
        struct rcpt_args plain, full;
        enum param_status st_plain = command_parse_rcpt(args, len, utf8, NULL, &plain);
        enum param_status st_full = command_parse_rcpt(args, len, utf8, &all_features, &full);

        if (st_plain == PARAM_OK) {
            check_mailbox(&plain.to, utf8);
            FUZZ_CHECK(plain.notify == 0 && plain.orcpt[0] == '\0');
            FUZZ_CHECK(st_full == PARAM_OK);
        }
        if (st_full == PARAM_OK) {
            check_mailbox(&full.to, utf8);
            FUZZ_CHECK(!full.to.is_null);
            FUZZ_CHECK(strnlen(full.orcpt, sizeof(full.orcpt)) <= DSN_ORCPT_MAX);
            FUZZ_CHECK(!fuzz_has_control(full.orcpt, strlen(full.orcpt)));
            FUZZ_CHECK((full.notify & ~15u) == 0);
        }
        /* Without SMTPUTF8 a valid RCPT stays valid with it. */
        if (!utf8 && st_full == PARAM_OK) {
            struct rcpt_args again;
            FUZZ_CHECK(command_parse_rcpt(args, len, true, &all_features, &again) == PARAM_OK);
        }
    }
}

static void parse_bdat(const char *args, size_t len)
{
    uint64_t size;
    bool last;

    if (!command_parse_bdat(args, len, &size, &last))
        FUZZ_CHECK(size == 0 && !last);
}

static void parse_helo(const char *args, size_t len)
{
    char out[256];
    bool ok = command_parse_helo(args, len, out, sizeof(out));

    FUZZ_CHECK(strnlen(out, sizeof(out)) < sizeof(out));
    if (ok) {
        FUZZ_CHECK(out[0] != '\0' && out[0] != ' ');
        FUZZ_CHECK(!fuzz_has_control(out, strlen(out)));
        FUZZ_CHECK(strlen(out) <= len && memcmp(out, args, strlen(out)) == 0);
    } else {
        FUZZ_CHECK(out[0] == '\0');
    }

    /* A tight heap buffer: the identity must fit with its NUL or be refused. */
    size_t small = len % 32 + 1;
    char *tight = malloc(small);
    FUZZ_CHECK(tight != NULL);
    if (command_parse_helo(args, len, tight, small)) {
        FUZZ_CHECK(ok && strcmp(tight, out) == 0);
    } else {
        FUZZ_CHECK(tight[0] == '\0');
    }
    free(tight);
}

static void parse_args(const char *args, size_t len)
{
    parse_mail(args, len);
    parse_rcpt(args, len);
    parse_bdat(args, len);
    parse_helo(args, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct smtp_command cmd;

    if (command_split(line, size, &cmd)) {
        FUZZ_CHECK(cmd.args >= line && cmd.args_len <= size);
        FUZZ_CHECK((size_t)(cmd.args - line) + cmd.args_len == size);
        parse_args(cmd.args, cmd.args_len);
    } else {
        FUZZ_CHECK(cmd.verb == VERB_UNKNOWN && cmd.args_len == 0);
    }
    parse_args(line, size);
    return 0;
}

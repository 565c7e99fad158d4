/*
 * test_tls_policy.c - unit tests for mail/tls_policy.c: which
 * recipients a require_tls listener still accepts in cleartext.
 *
 * Listener configs are built by hand the way config_load stores them
 * (entries lower-cased, "local" or "local@domain"); mailboxes come from
 * the real path parser, as in a session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "mail/tls_policy.h"
#include "mail/address.h"

/* A listener whose cleartext_recipients are the given (lower-case) entries. */
static void make_listener(struct listener_config *lc, const char *const *entries, size_t n)
{
    memset(lc, 0, sizeof(*lc));
    lc->tls = LTLS_STARTTLS;
    lc->require_tls = true;
    for (size_t i = 0; i < n; i++)
        lc->cleartext_recipients[i] = (char *)entries[i];
    lc->cleartext_count = n;
}

static bool allowed_at(const struct listener_config *lc, const char *path, bool utf8,
                       const char *file, int line)
{
    struct mailbox mb;
    size_t consumed = 0;

    _assert_int_equal(address_parse_path(path, strlen(path), utf8, &mb, &consumed), ADDR_OK,
                      file, line);
    _assert_int_equal(consumed, strlen(path), file, line);
    return tls_policy_cleartext_allowed(lc, &mb);
}

static void expect_at(const struct listener_config *lc, const char *path, bool want,
                      const char *file, int line)
{
    if (allowed_at(lc, path, false, file, line) != want) {
        print_error("%s should be %s\n", path, want ? "allowed" : "refused");
        _fail(file, line);
    }
}

#define ALLOWED(lc, path) expect_at((lc), (path), true, __FILE__, __LINE__)
#define REFUSED(lc, path) expect_at((lc), (path), false, __FILE__, __LINE__)

static const char *const defaults[] = { "postmaster", "abuse" };

static void test_reply_text(void **state)
{
    (void)state;
    /* RFC 3207 section 4: the documented reply, used verbatim by the session. */
    assert_string_equal(TLS_POLICY_REPLY, "530 5.7.0 Must issue a STARTTLS command first");
}

static void test_bare_local_part_any_domain(void **state)
{
    struct listener_config lc;

    (void)state;
    make_listener(&lc, defaults, 2);
    ALLOWED(&lc, "<postmaster@example.test>");
    ALLOWED(&lc, "<abuse@example.test>");
    ALLOWED(&lc, "<postmaster@other.test>");
    ALLOWED(&lc, "<abuse@sub.other.test>");
    ALLOWED(&lc, "<abuse@[127.0.0.1]>");
    /* the policy does not judge the domain: recipient_check does that next */
    ALLOWED(&lc, "<abuse@elsewhere.example>");
    REFUSED(&lc, "<alice@example.test>");
    REFUSED(&lc, "<alice@other.test>");
}

static void test_not_listed(void **state)
{
    struct listener_config lc;

    (void)state;
    make_listener(&lc, defaults, 2);
    /* prefixes, suffixes and look-alikes of listed entries */
    REFUSED(&lc, "<postmaste@example.test>");
    REFUSED(&lc, "<postmasterx@example.test>");
    REFUSED(&lc, "<xabuse@example.test>");
    REFUSED(&lc, "<abuse.team@example.test>");
    REFUSED(&lc, "<abuse+tag@example.test>");
    /* the domain part never matches a bare entry */
    REFUSED(&lc, "<alice@postmaster>");
    REFUSED(&lc, "<alice@abuse.test>");
}

static void test_empty_list(void **state)
{
    struct listener_config lc;

    (void)state;
    make_listener(&lc, NULL, 0);    /* cleartext_recipients = (empty) */
    REFUSED(&lc, "<postmaster@example.test>");
    REFUSED(&lc, "<abuse@example.test>");
    REFUSED(&lc, "<Postmaster>");
}

static void test_full_address(void **state)
{
    static const char *const entries[] = { "tls-reports@example.test", "abuse" };
    struct listener_config lc;

    (void)state;
    make_listener(&lc, entries, 2);
    ALLOWED(&lc, "<tls-reports@example.test>");
    /* a full address matches only itself */
    REFUSED(&lc, "<tls-reports@other.test>");
    REFUSED(&lc, "<tls-reports@sub.example.test>");
    REFUSED(&lc, "<tls-reports@example.tes>");
    REFUSED(&lc, "<tls-report@example.test>");
    /* and does not make its local part a bare entry */
    REFUSED(&lc, "<postmaster@example.test>");
    ALLOWED(&lc, "<abuse@other.test>");
}

static void test_case_insensitive(void **state)
{
    static const char *const entries[] = { "postmaster", "abuse", "tls-reports@example.test" };
    struct listener_config lc;

    (void)state;
    make_listener(&lc, entries, 3);
    ALLOWED(&lc, "<POSTMASTER@EXAMPLE.TEST>");
    ALLOWED(&lc, "<PostMaster@example.test>");
    ALLOWED(&lc, "<Abuse@Other.Test>");
    ALLOWED(&lc, "<TLS-Reports@Example.TEST>");
    ALLOWED(&lc, "<tls-reports@EXAMPLE.test>");
    REFUSED(&lc, "<TLS-Reports@Other.TEST>");
}

static void test_quoted_local_part(void **state)
{
    static const char *const entries[] = { "postmaster", "abuse", "tls-reports@example.test" };
    struct listener_config lc;

    (void)state;
    make_listener(&lc, entries, 3);
    /* a quoted local part is the same mailbox as its unquoted form */
    ALLOWED(&lc, "<\"abuse\"@example.test>");
    ALLOWED(&lc, "<\"Abuse\"@example.test>");
    ALLOWED(&lc, "<\"ab\\use\"@example.test>");
    ALLOWED(&lc, "<\"tls-reports\"@example.test>");
    /* quoting does not let other bytes slip past the comparison */
    REFUSED(&lc, "<\"abuse \"@example.test>");
    REFUSED(&lc, "<\" abuse\"@example.test>");
    REFUSED(&lc, "<\"abuse@example.test\"@other.test>");
    REFUSED(&lc, "<\"tls-reports@example.test\"@x.test>");
    REFUSED(&lc, "<\"\"@example.test>");
}

static void test_bare_postmaster(void **state)
{
    static const char *const only_abuse[] = { "abuse" };
    static const char *const full_only[] = { "postmaster@example.test" };
    struct listener_config lc;

    (void)state;
    make_listener(&lc, defaults, 2);
    ALLOWED(&lc, "<Postmaster>");
    ALLOWED(&lc, "<postmaster>");
    ALLOWED(&lc, "<POSTMASTER>");
    make_listener(&lc, only_abuse, 1);
    REFUSED(&lc, "<Postmaster>");
    REFUSED(&lc, "<postmaster@example.test>");
    /* <Postmaster> has no domain, so a full address entry does not match it */
    make_listener(&lc, full_only, 1);
    REFUSED(&lc, "<Postmaster>");
    ALLOWED(&lc, "<postmaster@example.test>");
}

static void test_source_route_and_utf8(void **state)
{
    struct listener_config lc;

    (void)state;
    make_listener(&lc, defaults, 2);
    /* the dropped source route plays no part */
    ALLOWED(&lc, "<@relay.test,@hop.test:abuse@example.test>");
    REFUSED(&lc, "<@abuse:alice@example.test>");
    /* non-ASCII is compared byte for byte (never folded) */
    assert_false(allowed_at(&lc, "<ab\xc3\xbcse@example.test>", true, __FILE__, __LINE__));
    assert_true(allowed_at(&lc, "<abuse@b\xc3\xbc" "cher.test>", true, __FILE__, __LINE__));
}

static void test_longest_address(void **state)
{
    char local[ADDR_LOCAL_MAX + 1], entry[ADDR_LOCAL_MAX + 40], path[ADDR_PATH_MAX + 1];
    const char *entries[1] = { entry };
    struct listener_config lc;

    (void)state;
    memset(local, 'a', ADDR_LOCAL_MAX);
    local[ADDR_LOCAL_MAX] = '\0';
    snprintf(entry, sizeof(entry), "%s@example.test", local);
    make_listener(&lc, entries, 1);
    snprintf(path, sizeof(path), "<%s@EXAMPLE.test>", local);
    ALLOWED(&lc, path);
    local[ADDR_LOCAL_MAX - 1] = '\0';
    snprintf(path, sizeof(path), "<%s@example.test>", local);
    REFUSED(&lc, path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_text),
        cmocka_unit_test(test_bare_local_part_any_domain),
        cmocka_unit_test(test_not_listed),
        cmocka_unit_test(test_empty_list),
        cmocka_unit_test(test_full_address),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_quoted_local_part),
        cmocka_unit_test(test_bare_postmaster),
        cmocka_unit_test(test_source_route_and_utf8),
        cmocka_unit_test(test_longest_address),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

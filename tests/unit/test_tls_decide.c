/*
 * test_tls_decide.c - the outbound TLS security decision (tls_decide.c)
 * and the classification of TLSA answers (dns_tlsa_classify), offline:
 * every DNSSEC state x TLSA verdict x policy that matters, so that
 * "SERVFAIL is not no-DANE" is checked without a network.
 *
 * Trusts: nothing; pure functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/dns_internal.h"
#include "delivery/tls_decide.h"

static enum host_tls decide(bool validates, enum dnssec_status mx, enum dnssec_status addr,
                            enum tlsa_state tlsa, enum tls_security sec)
{
    struct tls_decide_in in = { validates, mx, addr, tlsa, sec };
    struct tls_decision out;

    tls_decide(&in, &out);
    if (out.mode == HOST_TLS_DEFER)
        assert_string_equal(out.dsn, "4.7.5");
    return out.mode;
}

static void test_wants_tlsa_only_when_all_secure(void **state)
{
    struct tls_decide_in in = { true, DNSSEC_SECURE, DNSSEC_SECURE, TLSA_ST_NOT_LOOKED_UP,
                                TLS_SEC_DANE_OR_STS };
    (void)state;
    assert_true(tls_decide_wants_tlsa(&in));
    in.mx_dnssec = DNSSEC_INSECURE;          /* RFC 7672 2.2.1: no DANE */
    assert_false(tls_decide_wants_tlsa(&in));
    in.mx_dnssec = DNSSEC_SECURE;
    in.addr_dnssec = DNSSEC_INSECURE;        /* pitfall: host in an unsigned zone */
    assert_false(tls_decide_wants_tlsa(&in));
    in.addr_dnssec = DNSSEC_SECURE;
    in.resolver_validates = false;           /* no trust anchor: all insecure */
    assert_false(tls_decide_wants_tlsa(&in));
    in.resolver_validates = true;
    in.security = TLS_SEC_NONE;
    assert_false(tls_decide_wants_tlsa(&in));
    in.security = TLS_SEC_VERIFY;
    assert_false(tls_decide_wants_tlsa(&in));
    in.security = TLS_SEC_MAY;
    assert_true(tls_decide_wants_tlsa(&in));
}

static void test_default_policy(void **state)
{
    const enum dnssec_status S = DNSSEC_SECURE, I = DNSSEC_INSECURE;
    const enum tls_security P = TLS_SEC_DANE_OR_STS;

    (void)state;
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, P), HOST_TLS_DANE);
    assert_int_equal(decide(true, S, S, TLSA_ST_FAILED, P), HOST_TLS_DEFER);
    assert_int_equal(decide(true, S, S, TLSA_ST_NOT_LOOKED_UP, P), HOST_TLS_DEFER);
    assert_int_equal(decide(true, S, S, TLSA_ST_NONE, P), HOST_TLS_OPPORTUNISTIC);
    assert_int_equal(decide(true, S, S, TLSA_ST_UNUSABLE, P), HOST_TLS_ENCRYPT);
    /* not eligible: whatever the TLSA state, opportunistic */
    assert_int_equal(decide(true, I, S, TLSA_ST_NOT_LOOKED_UP, P), HOST_TLS_OPPORTUNISTIC);
    assert_int_equal(decide(true, S, I, TLSA_ST_NOT_LOOKED_UP, P), HOST_TLS_OPPORTUNISTIC);
    assert_int_equal(decide(false, S, S, TLSA_ST_NOT_LOOKED_UP, P), HOST_TLS_OPPORTUNISTIC);
}

static void test_destination_policies(void **state)
{
    const enum dnssec_status S = DNSSEC_SECURE, I = DNSSEC_INSECURE;

    (void)state;
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, TLS_SEC_NONE), HOST_TLS_CLEARTEXT);
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, TLS_SEC_VERIFY), HOST_TLS_PKIX);
    assert_int_equal(decide(true, I, I, TLSA_ST_NOT_LOOKED_UP, TLS_SEC_VERIFY), HOST_TLS_PKIX);
    /* DANE beats anything opportunistic or unauthenticated */
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, TLS_SEC_MAY), HOST_TLS_DANE);
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, TLS_SEC_ENCRYPT), HOST_TLS_DANE);
    assert_int_equal(decide(true, S, S, TLSA_ST_FAILED, TLS_SEC_MAY), HOST_TLS_DEFER);
    assert_int_equal(decide(true, I, S, TLSA_ST_NOT_LOOKED_UP, TLS_SEC_ENCRYPT),
                     HOST_TLS_ENCRYPT);
    assert_int_equal(decide(true, S, S, TLSA_ST_NONE, TLS_SEC_DANE), HOST_TLS_OPPORTUNISTIC);
    assert_int_equal(decide(true, S, S, TLSA_ST_USABLE, TLS_SEC_DANE_ONLY), HOST_TLS_DANE);
    assert_int_equal(decide(true, S, S, TLSA_ST_NONE, TLS_SEC_DANE_ONLY), HOST_TLS_DEFER);
    assert_int_equal(decide(true, I, S, TLSA_ST_NOT_LOOKED_UP, TLS_SEC_DANE_ONLY),
                     HOST_TLS_DEFER);
    assert_int_equal(decide(true, S, S, TLSA_ST_UNUSABLE, TLS_SEC_DANE_ONLY),
                     HOST_TLS_ENCRYPT);
}

static void test_requiretls(void **state)
{
    (void)state;
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_DANE, DNSSEC_SECURE, false, true),
                     REQUIRETLS_OK);
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_PKIX, DNSSEC_SECURE, false, true),
                     REQUIRETLS_OK);
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_DANE, DNSSEC_SECURE, false, false),
                     REQUIRETLS_NOT_OFFERED);
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_NONE, DNSSEC_SECURE, false, true),
                     REQUIRETLS_NOT_AUTHENTICATED);
    /* PKIX to an MX from an insecure lookup: not enough (RFC 8689 4.2) */
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_PKIX, DNSSEC_INSECURE, false, true),
                     REQUIRETLS_NOT_AUTHENTICATED);
    /* ... unless an MTA-STS policy matched the MX */
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_PKIX, DNSSEC_INSECURE, true, true),
                     REQUIRETLS_OK);
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_PKIX, DNSSEC_INSECURE, true, false),
                     REQUIRETLS_NOT_OFFERED);
    /* an STS match without verified TLS (testing mode that failed) is not enough */
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_NONE, DNSSEC_INSECURE, true, true),
                     REQUIRETLS_NOT_AUTHENTICATED);
    /* authentication is checked before the peer's extension */
    assert_int_equal(tls_decide_requiretls(TLS_AUTH_NONE, DNSSEC_INSECURE, false, false),
                     REQUIRETLS_NOT_AUTHENTICATED);
}

/* MTA-STS on top of the DANE decision for a dane-or-sts host. */
static struct tls_decision sts_decide(enum tlsa_state tlsa, bool have, enum sts_mode mode,
                                      bool match)
{
    struct tls_decide_in in = { true, DNSSEC_SECURE, DNSSEC_SECURE, tlsa,
                                TLS_SEC_DANE_OR_STS };
    struct tls_decision out;

    tls_decide(&in, &out);
    tls_decide_sts(have, mode, match, &out);
    return out;
}

static void test_sts(void **state)
{
    struct tls_decision d;

    (void)state;
    /* enforce: matching host verified by PKIX, others deferred */
    d = sts_decide(TLSA_ST_NONE, true, STS_MODE_ENFORCE, true);
    assert_int_equal(d.mode, HOST_TLS_PKIX);
    assert_false(d.report_only);
    assert_true(d.sts_mx);
    d = sts_decide(TLSA_ST_NONE, true, STS_MODE_ENFORCE, false);
    assert_int_equal(d.mode, HOST_TLS_DEFER);
    assert_string_equal(d.dsn, "4.7.5");
    assert_false(d.sts_mx);
    /* testing: verify but deliver; a host not in the policy stays opportunistic */
    d = sts_decide(TLSA_ST_NONE, true, STS_MODE_TESTING, true);
    assert_int_equal(d.mode, HOST_TLS_PKIX);
    assert_true(d.report_only);
    d = sts_decide(TLSA_ST_NONE, true, STS_MODE_TESTING, false);
    assert_int_equal(d.mode, HOST_TLS_OPPORTUNISTIC);
    /* none, or no policy: opportunistic */
    assert_int_equal(sts_decide(TLSA_ST_NONE, true, STS_MODE_NONE, true).mode,
                     HOST_TLS_OPPORTUNISTIC);
    assert_int_equal(sts_decide(TLSA_ST_NONE, false, STS_MODE_ENFORCE, false).mode,
                     HOST_TLS_OPPORTUNISTIC);
    /* DANE wins (RFC 8461 2): usable TLSA, unusable TLSA, failed lookup */
    assert_int_equal(sts_decide(TLSA_ST_USABLE, true, STS_MODE_ENFORCE, false).mode,
                     HOST_TLS_DANE);
    assert_int_equal(sts_decide(TLSA_ST_UNUSABLE, true, STS_MODE_ENFORCE, false).mode,
                     HOST_TLS_ENCRYPT);
    d = sts_decide(TLSA_ST_FAILED, true, STS_MODE_ENFORCE, true);
    assert_int_equal(d.mode, HOST_TLS_DEFER);
    assert_false(d.sts_mx);
}

static enum tlsa_state classify(enum dns_answer_kind kind, enum dnssec_status sec,
                                const struct tlsa_rdata *rrs, size_t n, size_t *usable)
{
    struct dns_answer ans = { kind, sec, "SERVFAIL" };
    struct tlsa_set *set = calloc(1, sizeof(*set));
    char why[120];
    enum tlsa_state st;

    assert_non_null(set);
    st = dns_tlsa_classify(&ans, rrs, n, set, why, sizeof(why));
    if (st != TLSA_ST_USABLE)
        assert_true(why[0] != '\0');
    if (usable)
        *usable = set->usable_count;
    free(set);
    return st;
}

static void test_classify_tlsa_answers(void **state)
{
    uint8_t ee[35] = { 3, 1, 1 }, pkix[35] = { 1, 1, 1 }, shortrr[2] = { 3, 1 };
    struct tlsa_rdata good = { ee, sizeof(ee) }, bad = { pkix, sizeof(pkix) };
    struct tlsa_rdata malformed = { shortrr, sizeof(shortrr) };
    struct tlsa_rdata both[2] = { { pkix, sizeof(pkix) }, { ee, sizeof(ee) } };
    size_t usable = 0;

    (void)state;
    /* failures are never "no DANE" */
    assert_int_equal(classify(DNS_ANS_TEMPFAIL, DNSSEC_INSECURE, NULL, 0, NULL),
                     TLSA_ST_FAILED);
    assert_int_equal(classify(DNS_ANS_BOGUS, DNSSEC_BOGUS, &good, 1, NULL), TLSA_ST_FAILED);
    assert_int_equal(classify(DNS_ANS_DATA, DNSSEC_SECURE, &malformed, 1, NULL),
                     TLSA_ST_FAILED);
    /* denials and insecure data: no DANE */
    assert_int_equal(classify(DNS_ANS_NODATA, DNSSEC_SECURE, NULL, 0, NULL), TLSA_ST_NONE);
    assert_int_equal(classify(DNS_ANS_NXDOMAIN, DNSSEC_SECURE, NULL, 0, NULL), TLSA_ST_NONE);
    assert_int_equal(classify(DNS_ANS_NODATA, DNSSEC_INSECURE, NULL, 0, NULL), TLSA_ST_NONE);
    assert_int_equal(classify(DNS_ANS_DATA, DNSSEC_INSECURE, &good, 1, NULL), TLSA_ST_NONE);
    /* secure data */
    assert_int_equal(classify(DNS_ANS_DATA, DNSSEC_SECURE, &good, 1, &usable), TLSA_ST_USABLE);
    assert_int_equal(usable, 1);
    assert_int_equal(classify(DNS_ANS_DATA, DNSSEC_SECURE, &bad, 1, NULL), TLSA_ST_UNUSABLE);
    assert_int_equal(classify(DNS_ANS_DATA, DNSSEC_SECURE, both, 2, &usable), TLSA_ST_USABLE);
    assert_int_equal(usable, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wants_tlsa_only_when_all_secure),
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_destination_policies),
        cmocka_unit_test(test_requiretls),
        cmocka_unit_test(test_sts),
        cmocka_unit_test(test_classify_tlsa_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

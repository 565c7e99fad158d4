/*
 * test_sts_codec.c - unit tests for the MTA-STS pieces that need no
 * network: the cache record codec (mail/sts_codec.c), the verdict on a
 * fetched policy (delivery/sts_response.c), the TXT character-string
 * join (dns_txt_join) and the "TLS-Required: No" header scan
 * (mail/tls_required.c).
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

#include "delivery/dns.h"
#include "delivery/sts_response.h"
#include "mail/sts_codec.h"
#include "mail/tls_required.h"

#define POLICY "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"

static struct sts_record rec, out;
static struct sts_policy pol;
static char buf[STS_RECORD_MAX + 16];

static void fill(const char *domain, const char *id, int64_t fetched, const char *body)
{
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.domain, sizeof(rec.domain), "%s", domain);
    snprintf(rec.id, sizeof(rec.id), "%s", id);
    rec.fetched = fetched;
    rec.body_len = strlen(body);
    memcpy(rec.body, body, rec.body_len);
}

static bool decode(const char *text)
{
    char err[200];

    return sts_record_decode(text, strlen(text), &out, &pol, err, sizeof(err));
}

static void test_round_trip(void **state)
{
    size_t len;
    char err[200];

    (void)state;
    fill("example.com", "20160831085700Z", 1733350000, POLICY);
    len = sts_record_encode(&rec, buf, sizeof(buf));
    assert_true(len > 0);
    assert_memory_equal(buf, "sealpost-sts 1\ndomain example.com\nid 20160831085700Z\n"
                        "fetched 1733350000\n\n", 72);
    assert_true(sts_record_decode(buf, len, &out, &pol, err, sizeof(err)));
    assert_string_equal(out.domain, "example.com");
    assert_string_equal(out.id, "20160831085700Z");
    assert_int_equal(out.fetched, 1733350000);
    assert_int_equal(out.body_len, strlen(POLICY));
    assert_int_equal(pol.mode, STS_MODE_ENFORCE);
    assert_int_equal(pol.max_age, 86400);
}

static void test_refused(void **state)
{
    (void)state;
    /* fields the encoder refuses */
    fill("Example.com", "1", 1, POLICY);
    assert_int_equal(sts_record_encode(&rec, buf, sizeof(buf)), 0);
    fill("example.com", "a-b", 1, POLICY);
    assert_int_equal(sts_record_encode(&rec, buf, sizeof(buf)), 0);
    fill("example.com", "1", 0, POLICY);
    assert_int_equal(sts_record_encode(&rec, buf, sizeof(buf)), 0);
    fill("example.com", "1", 1, POLICY);
    assert_int_equal(sts_record_encode(&rec, buf, 40), 0);
    /* records the decoder refuses */
    assert_true(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 2\ndomain a.test\nid 1\nfetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain ../etc\nid 1\nfetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a..test\nid 1\nfetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain -a.test\nid 1\nfetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a.test\nid 123456789012345678901234567890123\n"
                        "fetched 5\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 05\n\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 99999999999999\n\n"
                        POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 5\n" POLICY));
    assert_false(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 5\n\nmode: enforce\n"));
    assert_false(decode("sealpost-sts 1\nid 1\ndomain a.test\nfetched 5\n\n" POLICY));
    assert_false(sts_record_decode("x", STS_RECORD_MAX + 1, &out, &pol, buf, 100));
}

static void test_expiry(void **state)
{
    (void)state;
    assert_true(decode("sealpost-sts 1\ndomain a.test\nid 1\nfetched 1000\n\n" POLICY));
    assert_false(sts_record_expired(&out, &pol, 1000));
    assert_false(sts_record_expired(&out, &pol, 1000 + 86399));
    assert_true(sts_record_expired(&out, &pol, 1000 + 86400));
    assert_true(sts_record_expired(&out, &pol, 999));       /* fetched in the future */
}

static enum sts_fetch_verdict check(bool ok, bool webpki, bool big, long status,
                                    const char *ctype, const char *body)
{
    struct sts_http_response r;
    char why[400];
    enum sts_fetch_verdict v;

    memset(&r, 0, sizeof(r));
    r.transport_ok = ok;
    r.tls_verify_failed = webpki;
    r.too_big = big;
    r.status = status;
    snprintf(r.content_type, sizeof(r.content_type), "%s", ctype);
    r.body = body;
    r.body_len = strlen(body);
    v = sts_response_check(&r, &pol, why, sizeof(why));
    if (v != STS_FETCH_OK)
        assert_true(why[0] != '\0');
    return v;
}

static void test_response(void **state)
{
    (void)state;
    assert_int_equal(check(true, false, false, 200, "text/plain", POLICY), STS_FETCH_OK);
    assert_int_equal(check(true, false, false, 200, "Text/Plain; charset=utf-8", POLICY),
                     STS_FETCH_OK);
    assert_int_equal(check(true, false, false, 200, "text/plain ;x=y", POLICY), STS_FETCH_OK);
    assert_int_equal(check(true, false, false, 200, "text/html", POLICY), STS_FETCH_INVALID);
    assert_int_equal(check(true, false, false, 200, "text/plainx", POLICY), STS_FETCH_INVALID);
    assert_int_equal(check(true, false, false, 200, "", POLICY), STS_FETCH_INVALID);
    assert_int_equal(check(true, false, false, 302, "text/plain", POLICY), STS_FETCH_ERROR);
    assert_int_equal(check(true, false, false, 404, "text/plain", POLICY), STS_FETCH_ERROR);
    assert_int_equal(check(true, false, false, 200, "text/plain", "mode: enforce\n"),
                     STS_FETCH_INVALID);
    assert_int_equal(check(false, false, true, 0, "", ""), STS_FETCH_INVALID);
    assert_int_equal(check(false, true, false, 0, "", ""), STS_FETCH_WEBPKI);
    assert_int_equal(check(false, false, false, 0, "", ""), STS_FETCH_ERROR);
    assert_string_equal(sts_fetch_verdict_name(STS_FETCH_INVALID), "sts-policy-invalid");
    assert_string_equal(sts_fetch_verdict_name(STS_FETCH_ERROR), "sts-policy-fetch-error");
    assert_string_equal(sts_fetch_verdict_name(STS_FETCH_WEBPKI), "sts-webpki-invalid");
}

static void test_txt_join(void **state)
{
    static struct dns_txt_record r;
    const uint8_t two[] = { 3, 'v', '=', 'S', 4, 'T', 'S', 'v', '1' };
    const uint8_t bad[] = { 5, 'a', 'b' };
    uint8_t big[256 * 40];

    (void)state;
    assert_true(dns_txt_join(two, sizeof(two), &r));
    assert_int_equal(r.len, 7);
    assert_memory_equal(r.data, "v=STSv1", 7);
    assert_false(dns_txt_join(bad, sizeof(bad), &r));
    assert_true(dns_txt_join(two, 0, &r));
    assert_int_equal(r.len, 0);
    for (size_t i = 0; i < sizeof(big); i += 256) {
        big[i] = 255;
        memset(big + i + 1, 'x', 255);
    }
    assert_true(dns_txt_join(big, sizeof(big), &r));
    assert_true(r.too_long);
    assert_int_equal(r.len, DNS_TXT_RECORD_MAX);
}

static bool trn(const char *m)
{
    return tls_required_no(m, strlen(m));
}

static void test_tls_required_no(void **state)
{
    (void)state;
    assert_true(trn("From: a@b\r\nTLS-Required: No\r\n\r\nbody\r\n"));
    assert_true(trn("tls-required:no\r\n\r\n"));
    assert_true(trn("TLS-Required :\r\n  No \r\nX: y\r\n\r\n"));     /* folded, WSP */
    assert_true(trn("Subject: x\nTLS-Required: NO\n\n"));
    assert_false(trn("TLS-Required: Yes\r\n\r\n"));
    assert_false(trn("TLS-Required: Nope\r\n\r\n"));
    assert_false(trn("X-TLS-Required: No\r\n\r\n"));
    assert_false(trn("Subject: a\r\n TLS-Required: No\r\n\r\n"));   /* continuation */
    assert_false(trn("From: a@b\r\n\r\nTLS-Required: No\r\n"));     /* in the body */
    assert_false(trn("TLS-RequiredX: No\r\n\r\n"));
    assert_false(trn(""));
    assert_true(tls_required_no("TLS-Required: No", 16));            /* cut short */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_txt_join),
        cmocka_unit_test(test_tls_required_no),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

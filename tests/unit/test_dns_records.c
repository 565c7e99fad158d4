/*
 * test_dns_records.c - unit tests for tls/dns_records.c: what `sealpost
 * dns-records` tells operators to publish must pass sealpost's own
 * parsers of those records (delivery/sts_policy.c, delivery/sts_txt.c),
 * which follow RFC 8461 and RFC 8460: the policy file, its TXT record
 * (whose id follows the policy text), the TLS-RPT record; and a file
 * that holds no key is refused with its name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "delivery/sts_policy.h"
#include "delivery/sts_txt.h"
#include "tls/dns_records.h"

static void test_policy_parses(void **state)
{
    static struct sts_policy p;
    char text[1024];
    size_t len = dns_records_sts_policy("mx.example.org", text, sizeof(text));

    (void)state;
    assert_true(len > 0);
    assert_true(sts_policy_parse(text, len, &p));
    assert_string_equal(p.error, "");
    assert_int_equal(p.mode, STS_MODE_TESTING);
    assert_int_equal(p.max_age, DNS_RECORDS_STS_MAX_AGE);
    assert_int_equal(p.mx_count, 1);
    assert_true(sts_mx_matches(&p, "mx.example.org"));
    assert_false(sts_mx_matches(&p, "other.example.org"));
    /* too small a buffer: nothing, never a cut policy */
    assert_int_equal(dns_records_sts_policy("mx.example.org", text, 20), 0);
}

static void test_sts_txt_parses_and_id_follows_policy(void **state)
{
    struct sts_txt t;
    char a[1024], b[1024], txt_a[128], txt_a2[128], txt_b[128];

    (void)state;
    dns_records_sts_policy("mx.example.org", a, sizeof(a));
    dns_records_sts_policy("mx2.example.org", b, sizeof(b));
    dns_records_sts_txt(a, txt_a, sizeof(txt_a));
    dns_records_sts_txt(a, txt_a2, sizeof(txt_a2));
    dns_records_sts_txt(b, txt_b, sizeof(txt_b));
    assert_int_equal(sts_txt_parse(txt_a, strlen(txt_a), &t), STS_TXT_OK);
    assert_int_equal(strlen(t.id), DNS_RECORDS_STS_ID_LEN);
    assert_string_equal(txt_a, txt_a2);             /* deterministic */
    assert_string_not_equal(txt_a, txt_b);          /* a new policy, a new id */
    assert_int_equal(sts_txt_parse(txt_b, strlen(txt_b), &t), STS_TXT_OK);
}

static void test_tlsrpt_txt_parses(void **state)
{
    struct tlsrpt_txt r;
    char txt[256];

    (void)state;
    dns_records_tlsrpt_txt("example.org", txt, sizeof(txt));
    assert_int_equal(tlsrpt_txt_parse(txt, strlen(txt), &r), STS_TXT_OK);
    assert_int_equal(r.rua_count, 1);
    assert_int_equal(r.rua[0].scheme, TLSRPT_MAILTO);
    assert_string_equal(r.rua[0].uri, "mailto:tlsrpt@example.org");
}

static void test_unreadable_files_are_refused(void **state)
{
    char hex[65], desc[128], err[512];
    char path[] = "/tmp/test_dns_records_XXXXXX";
    FILE *f;
    int fd;

    (void)state;
    assert_false(dns_records_spki_sha256("/nonexistent/cert.pem", hex, desc, sizeof(desc), err,
                                         sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/cert.pem: No such file"));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    assert_false(dns_records_spki_sha256(path, hex, desc, sizeof(desc), err, sizeof(err)));
    assert_non_null(strstr(err, "no PEM certificate"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_parses),
        cmocka_unit_test(test_sts_txt_parses_and_id_follows_policy),
        cmocka_unit_test(test_tlsrpt_txt_parses),
        cmocka_unit_test(test_unreadable_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_tlsrpt.c - unit tests for TLS-RPT records (mail/tlsrpt_codec.c:
 * the IPC form from the delivery process and the stored line form) and
 * the JSON writer of the reports (queue/tlsrpt_report.c): round trips,
 * the largest record fitting one IPC message and one line, records a
 * compromised delivery process or an edited spool file could hold
 * (refused or cleaned), escaping of everything the writer prints, the
 * certificate-error mapping and the TXT character-string join.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "delivery/dns.h"
#include "delivery/tlsrpt_note.h"
#include "mail/tlsrpt_codec.h"
#include "queue/tlsrpt_report.h"
#include "queue/tlsrpt_store.h"
#include "util/ipc.h"

static char buf[IPC_MAX_PAYLOAD];
static char line[TLSRPT_LINE_MAX];
static struct tlsrpt_record rec, back;

static void fill(struct tlsrpt_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->domain, sizeof(r->domain), "d.example.test");
    r->policy_type = TLSRPT_POLICY_TLSA;
    r->result = TLSRPT_VALIDATION_FAILURE;
    snprintf(r->mx_host, sizeof(r->mx_host), "mx-1.example.test");
    snprintf(r->ip, sizeof(r->ip), "2001:db8::1");
    snprintf(r->sending_ip, sizeof(r->sending_ip), "192.0.2.7");
    snprintf(r->reason, sizeof(r->reason), "no matching DANE TLSA records");
    r->policy_string_count = 2;
    snprintf(r->policy_strings[0], sizeof(r->policy_strings[0]), "3 1 1 %064d", 0);
    snprintf(r->policy_strings[1], sizeof(r->policy_strings[1]), "2 0 1 ab,cd-%%");
    r->mx_pattern_count = 1;
    snprintf(r->mx_patterns[0], sizeof(r->mx_patterns[0]), "*.example.test");
    r->rua_count = 2;
    snprintf(r->rua[0], sizeof(r->rua[0]), "mailto:tls-rpt@example.test");
    snprintf(r->rua[1], sizeof(r->rua[1]), "https://r.example.test/x?a=b%%2Cc");
}

static void assert_same(const struct tlsrpt_record *a, const struct tlsrpt_record *b)
{
    assert_string_equal(a->domain, b->domain);
    assert_int_equal(a->policy_type, b->policy_type);
    assert_int_equal(a->result, b->result);
    assert_string_equal(a->mx_host, b->mx_host);
    assert_string_equal(a->ip, b->ip);
    assert_string_equal(a->sending_ip, b->sending_ip);
    assert_string_equal(a->reason, b->reason);
    assert_int_equal(a->policy_string_count, b->policy_string_count);
    for (size_t i = 0; i < a->policy_string_count; i++)
        assert_string_equal(a->policy_strings[i], b->policy_strings[i]);
    assert_int_equal(a->mx_pattern_count, b->mx_pattern_count);
    for (size_t i = 0; i < a->mx_pattern_count; i++)
        assert_string_equal(a->mx_patterns[i], b->mx_patterns[i]);
    assert_int_equal(a->rua_count, b->rua_count);
    for (size_t i = 0; i < a->rua_count; i++)
        assert_string_equal(a->rua[i], b->rua[i]);
}

static void test_ipc_round_trip(void **state)
{
    char err[128];
    size_t len;

    (void)state;
    fill(&rec);
    len = tlsrpt_record_encode(&rec, buf, sizeof(buf));
    assert_true(len > 0 && len <= IPC_MAX_PAYLOAD);
    assert_true(tlsrpt_record_decode(buf, len, &back, err, sizeof(err)));
    assert_same(&rec, &back);
    assert_false(tlsrpt_record_decode(buf, len - 1, &back, err, sizeof(err)));
    assert_int_equal(tlsrpt_record_encode(&rec, buf, len - 1), 0);
}

static void test_line_round_trip(void **state)
{
    char err[128];
    size_t len;

    (void)state;
    fill(&rec);
    len = tlsrpt_line_format(&rec, line, sizeof(line));
    assert_true(len > 0 && line[len - 1] == '\n');
    assert_null(memchr(line, '\n', len - 1));
    /* '-' and ',' inside values never look like an empty field or a list */
    assert_non_null(strstr(line, "mx%2D1.example.test"));
    assert_true(tlsrpt_line_parse(line, len, "d.example.test", &back, err, sizeof(err)));
    assert_same(&rec, &back);
    /* empty strings and lists */
    rec.ip[0] = rec.sending_ip[0] = rec.reason[0] = '\0';
    rec.policy_string_count = rec.mx_pattern_count = rec.rua_count = 0;
    rec.policy_type = TLSRPT_POLICY_NONE;
    rec.result = TLSRPT_SUCCESS;
    len = tlsrpt_line_format(&rec, line, sizeof(line));
    assert_string_equal(line, "success no%2Dpolicy%2Dfound mx%2D1.example.test - - - - - -\n");
    assert_true(tlsrpt_line_parse(line, len, "d.example.test", &back, err, sizeof(err)));
    assert_same(&rec, &back);
}

static void test_largest_record_fits(void **state)
{
    char err[128];
    size_t len;

    (void)state;
    fill(&rec);
    rec.policy_string_count = TLSRPT_POLICY_STRINGS;
    rec.mx_pattern_count = TLSRPT_MX_PATTERNS;
    rec.rua_count = TLSRPT_RUA_COUNT;
    for (size_t i = 0; i < TLSRPT_POLICY_STRINGS; i++)
        memset(rec.policy_strings[i], ' ', TLSRPT_POLICY_STRING_MAX);
    memset(rec.reason, '%', TLSRPT_REASON_MAX);
    for (size_t i = 0; i < TLSRPT_MX_PATTERNS; i++) {
        for (size_t k = 0; k < 252; k += 2)
            memcpy(rec.mx_patterns[i] + k, "-.", 2);
        rec.mx_patterns[i][0] = 'a';
        rec.mx_patterns[i][251] = 'a';
        rec.mx_patterns[i][252] = '\0';
    }
    for (size_t i = 0; i < TLSRPT_RUA_COUNT; i++)
        memset(rec.rua[i], ',', TLSRPT_URI_LEN);
    assert_true(tlsrpt_record_encode(&rec, buf, sizeof(buf)) > 0);
    len = tlsrpt_line_format(&rec, line, sizeof(line));
    assert_true(len > 0);
    assert_true(tlsrpt_line_parse(line, len, "d.example.test", &back, err, sizeof(err)));
}

static void test_refused_and_cleaned(void **state)
{
    char err[128];
    size_t len;

    (void)state;
    fill(&rec);
    snprintf(rec.domain, sizeof(rec.domain), "../etc");
    assert_false(tlsrpt_record_check(&rec, err, sizeof(err)));
    fill(&rec);
    snprintf(rec.mx_host, sizeof(rec.mx_host), "MX.Example.Test");
    assert_false(tlsrpt_record_check(&rec, err, sizeof(err)));
    fill(&rec);
    snprintf(rec.ip, sizeof(rec.ip), "1.2.3.4\"x");
    assert_false(tlsrpt_record_check(&rec, err, sizeof(err)));
    fill(&rec);
    rec.result = TLSRPT_RESULT_COUNT;
    assert_false(tlsrpt_record_check(&rec, err, sizeof(err)));
    fill(&rec);
    rec.rua_count = TLSRPT_RUA_COUNT + 1;
    assert_false(tlsrpt_record_check(&rec, err, sizeof(err)));
    /* an unterminated string in the IPC form */
    fill(&rec);
    len = tlsrpt_record_encode(&rec, buf, sizeof(buf));
    memset(buf, 0, 20);                      /* type 0: out of range */
    assert_false(tlsrpt_record_decode(buf, len, &back, err, sizeof(err)));
    /* internet text is cleaned, not refused */
    fill(&rec);
    snprintf(rec.policy_strings[0], sizeof(rec.policy_strings[0]), "mode: \x1b[31mx\xff");
    assert_true(tlsrpt_record_check(&rec, err, sizeof(err)));
    assert_string_equal(rec.policy_strings[0], "mode: ?[31mx?");
}

static void test_bad_lines(void **state)
{
    static const char *const bad[] = {
        "",
        "success tlsa mx.example.test - - - - -\n",                /* 8 fields */
        "success tlsa mx.example.test - - - - - - -\n",            /* 10 fields */
        "success  tlsa mx.example.test - - - - - -\n",             /* empty field */
        "bogus tlsa mx.example.test - - - - - -\n",                /* unknown result */
        "success tlsa mx-1.example.test - - - - - -\n",            /* raw '-' */
        "success tlsa mx.example.test %2 - - - - -\n",             /* short escape */
        "success tlsa mx.example.test - - %00 - - -\n",            /* NUL */
        "success tlsa mx.example.test - - - a,,b - -\n",           /* empty item */
        "success tlsa mx.example.test - - - a,%2D - -\n",          /* an item "-" is fine */
        "success tlsa ..example.test - - - - - -\n",               /* bad name */
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool ok = tlsrpt_line_parse(bad[i], strlen(bad[i]), "d.example.test", &back, err,
                                    sizeof(err));
        assert_int_equal(ok, i == 9);
        if (ok)
            assert_string_equal(back.policy_strings[1], "-");
    }
}

static void test_json_escaping(void **state)
{
    struct tlsrpt_buf b = { 0 };

    (void)state;
    tlsrpt_json_string(&b, "a\"b\\c\n\x01\x7f\xc3\xa9</script>");
    assert_string_equal(b.data,
                        "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\\u00c3\\u00a9</script>\"");
    tlsrpt_buf_free(&b);
    tlsrpt_json_string(&b, "");
    assert_string_equal(b.data, "\"\"");
    tlsrpt_buf_free(&b);
}

static void test_day_names(void **state)
{
    time_t t;
    char day[TLSRPT_DAY_LEN + 1];

    (void)state;
    assert_true(tlsrpt_day_parse("2026-12-04", &t));
    assert_int_equal(t, 1796342400);
    tlsrpt_day_name(t + 86399, day);
    assert_string_equal(day, "2026-12-04");
    assert_false(tlsrpt_day_parse("2026-02-30", &t));
    assert_false(tlsrpt_day_parse("2026-2-03", &t));
    assert_false(tlsrpt_day_parse("1969-12-31", &t));
    assert_false(tlsrpt_day_parse("../../etc", &t));
}

static void test_verify_results(void **state)
{
    (void)state;
    assert_int_equal(tlsrpt_result_of_verify(X509_V_ERR_HOSTNAME_MISMATCH),
                     TLSRPT_CERTIFICATE_HOST_MISMATCH);
    assert_int_equal(tlsrpt_result_of_verify(X509_V_ERR_CERT_HAS_EXPIRED),
                     TLSRPT_CERTIFICATE_EXPIRED);
    assert_int_equal(tlsrpt_result_of_verify(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                     TLSRPT_CERTIFICATE_NOT_TRUSTED);
    assert_int_equal(tlsrpt_result_of_verify(X509_V_ERR_DANE_NO_MATCH),
                     TLSRPT_VALIDATION_FAILURE);
    for (int r = 0; r < TLSRPT_RESULT_COUNT; r++)
        assert_non_null(tlsrpt_result_name((enum tlsrpt_result)r));
    assert_null(tlsrpt_result_name(TLSRPT_RESULT_COUNT));
    assert_string_equal(tlsrpt_result_name(TLSRPT_DNSSEC_INVALID), "dnssec-invalid");
}

static void test_txt_join(void **state)
{
    static const uint8_t two[] = { 10, 'v', '=', 'T', 'L', 'S', 'R', 'P', 'T', 'v', '1',
                                   3, ';', ' ', 'x', 0 };
    static const uint8_t short_len[] = { 5, 'a', 'b' };
    static struct dns_txt_record r;

    (void)state;
    assert_true(dns_txt_join(two, sizeof(two), &r));
    assert_int_equal(r.len, 13);
    assert_memory_equal(r.data, "v=TLSRPTv1; x", 13);
    assert_false(r.too_long);
    assert_false(dns_txt_join(short_len, sizeof(short_len), &r));
    assert_true(dns_txt_join(two, 0, &r));
    assert_int_equal(r.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc_round_trip),
        cmocka_unit_test(test_line_round_trip),
        cmocka_unit_test(test_largest_record_fits),
        cmocka_unit_test(test_refused_and_cleaned),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_day_names),
        cmocka_unit_test(test_verify_results),
        cmocka_unit_test(test_txt_join),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

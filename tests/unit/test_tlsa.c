/*
 * test_tlsa.c - unit tests for delivery/tlsa.c: TLSA rdata (RFC 6698 2.1) and
 * the SMTP usability rules of RFC 7672 3.1 (usages, selectors, matching
 * types, digest and Full(0) lengths at and around their limits,
 * malformed rdata, and whole RRsets with the usable-record limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/tlsa.h"

static struct tlsa_record rec;

/* rdata: usage, selector, mtype, then len octets of (seed + i). */
static uint8_t *make(uint8_t usage, uint8_t selector, uint8_t mtype, size_t len, uint8_t seed)
{
    uint8_t *p = malloc(3 + len);

    assert_non_null(p);
    p[0] = usage;
    p[1] = selector;
    p[2] = mtype;
    for (size_t i = 0; i < len; i++)
        p[3 + i] = (uint8_t)(seed + i);
    return p;
}

static enum tlsa_verdict verdict(uint8_t usage, uint8_t selector, uint8_t mtype, size_t len)
{
    uint8_t *p = make(usage, selector, mtype, len, 0x40);
    enum tlsa_verdict v = tlsa_parse_rdata(p, 3 + len, &rec);

    if (v != TLSA_MALFORMED) {
        assert_int_equal(rec.usage, usage);
        assert_int_equal(rec.selector, selector);
        assert_int_equal(rec.mtype, mtype);
        assert_int_equal(rec.data_len, len);
    }
    if (v == TLSA_USABLE)
        assert_memory_equal(rec.data, p + 3, len);
    free(p);
    return v;
}

static void test_usable(void **state)
{
    (void)state;
    /* the RFC 7672 recommendation: DANE-EE(3) SPKI(1) SHA2-256(1) */
    assert_int_equal(verdict(3, 1, 1, 32), TLSA_USABLE);
    assert_int_equal(verdict(3, 0, 1, 32), TLSA_USABLE);
    assert_int_equal(verdict(2, 0, 1, 32), TLSA_USABLE);
    assert_int_equal(verdict(2, 1, 2, 64), TLSA_USABLE);
    assert_int_equal(verdict(3, 1, 2, 64), TLSA_USABLE);
    assert_int_equal(verdict(2, 0, 0, 1), TLSA_USABLE);
    assert_int_equal(verdict(3, 1, 0, 294), TLSA_USABLE);     /* an RSA-2048 SPKI */
    assert_int_equal(verdict(3, 0, 0, TLSA_DATA_MAX), TLSA_USABLE);
}

static void test_digest_lengths(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 70; len++) {
        assert_int_equal(verdict(3, 1, 1, len), len == 32 ? TLSA_USABLE : TLSA_BAD_LENGTH);
        assert_int_equal(verdict(2, 0, 2, len), len == 64 ? TLSA_USABLE : TLSA_BAD_LENGTH);
    }
    /* Full(0): anything from 1 to TLSA_DATA_MAX */
    assert_int_equal(verdict(3, 0, 0, TLSA_DATA_MAX - 1), TLSA_USABLE);
    assert_int_equal(verdict(3, 0, 0, TLSA_DATA_MAX + 1), TLSA_BAD_LENGTH);
    assert_int_equal(rec.data_len, TLSA_DATA_MAX + 1);      /* the real length, not copied */
    assert_int_equal(verdict(3, 0, 0, 65535 - 3), TLSA_BAD_LENGTH);
}

static void test_unusable_parameters(void **state)
{
    (void)state;
    /* PKIX-TA(0) and PKIX-EE(1) are not for SMTP; 4-255 are unassigned/private */
    assert_int_equal(verdict(0, 1, 1, 32), TLSA_BAD_USAGE);
    assert_int_equal(verdict(1, 1, 1, 32), TLSA_BAD_USAGE);
    assert_int_equal(verdict(4, 1, 1, 32), TLSA_BAD_USAGE);
    assert_int_equal(verdict(255, 1, 1, 32), TLSA_BAD_USAGE);
    assert_int_equal(verdict(3, 2, 1, 32), TLSA_BAD_SELECTOR);
    assert_int_equal(verdict(3, 255, 1, 32), TLSA_BAD_SELECTOR);
    assert_int_equal(verdict(3, 1, 3, 32), TLSA_BAD_MTYPE);
    assert_int_equal(verdict(3, 1, 255, 32), TLSA_BAD_MTYPE);
    /* the first reason in the order usage, selector, mtype, length */
    assert_int_equal(verdict(0, 9, 9, 1), TLSA_BAD_USAGE);
    assert_int_equal(verdict(3, 9, 9, 1), TLSA_BAD_SELECTOR);
    assert_int_equal(verdict(3, 1, 9, 1), TLSA_BAD_MTYPE);
    /* unusable: nothing copied */
    assert_int_equal(verdict(1, 1, 1, 32), TLSA_BAD_USAGE);
    for (size_t i = 0; i < 32; i++)
        assert_int_equal(rec.data[i], 0);
}

static void test_malformed(void **state)
{
    static const uint8_t short4[4] = { 3, 1, 1, 0xaa };

    (void)state;
    for (size_t len = 0; len < 4; len++)
        assert_int_equal(tlsa_parse_rdata(short4, len, &rec), TLSA_MALFORMED);
    assert_int_equal(rec.usage, 0);
    assert_int_equal(rec.data_len, 0);
    assert_int_equal(tlsa_parse_rdata(NULL, 40, &rec), TLSA_MALFORMED);
    /* 4 octets: well-formed (a 1-octet digest is merely unusable) */
    assert_int_equal(tlsa_parse_rdata(short4, 4, &rec), TLSA_BAD_LENGTH);
}

static void test_rrset(void **state)
{
    struct tlsa_set *set = malloc(sizeof(*set));
    uint8_t *blobs[8];
    struct tlsa_rdata rrs[8];

    (void)state;
    assert_non_null(set);
    blobs[0] = make(1, 1, 1, 32, 0);      /* unusable: usage */
    blobs[1] = make(3, 1, 1, 32, 1);      /* usable */
    blobs[2] = make(3, 1, 1, 31, 2);      /* unusable: length */
    blobs[3] = make(2, 0, 2, 64, 3);      /* usable */
    blobs[4] = make(3, 7, 1, 32, 4);      /* unusable: selector */
    blobs[5] = make(3, 1, 9, 32, 5);      /* unusable: mtype */
    blobs[6] = make(3, 0, 0, 700, 6);     /* usable */
    blobs[7] = make(3, 1, 1, 0, 7);       /* malformed: 3 octets */
    static const size_t lens[8] = { 35, 35, 34, 67, 35, 35, 703, 3 };
    for (size_t i = 0; i < 8; i++) {
        rrs[i].data = blobs[i];
        rrs[i].len = lens[i];
    }

    assert_true(tlsa_parse_rrset(rrs, 7, set));
    assert_string_equal(set->error, "");
    assert_int_equal(set->usable_count, 3);
    assert_int_equal(set->over_limit, 0);
    assert_int_equal(set->bad_usage, 1);
    assert_int_equal(set->bad_selector, 1);
    assert_int_equal(set->bad_mtype, 1);
    assert_int_equal(set->bad_length, 1);
    assert_int_equal(set->unusable, 4);
    /* in answer order, the data copied */
    assert_int_equal(set->usable[0].usage, 3);
    assert_int_equal(set->usable[0].data_len, 32);
    assert_memory_equal(set->usable[0].data, blobs[1] + 3, 32);
    assert_int_equal(set->usable[1].usage, 2);
    assert_int_equal(set->usable[1].mtype, 2);
    assert_memory_equal(set->usable[1].data, blobs[3] + 3, 64);
    assert_int_equal(set->usable[2].data_len, 700);
    assert_memory_equal(set->usable[2].data, blobs[6] + 3, 700);
    /* the slot after the last usable record stays empty */
    assert_int_equal(set->usable[3].data_len, 0);
    assert_int_equal(set->usable[3].usage, 0);

    /* one malformed record fails the whole RRset */
    assert_false(tlsa_parse_rrset(rrs, 8, set));
    assert_string_equal(set->error, "record 8: malformed TLSA rdata (3 octets, at least 4 needed)");
    assert_int_equal(set->usable_count, 0);
    assert_int_equal(set->unusable, 0);
    rrs[7].data = NULL;
    rrs[7].len = 0;
    assert_false(tlsa_parse_rrset(rrs + 7, 1, set));
    assert_string_equal(set->error, "record 1: malformed TLSA rdata (0 octets, at least 4 needed)");

    /* nothing at all is fine */
    assert_true(tlsa_parse_rrset(rrs, 0, set));
    assert_int_equal(set->usable_count, 0);
    assert_true(tlsa_parse_rrset(NULL, 0, set));
    assert_false(tlsa_parse_rrset(NULL, 1, set));

    for (size_t i = 0; i < 8; i++)
        free(blobs[i]);
    free(set);
}

static void test_rrset_limit(void **state)
{
    enum { N = TLSA_USABLE_MAX + 3 };
    struct tlsa_set *set = malloc(sizeof(*set));
    uint8_t *blobs[N];
    struct tlsa_rdata rrs[N];

    (void)state;
    assert_non_null(set);
    for (size_t i = 0; i < N; i++) {
        /* record 1 is unusable; the rest are usable */
        blobs[i] = make(i == 1 ? 0 : 3, 1, 1, 32, (uint8_t)i);
        rrs[i].data = blobs[i];
        rrs[i].len = 35;
    }
    assert_true(tlsa_parse_rrset(rrs, TLSA_USABLE_MAX + 1, set));
    assert_int_equal(set->usable_count, TLSA_USABLE_MAX);
    assert_int_equal(set->over_limit, 0);
    assert_int_equal(set->unusable, 1);
    assert_true(tlsa_parse_rrset(rrs, N, set));
    assert_int_equal(set->usable_count, TLSA_USABLE_MAX);
    assert_int_equal(set->over_limit, 2);
    assert_int_equal(set->unusable, 1);
    assert_int_equal(set->usable_count + set->over_limit + set->unusable, N);
    /* the first TLSA_USABLE_MAX usable ones, in order, skipping record 1 */
    assert_memory_equal(set->usable[0].data, blobs[0] + 3, 32);
    assert_memory_equal(set->usable[1].data, blobs[2] + 3, 32);
    assert_memory_equal(set->usable[TLSA_USABLE_MAX - 1].data, blobs[TLSA_USABLE_MAX] + 3, 32);
    for (size_t i = 0; i < N; i++)
        free(blobs[i]);
    free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usable),
        cmocka_unit_test(test_digest_lengths),
        cmocka_unit_test(test_unusable_parameters),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rrset),
        cmocka_unit_test(test_rrset_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

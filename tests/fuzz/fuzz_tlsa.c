/*
 * fuzz_tlsa.c - libFuzzer target for TLSA rdata parsing and the SMTP
 * usability rules (src/delivery/tlsa.c).
 *
 * Input layout: records, each a two-octet big-endian length and that
 * many rdata octets (cut short at the end of the input), at most
 * MAX_RECORDS. Every rdata gets its own allocation of exactly its size,
 * so AddressSanitizer sees a read past any record. Checked:
 *  - tlsa_parse_rdata agrees with a reference classifier written from
 *    tlsa.h: the verdict, the three fields, data_len, and the data copied
 *    exactly when usable (and never more than TLSA_DATA_MAX);
 *  - tlsa_parse_rrset fails exactly when some rdata is malformed, naming
 *    the first one and leaving everything else zero; otherwise its counts
 *    add up to the number of records, the kept records are the first
 *    TLSA_USABLE_MAX usable ones in order, and the slots after them are
 *    zero;
 *  - the same RRset parses the same twice.
 */
#include "fuzz.h"

#include "delivery/tlsa.h"

#define MAX_RECORDS 40

static enum tlsa_verdict ref_verdict(const uint8_t *p, size_t len)
{
    if (len < 4)
        return TLSA_MALFORMED;
    if (p[0] != 2 && p[0] != 3)
        return TLSA_BAD_USAGE;
    if (p[1] > 1)
        return TLSA_BAD_SELECTOR;
    size_t n = len - 3;
    switch (p[2]) {
    case 0:
        return n <= TLSA_DATA_MAX ? TLSA_USABLE : TLSA_BAD_LENGTH;
    case 1:
        return n == 32 ? TLSA_USABLE : TLSA_BAD_LENGTH;
    case 2:
        return n == 64 ? TLSA_USABLE : TLSA_BAD_LENGTH;
    default:
        return TLSA_BAD_MTYPE;
    }
}

static bool zero_record(const struct tlsa_record *r)
{
    if (r->usage != 0 || r->selector != 0 || r->mtype != 0 || r->data_len != 0)
        return false;
    for (size_t i = 0; i < sizeof(r->data); i++)
        if (r->data[i] != 0)
            return false;
    return true;
}

static bool same_record(const struct tlsa_record *a, const uint8_t *p, size_t len)
{
    return a->usage == p[0] && a->selector == p[1] && a->mtype == p[2] &&
           a->data_len == len - 3 && len - 3 <= TLSA_DATA_MAX &&
           memcmp(a->data, p + 3, len - 3) == 0;
}

static void check_record(struct tlsa_record *rec, const uint8_t *p, size_t len)
{
    enum tlsa_verdict v = tlsa_parse_rdata(p, len, rec);

    FUZZ_CHECK(v == ref_verdict(p, len));
    if (v == TLSA_MALFORMED) {
        FUZZ_CHECK(zero_record(rec));
        return;
    }
    FUZZ_CHECK(rec->usage == p[0] && rec->selector == p[1] && rec->mtype == p[2]);
    FUZZ_CHECK(rec->data_len == len - 3);
    if (v == TLSA_USABLE) {
        FUZZ_CHECK(same_record(rec, p, len));
    } else {
        for (size_t i = 0; i < sizeof(rec->data); i++)
            FUZZ_CHECK(rec->data[i] == 0);
    }
}

static void check_set(const struct tlsa_rdata *rrs, size_t count, struct tlsa_set *a,
                      struct tlsa_set *b)
{
    bool ok = tlsa_parse_rrset(rrs, count, a);
    size_t first_bad = count, usable = 0, by[TLSA_MALFORMED + 1] = { 0 };

    for (size_t i = 0; i < count; i++) {
        enum tlsa_verdict v = ref_verdict(rrs[i].data, rrs[i].len);
        if (v == TLSA_MALFORMED && first_bad == count)
            first_bad = i;
        by[v]++;
    }
    FUZZ_CHECK(strnlen(a->error, sizeof(a->error)) < sizeof(a->error));
    if (first_bad < count) {
        char want[32];
        snprintf(want, sizeof(want), "record %zu: ", first_bad + 1);
        FUZZ_CHECK(!ok);
        FUZZ_CHECK(strncmp(a->error, want, strlen(want)) == 0);
        FUZZ_CHECK(a->usable_count == 0 && a->over_limit == 0 && a->unusable == 0 &&
                   a->bad_usage == 0 && a->bad_selector == 0 && a->bad_mtype == 0 &&
                   a->bad_length == 0);
        for (size_t i = 0; i < TLSA_USABLE_MAX; i++)
            FUZZ_CHECK(zero_record(&a->usable[i]));
        return;
    }
    FUZZ_CHECK(ok && a->error[0] == '\0');
    FUZZ_CHECK(a->bad_usage == by[TLSA_BAD_USAGE] && a->bad_selector == by[TLSA_BAD_SELECTOR] &&
               a->bad_mtype == by[TLSA_BAD_MTYPE] && a->bad_length == by[TLSA_BAD_LENGTH]);
    FUZZ_CHECK(a->unusable == a->bad_usage + a->bad_selector + a->bad_mtype + a->bad_length);
    FUZZ_CHECK(a->usable_count + a->over_limit == by[TLSA_USABLE]);
    FUZZ_CHECK(a->usable_count + a->over_limit + a->unusable == count);
    FUZZ_CHECK(a->usable_count <= TLSA_USABLE_MAX);
    FUZZ_CHECK(a->over_limit == 0 || a->usable_count == TLSA_USABLE_MAX);
    for (size_t i = 0; i < count; i++) {
        if (ref_verdict(rrs[i].data, rrs[i].len) != TLSA_USABLE)
            continue;
        if (usable < TLSA_USABLE_MAX) {
            const struct tlsa_record *r = &a->usable[usable];
            FUZZ_CHECK(same_record(r, rrs[i].data, rrs[i].len));
            FUZZ_CHECK(r->usage == TLSA_USAGE_DANE_TA || r->usage == TLSA_USAGE_DANE_EE);
        }
        usable++;
    }
    for (size_t i = a->usable_count; i < TLSA_USABLE_MAX; i++)
        FUZZ_CHECK(zero_record(&a->usable[i]));

    FUZZ_CHECK(tlsa_parse_rrset(rrs, count, b));
    FUZZ_CHECK(b->usable_count == a->usable_count && b->over_limit == a->over_limit &&
               b->unusable == a->unusable);
    FUZZ_CHECK(memcmp(b->usable, a->usable, sizeof(a->usable)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tlsa_rdata rrs[MAX_RECORDS];
    uint8_t *blobs[MAX_RECORDS];
    struct fuzz_input in = { data, size, 0 };
    size_t count = 0;
    struct tlsa_record *rec = malloc(sizeof(*rec));
    struct tlsa_set *a = malloc(sizeof(*a));
    struct tlsa_set *b = malloc(sizeof(*b));

    FUZZ_CHECK(rec != NULL && a != NULL && b != NULL);
    while (in.pos < in.len && count < MAX_RECORDS) {
        size_t n = (size_t)fuzz_byte(&in) << 8;
        n |= fuzz_byte(&in);
        if (n > in.len - in.pos)
            n = in.len - in.pos;
        blobs[count] = malloc(n ? n : 1);
        FUZZ_CHECK(blobs[count] != NULL);
        memcpy(blobs[count], in.p + in.pos, n);
        in.pos += n;
        rrs[count].data = blobs[count];
        rrs[count].len = n;
        check_record(rec, blobs[count], n);
        count++;
    }
    check_set(rrs, count, a, b);

    for (size_t i = 0; i < count; i++)
        free(blobs[i]);
    free(rec);
    free(a);
    free(b);
    return 0;
}

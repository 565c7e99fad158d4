/*
 * fuzz_sts_codec.c - libFuzzer target for the cached MTA-STS policy
 * record (src/mail/sts_codec.c), which the queue reads from the delivery
 * process (IPC_STS_STORE) and from files under spool/sts/.
 *
 * Input layout: the whole input is one record, in a buffer of exactly
 * its size. Checked:
 *  - a refused record leaves a printable, non-empty error;
 *  - an accepted one has a valid domain and id (sts_domain_valid,
 *    sts_id_valid, checked here against a reference), fetched in range,
 *    a body within STS_POLICY_BODY_MAX that is found verbatim at the end
 *    of the input, and a policy that parses;
 *  - it encodes back to exactly the input (one form only), and the
 *    encoding decodes to the same record.
 */
#include "fuzz.h"

#include "mail/sts_codec.h"

static struct sts_record rec, rec2;
static struct sts_policy pol, pol2;
static char buf[STS_RECORD_MAX];

static bool ref_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > STS_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9')))
            return false;
    return true;
}

static bool ref_domain(const char *d)
{
    size_t n = strlen(d), label = 0;

    if (n == 0 || n > STS_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-' || d[i + 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') || ++label > 63)
            return false;
    }
    return d[0] != '-' && d[n - 1] != '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[200] = "";
    uint8_t *copy = malloc(size ? size : 1);
    size_t len;

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    if (!sts_record_decode(copy, size, &rec, &pol, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != '\0');
        for (const char *p = err; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        free(copy);
        return 0;
    }
    FUZZ_CHECK(sts_domain_valid(rec.domain) && ref_domain(rec.domain));
    FUZZ_CHECK(sts_id_valid(rec.id) && ref_id(rec.id));
    FUZZ_CHECK(rec.fetched > 0);
    FUZZ_CHECK(rec.body_len <= STS_POLICY_BODY_MAX && rec.body_len <= size);
    FUZZ_CHECK(memcmp(rec.body, copy + size - rec.body_len, rec.body_len) == 0);
    len = sts_record_encode(&rec, buf, sizeof(buf));
    FUZZ_CHECK(len == size && memcmp(buf, copy, size) == 0);
    FUZZ_CHECK(sts_record_decode(buf, len, &rec2, &pol2, err, sizeof(err)));
    FUZZ_CHECK(strcmp(rec.domain, rec2.domain) == 0 && strcmp(rec.id, rec2.id) == 0);
    FUZZ_CHECK(rec.fetched == rec2.fetched && rec.body_len == rec2.body_len);
    FUZZ_CHECK(pol.mode == pol2.mode && pol.max_age == pol2.max_age &&
               pol.mx_count == pol2.mx_count);
    free(copy);
    return 0;
}

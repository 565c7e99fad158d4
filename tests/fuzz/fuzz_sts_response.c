/*
 * fuzz_sts_response.c - libFuzzer target for what the delivery process
 * makes of a fetched MTA-STS policy (src/delivery/sts_response.c) and of
 * a message header (src/mail/tls_required.c, "TLS-Required: No").
 *
 * Input layout: byte 0: flags (bit 0 transport_ok, bit 1
 * tls_verify_failed, bit 2 too_big); bytes 1-2: HTTP status (big
 * endian); then a length-prefixed Content-Type (fuzz_string), then the
 * body: the rest, in a buffer of exactly its size. The whole input is
 * also scanned as a message header. Checked:
 *  - the verdict is one of the four; STS_FETCH_OK exactly when the
 *    transport worked, nothing failed, status is 200, the media type is
 *    text/plain (by a reference) and sts_policy_parse accepts the body;
 *  - a failure leaves a printable reason and a zeroed policy;
 *  - tls_required_no never reads past the input and agrees with itself
 *    on a copy that ends right after the header.
 */
#include "fuzz.h"

#include <strings.h>

#include "delivery/sts_response.h"
#include "mail/tls_required.h"

static struct sts_policy pol, ref;

static bool ref_media(const char *c)
{
    size_t i = 10;

    if (strncasecmp(c, "text/plain", 10) != 0)
        return false;
    while (c[i] == ' ' || c[i] == '\t')
        i++;
    return c[i] == '\0' || c[i] == ';';
}

static void check_header(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    bool a, b;

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    a = tls_required_no(copy, size);
    b = tls_required_no(copy, size);
    FUZZ_CHECK(a == b);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    struct sts_http_response r;
    uint8_t flags = fuzz_byte(&in);
    char why[400], *ctype, *body;
    enum sts_fetch_verdict v;
    bool want_ok;

    memset(&r, 0, sizeof(r));
    r.transport_ok = flags & 1;
    r.tls_verify_failed = flags & 2;
    r.too_big = flags & 4;
    r.status = (long)fuzz_byte(&in) << 8;
    r.status |= fuzz_byte(&in);
    ctype = fuzz_string(&in, sizeof(r.content_type) - 1);
    memcpy(r.content_type, ctype, strlen(ctype) + 1);
    body = malloc(in.len - in.pos + 1);
    if (body == NULL)
        abort();
    memcpy(body, in.p + in.pos, in.len - in.pos);
    r.body = body;
    r.body_len = in.len - in.pos;
    v = sts_response_check(&r, &pol, why, sizeof(why));
    FUZZ_CHECK(v == STS_FETCH_OK || v == STS_FETCH_ERROR || v == STS_FETCH_INVALID ||
               v == STS_FETCH_WEBPKI);
    want_ok = r.transport_ok && !r.tls_verify_failed && !r.too_big && r.status == 200 &&
              ref_media(r.content_type) && sts_policy_parse(body, r.body_len, &ref);
    FUZZ_CHECK((v == STS_FETCH_OK) == want_ok);
    if (v != STS_FETCH_OK) {
        FUZZ_CHECK(why[0] != '\0' && pol.mx_count == 0 && pol.max_age == 0);
        FUZZ_CHECK(sts_fetch_verdict_name(v)[0] != '\0');
    }
    free(body);
    free(ctype);
    check_header(data, size);
    return 0;
}

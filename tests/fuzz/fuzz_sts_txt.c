/*
 * fuzz_sts_txt.c - libFuzzer target for the "_mta-sts" and "_smtp._tls"
 * TXT record parsers (src/delivery/sts_txt.c).
 *
 * Input layout: the whole input is one joined TXT record, handed to both
 * parsers in a buffer of exactly its size (no NUL after it). Checked:
 *  - STS_TXT_OTHER exactly when the record does not begin with the
 *    version followed by ';', SP, HTAB or its end;
 *  - anything but STS_TXT_OK leaves every field zero and a printable
 *    error; STS_TXT_OK only for printable ASCII within the length limit;
 *  - an id is 1-32 letters and digits, NUL-terminated;
 *  - rua: 1..TLSRPT_RUA_MAX URIs, each NUL-terminated, at most
 *    TLSRPT_URI_MAX octets, with a scheme matching its kind, no space,
 *    ',', '!', ';' or control byte, and found verbatim in the input;
 *  - the same input parses the same twice; a record rebuilt from what was
 *    kept ("v=STSv1; id=ID", "v=TLSRPTv1; rua=U1,U2") parses to the same
 *    id or URIs with nothing ignored.
 */
#define _GNU_SOURCE         /* memmem */
#include "fuzz.h"

#include <strings.h>

#include "delivery/sts_txt.h"

static bool printable_line(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    if (len == size)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static bool begins_with_version(const char *s, size_t len, const char *v)
{
    size_t n = strlen(v);

    return len >= n && memcmp(s, v, n) == 0 &&
           (len == n || s[n] == ';' || s[n] == ' ' || s[n] == '\t');
}

static bool all_printable_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\t' && (c < 0x20 || c > 0x7e))
            return false;
    }
    return true;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* ---- _mta-sts ---- */

static void check_sts(const char *rec, size_t len)
{
    struct sts_txt a, b;
    enum sts_txt_result r = sts_txt_parse(rec, len, &a);

    FUZZ_CHECK(r == STS_TXT_OK || r == STS_TXT_OTHER || r == STS_TXT_INVALID);
    FUZZ_CHECK((r == STS_TXT_OTHER) == !begins_with_version(rec, len, "v=STSv1"));
    FUZZ_CHECK(printable_line(a.error, sizeof(a.error)));
    FUZZ_CHECK(sts_txt_parse(rec, len, &b) == r);
    FUZZ_CHECK(strcmp(a.id, b.id) == 0 && strcmp(a.error, b.error) == 0);
    if (r != STS_TXT_OK) {
        FUZZ_CHECK(a.error[0] != '\0' && all_zero(a.id, sizeof(a.id)));
        return;
    }
    FUZZ_CHECK(a.error[0] == '\0');
    FUZZ_CHECK(len <= STS_TXT_RECORD_MAX && all_printable_ascii(rec, len));
    size_t idlen = strnlen(a.id, sizeof(a.id));
    FUZZ_CHECK(idlen >= 1 && idlen <= STS_TXT_ID_MAX);
    for (size_t i = 0; i < idlen; i++) {
        unsigned char c = (unsigned char)a.id[i];
        FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
    }

    char again[64];
    int n = snprintf(again, sizeof(again), "v=STSv1; id=%s", a.id);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(again));
    FUZZ_CHECK(sts_txt_parse(again, (size_t)n, &b) == STS_TXT_OK);
    FUZZ_CHECK(strcmp(a.id, b.id) == 0);
}

/* ---- _smtp._tls ---- */

static bool uri_octet_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ',' && c != '!' && c != ';' && c != '"' &&
           c != '<' && c != '>' && c != '\\' && c != '^' && c != '`' && c != '{' &&
           c != '|' && c != '}';
}

static void check_uri(const struct tlsrpt_uri *u, const char *rec, size_t len)
{
    size_t n = strnlen(u->uri, sizeof(u->uri));

    FUZZ_CHECK(n < sizeof(u->uri) && n >= 1 && n <= TLSRPT_URI_MAX);
    if (u->scheme == TLSRPT_MAILTO)
        FUZZ_CHECK(strncasecmp(u->uri, "mailto:", 7) == 0 && strchr(u->uri + 7, '@') != NULL);
    else
        FUZZ_CHECK(u->scheme == TLSRPT_HTTPS && strncasecmp(u->uri, "https://", 8) == 0 &&
                   n > 8);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(uri_octet_ok((unsigned char)u->uri[i]));
    FUZZ_CHECK(memmem(rec, len, u->uri, n) != NULL);
}

static bool same_rpt(const struct tlsrpt_txt *a, const struct tlsrpt_txt *b, bool ignored_too)
{
    if (a->rua_count != b->rua_count || (ignored_too && a->rua_ignored != b->rua_ignored))
        return false;
    for (size_t i = 0; i < a->rua_count; i++)
        if (a->rua[i].scheme != b->rua[i].scheme || strcmp(a->rua[i].uri, b->rua[i].uri) != 0)
            return false;
    return true;
}

static void check_tlsrpt(const char *rec, size_t len)
{
    struct tlsrpt_txt *a = malloc(sizeof(*a));
    struct tlsrpt_txt *b = malloc(sizeof(*b));

    FUZZ_CHECK(a != NULL && b != NULL);
    enum sts_txt_result r = tlsrpt_txt_parse(rec, len, a);
    FUZZ_CHECK(r == STS_TXT_OK || r == STS_TXT_OTHER || r == STS_TXT_INVALID);
    FUZZ_CHECK((r == STS_TXT_OTHER) == !begins_with_version(rec, len, "v=TLSRPTv1"));
    FUZZ_CHECK(printable_line(a->error, sizeof(a->error)));
    FUZZ_CHECK(tlsrpt_txt_parse(rec, len, b) == r);
    FUZZ_CHECK(same_rpt(a, b, true) && strcmp(a->error, b->error) == 0);
    if (r != STS_TXT_OK) {
        FUZZ_CHECK(a->error[0] != '\0');
        FUZZ_CHECK(a->rua_count == 0 && a->rua_ignored == 0 && all_zero(a->rua, sizeof(a->rua)));
        goto out;
    }
    FUZZ_CHECK(a->error[0] == '\0');
    FUZZ_CHECK(len <= STS_TXT_RECORD_MAX && all_printable_ascii(rec, len));
    FUZZ_CHECK(a->rua_count >= 1 && a->rua_count <= TLSRPT_RUA_MAX);
    for (size_t i = 0; i < TLSRPT_RUA_MAX; i++) {
        if (i < a->rua_count)
            check_uri(&a->rua[i], rec, len);
        else
            FUZZ_CHECK(all_zero(&a->rua[i], sizeof(a->rua[i])));
    }

    /* rebuilt from the kept URIs: the same list, nothing ignored */
    size_t cap = 32 + TLSRPT_RUA_MAX * (TLSRPT_URI_MAX + 1);
    char *again = malloc(cap);
    FUZZ_CHECK(again != NULL);
    size_t n = (size_t)snprintf(again, cap, "v=TLSRPTv1; rua=");
    for (size_t i = 0; i < a->rua_count; i++)
        n += (size_t)snprintf(again + n, cap - n, "%s%s", i ? "," : "", a->rua[i].uri);
    FUZZ_CHECK(n < cap);
    FUZZ_CHECK(tlsrpt_txt_parse(again, n, b) == STS_TXT_OK);
    FUZZ_CHECK(same_rpt(a, b, false) && b->rua_ignored == 0);
    free(again);
out:
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *rec = malloc(size ? size : 1);

    FUZZ_CHECK(rec != NULL);
    memcpy(rec, data, size);
    check_sts(rec, size);
    check_tlsrpt(rec, size);
    free(rec);
    return 0;
}

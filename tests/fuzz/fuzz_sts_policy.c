/*
 * fuzz_sts_policy.c - libFuzzer target for the MTA-STS policy parser and
 * MX matcher (src/delivery/sts_policy.c).
 *
 * Input layout: the whole input is a policy body, handed over in a
 * buffer of exactly its size (no NUL after it), so AddressSanitizer sees
 * any read past the end. Its first line is also used as a host name.
 * Checked:
 *  - a failed parse leaves every field zero and a printable error; a
 *    successful one has a known mode, max_age within the RFC limit, mx
 *    required unless mode is none, at most STS_POLICY_MX_MAX patterns,
 *    each NUL-terminated in its slot, lower-case, distinct and valid by
 *    a reference written from the header;
 *  - the same input parses to the same result twice;
 *  - when every CR is part of a CRLF, the body with LF only and the body
 *    with CRLF only give the same result;
 *  - sts_mx_matches agrees with a reference matcher (RFC 8461 4.1) on
 *    hosts made from each pattern and on the first input line, for the
 *    parsed policy and for a fixed one.
 */
#include "fuzz.h"

#include <strings.h>

#include "delivery/sts_policy.h"

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

/* Reference: labels split on '.', each 1-63 of [a-z0-9-] with no '-' at
 * either end; 1-253 octets in all; lower-case only when lower is set. */
static bool ref_name(const char *s, size_t len, bool lower)
{
    size_t start = 0;

    if (len < 1 || len > 253)
        return false;
    while (start <= len) {
        const char *dot = memchr(s + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - s) : len;
        size_t n = end - start;
        if (n < 1 || n > 63 || s[start] == '-' || s[end - 1] == '-')
            return false;
        for (size_t i = start; i < end; i++) {
            unsigned char c = (unsigned char)s[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      (!lower && c >= 'A' && c <= 'Z');
            if (!ok)
                return false;
        }
        start = end + 1;
    }
    return true;
}

static bool ref_match(const struct sts_policy *p, const char *host)
{
    size_t len = strlen(host);

    if (len > 0 && host[len - 1] == '.')
        len--;
    if (!ref_name(host, len, false))
        return false;
    for (size_t i = 0; i < p->mx_count; i++) {
        const char *m = p->mx[i];
        size_t mlen = strlen(m);
        if (m[0] == '*') {
            size_t suffix = mlen - 1;           /* ".domain" */
            if (len <= suffix || strncasecmp(host + len - suffix, m + 1, suffix) != 0)
                continue;
            if (memchr(host, '.', len - suffix) == NULL)
                return true;                    /* one label before it */
        } else if (len == mlen && strncasecmp(host, m, len) == 0) {
            return true;
        }
    }
    return false;
}

static void check_policy(const struct sts_policy *p, bool ok)
{
    FUZZ_CHECK(printable_line(p->error, sizeof(p->error)));
    if (!ok) {
        FUZZ_CHECK(p->error[0] != '\0');
        FUZZ_CHECK(p->mode == 0 && p->max_age == 0 && p->mx_count == 0);
        for (size_t i = 0; i < STS_POLICY_MX_MAX; i++)
            FUZZ_CHECK(p->mx[i][0] == '\0');
        return;
    }
    FUZZ_CHECK(p->error[0] == '\0');
    FUZZ_CHECK(p->mode == STS_MODE_NONE || p->mode == STS_MODE_TESTING ||
               p->mode == STS_MODE_ENFORCE);
    FUZZ_CHECK(p->max_age <= STS_MAX_AGE_MAX);
    FUZZ_CHECK(p->mx_count <= STS_POLICY_MX_MAX);
    FUZZ_CHECK(p->mode == STS_MODE_NONE || p->mx_count >= 1);
    for (size_t i = 0; i < STS_POLICY_MX_MAX; i++) {
        const char *m = p->mx[i];
        size_t len = strnlen(m, sizeof(p->mx[i]));
        FUZZ_CHECK(len < sizeof(p->mx[i]));
        if (i >= p->mx_count) {
            FUZZ_CHECK(len == 0);
            continue;
        }
        FUZZ_CHECK(len >= 1 && len <= STS_MX_PATTERN_MAX);
        if (m[0] == '*')
            FUZZ_CHECK(len >= 3 && m[1] == '.' && ref_name(m + 2, len - 2, true));
        else
            FUZZ_CHECK(ref_name(m, len, true));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(p->mx[j], m) != 0);
    }
}

static bool same_policy(const struct sts_policy *a, const struct sts_policy *b)
{
    if (a->mode != b->mode || a->max_age != b->max_age || a->mx_count != b->mx_count ||
        strcmp(a->error, b->error) != 0)
        return false;
    for (size_t i = 0; i < a->mx_count; i++)
        if (strcmp(a->mx[i], b->mx[i]) != 0)
            return false;
    return true;
}

static void check_match(const struct sts_policy *p, const char *host)
{
    FUZZ_CHECK(sts_mx_matches(p, host) == ref_match(p, host));
}

/* Hosts built from each pattern: itself (with '*' made a label), upper-
 * cased, with a trailing dot, with one label more, its parent. */
static void check_pattern_hosts(const struct sts_policy *p)
{
    char host[STS_MX_PATTERN_MAX + 8];

    for (size_t i = 0; i < p->mx_count; i++) {
        const char *m = p->mx[i];
        size_t len = strlen(m);
        bool wild = m[0] == '*';

        memcpy(host, m, len + 1);
        if (wild)
            host[0] = 'x';
        FUZZ_CHECK(sts_mx_matches(p, host));
        check_match(p, host);
        for (size_t j = 0; j < len; j++)
            if (host[j] >= 'a' && host[j] <= 'z')
                host[j] = (char)(host[j] - 'a' + 'A');
        FUZZ_CHECK(sts_mx_matches(p, host));
        host[len] = '.';
        host[len + 1] = '\0';
        FUZZ_CHECK(sts_mx_matches(p, host));
        host[len] = '\0';

        /* one more label in front: matches only through another pattern */
        host[0] = 'y';
        host[1] = '.';
        memcpy(host + 2, m, len + 1);
        if (wild)
            host[2] = 'x';
        check_match(p, host);
        /* the parent (for "*.d": d itself) */
        const char *dot = strchr(m, '.');
        if (dot != NULL)
            check_match(p, dot + 1);
        /* the pattern itself, '*' and all: never a valid host */
        if (wild)
            FUZZ_CHECK(!sts_mx_matches(p, m));
    }
}

/* CRLF -> LF (crlf false) or LF -> CRLF (crlf true) of a body whose
 * every CR is part of a CRLF. Returns a malloc'ed buffer; *outlen set. */
static char *line_ends(const char *in, size_t len, bool crlf, size_t *outlen)
{
    char *out = malloc(2 * len + 1);
    size_t o = 0;

    FUZZ_CHECK(out != NULL);
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r')
            continue;                           /* always followed by LF */
        if (in[i] == '\n' && crlf)
            out[o++] = '\r';
        out[o++] = in[i];
    }
    *outlen = o;
    return out;
}

static bool cr_only_in_crlf(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n'))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sts_policy *a = malloc(sizeof(*a));
    struct sts_policy *b = malloc(sizeof(*b));
    char *body = malloc(size ? size : 1);

    FUZZ_CHECK(a != NULL && b != NULL && body != NULL);
    memcpy(body, data, size);

    bool ok = sts_policy_parse(body, size, a);
    check_policy(a, ok);
    FUZZ_CHECK(sts_policy_parse(body, size, b) == ok);
    FUZZ_CHECK(same_policy(a, b));

    if (cr_only_in_crlf(body, size)) {
        for (int crlf = 0; crlf < 2; crlf++) {
            size_t n;
            char *other = line_ends(body, size, crlf == 1, &n);
            if (n <= STS_POLICY_BODY_MAX) {
                bool ok2 = sts_policy_parse(other, n, b);
                FUZZ_CHECK(ok2 == ok);
                FUZZ_CHECK(same_policy(a, b));
            }
            free(other);
        }
    }

    /* the first line as a host name */
    size_t first = 0;
    while (first < size && body[first] != '\n')
        first++;
    char *host = fuzz_cstring(data, first);
    if (ok) {
        check_pattern_hosts(a);
        check_match(a, host);
    }
    static const char fixed_body[] =
        "version: STSv1\nmode: enforce\nmx: *.example.com\nmx: mx.example.net\n"
        "mx: *.a.b\nmx: a\nmax_age: 1\n";
    FUZZ_CHECK(sts_policy_parse(fixed_body, sizeof(fixed_body) - 1, b));
    check_match(b, host);

    free(host);
    free(body);
    free(a);
    free(b);
    return 0;
}

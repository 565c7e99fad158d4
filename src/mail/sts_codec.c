/*
 * sts_codec.c - encode and check cached MTA-STS policy records (see
 * sts_codec.h for the form and the rules).
 *
 * Trusts nothing: lengths first, then every header line strictly, then
 * the body through sts_policy_parse. No allocation.
 */
#include "mail/sts_codec.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"

#define STS_MAGIC "sealpost-sts 1\n"
#define STS_FETCHED_MAX ((int64_t)1 << 40)

static void set_err(char *err, size_t errsize, const char *what)
{
    if (errsize)
        snprintf(err, errsize, "%s", what);
}

static bool ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool sts_domain_valid(const char *d)
{
    size_t len = strnlen(d, STS_DOMAIN_MAX + 1), label = 0;

    if (len == 0 || len > STS_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        char c = d[i];

        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!ldh(c) || (label == 0 && c == '-'))
            return false;
        label++;
    }
    return true;
}

bool sts_id_valid(const char *id)
{
    size_t len = strnlen(id, STS_ID_MAX + 1);

    if (len == 0 || len > STS_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!ascii_alnum((unsigned char)id[i]))
            return false;
    }
    return true;
}

size_t sts_record_encode(const struct sts_record *r, char *out, size_t outsize)
{
    int n;

    if (!sts_domain_valid(r->domain) || !sts_id_valid(r->id) || r->fetched <= 0 ||
        r->fetched > STS_FETCHED_MAX || r->body_len > STS_POLICY_BODY_MAX)
        return 0;
    n = snprintf(out, outsize, STS_MAGIC "domain %s\nid %s\nfetched %lld\n\n", r->domain,
                 r->id, (long long)r->fetched);
    if (n < 0 || (size_t)n >= outsize || outsize - (size_t)n < r->body_len)
        return 0;
    memcpy(out + n, r->body, r->body_len);
    return (size_t)n + r->body_len;
}

/* One "key value\n" line at *p (end at end): value copied into out
 * (size outsize, must fit with its NUL); *p moves past the line. */
static bool take_line(const char **p, const char *end, const char *key, char *out,
                      size_t outsize)
{
    size_t klen = strlen(key), vlen;
    const char *nl;

    if ((size_t)(end - *p) <= klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ')
        return false;
    *p += klen + 1;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return false;
    vlen = (size_t)(nl - *p);
    if (vlen == 0 || vlen >= outsize || memchr(*p, '\0', vlen) != NULL)
        return false;
    memcpy(out, *p, vlen);
    out[vlen] = '\0';
    *p = nl + 1;
    return true;
}

static bool parse_fetched(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (s[0] == '\0' || s[0] == '0' || strlen(s) > 13)
        return false;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
    }
    if (v > STS_FETCHED_MAX)
        return false;
    *out = v;
    return true;
}

static bool decode_head(const char **p, const char *end, struct sts_record *out,
                        char *err, size_t errsize)
{
    char fetched[16];

    if ((size_t)(end - *p) < sizeof(STS_MAGIC) - 1 ||
        memcmp(*p, STS_MAGIC, sizeof(STS_MAGIC) - 1) != 0) {
        set_err(err, errsize, "not an STS cache record (magic)");
        return false;
    }
    *p += sizeof(STS_MAGIC) - 1;
    if (!take_line(p, end, "domain", out->domain, sizeof(out->domain)) ||
        !sts_domain_valid(out->domain)) {
        set_err(err, errsize, "bad domain line");
        return false;
    }
    if (!take_line(p, end, "id", out->id, sizeof(out->id)) || !sts_id_valid(out->id)) {
        set_err(err, errsize, "bad id line");
        return false;
    }
    if (!take_line(p, end, "fetched", fetched, sizeof(fetched)) ||
        !parse_fetched(fetched, &out->fetched)) {
        set_err(err, errsize, "bad fetched line");
        return false;
    }
    if (*p >= end || **p != '\n') {
        set_err(err, errsize, "no empty line after the header");
        return false;
    }
    (*p)++;
    return true;
}

bool sts_record_decode(const void *data, size_t len, struct sts_record *out,
                       struct sts_policy *pol, char *err, size_t errsize)
{
    const char *p = data, *end = p + len;
    struct sts_policy *pp = pol;

    memset(out, 0, offsetof(struct sts_record, body));
    if (data == NULL || len > STS_RECORD_MAX) {
        set_err(err, errsize, "record too long");
        return false;
    }
    if (!decode_head(&p, end, out, err, errsize))
        return false;
    out->body_len = (size_t)(end - p);
    if (out->body_len > STS_POLICY_BODY_MAX) {
        set_err(err, errsize, "policy body too long");
        return false;
    }
    memcpy(out->body, p, out->body_len);
    if (!sts_policy_parse(out->body, out->body_len, pp)) {
        if (errsize)
            snprintf(err, errsize, "invalid policy: %s", pp->error);
        return false;
    }
    return true;
}

bool sts_record_expired(const struct sts_record *r, const struct sts_policy *pol, time_t now)
{
    if ((int64_t)now < r->fetched)
        return true;
    return (int64_t)now - r->fetched >= (int64_t)pol->max_age;
}

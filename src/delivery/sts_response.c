/*
 * sts_response.c - the verdict on an MTA-STS policy fetch (see
 * sts_response.h). Trusts nothing: the status, the media type and the
 * body come from the policy host.
 */
#include "delivery/sts_response.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool sts_media_type_ok(const char *ctype)
{
    static const char want[] = "text/plain";
    size_t n = sizeof(want) - 1;
    const char *p;

    if (ctype == NULL || strncasecmp(ctype, want, n) != 0)
        return false;
    p = ctype + n;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

enum sts_fetch_verdict sts_response_check(const struct sts_http_response *r,
                                          struct sts_policy *out, char *why, size_t whysize)
{
    memset(out, 0, sizeof(*out));
    if (r->tls_verify_failed) {
        snprintf(why, whysize, "the policy host's certificate did not verify: %s", r->error);
        return STS_FETCH_WEBPKI;
    }
    if (r->too_big) {
        snprintf(why, whysize, "the policy is longer than %d octets", STS_POLICY_BODY_MAX);
        return STS_FETCH_INVALID;
    }
    if (!r->transport_ok) {
        snprintf(why, whysize, "the policy fetch failed: %s", r->error);
        return STS_FETCH_ERROR;
    }
    if (r->status != 200) {             /* no policy was retrieved (RFC 8460 4.3.2.2) */
        snprintf(why, whysize, "the policy host answered HTTP status %ld, not 200", r->status);
        return STS_FETCH_ERROR;
    }
    if (!sts_media_type_ok(r->content_type)) {
        snprintf(why, whysize, "the policy's media type is \"%s\", not text/plain",
                 r->content_type);
        return STS_FETCH_INVALID;
    }
    if (r->body_len > STS_POLICY_BODY_MAX || !sts_policy_parse(r->body, r->body_len, out)) {
        snprintf(why, whysize, "invalid policy: %s",
                 r->body_len > STS_POLICY_BODY_MAX ? "too long" : out->error);
        memset(out, 0, sizeof(*out));
        return STS_FETCH_INVALID;
    }
    if (whysize)
        why[0] = '\0';
    return STS_FETCH_OK;
}

const char *sts_fetch_verdict_name(enum sts_fetch_verdict v)
{
    switch (v) {
    case STS_FETCH_OK:
        return "";
    case STS_FETCH_ERROR:
        return "sts-policy-fetch-error";
    case STS_FETCH_INVALID:
        return "sts-policy-invalid";
    case STS_FETCH_WEBPKI:
        break;
    }
    return "sts-webpki-invalid";
}

/*
 * sts_response.h - the verdict on one MTA-STS policy fetch (RFC 8461
 * 3.3): the response must have status 200, media type text/plain (any
 * parameters, case-insensitive), a body of at most STS_POLICY_BODY_MAX
 * octets that parses as a policy. Pure: no I/O, no allocation; fuzzed
 * (tests/fuzz/fuzz_sts_response.c) and unit-tested.
 *
 * The verdicts carry the TLS-RPT (RFC 8460 4.3) result type the failure
 * is reported as: sts-webpki-invalid for a certificate that does not
 * verify, sts-policy-invalid for a policy that arrived but is not valid
 * (media type, size, syntax), sts-policy-fetch-error when no policy was
 * retrieved (no address, connection, timeout, a status other than 200,
 * including redirects, which are never followed).
 *
 * Trusts nothing in the response.
 */
#ifndef SEALPOST_DELIVERY_STS_RESPONSE_H
#define SEALPOST_DELIVERY_STS_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery/sts_http.h"
#include "mail/sts_policy.h"

enum sts_fetch_verdict {
    STS_FETCH_OK = 0,
    STS_FETCH_ERROR,            /* sts-policy-fetch-error */
    STS_FETCH_INVALID,          /* sts-policy-invalid */
    STS_FETCH_WEBPKI,           /* sts-webpki-invalid */
};

/* "text/plain", optionally followed by OWS ";" parameters; case-insensitive. */
bool sts_media_type_ok(const char *ctype);

/* The verdict on r; on STS_FETCH_OK *out is the parsed policy, else why
 * says what was wrong (printable). */
enum sts_fetch_verdict sts_response_check(const struct sts_http_response *r,
                                          struct sts_policy *out, char *why, size_t whysize);

/* "sts-policy-fetch-error", ... ("" for STS_FETCH_OK) */
const char *sts_fetch_verdict_name(enum sts_fetch_verdict v);

#endif

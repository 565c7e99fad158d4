/*
 * sts_policy.h - the MTA-STS policy file (RFC 8461 3.2), as fetched from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and the MX host check
 * of RFC 8461 4.1. Pure: no I/O, no allocation; the caller owns the
 * fixed-size result. Used by delivery (the fetched policy) and by the
 * queue (re-checking a policy before it is cached under the spool).
 *
 * Trusts: nothing. The body is whatever the policy host (or anyone who
 * can get a certificate for it) chose to send; every field is checked
 * against the RFC grammar and a named limit before it is kept.
 *
 * The rules, and the choices made where RFC 8461 leaves room:
 *  - The body is at most STS_POLICY_BODY_MAX octets; a longer one is
 *    refused without being read.
 *  - Lines end with LF or CRLF (the ABNF's sts-policy-term), mixed
 *    freely; the last line may lack one. A CR anywhere else, NUL, and
 *    every other control character except HTAB make the policy invalid.
 *  - A line is "key:" *WSP value *WSP. Keys follow sts-policy-ext-name
 *    (a letter or digit, then up to 31 letters, digits, '_', '-', '.')
 *    and end right at the ':' (no space before it, none at the start of
 *    the line). Keys and the version and mode values are case-sensitive
 *    (RFC 7405 %s strings): "Mode: enforce" is an unknown key.
 *  - Leniency beyond the ABNF: empty lines and lines of only SP/HTAB are
 *    skipped (files often end in one); an mx value may end in one '.',
 *    which is dropped.
 *  - Unknown keys are ignored (their value must be non-empty, per
 *    sts-policy-ext-value, but is not kept). version, mode and max_age
 *    may appear in any order; when one is repeated the first occurrence
 *    is used and later ones are ignored unchecked (RFC 8461 3.2: "all
 *    entries except for the first SHALL be ignored").
 *  - version is required and must be "STSv1"; mode is required and one
 *    of "enforce", "testing", "none"; max_age is required, 1-10 digits,
 *    at most STS_MAX_AGE_MAX (a larger value makes the policy invalid).
 *  - mx may repeat; at least one is required unless mode is "none".
 *    Each is a host name or "*." and a host name (RFC 5321 Domain: LDH
 *    labels of 1-63 octets that start and end with a letter or digit),
 *    at most STS_MX_PATTERN_MAX octets with the "*.", stored lower-cased.
 *    A repeated pattern is kept once. More than STS_POLICY_MX_MAX
 *    distinct patterns make the policy invalid (keeping only some would
 *    refuse MX hosts the domain allows in enforce mode). An invalid mx
 *    value makes the policy invalid, also in mode "none".
 */
#ifndef SEALPOST_MAIL_STS_POLICY_H
#define SEALPOST_MAIL_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STS_POLICY_BODY_MAX  65536      /* octets of a policy body */
#define STS_POLICY_MX_MAX    32         /* distinct mx patterns kept */
#define STS_MX_PATTERN_MAX   253        /* octets of one pattern, "*." included */
#define STS_MAX_AGE_MAX      31557600u  /* seconds (RFC 8461 3.2) */
#define STS_ERROR_MAX        96         /* error text with its NUL */

enum sts_mode {
    STS_MODE_NONE = 0,
    STS_MODE_TESTING,
    STS_MODE_ENFORCE,
};

/*
 * A parsed policy. On success error is "" and mx[0..mx_count) are
 * NUL-terminated, lower-case, valid and distinct; on failure every field
 * is zero except error, a printable one-line reason ("line 3: ...").
 */
struct sts_policy {
    enum sts_mode mode;
    uint32_t max_age;                   /* seconds, 0..STS_MAX_AGE_MAX */
    size_t mx_count;                    /* 0 only when mode is none */
    char mx[STS_POLICY_MX_MAX][STS_MX_PATTERN_MAX + 1];
    char error[STS_ERROR_MAX];
};

/* Parse body[0..len) (need not be NUL-terminated) into *out. Returns
 * true on success; false with out->error set otherwise. */
bool sts_policy_parse(const char *body, size_t len, struct sts_policy *out);

/*
 * RFC 8461 4.1: true if hostname (an MX exchange) matches one of the
 * policy's mx patterns. Case-insensitive; one trailing dot on hostname
 * is ignored. "*.example.com" matches exactly one extra left-most label:
 * "mx.example.com", never "example.com" nor "a.b.example.com". A
 * hostname that is not a valid LDH name (empty label, '_', a '*',
 * longer than 253 octets...) matches nothing, nor does NULL. Does not
 * look at the mode: applying "none" or "testing" is the caller's job.
 */
bool sts_mx_matches(const struct sts_policy *policy, const char *hostname);

#endif

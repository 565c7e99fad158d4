/*
 * tls_decide.c - the outbound TLS security decision (see tls_decide.h).
 *
 * Trusts: nothing; pure functions of enums.
 */
#include "delivery/tls_decide.h"

static bool dane_eligible(const struct tls_decide_in *in)
{
    return in->resolver_validates && in->mx_dnssec == DNSSEC_SECURE &&
           in->addr_dnssec == DNSSEC_SECURE;
}

bool tls_decide_wants_tlsa(const struct tls_decide_in *in)
{
    if (in->security == TLS_SEC_NONE || in->security == TLS_SEC_VERIFY ||
        in->security == TLS_SEC_FINGERPRINT)
        return false;
    return dane_eligible(in);
}

static void defer(struct tls_decision *out, const char *why)
{
    out->mode = HOST_TLS_DEFER;
    out->dsn = "4.7.5";
    out->why = why;
}

void tls_decide(const struct tls_decide_in *in, struct tls_decision *out)
{
    out->dsn = "";
    out->why = "";
    out->report_only = false;
    out->sts_mx = false;
    switch (in->security) {
    case TLS_SEC_NONE:
        out->mode = HOST_TLS_CLEARTEXT;
        return;
    case TLS_SEC_VERIFY:
        out->mode = HOST_TLS_PKIX;
        return;
    case TLS_SEC_FINGERPRINT:
        out->mode = HOST_TLS_FINGERPRINT;
        return;
    default:
        break;
    }
    if (tls_decide_wants_tlsa(in)) {
        switch (in->tlsa) {
        case TLSA_ST_FAILED:
            defer(out, "the TLSA lookup failed (SERVFAIL, timeout or DNSSEC bogus): "
                  "DANE status unknown");
            return;
        case TLSA_ST_NOT_LOOKED_UP:
            defer(out, "the TLSA lookup did not complete");
            return;
        case TLSA_ST_USABLE:
            out->mode = HOST_TLS_DANE;
            return;
        case TLSA_ST_UNUSABLE:
            out->mode = HOST_TLS_ENCRYPT;    /* RFC 7672 2.2 */
            return;
        case TLSA_ST_NONE:
            break;
        }
    }
    switch (in->security) {
    case TLS_SEC_DANE_ONLY:
        defer(out, "security = dane-only, but the host has no usable DNSSEC-secure "
              "TLSA records");
        return;
    case TLS_SEC_ENCRYPT:
        out->mode = HOST_TLS_ENCRYPT;
        return;
    default:
        out->mode = HOST_TLS_OPPORTUNISTIC;
        return;
    }
}

bool host_tls_authenticates(enum host_tls m)
{
    return m == HOST_TLS_DANE || m == HOST_TLS_PKIX || m == HOST_TLS_FINGERPRINT;
}

void tls_decide_sts(bool have_policy, enum sts_mode mode, bool mx_matches,
                    struct tls_decision *out)
{
    if (!have_policy || mode == STS_MODE_NONE || out->mode != HOST_TLS_OPPORTUNISTIC)
        return;
    out->sts_mx = mx_matches;
    if (mode == STS_MODE_ENFORCE && !mx_matches) {
        defer(out, "the MX host is not listed in the domain's MTA-STS policy (mode enforce)");
        return;
    }
    if (!mx_matches)
        return;                 /* testing: deliver as before, reported */
    out->mode = HOST_TLS_PKIX;
    out->report_only = mode == STS_MODE_TESTING;
}

enum requiretls_verdict tls_decide_requiretls(enum tls_auth auth, enum dnssec_status mx_dnssec,
                                              bool sts_mx, bool peer_offers_requiretls)
{
    bool mx_ok = mx_dnssec == DNSSEC_SECURE || (auth == TLS_AUTH_PKIX && sts_mx);

    if (auth == TLS_AUTH_NONE || !mx_ok)
        return REQUIRETLS_NOT_AUTHENTICATED;
    if (!peer_offers_requiretls)
        return REQUIRETLS_NOT_OFFERED;
    return REQUIRETLS_OK;
}

const char *tls_security_name(enum tls_security s)
{
    switch (s) {
    case TLS_SEC_NONE:
        return "none";
    case TLS_SEC_MAY:
        return "may";
    case TLS_SEC_ENCRYPT:
        return "encrypt";
    case TLS_SEC_VERIFY:
        return "verify";
    case TLS_SEC_DANE:
        return "dane";
    case TLS_SEC_DANE_ONLY:
        return "dane-only";
    case TLS_SEC_FINGERPRINT:
        return "fingerprint";
    case TLS_SEC_DANE_OR_STS:
        break;
    }
    return "dane-or-sts";
}

const char *host_tls_name(enum host_tls m)
{
    switch (m) {
    case HOST_TLS_CLEARTEXT:
        return "none";
    case HOST_TLS_OPPORTUNISTIC:
        return "may";
    case HOST_TLS_ENCRYPT:
        return "encrypt";
    case HOST_TLS_DANE:
        return "dane";
    case HOST_TLS_PKIX:
        return "verify";
    case HOST_TLS_FINGERPRINT:
        return "fingerprint";
    case HOST_TLS_DEFER:
        break;
    }
    return "defer";
}

const char *tlsa_state_name(enum tlsa_state t)
{
    switch (t) {
    case TLSA_ST_NONE:
        return "none";
    case TLSA_ST_USABLE:
        return "usable";
    case TLSA_ST_UNUSABLE:
        return "unusable";
    case TLSA_ST_FAILED:
        return "failed";
    case TLSA_ST_NOT_LOOKED_UP:
        break;
    }
    return "not-looked-up";
}

/*
 * tls_decide.h - the outbound TLS security decision as pure functions:
 * which kind of TLS one MX host gets (none, opportunistic, mandatory,
 * DANE, PKIX, or "do not connect"), from the DNSSEC states of its
 * lookups, the verdict on its TLSA records and the destination's
 * security policy; and whether a REQUIRETLS message (RFC 8689) may go
 * out on a given connection.
 *
 * No I/O, no allocation: unit-tested offline (tests/unit/test_tls_decide.c),
 * so that "SERVFAIL is not no-DANE" (RFC 7672 2.2) is a table entry, not a
 * side effect. Trusts: nothing; every input is an enum.
 *
 * Decisions (README "Outbound TLS security"):
 *  - DANE applies only when the resolver validates, the MX RRset (or the
 *    implicit-MX / relayhost address answers) is secure and the host's
 *    address answers are secure (RFC 7672 2.2). With an insecure MX
 *    RRset no TLSA lookup is made (the RFC's choice, not Postfix's
 *    "Trusted" insecure-MX policy): an attacker who can forge the MX
 *    RRset picks the host anyway.
 *  - A TLSA lookup that failed (SERVFAIL, timeout, bogus, malformed) defers
 *    that host: never a downgrade.
 *  - Usable TLSA records: DANE, TLS mandatory, whatever the policy, except
 *    "none" and "verify" (the operator's explicit choice).
 *  - Secure TLSA records that are all unusable: mandatory TLS without
 *    authentication (RFC 7672 2.2).
 *  - "verify" and "fingerprint" are the operator's explicit choice: no
 *    TLSA lookup, PKIX or the pinned digests decide.
 */
#ifndef SEALPOST_DELIVERY_TLS_DECIDE_H
#define SEALPOST_DELIVERY_TLS_DECIDE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "delivery/dns.h"
#include "mail/sts_policy.h"

/* enum tlsa_state (the TLSA lookup's outcome) is in dns.h. */

/* How to talk to one host. */
enum host_tls {
    HOST_TLS_CLEARTEXT = 0,     /* security = none: never STARTTLS */
    HOST_TLS_OPPORTUNISTIC,     /* STARTTLS when offered, no verification */
    HOST_TLS_ENCRYPT,           /* TLS mandatory, not authenticated */
    HOST_TLS_DANE,              /* TLS mandatory, verified by the TLSA records */
    HOST_TLS_PKIX,              /* TLS mandatory, verified against a CA store
                                   with the host name as reference identity */
    HOST_TLS_DEFER,             /* do not connect to this host (reason given) */
    HOST_TLS_FINGERPRINT,       /* TLS mandatory, the certificate or its key must
                                   match a configured SHA-256 fingerprint */
};

struct tls_decide_in {
    bool resolver_validates;    /* a trust anchor is configured */
    enum dnssec_status mx_dnssec;    /* MX RRset (or implicit-MX addresses) */
    enum dnssec_status addr_dnssec;  /* the host's A/AAAA answers */
    enum tlsa_state tlsa;
    enum tls_security security; /* the destination's policy */
};

struct tls_decision {
    enum host_tls mode;
    const char *dsn;            /* for HOST_TLS_DEFER: "4.7.5" */
    const char *why;            /* for HOST_TLS_DEFER: static text */
    bool report_only;           /* HOST_TLS_PKIX of an MTA-STS "testing" policy:
                                   verify and log, deliver either way */
    bool sts_mx;                /* the host matches an MTA-STS policy's mx */
};

/* Should the TLSA records of this host be looked up at all? */
bool tls_decide_wants_tlsa(const struct tls_decide_in *in);

/* The decision for one host once its TLSA state is known. */
void tls_decide(const struct tls_decide_in *in, struct tls_decision *out);

/*
 * MTA-STS (RFC 8461 4, 5) on top of a host's DANE decision *out (made by
 * tls_decide for a dane-or-sts destination). Only an opportunistic host
 * is touched: DANE, a TLSA failure (defer) and DANE's mandatory TLS win
 * (RFC 8461 2). have_policy false or mode none: unchanged. enforce: a
 * matching host gets PKIX (mandatory, verified for its name), any other
 * is deferred (4.7.5). testing: a matching host gets report-only PKIX
 * (verified and logged, delivered either way); a host not in the policy
 * stays opportunistic.
 */
void tls_decide_sts(bool have_policy, enum sts_mode mode, bool mx_matches,
                    struct tls_decision *out);

/* How a connection ended up authenticated. */
enum tls_auth {
    TLS_AUTH_NONE = 0,          /* cleartext or unverified TLS */
    TLS_AUTH_DANE,
    TLS_AUTH_PKIX,
    TLS_AUTH_FINGERPRINT,       /* pinned by the operator ([destination]) */
};

enum requiretls_verdict {
    REQUIRETLS_OK = 0,
    REQUIRETLS_NOT_AUTHENTICATED,   /* 5.7.10: no TLS verified by DANE/PKIX
                                       for an MX from a secure lookup */
    REQUIRETLS_NOT_OFFERED,         /* 5.7.30: the server lacks REQUIRETLS */
};

/* Does this mode verify the server (DANE, PKIX, fingerprint)? */
bool host_tls_authenticates(enum host_tls m);

/* RFC 8689 4.2: may a REQUIRETLS message go out on this connection?
 * Authenticated: DANE (which needs a secure MX lookup anyway), or PKIX
 * with an MX from a DNSSEC-secure lookup or matched by an MTA-STS
 * policy of any mode (sts_mx; a "testing" policy's host counts only when
 * its certificate really verified, i.e. auth is PKIX). */
enum requiretls_verdict tls_decide_requiretls(enum tls_auth auth, enum dnssec_status mx_dnssec,
                                              bool sts_mx, bool peer_offers_requiretls);

const char *tls_security_name(enum tls_security s);
const char *host_tls_name(enum host_tls m);
const char *tlsa_state_name(enum tlsa_state t);

#endif

/*
 * dns_txt.h - asynchronous TXT lookups through the validating resolver
 * of dns.h, for the policy-discovery records: "_smtp._tls.DOMAIN"
 * (TLS-RPT, RFC 8460 3). Each TXT record comes back with its
 * character-strings joined without separators (RFC 8460 3 and RFC 8461
 * 3.1 both say so), ready for the parsers of sts_txt.h.
 *
 * Trusts: nothing in an answer. Records are bounded (DNS_TXT_RECORDS
 * records of at most DNS_TXT_RECORD_MAX octets; longer ones are dropped
 * and counted) and the rdata is walked with a length check before every
 * read. A bogus answer is never returned as data.
 */
#ifndef SEALPOST_DELIVERY_DNS_TXT_H
#define SEALPOST_DELIVERY_DNS_TXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/dns.h"

#define DNS_TXT_RECORDS     8       /* TXT records kept per answer */
#define DNS_TXT_RECORD_MAX  8192    /* octets of one joined record (STS_TXT_RECORD_MAX) */

enum dns_txt_outcome {
    DNS_TXT_OK = 0,                 /* records[0..count) */
    DNS_TXT_NONE,                   /* NXDOMAIN or no TXT records */
    DNS_TXT_FAILED,                 /* SERVFAIL, timeout, bogus: try again later */
};

struct dns_txt_record {
    size_t len;
    char data[DNS_TXT_RECORD_MAX + 1];     /* NUL after len octets (may hold NULs) */
};

struct dns_txt_result {
    enum dns_txt_outcome outcome;
    enum dnssec_status dnssec;
    uint32_t ttl;                   /* of the answer (0 when none) */
    size_t count;
    size_t dropped;                 /* malformed or over DNS_TXT_RECORD_MAX */
    struct dns_txt_record records[DNS_TXT_RECORDS];
    char why[120];                  /* printable reason when not OK */
};

typedef void (*dns_txt_cb)(const struct dns_txt_result *res, void *arg);

/* Look up the TXT records of name (a checked host name); the callback
 * runs exactly once, later, with the resolver's deadline. */
void dns_resolve_txt(struct dns_resolver *r, const char *name, dns_txt_cb cb, void *arg);

/* Join the character-strings of one TXT rdata (pure, for tests and the
 * fuzzer): false when a length runs past the end or the result does
 * not fit out (outsize - 1 octets). */
bool dns_txt_join(const uint8_t *rdata, size_t len, char *out, size_t outsize,
                  size_t *outlen);

#endif

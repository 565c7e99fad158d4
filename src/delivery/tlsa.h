/*
 * tlsa.h - TLSA rdata (RFC 6698 2.1) as libunbound returns it, and which
 * records SMTP can use (RFC 7672 3.1). Pure: no I/O, no allocation; the
 * caller owns the fixed-size results. Used by dns_tlsa.c for DANE.
 *
 * Trusts: nothing. The rdata is whatever the zone published; even a
 * DNSSEC-validated answer only says who published it, not that it is
 * well-formed. Lengths are checked before every read and copy.
 *
 * Wire format: one octet each of certificate usage, selector and
 * matching type, then the certificate association data (the rest).
 *  - Malformed (an error, not merely unusable): fewer than 4 octets,
 *    i.e. no association data at all.
 *  - Usable for SMTP: usage DANE-TA(2) or DANE-EE(3) (PKIX-TA(0) and
 *    PKIX-EE(1) are unusable for SMTP, RFC 7672 3.1.3), selector Cert(0)
 *    or SPKI(1), matching type Full(0), SHA2-256(1) or SHA2-512(2), and
 *    association data of the right length: 32 octets for SHA2-256, 64
 *    for SHA2-512, 1 to TLSA_DATA_MAX for Full.
 *  - Anything else is unusable: RFC 7672 says such records are ignored,
 *    so they are counted (by first reason, in the order above) but are
 *    not errors.
 */
#ifndef SEALPOST_DELIVERY_TLSA_H
#define SEALPOST_DELIVERY_TLSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLSA_DATA_MAX    4096   /* octets of Full(0) association data */
#define TLSA_USABLE_MAX  16     /* usable records kept per RRset */
#define TLSA_ERROR_MAX   96     /* error text with its NUL */

#define TLSA_USAGE_PKIX_TA  0
#define TLSA_USAGE_PKIX_EE  1
#define TLSA_USAGE_DANE_TA  2
#define TLSA_USAGE_DANE_EE  3
#define TLSA_SELECTOR_CERT  0
#define TLSA_SELECTOR_SPKI  1
#define TLSA_MTYPE_FULL     0
#define TLSA_MTYPE_SHA256   1
#define TLSA_MTYPE_SHA512   2

enum tlsa_verdict {
    TLSA_USABLE = 0,
    TLSA_BAD_USAGE,         /* not DANE-TA(2) or DANE-EE(3) */
    TLSA_BAD_SELECTOR,      /* not Cert(0) or SPKI(1) */
    TLSA_BAD_MTYPE,         /* not Full(0), SHA2-256(1) or SHA2-512(2) */
    TLSA_BAD_LENGTH,        /* data length wrong for the matching type */
    TLSA_MALFORMED,         /* under 4 octets: an error */
};

/*
 * One record. usage, selector, mtype and data_len (the association data
 * length in the rdata, which may exceed TLSA_DATA_MAX) are set for every
 * verdict but TLSA_MALFORMED; data holds the association data only when
 * the verdict is TLSA_USABLE (then data_len <= TLSA_DATA_MAX).
 */
struct tlsa_record {
    uint8_t usage;
    uint8_t selector;
    uint8_t mtype;
    size_t data_len;
    uint8_t data[TLSA_DATA_MAX];
};

/* Parse and classify one rdata. Every field of *rec is zeroed first. */
enum tlsa_verdict tlsa_parse_rdata(const uint8_t *rdata, size_t len, struct tlsa_record *rec);

/* One rdata blob of an RRset: from ub_result, data[i] and len[i]. */
struct tlsa_rdata {
    const uint8_t *data;
    size_t len;
};

/*
 * The usable records of one TLSA RRset, in answer order. About 66 KiB:
 * allocate it, do not put it on a small stack.
 */
struct tlsa_set {
    struct tlsa_record usable[TLSA_USABLE_MAX];
    size_t usable_count;
    size_t over_limit;          /* usable, but past TLSA_USABLE_MAX: not kept */
    size_t bad_usage;           /* unusable, by first reason */
    size_t bad_selector;
    size_t bad_mtype;
    size_t bad_length;
    size_t unusable;            /* the sum of the four above */
    char error[TLSA_ERROR_MAX];
};

/*
 * Classify rrs[0..count) into *out. Returns false if any rdata is
 * malformed (a NULL data pointer counts as malformed): the
 * RRset is then unusable as a whole and the caller must treat the TLSA
 * lookup as failed; every field is zero except error ("record 2: ...").
 * On true, error is "" and usable_count + over_limit + unusable ==
 * count. count == 0 is fine (nothing usable).
 */
bool tlsa_parse_rrset(const struct tlsa_rdata *rrs, size_t count, struct tlsa_set *out);

#endif

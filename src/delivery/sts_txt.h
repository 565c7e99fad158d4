/*
 * sts_txt.h - the two TXT records that announce MTA-STS and TLS
 * reporting: "_mta-sts.DOMAIN" (RFC 8461 3.1, "v=STSv1; id=...") and
 * "_smtp._tls.DOMAIN" (RFC 8460 3, "v=TLSRPTv1; rua=..."). Pure: no I/O,
 * no allocation; the caller owns the fixed-size results. tlsrpt_txt_parse
 * is used by tlsrpt_note.c (TLS-RPT); sts_txt_parse not yet.
 *
 * Input is one TXT record with its character-strings already joined
 * without separators (both RFCs), as bytes and a length.
 *
 * Trusts: nothing. The record is chosen by whoever runs the zone (and,
 * without DNSSEC, by anyone on the path): its length is bounded, every
 * byte is checked, and every kept value is checked before it is copied.
 *
 * Rules common to both, and the choices where the RFCs leave room:
 *  - A record longer than STS_TXT_RECORD_MAX octets is refused.
 *  - Classification first: a record is of the kind asked for only when
 *    it begins with the version ("v=STSv1" or "v=TLSRPTv1", case-
 *    sensitive) followed by ';', SP, HTAB or its end. Anything else
 *    ("v=STSv10", "v=spf1 ...", leading space) is STS_TXT_OTHER: the
 *    RFCs say to discard such records before counting. "v=STSv1 ;" is
 *    counted although it does not literally begin with "v=STSv1;"
 *    (the ABNF allows the space: RFC 8461 erratum 6285).
 *  - After the version: fields separated by *WSP ";" *WSP, a trailing
 *    separator allowed, nothing else (no trailing space without ';', no
 *    empty field). A field is name "=" value; names are a letter or
 *    digit then up to 31 letters, digits, '_', '-', '.'; field names are
 *    case-sensitive.
 *  - Only printable US-ASCII and HTAB (inside separators) are allowed
 *    after the version: NUL, other control characters and octets over
 *    0x7e make the record STS_TXT_INVALID.
 *  - Unknown fields are ignored, but their value must be 1 or more of
 *    %x21-3A / %x3C / %x3E-7E (no space, ';' or '='), as in the ABNF.
 *  - A repeated known field: the first is used, later ones are ignored
 *    unchecked (the rule RFC 8461 3.2 gives for the policy file).
 */
#ifndef SEALPOST_DELIVERY_STS_TXT_H
#define SEALPOST_DELIVERY_STS_TXT_H

#include <stdbool.h>
#include <stddef.h>

#define STS_TXT_RECORD_MAX  8192    /* octets of one joined TXT record */
#define STS_TXT_ID_MAX      32      /* "id" characters (RFC 8461 3.1) */
#define STS_TXT_ERROR_MAX   96      /* error text with its NUL */
#define TLSRPT_RUA_MAX      8       /* rua URIs kept */
#define TLSRPT_URI_MAX      512     /* octets of one kept URI */

enum sts_txt_result {
    STS_TXT_OK = 0,
    STS_TXT_OTHER,      /* not this kind of record: discard it, do not count it */
    STS_TXT_INVALID,    /* this kind, but invalid: counts, and no policy/reporting */
};

/*
 * "_mta-sts": "v=STSv1" then fields; "id" (1-32 letters and digits) is
 * required. On STS_TXT_OK id is set and error is ""; otherwise id is ""
 * and error a printable one-line reason.
 */
struct sts_txt {
    char id[STS_TXT_ID_MAX + 1];
    char error[STS_TXT_ERROR_MAX];
};

enum sts_txt_result sts_txt_parse(const char *txt, size_t len, struct sts_txt *out);

enum tlsrpt_scheme {
    TLSRPT_MAILTO = 1,
    TLSRPT_HTTPS,
};

struct tlsrpt_uri {
    enum tlsrpt_scheme scheme;
    char uri[TLSRPT_URI_MAX + 1];   /* as published, NUL-terminated */
};

/*
 * "_smtp._tls": "v=TLSRPTv1" then fields; "rua" is required: one or
 * more URIs separated by *WSP "," *WSP. Every URI must be an RFC 3986
 * URI (scheme ":" then unreserved, reserved or %XX characters, with
 * ',', '!' and ';' only %-encoded, as RFC 8460 and its erratum require),
 * else the record is invalid. Of the valid URIs, a URI is kept when its
 * scheme is mailto or https (case-insensitive), it has the shape
 * reports need ("mailto:" local "@" domain, "https://" host), it is at
 * most TLSRPT_URI_MAX octets, and fewer than TLSRPT_RUA_MAX are kept so
 * far; the others are counted in rua_ignored (RFC 8460 lets a reporter
 * deliver to some of the destinations). A record that keeps no URI is
 * STS_TXT_INVALID. On anything but STS_TXT_OK every field is zero
 * except error.
 */
struct tlsrpt_txt {
    size_t rua_count;
    size_t rua_ignored;             /* valid URIs not kept, for the log */
    struct tlsrpt_uri rua[TLSRPT_RUA_MAX];
    char error[STS_TXT_ERROR_MAX];
};

enum sts_txt_result tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_txt *out);

#endif

/*
 * dns_records.h - `sealpost dns-records`: the DNS records (and the
 * MTA-STS policy file) a domain publishes so that other servers can
 * authenticate this one when they send to it:
 *
 *   - per [tls] certificate, and per key staged with --next-key, a TLSA
 *     record `_25._tcp.HOSTNAME. IN TLSA 3 1 1 HEX` (DANE-EE, the
 *     SubjectPublicKeyInfo, SHA-256: the key, not the certificate, so a
 *     renewal with the same key needs no DNS change; RFC 7671 5.1);
 *   - per [domain], the MTA-STS TXT record `_mta-sts.DOMAIN.` whose id is
 *     the first DNS_RECORDS_STS_ID_LEN hex digits of the SHA-256 of the
 *     policy text (a new policy gets a new id, the same policy the same
 *     id), the policy file (mode testing, mx = [server] hostname) as `;`
 *     comment lines, and the TLS-RPT TXT record `_smtp._tls.DOMAIN.`.
 *
 * Everything printed is zone-file syntax (RFC 1035 5.1): record lines,
 * and comments. TTLs are left to the zone's $TTL.
 *
 * Trusts: the config and the certificate/key files it is pointed at
 * (public parts only are used; nothing is written anywhere but out).
 */
#ifndef SEALPOST_TLS_DNS_RECORDS_H
#define SEALPOST_TLS_DNS_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"

#define DNS_RECORDS_STS_ID_LEN 20           /* hex digits of the policy id */
#define DNS_RECORDS_STS_MAX_AGE 86400       /* seconds, in the testing-mode policy */
#define DNS_RECORDS_NEXT_MAX 8              /* --next-key files */
#define DNS_RECORDS_TLSA_PORT 25            /* MX delivery (RFC 7672 2.1) */

/* The SHA-256 of the SubjectPublicKeyInfo of the first certificate, or
 * the public key, in a PEM file: a certificate, a public key or a private
 * key. hex gets 64 digits + NUL; what the key is ("ECDSA P-256 ...")
 * goes to desc. false + err ("PATH: reason") when nothing usable. */
bool dns_records_spki_sha256(const char *path, char hex[65], char *desc, size_t descsize,
                             char *err, size_t errsize);

/* The MTA-STS policy file for a domain whose MX is mx_host (mode testing,
 * LF line ends). Returns its length (0 if it does not fit). */
size_t dns_records_sts_policy(const char *mx_host, char *out, size_t size);

/* "v=STSv1; id=..." for that policy text. */
void dns_records_sts_txt(const char *policy, char *out, size_t size);

/* "v=TLSRPTv1; rua=mailto:tlsrpt@DOMAIN". */
void dns_records_tlsrpt_txt(const char *domain, char *out, size_t size);

/* Print every record for cfg (next: next_count staged key files) to out.
 * false + err when a certificate or key cannot be read, or [tls] names
 * no certificate; nothing is printed then. */
bool dns_records_print(const struct config *cfg, const char *const *next, size_t next_count,
                       FILE *out, char *err, size_t errsize);

#endif

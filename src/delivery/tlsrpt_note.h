/*
 * tlsrpt_note.h - the delivery process's side of TLS reporting (RFC
 * 8460): each outbound session's TLS outcome becomes one record
 * (mail/tlsrpt_codec.h) that goes to the queue, which stores and reports
 * it. The policy domain's "_smtp._tls" TXT record is looked up here (at
 * most once per domain per TTL, clamped to TLSRPT_TXT_TTL_MIN..MAX, in a
 * bounded cache) so each record carries where the domain wants its
 * reports (rua).
 *
 * One call per session outcome, whatever the policy:
 *   DANE:    { TLSRPT_POLICY_TLSA, TLSA records "3 1 1 ab..", the MX host }
 *   MTA-STS: { TLSRPT_POLICY_STS, the policy's lines, its mx patterns }
 *   none:    { TLSRPT_POLICY_NONE }
 *
 * Trusts: its callers for the policy (built from checked DNS answers or
 * a parsed policy); the TXT answer goes through tlsrpt_txt_parse. The
 * queue checks every record again (tlsrpt_record_check).
 */
#ifndef SEALPOST_DELIVERY_TLSRPT_NOTE_H
#define SEALPOST_DELIVERY_TLSRPT_NOTE_H

#include <stddef.h>

#include "delivery/dns.h"
#include "mail/tlsrpt_codec.h"

#define TLSRPT_RUA_CACHE_MAX   1024     /* policy domains whose rua is remembered */
#define TLSRPT_PENDING_MAX     64       /* records held per domain while its TXT is looked up */
#define TLSRPT_PENDING_TOTAL   1024     /* ... and for all domains together (12 KiB each) */
#define TLSRPT_TXT_TTL_MIN     3600     /* seconds a TXT answer (or failure) is kept, at least */
#define TLSRPT_TXT_TTL_MAX     86400    /* ... and at most */

struct tlsrpt_policy {
    enum tlsrpt_policy_type type;
    const char *const *strings;         /* policy-string entries (may be NULL if 0) */
    size_t string_count;
    const char *const *mx_patterns;     /* mx-host entries */
    size_t mx_pattern_count;
};

typedef void (*tlsrpt_emit_cb)(const struct tlsrpt_record *r, void *arg);

struct tlsrpt_notes;

/* emit receives each finished record (the caller sends it to the queue). */
struct tlsrpt_notes *tlsrpt_notes_new(struct dns_resolver *dns, tlsrpt_emit_cb emit,
                                      void *arg);
/* After dns_resolver_free (no lookup callback may run any more); records
 * still waiting for their TXT answer are dropped. NULL is allowed. */
void tlsrpt_notes_free(struct tlsrpt_notes *n);

/*
 * One session outcome for policy domain `domain` (lower-case): MX host
 * mx_host at ip ("" if not connected), from sending_ip ("" if unknown),
 * with result and a short reason ("" for none). Strings longer than the
 * record's fields are cut; policy strings over TLSRPT_POLICY_STRING_MAX
 * and entries past the counts are left out. A domain or host name that
 * is not a plain lower-case name is not recorded.
 */
void tlsrpt_note(struct tlsrpt_notes *n, const char *domain, const struct tlsrpt_policy *policy,
                 const char *mx_host, const char *ip, const char *sending_ip,
                 enum tlsrpt_result result, const char *reason);

/* The RFC 8460 4.3 result for a failed certificate check (X509_V_ERR_*). */
enum tlsrpt_result tlsrpt_result_of_verify(long verify_error);

#endif

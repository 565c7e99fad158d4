/*
 * tlsrpt_codec.h - one TLS-RPT session outcome (RFC 8460) as it travels
 * from the delivery process to the queue (IPC_TLSRPT_RECORD, ipc.h) and
 * as the queue stores it (one text line per outcome, docs/SPOOL.md).
 *
 * A record says: for policy domain D (the recipient domain), one SMTP
 * session to MX host H at address IP under policy P (type tlsa, sts or
 * no-policy-found, with its policy strings and MX patterns) ended with
 * result R (success, or an RFC 8460 4.3 failure type), and where D's
 * reports go (the rua URIs of its "_smtp._tls" TXT record, if any).
 *
 * Trusts nothing: both the IPC form (from the internet-facing delivery
 * process) and the stored line (from the spool, a file anyone with the
 * queue's rights could edit) are checked the same way by
 * tlsrpt_record_check(): every string bounded and NUL-terminated, names
 * lower-case LDH domains, addresses IP text, enums in range, counts
 * within bounds, no empty list entry. Texts that came from the internet (policy strings, the
 * failure reason, rua URIs) are cleaned rather than refused: bytes
 * outside printable ASCII become '?'.
 */
#ifndef SEALPOST_MAIL_TLSRPT_CODEC_H
#define SEALPOST_MAIL_TLSRPT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLSRPT_NAME_MAX         255     /* domain, MX host, MX pattern (octets) */
#define TLSRPT_IP_MAX           45      /* INET6_ADDRSTRLEN - 1 */
#define TLSRPT_REASON_MAX       127     /* failure-reason-code text */
#define TLSRPT_POLICY_STRINGS   16      /* policy strings kept per record */
#define TLSRPT_POLICY_STRING_MAX 300    /* octets of one policy string */
#define TLSRPT_MX_PATTERNS      8       /* mx-host entries kept per record */
#define TLSRPT_RUA_COUNT        8       /* rua URIs kept (sts_txt.h TLSRPT_RUA_MAX) */
#define TLSRPT_URI_LEN          512     /* octets of one rua URI (sts_txt.h) */
/* The longest stored line (every field at its maximum, fully %-encoded). */
#define TLSRPT_LINE_MAX         65536

enum tlsrpt_policy_type {
    TLSRPT_POLICY_TLSA = 1,             /* "tlsa": DANE */
    TLSRPT_POLICY_STS,                  /* "sts": MTA-STS */
    TLSRPT_POLICY_NONE,                 /* "no-policy-found" */
};

/* RFC 8460 4.3 result types; TLSRPT_SUCCESS counts as a successful session. */
enum tlsrpt_result {
    TLSRPT_SUCCESS = 0,
    TLSRPT_STARTTLS_NOT_SUPPORTED,
    TLSRPT_CERTIFICATE_HOST_MISMATCH,
    TLSRPT_CERTIFICATE_EXPIRED,
    TLSRPT_CERTIFICATE_NOT_TRUSTED,
    TLSRPT_VALIDATION_FAILURE,
    TLSRPT_TLSA_INVALID,
    TLSRPT_DNSSEC_INVALID,
    TLSRPT_DANE_REQUIRED,
    TLSRPT_STS_POLICY_FETCH_ERROR,
    TLSRPT_STS_POLICY_INVALID,
    TLSRPT_STS_WEBPKI_INVALID,
    TLSRPT_RESULT_COUNT,
};

struct tlsrpt_record {
    char domain[TLSRPT_NAME_MAX + 1];       /* policy domain, lower-case */
    enum tlsrpt_policy_type policy_type;
    enum tlsrpt_result result;
    char mx_host[TLSRPT_NAME_MAX + 1];      /* receiving-mx-hostname, lower-case */
    char ip[TLSRPT_IP_MAX + 1];             /* receiving-ip, "" when none was tried */
    char sending_ip[TLSRPT_IP_MAX + 1];     /* sending-mta-ip, "" when unknown */
    char reason[TLSRPT_REASON_MAX + 1];     /* failure-reason-code, "" for none */
    size_t policy_string_count;
    char policy_strings[TLSRPT_POLICY_STRINGS][TLSRPT_POLICY_STRING_MAX + 1];
    size_t mx_pattern_count;                /* policy's mx-host list */
    char mx_patterns[TLSRPT_MX_PATTERNS][TLSRPT_NAME_MAX + 1];
    size_t rua_count;
    char rua[TLSRPT_RUA_COUNT][TLSRPT_URI_LEN + 1];
};

/* A failed MTA-STS policy fetch (sts-policy-fetch-error, sts-policy-invalid,
 * sts-webpki-invalid) concerns the domain, not an MX host: its record has
 * an empty mx_host. Every other result names the MX host. */
bool tlsrpt_result_has_mx(enum tlsrpt_result r);

/* "tlsa", "sts", "no-policy-found"; NULL when out of range. */
const char *tlsrpt_policy_name(enum tlsrpt_policy_type t);
/* "success", "starttls-not-supported", ...; NULL when out of range. */
const char *tlsrpt_result_name(enum tlsrpt_result r);

/* A lower-case LDH name (labels of letters, digits, '-', '_', 1..63
 * octets, no trailing dot): safe as a file name and in JSON. */
bool tlsrpt_name_ok(const char *s);

/*
 * Check r in place as untrusted input: structural faults (enum out of
 * range, count over its bound, a string without NUL, a domain or MX host
 * that is not a lower-case name, an address with other than hex digits,
 * '.' and ':') refuse it; internet texts are cleaned. Returns false with
 * a reason in err.
 */
bool tlsrpt_record_check(struct tlsrpt_record *r, char *err, size_t errsize);

/* IPC form: fixed-size, host byte order (both ends are this binary).
 * Encode returns the length (0 when outsize is too small). */
size_t tlsrpt_record_encode(const struct tlsrpt_record *r, void *out, size_t outsize);
bool tlsrpt_record_decode(const void *payload, size_t len, struct tlsrpt_record *out,
                          char *err, size_t errsize);

/*
 * Stored form, one line per record without the domain (the file name
 * says it), nine fields separated by one space, ended by '\n':
 *   result policy-type mx-host ip sending-ip reason policy-strings
 *   mx-patterns rua
 * Each string is %-encoded (octets outside 0x21..0x7e, and '%', ',', '-'
 * become %XX); an empty string or list is "-"; a list is its items
 * joined by ','. Format returns the line length (0 if it does not fit).
 */
size_t tlsrpt_line_format(const struct tlsrpt_record *r, char *out, size_t outsize);
/* Parse one line (without or with its '\n') for domain; then checked
 * like an IPC record. */
bool tlsrpt_line_parse(const char *line, size_t len, const char *domain,
                       struct tlsrpt_record *out, char *err, size_t errsize);

#endif

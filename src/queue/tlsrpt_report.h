/*
 * tlsrpt_report.h - the RFC 8460 section 4 JSON report of one policy
 * domain and UTC day, aggregated from the store (tlsrpt_store.h): used by
 * `sealpost tls-report` and by the daily mailing (tlsrpt_mail.h).
 *
 * Aggregation: sessions are grouped by policy (type, policy strings, MX
 * patterns); each policy gets its summary counts and failure-details
 * grouped by result type, sending and receiving address, MX host and
 * reason. Bounded: TLSRPT_REPORT_POLICIES policies and
 * TLSRPT_REPORT_DETAILS failure groups per policy; sessions past those
 * still count in the summary (a further policy's sessions are dropped
 * and counted in `skipped`).
 *
 * Trusts nothing in the store: every line goes through tlsrpt_line_parse
 * (a bad line is skipped and counted), the file size is bounded, and the
 * JSON writer escapes every string it writes (names and policy strings
 * came from DNS, policy lines from a web server).
 */
#ifndef SEALPOST_QUEUE_TLSRPT_REPORT_H
#define SEALPOST_QUEUE_TLSRPT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/tlsrpt_codec.h"

#define TLSRPT_REPORT_POLICIES  32
#define TLSRPT_REPORT_DETAILS   64
#define TLSRPT_MAX_DOMAIN_LIST  1000000     /* domains listed for one day */

/* A growing text buffer (xalloc: out of memory is fatal). */
struct tlsrpt_buf {
    char *data;
    size_t len, alloc;
};

void tlsrpt_buf_put(struct tlsrpt_buf *b, const char *s, size_t n);
void tlsrpt_buf_puts(struct tlsrpt_buf *b, const char *s);
void tlsrpt_buf_free(struct tlsrpt_buf *b);
/* s as a JSON string, quotes included: '"' and '\' escaped, control
 * bytes, DEL and every octet >= 0x80 as \u00XX (the output is ASCII). */
void tlsrpt_json_string(struct tlsrpt_buf *b, const char *s);

struct tlsrpt_report_meta {
    const char *organization;       /* organization-name */
    const char *contact;            /* contact-info */
    const char *submitter;          /* our host name: in the report-id */
};

struct tlsrpt_report_info {
    size_t sessions;                /* lines read */
    size_t bad_lines;               /* skipped: malformed */
    size_t skipped;                 /* sessions of policies past the limit */
    bool empty;                     /* the file has no octet yet (just created) */
    size_t rua_count;               /* of the last record: where reports go */
    char rua[TLSRPT_RUA_COUNT][TLSRPT_URI_LEN + 1];
    char report_id[TLSRPT_NAME_MAX * 2 + 32];
};

/*
 * The JSON document (one line, no newline) for domain on day, appended
 * to out. false with err when the file cannot be read or holds no
 * valid line.
 */
bool tlsrpt_report_json(const char *spool, const char *day, const char *domain,
                        const struct tlsrpt_report_meta *meta, struct tlsrpt_buf *out,
                        struct tlsrpt_report_info *info, char *err, size_t errsize);

/* The same from a day file's bytes already in memory (data[len], a NUL
 * after them); for the fuzzer. */
bool tlsrpt_report_json_data(const char *data, size_t len, const char *day, const char *domain,
                             const struct tlsrpt_report_meta *meta, struct tlsrpt_buf *out,
                             struct tlsrpt_report_info *info, char *err, size_t errsize);

/* The policy domains stored for day, sorted; *names is malloc'ed
 * (free it), the count returned. 0 when there are none. */
size_t tlsrpt_report_domains(const char *spool, const char *day, char (**names)[256]);

#endif

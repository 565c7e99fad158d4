/*
 * tlsrpt_store.h - the queue's store of TLS-RPT session records (RFC
 * 8460), one append-only file per policy domain and UTC day
 * (docs/SPOOL.md):
 *
 *   SPOOL/tlsrpt/YYYY-MM-DD/DOMAIN     one line per session (tlsrpt_codec.h)
 *   SPOOL/tlsrpt/YYYY-MM-DD/.sent      domains whose report was queued
 *   SPOOL/tlsrpt/YYYY-MM-DD/.reported  the day is done (every report queued)
 *
 * Domains are lower-case LDH names (tlsrpt_name_ok), so a domain never
 * names "." or "..", a dot file, or anything outside its folder.
 *
 * Bounded: at most [tlsrpt] max_domains files per day and
 * TLSRPT_DOMAIN_DAY_MAX octets per file; records past either are dropped
 * and logged (not again for the same day, or the same domain in a row),
 * never kept in memory.
 *
 * Trusts: the spool (ours, mode 0700); records only after
 * tlsrpt_record_check (the caller decoded them).
 */
#ifndef SEALPOST_QUEUE_TLSRPT_STORE_H
#define SEALPOST_QUEUE_TLSRPT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "mail/tlsrpt_codec.h"

#define TLSRPT_DIR              "tlsrpt"
#define TLSRPT_DOMAIN_DAY_MAX   (16u * 1024 * 1024)  /* octets per domain file and day */
#define TLSRPT_DAY_LEN          10                   /* "YYYY-MM-DD" */
#define TLSRPT_SENT_FILE        ".sent"
#define TLSRPT_DONE_FILE        ".reported"

struct tlsrpt_store;

struct tlsrpt_store *tlsrpt_store_new(const char *spool, unsigned max_domains);
void tlsrpt_store_free(struct tlsrpt_store *st);

/* Append r to the file of its domain for the UTC day of now, durably
 * (fdatasync; a new file also syncs its folder and the day's entry in
 * tlsrpt/). false when dropped. */
bool tlsrpt_store_append(struct tlsrpt_store *st, const struct tlsrpt_record *r, time_t now);

/* "YYYY-MM-DD" (UTC) of t into out (TLSRPT_DAY_LEN + 1 octets). */
void tlsrpt_day_name(time_t t, char *out);
/* Is s a real date in that form (1970..9999)? *start gets its 00:00:00Z. */
bool tlsrpt_day_parse(const char *s, time_t *start);

#endif

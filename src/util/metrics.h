/*
 * metrics.h - the counters behind `[metrics] listen` (Prometheus): one
 * fixed-layout block of uint64 counters, gauges and fixed-bucket
 * histograms per role instance, in a memory file the master creates.
 *
 * The master maps every block read-write for itself and hands each role
 * its own block (its descriptor is named on the command line,
 * `--metrics N`); the metrics role gets every block read-only and sums
 * them (src/metrics/). A role can therefore change only its own numbers.
 * Writers use relaxed atomic adds and stores: no lock, one instruction
 * on the data path; a process without a block (metrics off, a tool, a
 * unit test) has metrics_self NULL and every call is a no-op.
 *
 * Adding a label value (a transport, a reject reason): one enum entry
 * before its *_COUNT and one name in metrics.c's table for it; the
 * layout follows (METRICS_VERSION changes with it, so a block from an
 * older binary is refused rather than misread).
 *
 * Trusts: nothing it reads - metrics_attach() checks the size, seals and
 * header of a block before it maps it.
 */
#ifndef SEALPOST_UTIL_METRICS_H
#define SEALPOST_UTIL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAGIC 0x73706d6574726963ULL     /* "spmetric" */
#define METRICS_VERSION 2u
#define METRICS_MAX_LISTENERS 16    /* >= CONFIG_MAX_LISTENERS (checked in src/metrics/) */
#define METRICS_MAX_BUCKETS 16      /* per histogram, +Inf included */

/* How a connection ended up: its listener's TLS and whether STARTTLS ran. */
enum metrics_conn_tls { METRICS_CONN_PLAIN, METRICS_CONN_STARTTLS, METRICS_CONN_IMPLICIT,
                        METRICS_CONN_TLS_COUNT };
/* RCPT verdicts (mail/rcpt_policy.h and the worker's own limits). */
enum metrics_rcpt { METRICS_RCPT_ACCEPTED, METRICS_RCPT_TLS_REQUIRED,
                    METRICS_RCPT_UNKNOWN_USER, METRICS_RCPT_RELAY_DENIED,
                    METRICS_RCPT_TOO_MANY, METRICS_RCPT_ENVELOPE_FULL, METRICS_RCPT_MILTER,
                    METRICS_RCPT_UNKNOWN_RELAY_USER, METRICS_RCPT_ALIAS_LOOP,
                    METRICS_RCPT_ALIAS_TOO_MANY, METRICS_RCPT_COUNT };
/* How a recipient was delivered: a new transport is one entry here. */
enum metrics_transport { METRICS_TRANSPORT_SMTP, METRICS_TRANSPORT_MAILDIR,
                         METRICS_TRANSPORT_LMTP, METRICS_TRANSPORT_COUNT };
enum metrics_outcome { METRICS_OUTCOME_DELIVERED, METRICS_OUTCOME_DEFERRED,
                       METRICS_OUTCOME_BOUNCED, METRICS_OUTCOME_COUNT };
enum metrics_direction { METRICS_DIR_INBOUND, METRICS_DIR_OUTBOUND, METRICS_DIR_COUNT };
enum metrics_tls_version { METRICS_TLS_1_0, METRICS_TLS_1_1, METRICS_TLS_1_2,
                           METRICS_TLS_1_3, METRICS_TLS_OTHER, METRICS_TLS_VERSION_COUNT };
/* The outbound TLS policy of one MX host: delivery/tls_decide.h's
 * enum host_tls, in its order. */
#define METRICS_TLS_POLICY_COUNT 7
enum metrics_role { METRICS_ROLE_QUEUE, METRICS_ROLE_SMTPD, METRICS_ROLE_DELIVERY,
                    METRICS_ROLE_LOCAL, METRICS_ROLE_LMTP, METRICS_ROLE_METRICS,
                    METRICS_ROLE_MILTER, METRICS_ROLE_COUNT };

/* Counter index ranges, one per family. */
#define METRICS_C_CONN 0
#define METRICS_C_RCPT (METRICS_C_CONN + METRICS_MAX_LISTENERS * METRICS_CONN_TLS_COUNT)
#define METRICS_C_QUEUED (METRICS_C_RCPT + METRICS_RCPT_COUNT)
#define METRICS_C_OUTCOME (METRICS_C_QUEUED + 1)
#define METRICS_C_TLS (METRICS_C_OUTCOME + METRICS_TRANSPORT_COUNT * METRICS_OUTCOME_COUNT)
#define METRICS_C_POLICY (METRICS_C_TLS + METRICS_DIR_COUNT * METRICS_TLS_VERSION_COUNT)
#define METRICS_C_RESTART (METRICS_C_POLICY + METRICS_TLS_POLICY_COUNT)
#define METRICS_C_HTTP (METRICS_C_RESTART + METRICS_ROLE_COUNT)
#define METRICS_HTTP_CLASSES 2      /* served (200), refused (4xx) */
/* connections the metrics role closed unread: [metrics] max_connections */
#define METRICS_C_HTTP_CONN_REFUSED (METRICS_C_HTTP + METRICS_HTTP_CLASSES)
#define METRICS_COUNTERS (METRICS_C_HTTP_CONN_REFUSED + 1)

enum metrics_gauge { METRICS_G_QUEUE_MESSAGES, METRICS_G_QUEUE_OLDEST_ARRIVAL,
                     METRICS_GAUGES };

enum metrics_hist_id { METRICS_H_DELIVERY_SECONDS, METRICS_H_COMMIT_GROUP,
                       METRICS_H_FSYNC_USEC, METRICS_HISTS };

struct metrics_hist {
    uint64_t bucket[METRICS_MAX_BUCKETS];   /* not cumulative; past the bounds: last */
    uint64_t count;
    uint64_t sum;                           /* in the histogram's raw unit */
};

struct metrics_block {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint64_t counter[METRICS_COUNTERS];
    int64_t gauge[METRICS_GAUGES];
    struct metrics_hist hist[METRICS_HISTS];
};

/* This process's own block, or NULL. */
extern struct metrics_block *metrics_self;

static inline void metrics_add(unsigned idx, uint64_t n)
{
    if (metrics_self != NULL && idx < METRICS_COUNTERS)
        __atomic_fetch_add(&metrics_self->counter[idx], n, __ATOMIC_RELAXED);
}

static inline void metrics_gauge_set(enum metrics_gauge g, int64_t v)
{
    if (metrics_self != NULL)
        __atomic_store_n(&metrics_self->gauge[g], v, __ATOMIC_RELAXED);
}

/* One-line calls for the data path. Out-of-range arguments count nothing. */
void metrics_connection(size_t listener, enum metrics_conn_tls tls);
void metrics_rcpt(enum metrics_rcpt verdict);
void metrics_outcome(enum metrics_transport t, enum metrics_outcome o);
/* version: OpenSSL's SSL_version() number. */
void metrics_tls(enum metrics_direction dir, int version);
void metrics_tls_policy(unsigned host_tls_mode);
void metrics_observe(enum metrics_hist_id h, uint64_t raw);

/* --- the descriptions the metrics role renders from --- */

struct metrics_hist_def {
    const char *name, *help;
    double scale;                   /* raw unit per rendered unit */
    uint64_t bounds[METRICS_MAX_BUCKETS - 1];
    unsigned nbounds;
};

extern const struct metrics_hist_def metrics_hist_defs[METRICS_HISTS];
extern const char *const metrics_conn_tls_names[METRICS_CONN_TLS_COUNT];
extern const char *const metrics_rcpt_names[METRICS_RCPT_COUNT];
extern const char *const metrics_transport_names[METRICS_TRANSPORT_COUNT];
extern const char *const metrics_outcome_names[METRICS_OUTCOME_COUNT];
extern const char *const metrics_direction_names[METRICS_DIR_COUNT];
extern const char *const metrics_tls_version_names[METRICS_TLS_VERSION_COUNT];
extern const char *const metrics_tls_policy_names[METRICS_TLS_POLICY_COUNT];
extern const char *const metrics_role_names[METRICS_ROLE_COUNT];

/* --- blocks --- */

/* Master: a new zeroed block in a memory file whose size is sealed (its
 * descriptor, close-on-exec, in *fd), mapped read-write. NULL + errno. */
struct metrics_block *metrics_create(const char *name, int *fd);
/* Map the block in fd: read-write for its owner, else read-only (the
 * metrics role). Checks type, seals, size and header. NULL + why. */
struct metrics_block *metrics_attach(int fd, bool writable, char *why, size_t whysize);
void metrics_detach(const struct metrics_block *b);
/* A descriptor of the same block that cannot be mapped for writing
 * (reopened read-only through /proc/self/fd), close-on-exec; -1 + errno. */
int metrics_reopen_readonly(int fd);

#endif

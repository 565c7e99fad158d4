/*
 * sts.h - MTA-STS (RFC 8461) for the delivery process: which policy, if
 * any, applies to a destination domain right now. Discovery through the
 * "_mta-sts" TXT record (libunbound, dns_resolve_txt), the HTTPS fetch
 * of https://mta-sts.DOMAIN/.well-known/mta-sts.txt (sts_http.h, the
 * host resolved by the same libunbound context) and an in-memory cache
 * that the queue persists (sts_codec.h records; this process has no
 * file access).
 *
 * The rules (RFC 8461 3, 5.1; README "Outbound TLS security"):
 *  - TXT lookup failed (SERVFAIL, bogus, timeout), no STSv1 record, or
 *    not exactly one valid STSv1 record: the unexpired cached policy if
 *    there is one, else no policy.
 *  - One valid record whose id equals the unexpired cached policy's id:
 *    the cached policy, no fetch.
 *  - Otherwise fetch. A valid policy replaces the cache entry (and is
 *    handed to the store callback to be persisted); a failed fetch falls
 *    back to the unexpired cached policy, else no policy.
 *  - A cached policy expires max_age seconds after it was fetched.
 *
 * Trusts: the configured CA file; nothing from DNS or HTTPS (parsed by
 * sts_txt.h, sts_response.h, sts_policy.h) nor from the queue (records
 * checked by sts_record_decode).
 */
#ifndef SEALPOST_DELIVERY_STS_H
#define SEALPOST_DELIVERY_STS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <openssl/x509.h>

#include "delivery/dns.h"
#include "delivery/sts_response.h"
#include "mail/sts_codec.h"

#define STS_CACHE_MAX 1024          /* policy domains kept in memory */

enum sts_source {
    STS_SRC_NONE = 0,               /* no policy applies */
    STS_SRC_CACHE,
    STS_SRC_FETCHED,
};

/* Valid during the callback only. */
struct sts_result {
    const char *domain;
    enum sts_source source;
    const char *id;                 /* "" without a policy */
    const struct sts_policy *policy;    /* NULL without a policy */
    const char *body;               /* the policy lines as fetched (for TLS-RPT) */
    size_t body_len;
    enum sts_fetch_verdict failure; /* a fetch that failed (even when the cache
                                       is used), else STS_FETCH_OK */
    const char *why;                /* printable note: why no policy, or the failure */
};

typedef void (*sts_cb)(const struct sts_result *res, void *arg);
/* A policy just fetched, to be persisted (IPC_STS_STORE). */
typedef void (*sts_store_fn)(const struct sts_record *rec, void *arg);

struct sts_config {
    const char *ca_file;            /* PEM; NULL: the system bundle */
    unsigned timeout_s;
    unsigned port;                  /* 443 */
    sts_store_fn store;
    void *store_arg;
};

struct sts;
struct sts_lookup;

/* Reads the CA file: before the sandbox. */
struct sts *sts_new(struct event_base *base, struct dns_resolver *dns,
                    const struct sts_config *cfg, char *err, size_t errsize);
/* Frees every lookup (no callback runs); call before dns_resolver_free. */
void sts_free(struct sts *s);

/* Set (or replace) the store callback. */
void sts_set_store(struct sts *s, sts_store_fn store, void *arg);

/* The CA store MX hosts of an STS policy are verified against. */
X509_STORE *sts_x509_store(struct sts *s);

/* domain: lower-case, sts_domain_valid(). The callback runs once, later,
 * unless the lookup is cancelled. */
struct sts_lookup *sts_lookup_start(struct sts *s, const char *domain, sts_cb cb, void *arg);
void sts_lookup_cancel(struct sts_lookup *lk);

/* A record from the queue (IPC_STS_CACHE): checked, expired ones dropped. */
bool sts_cache_load(struct sts *s, const void *data, size_t len, char *err, size_t errsize);

const char *sts_mode_name(enum sts_mode m);
const char *sts_source_name(enum sts_source src);

#endif

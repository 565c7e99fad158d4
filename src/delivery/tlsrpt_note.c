/*
 * tlsrpt_note.c - session outcomes to TLS-RPT records, with the policy
 * domain's rua from a small TXT cache (see tlsrpt_note.h).
 *
 * Cache: at most TLSRPT_RUA_CACHE_MAX domains; a full cache drops the
 * entry that expires first among those not being looked up. While a
 * domain's TXT lookup runs, its records wait in the entry (at most
 * TLSRPT_PENDING_MAX per domain and TLSRPT_PENDING_TOTAL in all; more
 * are dropped and logged). A domain without a
 * usable record still gets its records emitted, with no rua: the report
 * can be printed (`sealpost tls-report`), just not mailed.
 */
#include "delivery/tlsrpt_note.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "delivery/dns.h"
#include "delivery/sts_txt.h"
#include "util/log.h"
#include "util/xalloc.h"

_Static_assert(TLSRPT_RUA_COUNT == TLSRPT_RUA_MAX, "rua counts agree");
_Static_assert(TLSRPT_URI_LEN == TLSRPT_URI_MAX, "rua lengths agree");

struct pending {
    struct pending *next;
    struct tlsrpt_record rec;
};

struct rua_entry {
    struct tlsrpt_notes *n;
    char domain[TLSRPT_NAME_MAX + 1];
    bool looking;                   /* TXT lookup in progress */
    time_t expires;
    size_t rua_count;
    char rua[TLSRPT_RUA_COUNT][TLSRPT_URI_LEN + 1];
    struct pending *head, *tail;
    size_t pending;
    struct rua_entry *next;
};

struct tlsrpt_notes {
    struct dns_resolver *dns;
    tlsrpt_emit_cb emit;
    void *arg;
    struct rua_entry *entries;
    size_t count;
    size_t pending;                 /* records held in all entries */
};

struct tlsrpt_notes *tlsrpt_notes_new(struct dns_resolver *dns, tlsrpt_emit_cb emit, void *arg)
{
    struct tlsrpt_notes *n = xcalloc(1, sizeof(*n));

    n->dns = dns;
    n->emit = emit;
    n->arg = arg;
    return n;
}

static void drop_pending(struct rua_entry *e)
{
    while (e->head) {
        struct pending *p = e->head;

        e->head = p->next;
        free(p);
    }
    e->n->pending -= e->pending;
    e->tail = NULL;
    e->pending = 0;
}

void tlsrpt_notes_free(struct tlsrpt_notes *n)
{
    if (n == NULL)
        return;
    while (n->entries) {
        struct rua_entry *e = n->entries;

        n->entries = e->next;
        drop_pending(e);
        free(e);
    }
    free(n);
}

enum tlsrpt_result tlsrpt_result_of_verify(long verify_error)
{
    switch (verify_error) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return TLSRPT_CERTIFICATE_HOST_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLSRPT_CERTIFICATE_EXPIRED;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return TLSRPT_CERTIFICATE_NOT_TRUSTED;
    default:
        return TLSRPT_VALIDATION_FAILURE;
    }
}

/* The record without its rua; false when a name is not recordable. */
static bool build(struct tlsrpt_record *r, const char *domain, const struct tlsrpt_policy *pol,
                  const char *mx_host, const char *ip, const char *sending_ip,
                  enum tlsrpt_result result, const char *reason)
{
    memset(r, 0, sizeof(*r));
    if (strlen(domain) >= sizeof(r->domain) || strlen(mx_host) >= sizeof(r->mx_host) ||
        !tlsrpt_name_ok(domain) ||
        ((tlsrpt_result_has_mx(result) || mx_host[0]) && !tlsrpt_name_ok(mx_host)))
        return false;
    memcpy(r->domain, domain, strlen(domain) + 1);
    memcpy(r->mx_host, mx_host, strlen(mx_host) + 1);
    r->policy_type = pol->type;
    r->result = result;
    snprintf(r->ip, sizeof(r->ip), "%.*s", (int)sizeof(r->ip) - 1, ip);
    snprintf(r->sending_ip, sizeof(r->sending_ip), "%.*s", (int)sizeof(r->sending_ip) - 1,
             sending_ip);
    snprintf(r->reason, sizeof(r->reason), "%.*s", (int)sizeof(r->reason) - 1, reason);
    for (size_t i = 0; i < pol->string_count && r->policy_string_count < TLSRPT_POLICY_STRINGS;
         i++) {
        if (strlen(pol->strings[i]) <= TLSRPT_POLICY_STRING_MAX && pol->strings[i][0])
            memcpy(r->policy_strings[r->policy_string_count++], pol->strings[i],
                   strlen(pol->strings[i]) + 1);
    }
    for (size_t i = 0; i < pol->mx_pattern_count && r->mx_pattern_count < TLSRPT_MX_PATTERNS;
         i++) {
        if (strlen(pol->mx_patterns[i]) <= TLSRPT_NAME_MAX && pol->mx_patterns[i][0])
            memcpy(r->mx_patterns[r->mx_pattern_count++], pol->mx_patterns[i],
                   strlen(pol->mx_patterns[i]) + 1);
    }
    return true;
}

static void emit_with_rua(struct tlsrpt_notes *n, const struct rua_entry *e,
                          struct tlsrpt_record *r)
{
    r->rua_count = e->rua_count;
    memcpy(r->rua, e->rua, sizeof(r->rua));
    n->emit(r, n->arg);
}

/* The domain's single TLSRPTv1 record (RFC 8460 3: more than one, or an
 * invalid one, means no reporting). */
static void take_txt(struct rua_entry *e, const struct dns_txt_result *res)
{
    static struct tlsrpt_txt parsed, kept;
    size_t found = 0;

    e->rua_count = 0;
    if (res->outcome != DNS_TXT_OK)
        return;
    for (size_t i = 0; i < res->count; i++) {
        const struct dns_txt_record *rec = &res->records[i];
        enum sts_txt_result st;

        if (rec->too_long) {            /* cut short: a TLSRPTv1 one is invalid */
            if (rec->len >= 10 && memcmp(rec->data, "v=TLSRPTv1", 10) == 0)
                found += TLSRPT_RUA_COUNT + 1;
            continue;
        }
        st = tlsrpt_txt_parse(rec->data, rec->len, &parsed);
        if (st == STS_TXT_OTHER)
            continue;
        found++;
        if (st == STS_TXT_OK)
            kept = parsed;
        else
            found += TLSRPT_RUA_COUNT;  /* an invalid record: no reporting */
    }
    if (found != 1)
        return;
    for (size_t i = 0; i < kept.rua_count && i < TLSRPT_RUA_COUNT; i++)
        snprintf(e->rua[e->rua_count++], sizeof(e->rua[0]), "%s", kept.rua[i].uri);
}

static void txt_done(struct dns_txt_result *res, void *arg)
{
    struct rua_entry *e = arg;
    struct tlsrpt_notes *n = e->n;
    uint32_t ttl = res->outcome == DNS_TXT_FAILED ? TLSRPT_TXT_TTL_MIN : res->ttl;
    char qd[sizeof(e->domain) * 4 + 8];

    if (ttl < TLSRPT_TXT_TTL_MIN)
        ttl = TLSRPT_TXT_TTL_MIN;
    if (ttl > TLSRPT_TXT_TTL_MAX)
        ttl = TLSRPT_TXT_TTL_MAX;
    e->looking = false;
    e->expires = time(NULL) + ttl;
    take_txt(e, res);
    log_info("event=tlsrpt_txt domain=%s outcome=%s rua=%zu",
             log_value(qd, sizeof(qd), e->domain),
             res->outcome == DNS_TXT_OK ? "found" : res->outcome == DNS_TXT_NONE ? "none"
                                                                                 : "failed",
             e->rua_count);
    while (e->head) {
        struct pending *p = e->head;

        e->head = p->next;
        emit_with_rua(n, e, &p->rec);
        free(p);
    }
    n->pending -= e->pending;
    e->tail = NULL;
    e->pending = 0;
    free(res);
}

/* A free entry: a new one, or the one that expires first among those
 * not being looked up; NULL when every entry is busy. */
static struct rua_entry *make_room(struct tlsrpt_notes *n)
{
    struct rua_entry *e, *victim = NULL;

    if (n->count < TLSRPT_RUA_CACHE_MAX) {
        e = xcalloc(1, sizeof(*e));
        e->n = n;
        e->next = n->entries;
        n->entries = e;
        n->count++;
        return e;
    }
    for (e = n->entries; e; e = e->next)
        if (!e->looking && (victim == NULL || e->expires < victim->expires))
            victim = e;
    if (victim) {
        struct rua_entry *next = victim->next;

        memset(victim, 0, sizeof(*victim));
        victim->n = n;
        victim->next = next;
    }
    return victim;
}

static struct rua_entry *find(struct tlsrpt_notes *n, const char *domain)
{
    for (struct rua_entry *e = n->entries; e; e = e->next)
        if (strcmp(e->domain, domain) == 0)
            return e;
    return NULL;
}

static void hold(struct rua_entry *e, const struct tlsrpt_record *r)
{
    struct pending *p;
    char qd[sizeof(e->domain) * 4 + 8];

    if (e->pending >= TLSRPT_PENDING_MAX || e->n->pending >= TLSRPT_PENDING_TOTAL) {
        log_warn("event=tlsrpt_dropped domain=%s reason=\"too many records while its "
                 "TXT record is looked up\"", log_value(qd, sizeof(qd), e->domain));
        return;
    }
    p = xmalloc(sizeof(*p));
    p->next = NULL;
    p->rec = *r;
    if (e->tail)
        e->tail->next = p;
    else
        e->head = p;
    e->tail = p;
    e->pending++;
    e->n->pending++;
}

void tlsrpt_note(struct tlsrpt_notes *n, const char *domain, const struct tlsrpt_policy *policy,
                 const char *mx_host, const char *ip, const char *sending_ip,
                 enum tlsrpt_result result, const char *reason)
{
    static struct tlsrpt_record r;          /* 12 KiB: not on the stack */
    static const struct rua_entry none;
    struct rua_entry *e;
    char qname[TLSRPT_NAME_MAX + 16];

    if (n == NULL || !build(&r, domain, policy, mx_host, ip, sending_ip, result, reason))
        return;
    e = find(n, domain);
    if (e != NULL && (e->looking || e->expires > time(NULL))) {
        if (e->looking)
            hold(e, &r);
        else
            emit_with_rua(n, e, &r);
        return;
    }
    if (e == NULL && (e = make_room(n)) == NULL) {
        emit_with_rua(n, &none, &r);        /* every entry busy: no rua this time */
        return;
    }
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    e->looking = true;
    hold(e, &r);
    snprintf(qname, sizeof(qname), "_smtp._tls.%s", domain);
    dns_resolve_txt(n->dns, qname, txt_done, e);
}

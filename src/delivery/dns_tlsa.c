/*
 * dns_tlsa.c - DANE TLSA lookups (RFC 7672 2.2): "_PORT._tcp.HOST" for
 * several MX hosts in parallel through the validating resolver, and the
 * classification of each answer (dns_tlsa_classify, pure). A host reached
 * through a CNAME chain is asked at its expanded name first, then at the
 * name from the MX record when the first has no records (RFC 7672 2.2.2).
 *
 * Trusts: the host names (they come from dns_mx.c, already checked);
 * nothing in an answer: only libunbound's verdict decides secure /
 * insecure / bogus, the rdata goes through tlsa_parse_rrset (length
 * checks, fuzzed). A lookup that fails, times out or is bogus is
 * TLSA_ST_FAILED: the caller defers that host, never downgrades it.
 */
#include "delivery/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "util/xalloc.h"

#define TLSA_MAX_RECORDS 64     /* TLSA records examined per answer */

enum tlsa_state dns_tlsa_classify(const struct dns_answer *ans, const struct tlsa_rdata *rrs,
                                  size_t count, struct tlsa_set *set, char *why,
                                  size_t whysize)
{
    switch (ans->kind) {
    case DNS_ANS_BOGUS:
        snprintf(why, whysize, "DNSSEC validation failed (bogus): %s", ans->why);
        return TLSA_ST_FAILED;
    case DNS_ANS_TEMPFAIL:
        snprintf(why, whysize, "TLSA lookup failed: %s", ans->why);
        return TLSA_ST_FAILED;
    case DNS_ANS_NXDOMAIN:
    case DNS_ANS_NODATA:
        snprintf(why, whysize, "no TLSA records (%s)", dns_dnssec_name(ans->dnssec));
        return TLSA_ST_NONE;
    case DNS_ANS_DATA:
        break;
    }
    if (ans->dnssec != DNSSEC_SECURE) {
        snprintf(why, whysize, "TLSA records are not DNSSEC-secure (%s)",
                 dns_dnssec_name(ans->dnssec));
        return TLSA_ST_NONE;
    }
    if (!tlsa_parse_rrset(rrs, count, set)) {
        snprintf(why, whysize, "malformed TLSA record: %s", set->error);
        return TLSA_ST_FAILED;
    }
    if (set->usable_count == 0) {
        snprintf(why, whysize, "%zu TLSA records, none usable for SMTP", set->unusable);
        return TLSA_ST_UNUSABLE;
    }
    why[0] = '\0';
    return TLSA_ST_USABLE;
}

struct tlsa_job {
    struct dns_job base;        /* first: the job code sees only this */
    dns_tlsa_cb cb;
    void *arg;
    uint16_t port;
    char names[DNS_MAX_HOSTS][256];     /* asked second when canon is set */
    bool asking_canon[DNS_MAX_HOSTS];   /* the active query is the expanded name's */
    struct dns_query q[DNS_MAX_HOSTS];
    unsigned pending;
    struct dns_tlsa_result *res;
};

static void tlsa_answered(struct dns_query *q, int err, struct ub_result *ubres);

/* Send the TLSA query of host i at name; false (state set) on failure. */
static bool tlsa_ask(struct tlsa_job *job, size_t i, const char *name)
{
    struct dns_tlsa_host *h = &job->res->hosts[i];
    char qname[300];
    int rc;

    snprintf(qname, sizeof(qname), "_%u._tcp.%.255s", (unsigned)job->port, name);
    job->q[i].tag = (int)i;
    rc = dns_query_start(&job->q[i], &job->base, qname, DNS_TYPE_TLSA, tlsa_answered);
    if (rc != 0) {
        h->state = TLSA_ST_FAILED;
        snprintf(h->why, sizeof(h->why), "TLSA lookup failed: %s", ub_strerror(rc));
        return false;
    }
    return true;
}

static void tlsa_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct tlsa_job *job = (struct tlsa_job *)q->job;
    struct dns_tlsa_host *h = &job->res->hosts[q->tag];
    struct tlsa_rdata rrs[TLSA_MAX_RECORDS];
    struct dns_answer ans;
    size_t n = 0;

    dns_classify(err, ubres, &ans);
    if (ans.kind == DNS_ANS_DATA) {
        while (n < TLSA_MAX_RECORDS && ubres->data[n] != NULL) {
            rrs[n].data = (const uint8_t *)ubres->data[n];
            rrs[n].len = ubres->len[n] < 0 ? 0 : (size_t)ubres->len[n];
            n++;
        }
    }
    h->set = xcalloc(1, sizeof(*h->set));
    h->state = dns_tlsa_classify(&ans, rrs, n, h->set, h->why, sizeof(h->why));
    h->malformed = h->state == TLSA_ST_FAILED && ans.kind == DNS_ANS_DATA;
    if (h->state != TLSA_ST_USABLE) {
        free(h->set);
        h->set = NULL;
    }
    h->at_canon = job->asking_canon[q->tag];
    if (h->state == TLSA_ST_NONE && job->asking_canon[q->tag]) {
        /* Nothing at the expanded name: the MX record's name next. */
        job->asking_canon[q->tag] = false;
        h->at_canon = false;
        if (tlsa_ask(job, (size_t)q->tag, job->names[q->tag]))
            return;
    }
    if (--job->pending == 0)
        dns_job_finish(&job->base);
}

static void tlsa_cancel_all(struct tlsa_job *job)
{
    for (size_t i = 0; i < job->res->count; i++)
        dns_query_cancel(&job->q[i]);
}

static void tlsa_expire(struct dns_job *base)
{
    struct tlsa_job *job = (struct tlsa_job *)base;

    for (size_t i = 0; i < job->res->count; i++) {
        if (job->q[i].active) {
            dns_query_cancel(&job->q[i]);
            job->res->hosts[i].state = TLSA_ST_FAILED;
            snprintf(job->res->hosts[i].why, sizeof(job->res->hosts[i].why),
                     "TLSA lookup failed: timeout");
        }
    }
    job->pending = 0;
    dns_job_finish(&job->base);
}

static void tlsa_deliver(struct dns_job *base)
{
    struct tlsa_job *job = (struct tlsa_job *)base;

    job->cb(job->res, job->arg);
    free(job);
}

static void tlsa_release(struct dns_job *base)
{
    struct tlsa_job *job = (struct tlsa_job *)base;

    tlsa_cancel_all(job);
    dns_tlsa_result_free(job->res);
    free(job);
}

void dns_resolve_tlsa(struct dns_resolver *r, const char (*names)[256],
                      const char (*canon)[256], const bool *want, size_t count,
                      uint16_t port, dns_tlsa_cb cb, void *arg)
{
    struct tlsa_job *job = xcalloc(1, sizeof(*job));

    job->base.expire = tlsa_expire;
    job->base.deliver = tlsa_deliver;
    job->base.release = tlsa_release;
    job->cb = cb;
    job->arg = arg;
    job->port = port;
    job->res = xcalloc(1, sizeof(*job->res));
    job->res->count = count > DNS_MAX_HOSTS ? DNS_MAX_HOSTS : count;
    dns_job_start(&job->base, r);
    job->pending = 1;                   /* held until every query is sent */
    for (size_t i = 0; i < job->res->count; i++) {
        bool expanded = canon != NULL && canon[i][0] != '\0';

        if (!want[i])
            continue;
        snprintf(job->names[i], sizeof(job->names[i]), "%s", names[i]);
        job->asking_canon[i] = expanded;
        job->pending++;
        if (!tlsa_ask(job, i, expanded ? canon[i] : names[i]))
            job->pending--;
    }
    if (--job->pending == 0)
        dns_job_finish(&job->base);
}

void dns_tlsa_result_free(struct dns_tlsa_result *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->count; i++)
        free(res->hosts[i].set);
    free(res);
}

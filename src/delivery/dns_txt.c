/*
 * dns_txt.c - TXT lookups through the validating resolver (see dns.h),
 * for the MTA-STS "_mta-sts.DOMAIN" record (RFC 8461 3.1).
 *
 * Trusts: the name (built by the caller from a checked domain); nothing
 * in an answer: libunbound's verdict decides failed / none / data, and
 * every character-string length is checked against the rdata length
 * before a byte is copied; at most DNS_TXT_MAX_RECORDS records of at
 * most DNS_TXT_RECORD_MAX octets are kept.
 */
#include "delivery/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "util/xalloc.h"

bool dns_txt_join(const uint8_t *rdata, size_t len, struct dns_txt_record *rec)
{
    size_t i = 0;

    rec->len = 0;
    rec->too_long = false;
    while (i < len) {
        size_t n = rdata[i++];

        if (n > len - i)
            return false;
        for (size_t k = 0; k < n; k++) {
            if (rec->len < DNS_TXT_RECORD_MAX)
                rec->data[rec->len++] = (char)rdata[i + k];
            else
                rec->too_long = true;
        }
        i += n;
    }
    return true;
}

struct txt_job {
    struct dns_job base;        /* first: the job code sees only this */
    dns_txt_cb cb;
    void *arg;
    struct dns_query q;
    struct dns_txt_result *res;
};

static void txt_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct txt_job *job = (struct txt_job *)q->job;
    struct dns_txt_result *res = job->res;
    struct dns_answer ans;

    dns_classify(err, ubres, &ans);
    res->dnssec = ans.dnssec;
    switch (ans.kind) {
    case DNS_ANS_BOGUS:
    case DNS_ANS_TEMPFAIL:
        res->outcome = DNS_TXT_FAILED;
        snprintf(res->why, sizeof(res->why), "TXT lookup failed: %s", ans.why);
        break;
    case DNS_ANS_NXDOMAIN:
    case DNS_ANS_NODATA:
        res->outcome = DNS_TXT_NONE;
        snprintf(res->why, sizeof(res->why), "no TXT record");
        break;
    case DNS_ANS_DATA:
        res->outcome = DNS_TXT_OK;
        res->ttl = ubres->ttl > 0 ? (uint32_t)ubres->ttl : 0;
        for (size_t n = 0; ubres->data[n] != NULL && res->count < DNS_TXT_MAX_RECORDS; n++) {
            size_t len = ubres->len[n] < 0 ? 0 : (size_t)ubres->len[n];
            if (!dns_txt_join((const uint8_t *)ubres->data[n], len,
                              &res->records[res->count])) {
                res->outcome = DNS_TXT_FAILED;
                snprintf(res->why, sizeof(res->why), "malformed TXT record");
                break;
            }
            res->count++;
        }
        break;
    }
    dns_job_finish(&job->base);
}

static void txt_expire(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    dns_query_cancel(&job->q);
    job->res->outcome = DNS_TXT_FAILED;
    job->res->count = 0;
    snprintf(job->res->why, sizeof(job->res->why), "TXT lookup failed: timeout");
    dns_job_finish(&job->base);
}

static void txt_deliver(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    job->cb(job->res, job->arg);
    free(job);
}

static void txt_release(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    dns_query_cancel(&job->q);
    free(job->res);
    free(job);
}

void dns_resolve_txt(struct dns_resolver *r, const char *name, dns_txt_cb cb, void *arg)
{
    struct txt_job *job = xcalloc(1, sizeof(*job));
    int rc;

    job->base.expire = txt_expire;
    job->base.deliver = txt_deliver;
    job->base.release = txt_release;
    job->cb = cb;
    job->arg = arg;
    job->res = xcalloc(1, sizeof(*job->res));
    dns_job_start(&job->base, r);
    rc = dns_query_start(&job->q, &job->base, name, DNS_TYPE_TXT, txt_answered);
    if (rc != 0) {
        job->res->outcome = DNS_TXT_FAILED;
        snprintf(job->res->why, sizeof(job->res->why), "TXT lookup failed: %s",
                 ub_strerror(rc));
        dns_job_finish(&job->base);
    }
}

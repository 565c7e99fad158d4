/*
 * dns_txt.c - TXT lookups (see dns_txt.h) on the dns_job framework of
 * dns.c: one query, the resolver's deadline, the callback from the
 * event loop.
 *
 * Trusts: the name asked (the caller checked it); nothing in the answer.
 */
#include "delivery/dns_txt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "delivery/dns_internal.h"
#include "util/xalloc.h"

#define TXT_TYPE 16             /* RFC 1035 TXT */
#define TXT_RDATA_MAX 65535

struct txt_job {
    struct dns_job base;        /* first: the job code sees only this */
    dns_txt_cb cb;
    void *arg;
    struct dns_query q;
    struct dns_txt_result res;
};

bool dns_txt_join(const uint8_t *rdata, size_t len, char *out, size_t outsize,
                  size_t *outlen)
{
    size_t n = 0, i = 0;

    if (outsize == 0)
        return false;
    while (i < len) {
        size_t part = rdata[i++];

        if (part > len - i || n + part >= outsize)
            return false;
        memcpy(out + n, rdata + i, part);
        n += part;
        i += part;
    }
    out[n] = '\0';
    *outlen = n;
    return true;
}

static void txt_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct txt_job *job = (struct txt_job *)q->job;
    struct dns_txt_result *res = &job->res;
    struct dns_answer ans;

    dns_classify(err, ubres, &ans);
    res->dnssec = ans.dnssec;
    snprintf(res->why, sizeof(res->why), "%s", ans.why);
    if (ans.kind == DNS_ANS_NXDOMAIN || ans.kind == DNS_ANS_NODATA) {
        res->outcome = DNS_TXT_NONE;
    } else if (ans.kind != DNS_ANS_DATA) {
        res->outcome = DNS_TXT_FAILED;
    } else {
        res->outcome = DNS_TXT_OK;
        res->ttl = ubres->ttl > 0 ? (uint32_t)ubres->ttl : 0;
        for (size_t i = 0; ubres->data[i] != NULL; i++) {
            struct dns_txt_record *rec = &res->records[res->count];
            size_t len = ubres->len[i] < 0 ? 0 : (size_t)ubres->len[i];

            if (res->count >= DNS_TXT_RECORDS || len > TXT_RDATA_MAX ||
                !dns_txt_join((const uint8_t *)ubres->data[i], len, rec->data,
                              sizeof(rec->data), &rec->len)) {
                res->dropped++;
                continue;
            }
            res->count++;
        }
    }
    dns_job_finish(&job->base);
}

static void txt_expire(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    dns_query_cancel(&job->q);
    job->res.outcome = DNS_TXT_FAILED;
    job->res.count = 0;
    snprintf(job->res.why, sizeof(job->res.why), "timeout");
    dns_job_finish(&job->base);
}

static void txt_deliver(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    job->cb(&job->res, job->arg);
    free(job);
}

static void txt_release(struct dns_job *base)
{
    struct txt_job *job = (struct txt_job *)base;

    dns_query_cancel(&job->q);
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
    dns_job_start(&job->base, r);
    rc = dns_query_start(&job->q, &job->base, name, TXT_TYPE, txt_answered);
    if (rc != 0) {
        job->res.outcome = DNS_TXT_FAILED;
        snprintf(job->res.why, sizeof(job->res.why), "%s", ub_strerror(rc));
        dns_job_finish(&job->base);
    }
}

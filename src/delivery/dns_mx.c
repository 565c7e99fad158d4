/*
 * dns_mx.c - where mail for a domain goes: the MX lookup (null MX,
 * implicit MX), then A and AAAA of every exchange in parallel, ordered
 * by preference (random among equals) with the DNSSEC status of each
 * answer; and the same for a single host ("[relayhost]", IP literals).
 *
 * Trusts: the caller's domain only after dns_name_normalize(); nothing in
 * an answer: MX rdata and addresses are length-checked, exchange names
 * go through dns_wire_name(), counts are capped (DNS_MAX_MX_RECORDS read,
 * DNS_MAX_HOSTS kept, DNS_MAX_ADDRS per host). Bogus answers are never
 * used. Must never: call the user back before the event loop does, or
 * return a host without an address.
 */
#include "delivery/dns_internal.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "util/xalloc.h"

#define DNS_MAX_MX_RECORDS 1024  /* MX records examined per answer */

enum { FAM_V4 = 0, FAM_V6 = 1, FAM_COUNT = 2 };
static const int fam_type[FAM_COUNT] = { DNS_TYPE_A, DNS_TYPE_AAAA };

enum fam_state { FAM_PENDING, FAM_DATA, FAM_NODATA, FAM_NXDOMAIN, FAM_TEMPFAIL };

struct mx_cand {
    char name[256];
    char canon[256];            /* CNAME target of name, "" without CNAME */
    unsigned preference;
    struct dns_query q[FAM_COUNT];
    enum fam_state state[FAM_COUNT];
    enum dnssec_status dnssec[FAM_COUNT];
    struct sockaddr_storage addrs[FAM_COUNT][DNS_MAX_ADDRS];
    size_t naddr[FAM_COUNT];
};

struct mx_job {
    struct dns_job base;        /* first: the job code sees only this */
    char domain[256];
    uint16_t port;
    bool host_only;             /* dns_resolve_host: no MX lookup */
    dns_mx_cb cb;
    void *arg;
    struct dns_query mxq;
    bool mx_done;
    struct mx_cand cands[DNS_MAX_HOSTS];
    size_t ncand;
    unsigned pending;           /* address queries without an answer */
    char tempwhy[sizeof(((struct dns_mx_result *)0)->error)];  /* first temp failure */
    struct dns_mx_result res;
};

/* Format into a fixed buffer; long names are cut (the text is for humans). */
static void format_into(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void format_into(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

#define set_error(res, ...) format_into((res)->error, sizeof((res)->error), __VA_ARGS__)

static void note_tempfail(struct mx_job *job, const char *name, int type, const char *why,
                          bool bogus)
{
    if (job->tempwhy[0] != '\0')
        return;
    format_into(job->tempwhy, sizeof(job->tempwhy), "%s: %s type=%s: %s",
                bogus ? "DNSSEC validation failed (bogus)" : "Temporary DNS failure",
                name, dns_type_name(type), why);
}

static void finish(struct mx_job *job, enum dns_outcome outcome)
{
    job->res.outcome = outcome;
    if (outcome == DNS_OK)
        job->res.error[0] = '\0';
    else
        job->res.host_count = 0;        /* never an address with a failure */
    dns_job_finish(&job->base);
}

/* ------------------------------------------------------ address phase */

static void store_addrs(struct mx_cand *c, int fam, const struct ub_result *res, uint16_t port)
{
    for (size_t i = 0; res->data[i] != NULL && c->naddr[fam] < DNS_MAX_ADDRS; i++) {
        struct sockaddr_storage *ss = &c->addrs[fam][c->naddr[fam]];
        memset(ss, 0, sizeof(*ss));
        if (fam == FAM_V4 && res->len[i] == 4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(port);
            memcpy(&sin->sin_addr, res->data[i], 4);
        } else if (fam == FAM_V6 && res->len[i] == 16) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(port);
            memcpy(&sin6->sin6_addr, res->data[i], 16);
        } else {
            continue;                   /* malformed rdata: skip it */
        }
        c->naddr[fam]++;
    }
}

/* Worst status of the answers that count (data, nodata, nxdomain; a
 * failed or bogus one is not used); insecure if none counts. */
static enum dnssec_status cand_dnssec(const struct mx_cand *c)
{
    enum dnssec_status worst = DNSSEC_SECURE;
    bool any = false;

    for (int fam = 0; fam < FAM_COUNT; fam++) {
        if (c->state[fam] == FAM_DATA || c->state[fam] == FAM_NODATA ||
            c->state[fam] == FAM_NXDOMAIN) {
            worst = dns_worse(worst, c->dnssec[fam]);
            any = true;
        }
    }
    return any ? worst : DNSSEC_INSECURE;
}

/* Copy a candidate's addresses into a result host: IPv4 and IPv6 alternate. */
static void fill_host(struct dns_host *h, const struct mx_cand *c)
{
    size_t next[FAM_COUNT] = { 0, 0 };

    memcpy(h->name, c->name, sizeof(h->name));
    memcpy(h->canon_name, c->canon, sizeof(h->canon_name));
    h->preference = c->preference;
    h->addr_count = 0;
    h->addr_dnssec = cand_dnssec(c);
    while (h->addr_count < DNS_MAX_ADDRS &&
           (next[FAM_V4] < c->naddr[FAM_V4] || next[FAM_V6] < c->naddr[FAM_V6])) {
        for (int fam = 0; fam < FAM_COUNT && h->addr_count < DNS_MAX_ADDRS; fam++) {
            if (next[fam] >= c->naddr[fam])
                continue;
            h->addrs[h->addr_count] = c->addrs[fam][next[fam]++];
            h->addr_lens[h->addr_count] = fam == FAM_V4 ? sizeof(struct sockaddr_in)
                                                        : sizeof(struct sockaddr_in6);
            h->addr_count++;
        }
    }
}

static void addresses_complete(struct mx_job *job)
{
    struct dns_mx_result *res = &job->res;
    bool tempfail = false, nxdomain = true;

    for (size_t i = 0; i < job->ncand; i++) {
        const struct mx_cand *c = &job->cands[i];
        if (c->naddr[FAM_V4] + c->naddr[FAM_V6] > 0) {
            fill_host(&res->hosts[res->host_count++], c);
            continue;
        }
        for (int fam = 0; fam < FAM_COUNT; fam++) {
            tempfail |= c->state[fam] == FAM_TEMPFAIL || c->state[fam] == FAM_PENDING;
            nxdomain &= c->state[fam] == FAM_NXDOMAIN;
        }
    }
    if (job->host_only)                 /* no MX answer: the address answers decide */
        res->mx_dnssec = cand_dnssec(&job->cands[0]);
    if (res->host_count > 0) {
        finish(job, DNS_OK);
    } else if (tempfail) {
        set_error(res, "%s", job->tempwhy[0] ? job->tempwhy : "Temporary DNS failure");
        finish(job, DNS_TEMPFAIL);
    } else if (job->host_only && nxdomain) {
        set_error(res, "Host or domain name not found: %s type=A/AAAA: NXDOMAIN", job->domain);
        finish(job, DNS_NXDOMAIN);
    } else if (job->host_only || res->implicit_mx) {
        set_error(res, "No address found for %s: no A/AAAA records%s", job->domain,
                  job->host_only ? "" : " (and no MX)");
        finish(job, DNS_NO_ADDRESS);
    } else if (job->ncand == 1) {
        set_error(res, "No address found for the mail exchanger of %s: %s has no A/AAAA "
                  "records", job->domain, job->cands[0].name);
        finish(job, DNS_NO_ADDRESS);
    } else {
        set_error(res, "No address found for any of the %zu mail exchangers of %s "
                  "(first: %s)", job->ncand, job->domain, job->cands[0].name);
        finish(job, DNS_NO_ADDRESS);
    }
}

/* Remember where a CNAME chain led (the TLSA base name of RFC 7672
 * 2.2.2); the first answer with data decides. */
static void note_canon(struct mx_cand *c, const struct ub_result *res)
{
    char canon[256];

    if (c->canon[0] != '\0' || res->canonname == NULL ||
        !dns_name_normalize(res->canonname, canon, sizeof(canon)) ||
        strcmp(canon, c->name) == 0)
        return;
    memcpy(c->canon, canon, sizeof(c->canon));
}

static void address_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct mx_job *job = (struct mx_job *)q->job;
    struct mx_cand *c = &job->cands[q->tag / FAM_COUNT];
    int fam = q->tag % FAM_COUNT;
    struct dns_answer ans;

    dns_classify(err, ubres, &ans);
    c->dnssec[fam] = ans.dnssec;
    switch (ans.kind) {
    case DNS_ANS_DATA:
        c->state[fam] = FAM_DATA;
        store_addrs(c, fam, ubres, job->port);
        note_canon(c, ubres);
        break;
    case DNS_ANS_NODATA:
        c->state[fam] = FAM_NODATA;
        break;
    case DNS_ANS_NXDOMAIN:
        c->state[fam] = FAM_NXDOMAIN;
        break;
    case DNS_ANS_BOGUS:
    case DNS_ANS_TEMPFAIL:
        c->state[fam] = FAM_TEMPFAIL;
        note_tempfail(job, c->name, fam_type[fam], ans.why, ans.kind == DNS_ANS_BOGUS);
        break;
    }
    if (--job->pending == 0)
        addresses_complete(job);
}

static void start_address_queries(struct mx_job *job)
{
    job->pending = 1;                   /* held until every query is sent */
    for (size_t i = 0; i < job->ncand; i++) {
        struct mx_cand *c = &job->cands[i];
        for (int fam = 0; fam < FAM_COUNT; fam++) {
            c->q[fam].tag = (int)i * FAM_COUNT + fam;
            c->state[fam] = FAM_PENDING;
            job->pending++;
            int rc = dns_query_start(&c->q[fam], &job->base, c->name, fam_type[fam],
                                     address_answered);
            if (rc != 0) {
                c->state[fam] = FAM_TEMPFAIL;
                note_tempfail(job, c->name, fam_type[fam], ub_strerror(rc), false);
                job->pending--;
            }
        }
    }
    if (--job->pending == 0)
        addresses_complete(job);
}

/* ----------------------------------------------------------- MX phase */

struct mx_rec {
    unsigned preference;
    uint32_t shuffle;
    size_t index;
};

static int mx_rec_cmp(const void *a, const void *b)
{
    const struct mx_rec *x = a, *y = b;

    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    if (x->shuffle != y->shuffle)
        return x->shuffle < y->shuffle ? -1 : 1;
    return 0;
}

static bool is_null_mx(const struct ub_result *res)
{
    return res->data[0] != NULL && res->data[1] == NULL && res->len[0] == 3 &&
           res->data[0][0] == 0 && res->data[0][1] == 0 && res->data[0][2] == 0;
}

/* Turn the MX RRset into ordered, de-duplicated candidates. */
static void mx_candidates(struct mx_job *job, const struct ub_result *res)
{
    size_t n = 0;

    while (res->data[n] != NULL && n < DNS_MAX_MX_RECORDS)
        n++;
    struct mx_rec *recs = xcalloc(n, sizeof(*recs));
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (res->len[i] < 3)
            continue;                   /* malformed */
        const uint8_t *p = (const uint8_t *)res->data[i];
        recs[kept].preference = (unsigned)p[0] << 8 | p[1];
        recs[kept].shuffle = arc4random();
        recs[kept].index = i;
        kept++;
    }
    qsort(recs, kept, sizeof(*recs), mx_rec_cmp);
    for (size_t k = 0; k < kept && job->ncand < DNS_MAX_HOSTS; k++) {
        const uint8_t *p = (const uint8_t *)res->data[recs[k].index];
        size_t len = (size_t)res->len[recs[k].index];
        struct mx_cand *c = &job->cands[job->ncand];
        size_t used = dns_wire_name(p + 2, len - 2, c->name, sizeof(c->name));
        if (used == 0 || used != len - 2 || c->name[0] == '\0')
            continue;                   /* bad name, trailing junk, or "." */
        bool dup = false;
        for (size_t j = 0; j < job->ncand && !dup; j++)
            dup = strcmp(job->cands[j].name, c->name) == 0;
        if (dup)
            continue;                   /* keep the lowest preference only */
        c->preference = recs[k].preference;
        job->ncand++;
    }
    free(recs);
}

static void mx_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct mx_job *job = (struct mx_job *)q->job;
    struct dns_mx_result *res = &job->res;
    struct dns_answer ans;

    job->mx_done = true;
    dns_classify(err, ubres, &ans);
    res->mx_dnssec = ans.dnssec;
    switch (ans.kind) {
    case DNS_ANS_BOGUS:
        set_error(res, "DNSSEC validation failed (bogus): %s type=MX: %s",
                  job->domain, ans.why);
        finish(job, DNS_TEMPFAIL);
        return;
    case DNS_ANS_TEMPFAIL:
        set_error(res, "Temporary DNS failure: %s type=MX: %s", job->domain, ans.why);
        finish(job, DNS_TEMPFAIL);
        return;
    case DNS_ANS_NXDOMAIN:
        set_error(res, "Host or domain name not found: %s type=MX: NXDOMAIN", job->domain);
        finish(job, DNS_NXDOMAIN);
        return;
    case DNS_ANS_NODATA:
        res->implicit_mx = true;
        memcpy(job->cands[0].name, job->domain, sizeof(job->cands[0].name));
        job->cands[0].preference = 0;
        job->ncand = 1;
        break;
    case DNS_ANS_DATA:
        if (is_null_mx(ubres)) {
            set_error(res, "Domain %s accepts no mail (null MX, RFC 7505)", job->domain);
            finish(job, DNS_NULL_MX);
            return;
        }
        mx_candidates(job, ubres);
        if (job->ncand == 0) {
            set_error(res, "No usable mail exchanger for %s: the MX records name no "
                      "valid host", job->domain);
            finish(job, DNS_NO_ADDRESS);
            return;
        }
        break;
    }
    start_address_queries(job);
}

/* ------------------------------------------------------ job callbacks */

static void mx_job_cancel_queries(struct mx_job *job)
{
    dns_query_cancel(&job->mxq);
    for (size_t i = 0; i < job->ncand; i++)
        for (int fam = 0; fam < FAM_COUNT; fam++)
            dns_query_cancel(&job->cands[i].q[fam]);
}

static void mx_job_expire(struct dns_job *base)
{
    struct mx_job *job = (struct mx_job *)base;

    if (!job->mx_done) {
        dns_query_cancel(&job->mxq);
        set_error(&job->res, "Temporary DNS failure: %s type=MX: timeout", job->domain);
        finish(job, DNS_TEMPFAIL);
        return;
    }
    for (size_t i = 0; i < job->ncand; i++) {
        struct mx_cand *c = &job->cands[i];
        for (int fam = 0; fam < FAM_COUNT; fam++) {
            if (c->q[fam].active) {
                dns_query_cancel(&c->q[fam]);
                c->state[fam] = FAM_TEMPFAIL;
                note_tempfail(job, c->name, fam_type[fam], "timeout", false);
            }
        }
    }
    job->pending = 0;
    addresses_complete(job);            /* what did answer is still usable */
}

static void mx_job_deliver(struct dns_job *base)
{
    struct mx_job *job = (struct mx_job *)base;

    job->cb(&job->res, job->arg);
    free(job);
}

static void mx_job_release(struct dns_job *base)
{
    struct mx_job *job = (struct mx_job *)base;

    mx_job_cancel_queries(job);
    free(job);
}

static struct mx_job *mx_job_new(struct dns_resolver *r, uint16_t port, dns_mx_cb cb, void *arg)
{
    struct mx_job *job = xcalloc(1, sizeof(*job));

    job->base.expire = mx_job_expire;
    job->base.deliver = mx_job_deliver;
    job->base.release = mx_job_release;
    job->port = port;
    job->cb = cb;
    job->arg = arg;
    job->res.mx_dnssec = DNSSEC_INSECURE;
    dns_job_start(&job->base, r);
    return job;
}

/* --------------------------------------------------------------- API */

static void host_lookup(struct mx_job *job, const char *host)
{
    struct dns_mx_result *res = &job->res;
    struct dns_host *h = &res->hosts[0];
    char quoted[64];

    job->host_only = true;
    job->mx_done = true;
    res->implicit_mx = true;
    if (dns_ip_literal(host, job->port, &h->addrs[0], &h->addr_lens[0], h->name,
                       sizeof(h->name))) {
        h->addr_count = 1;
        h->addr_dnssec = DNSSEC_INSECURE;
        res->host_count = 1;
        finish(job, DNS_OK);
        return;
    }
    char inner[256];
    size_t len = strnlen(host, sizeof(inner) + 2);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(inner)) {
        memcpy(inner, host + 1, len - 2);
        inner[len - 2] = '\0';
        host = inner;
    }
    if (!dns_name_normalize(host, job->domain, sizeof(job->domain))) {
        dns_printable(quoted, sizeof(quoted), host);
        set_error(res, "Host or domain name not found: \"%s\": invalid name", quoted);
        finish(job, DNS_NXDOMAIN);
        return;
    }
    memcpy(job->cands[0].name, job->domain, sizeof(job->cands[0].name));
    job->ncand = 1;
    start_address_queries(job);
}

void dns_resolve_mx(struct dns_resolver *r, const char *domain, uint16_t port,
                    dns_mx_cb cb, void *arg)
{
    struct mx_job *job = mx_job_new(r, port, cb, arg);
    char quoted[64];
    int rc;

    if (domain[0] == '[') {             /* address literal or "[host]" */
        host_lookup(job, domain);
        return;
    }
    if (!dns_name_normalize(domain, job->domain, sizeof(job->domain))) {
        dns_printable(quoted, sizeof(quoted), domain);
        set_error(&job->res, "Host or domain name not found: \"%s\": invalid domain name",
                  quoted);
        finish(job, DNS_NXDOMAIN);
        return;
    }
    job->mxq.tag = -1;
    rc = dns_query_start(&job->mxq, &job->base, job->domain, DNS_TYPE_MX, mx_answered);
    if (rc != 0) {
        job->mx_done = true;
        set_error(&job->res, "Temporary DNS failure: %s type=MX: %s", job->domain,
                  ub_strerror(rc));
        finish(job, DNS_TEMPFAIL);
    }
}

void dns_resolve_host(struct dns_resolver *r, const char *host, uint16_t port,
                      dns_mx_cb cb, void *arg)
{
    host_lookup(mx_job_new(r, port, cb, arg), host);
}

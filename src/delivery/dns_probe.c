/*
 * dns_probe.c - does the resolver path deliver DNSSEC? (see dns.h)
 *
 * A validating resolver behind a forwarder that strips signatures, or
 * with a stale trust anchor, turns every answer bogus: DANE-less mail
 * stops too, because bogus is never used (Stalwart issue 1578 broke this
 * way in silence). At start the delivery process asks for the DNSKEY
 * RRset of its first trust anchor's zone; when that cannot validate it
 * says so at level error and stops validating, so answers become
 * insecure: no DANE, but mail flows. `sealpost check` runs the same
 * question with a resolver of its own.
 *
 * Trusts: the trust anchor file (an operator file, read before any
 * chroot); the answer only through libunbound's verdict.
 */
#include "delivery/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "util/xalloc.h"

#define ANCHOR_FILE_MAX (64 * 1024)     /* octets read of a trust anchor file */

/* ------------------------------------------------------ the anchor's zone */

void dns_anchor_zone_of_text(const char *text, char *out, size_t outsize)
{
    char owner[DNS_NAME_MAX + 2];
    const char *p = text;

    out[0] = '\0';
    /* Skip blank and comment lines (';' zone files, '#' unbound). */
    while (*p != '\0') {
        size_t len;

        p += strspn(p, " \t\r\n");
        if (*p == ';' || *p == '#') {
            p += strcspn(p, "\n");
            continue;
        }
        len = strcspn(p, " \t\r\n");
        if (len == 0 || len >= sizeof(owner))
            return;
        memcpy(owner, p, len);
        owner[len] = '\0';
        if (strcmp(owner, ".") != 0 && !dns_name_normalize(owner, out, outsize))
            out[0] = '\0';
        return;
    }
}

void dns_anchor_zone_of_file(const char *path, char *out, size_t outsize)
{
    char *text = xmalloc(ANCHOR_FILE_MAX + 1);
    FILE *f = fopen(path, "re");
    size_t len = 0;

    out[0] = '\0';
    if (f != NULL) {
        len = fread(text, 1, ANCHOR_FILE_MAX, f);
        fclose(f);
        text[len] = '\0';
        dns_anchor_zone_of_text(text, out, outsize);
    }
    free(text);
}

/* ---------------------------------------------------------------- probe */

struct probe_job {
    struct dns_job base;        /* first: the job code sees only this */
    dns_probe_cb cb;
    void *arg;
    struct dns_query q;
    struct dns_probe_result res;
};

/* why = what ": " detail, made printable (detail may come from an answer). */
static void probe_set(struct probe_job *job, enum dns_probe_verdict v, const char *what,
                      const char *detail)
{
    char text[sizeof(job->res.why)];

    job->res.verdict = v;
    snprintf(text, sizeof(text), "%s%s%s", what, detail[0] ? ": " : "", detail);
    dns_printable(job->res.why, sizeof(job->res.why), text);
}

static void probe_answered(struct dns_query *q, int err, struct ub_result *ubres)
{
    struct probe_job *job = (struct probe_job *)q->job;
    struct dns_answer ans;

    dns_classify(err, ubres, &ans);
    /* The anchor's zone always exists: a resolver that denies it is not
     * a path to the DNS at all (a sandbox or captive resolver without
     * internet access), which says nothing about DNSSEC on the real one. */
    if (err == 0 && ubres != NULL && (ubres->rcode == 3 || ubres->nxdomain))
        probe_set(job, DNS_PROBE_UNKNOWN, "the resolver says the zone does not exist",
                  "no internet DNS?");
    else if (ans.kind == DNS_ANS_BOGUS)
        probe_set(job, DNS_PROBE_BROKEN, "DNSKEY answer is bogus", ans.why);
    else if (ans.kind == DNS_ANS_TEMPFAIL)
        probe_set(job, DNS_PROBE_UNKNOWN, "no answer", ans.why);
    else if (ans.dnssec != DNSSEC_SECURE)
        probe_set(job, DNS_PROBE_BROKEN, "DNSKEY answer is not secure",
                  dns_dnssec_name(ans.dnssec));
    else
        probe_set(job, DNS_PROBE_SECURE, "DNSKEY answer is secure", "");
    dns_job_finish(&job->base);
}

static void probe_expire(struct dns_job *base)
{
    struct probe_job *job = (struct probe_job *)base;

    dns_query_cancel(&job->q);
    probe_set(job, DNS_PROBE_UNKNOWN, "no answer", "timeout");
    dns_job_finish(&job->base);
}

static void probe_deliver(struct dns_job *base)
{
    struct probe_job *job = (struct probe_job *)base;

    if (job->res.verdict == DNS_PROBE_BROKEN)
        dns_resolver_stop_validating(job->base.r);
    job->cb(&job->res, job->arg);
    free(job);
}

static void probe_release(struct dns_job *base)
{
    struct probe_job *job = (struct probe_job *)base;

    dns_query_cancel(&job->q);
    free(job);
}

void dns_probe_dnssec(struct dns_resolver *r, dns_probe_cb cb, void *arg)
{
    struct probe_job *job = xcalloc(1, sizeof(*job));
    char qname[sizeof(r->anchor_zone) + 1];
    int rc;

    job->base.expire = probe_expire;
    job->base.deliver = probe_deliver;
    job->base.release = probe_release;
    job->cb = cb;
    job->arg = arg;
    snprintf(job->res.zone, sizeof(job->res.zone), "%s",
             r->anchor_zone[0] ? r->anchor_zone : ".");
    dns_job_start(&job->base, r);
    if (!r->validates) {
        probe_set(job, DNS_PROBE_NO_ANCHOR, "no trust anchor", "");
        dns_job_finish(&job->base);
        return;
    }
    snprintf(qname, sizeof(qname), "%s.", r->anchor_zone);
    rc = dns_query_start(&job->q, &job->base, r->anchor_zone[0] ? qname : ".",
                         DNS_TYPE_DNSKEY, probe_answered);
    if (rc != 0) {
        probe_set(job, DNS_PROBE_UNKNOWN, "no answer", ub_strerror(rc));
        dns_job_finish(&job->base);
    }
}

/* ------------------------------------------------------ `sealpost check` */

struct probe_wait {
    struct event_base *base;
    struct dns_probe_result *res;
    bool done;
};

static void probe_now_done(const struct dns_probe_result *res, void *arg)
{
    struct probe_wait *w = arg;

    *w->res = *res;
    w->done = true;
    event_base_loopbreak(w->base);
}

enum dns_probe_verdict dns_probe_dnssec_now(const struct dns_config *cfg, unsigned timeout_ms,
                                            struct dns_probe_result *res)
{
    struct dns_config c = *cfg;
    struct probe_wait w = { NULL, res, false };
    struct dns_resolver *r;
    char err[256];

    memset(res, 0, sizeof(*res));
    res->verdict = DNS_PROBE_UNKNOWN;
    if ((w.base = event_base_new()) == NULL) {
        snprintf(res->why, sizeof(res->why), "cannot create an event loop");
        return res->verdict;
    }
    c.timeout_ms = timeout_ms;
    if ((r = dns_resolver_new(w.base, &c, err, sizeof(err))) == NULL) {
        dns_printable(res->why, sizeof(res->why), err);
        event_base_free(w.base);
        return res->verdict;
    }
    dns_probe_dnssec(r, probe_now_done, &w);
    while (!w.done && event_base_dispatch(w.base) == 0)
        ;
    dns_resolver_free(r);
    event_base_free(w.base);
    return res->verdict;
}

/*
 * dns.c - the resolver: a libunbound context (validating, threaded
 * background worker) wired into the caller's libevent loop, the life
 * cycle of lookups and queries, and the classification of answers.
 *
 * libunbound resolves in its own thread (ub_ctx_async 1, started by the
 * first query) and hands answers back through a pipe: ub_fd() is watched
 * with EV_READ|EV_PERSIST and ub_process() runs our query callbacks,
 * which only record state; user callbacks are delivered by a per-lookup
 * zero-timeout timer, which dns_resolver_free() can still delete
 * (event_base_once could not be cancelled).
 *
 * Trusts: the resolver settings, the unbound config file and the trust
 * anchors it is given (operator files, read once in dns_resolver_new).
 * Answers are not trusted: dns_classify only reads libunbound's verdict
 * (rcode, secure, bogus) and copies the reason as printable text; record
 * data is parsed by the callers with the checks of dns_name.c.
 * Must never: run a user callback inside dns_resolve_* or ub_process(),
 * or let one run after dns_resolver_free().
 */
#include "delivery/dns_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <unbound.h>

#include "util/log.h"
#include "util/xalloc.h"

#define SYSTEM_ROOT_KEY "/usr/share/dns/root.key"

/* ------------------------------------------------------------ resolver */

static void ub_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns_resolver *r = arg;
    int err;

    (void)fd;
    (void)what;
    err = ub_process(r->ctx);
    if (err != 0) {
        /* The background worker is gone; its pipe would stay readable
         * forever. Stop listening: pending lookups hit their deadline. */
        log_error("event=dns_error error=\"ub_process: %s\"", ub_strerror(err));
        event_del(r->ub_event);
    }
}

/* Does the unbound config already name a trust anchor of its own? */
static bool config_has_anchor(struct ub_ctx *ctx)
{
    static const char *const opts[] = {
        "trust-anchor-file", "trust-anchor", "auto-trust-anchor-file",
        "trusted-keys-file",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char *val = NULL;
        if (ub_ctx_get_option(ctx, opts[i], &val) == 0 && val != NULL) {
            bool set = val[0] != '\0';
            free(val);
            if (set)
                return true;
        }
    }
    return false;
}

static int setup_ctx(struct ub_ctx *ctx, const struct dns_config *cfg, bool *validates,
                     char *err, size_t errsize)
{
    int rc;

    *validates = true;
    if ((rc = ub_ctx_async(ctx, 1)) != 0) {
        snprintf(err, errsize, "resolver: threads: %s", ub_strerror(rc));
        return -1;
    }
    if (cfg->unbound_config != NULL && (rc = ub_ctx_config(ctx, cfg->unbound_config)) != 0) {
        snprintf(err, errsize, "resolver: unbound config %s: %s", cfg->unbound_config,
                 ub_strerror(rc));
        return -1;
    }
    if (cfg->resolver != NULL) {
        if ((rc = ub_ctx_set_fwd(ctx, cfg->resolver)) != 0) {
            snprintf(err, errsize, "resolver: forwarder %s: %s", cfg->resolver, ub_strerror(rc));
            return -1;
        }
    } else if (cfg->unbound_config == NULL) {
        if ((rc = ub_ctx_resolvconf(ctx, NULL)) != 0)
            log_warn("event=dns_config error=\"/etc/resolv.conf: %s\" action=recursion",
                     ub_strerror(rc));
    }
    if (cfg->trust_anchor != NULL) {
        if (access(cfg->trust_anchor, R_OK) != 0) {
            snprintf(err, errsize, "resolver: trust anchor %s: %s", cfg->trust_anchor,
                     strerror(errno));
            return -1;
        }
        if ((rc = ub_ctx_add_ta_file(ctx, cfg->trust_anchor)) != 0) {
            snprintf(err, errsize, "resolver: trust anchor %s: %s", cfg->trust_anchor,
                     ub_strerror(rc));
            return -1;
        }
    } else if (!config_has_anchor(ctx)) {
        if (access(SYSTEM_ROOT_KEY, R_OK) == 0) {
            /* read-only: ub_ctx_add_ta_autr would need to rewrite it */
            if ((rc = ub_ctx_add_ta_file(ctx, SYSTEM_ROOT_KEY)) != 0) {
                snprintf(err, errsize, "resolver: trust anchor %s: %s", SYSTEM_ROOT_KEY,
                         ub_strerror(rc));
                return -1;
            }
        } else {
            *validates = false;
            log_error("event=dns_config error=\"no DNSSEC trust anchor: the resolver does "
                      "not validate, every answer is treated as insecure and DANE is "
                      "OFF\" action=insecure");
        }
    }
    /* Load everything now (files, anchors, modules) so that errors show
     * here and nothing is read later, after a chroot. Removing a zone
     * that does not exist is the public call that finalizes and does
     * nothing else. */
    if ((rc = ub_ctx_zone_remove(ctx, "sealpost-finalize.invalid.")) != 0) {
        snprintf(err, errsize, "resolver: setup failed (check the unbound config and "
                 "trust anchor): %s", ub_strerror(rc));
        return -1;
    }
    return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_config *cfg,
                                      char *err, size_t errsize)
{
    struct dns_resolver *r;
    struct ub_ctx *ctx = ub_ctx_create();
    bool validates;

    if (ctx == NULL) {
        snprintf(err, errsize, "resolver: ub_ctx_create: %s", strerror(errno));
        return NULL;
    }
    if (setup_ctx(ctx, cfg, &validates, err, errsize) != 0) {
        ub_ctx_delete(ctx);
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->ctx = ctx;
    r->validates = validates;
    r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
    r->ub_event = event_new(base, ub_fd(ctx), EV_READ | EV_PERSIST, ub_readable, r);
    if (r->ub_event == NULL || event_add(r->ub_event, NULL) != 0) {
        snprintf(err, errsize, "resolver: cannot watch the libunbound pipe");
        if (r->ub_event != NULL)
            event_free(r->ub_event);
        ub_ctx_delete(ctx);
        free(r);
        return NULL;
    }
    return r;
}

bool dns_resolver_validates(const struct dns_resolver *r)
{
    return r->validates;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (r == NULL)
        return;
    while (r->jobs != NULL) {
        struct dns_job *job = r->jobs;
        r->jobs = job->next;
        if (r->jobs != NULL)
            r->jobs->prev = NULL;
        job->next = job->prev = NULL;
        event_free(job->timer);
        job->timer = NULL;
        job->release(job);           /* ub_cancel()s what is still active */
    }
    event_free(r->ub_event);
    ub_ctx_delete(r->ctx);
    free(r);
}

/* ----------------------------------------------------------------- jobs */

static void job_unlink(struct dns_job *job)
{
    struct dns_resolver *r = job->r;

    if (job->prev != NULL)
        job->prev->next = job->next;
    else if (r->jobs == job)
        r->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    job->prev = job->next = NULL;
}

static void job_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dns_job *job = arg;

    (void)fd;
    (void)what;
    if (!job->finished) {
        job->expire(job);            /* calls dns_job_finish() */
        return;
    }
    job_unlink(job);
    event_free(job->timer);
    job->timer = NULL;
    job->deliver(job);               /* may free the resolver: touch nothing after */
}

void dns_job_start(struct dns_job *job, struct dns_resolver *r)
{
    struct timeval tv = { .tv_sec = r->timeout_ms / 1000,
                          .tv_usec = (suseconds_t)(r->timeout_ms % 1000) * 1000 };

    job->r = r;
    job->finished = false;
    job->prev = NULL;
    job->next = r->jobs;
    if (r->jobs != NULL)
        r->jobs->prev = job;
    r->jobs = job;
    job->timer = evtimer_new(r->base, job_timer, job);
    if (job->timer == NULL)
        fatal("event=dns_error error=\"evtimer_new failed\"");
    evtimer_add(job->timer, &tv);
}

void dns_job_finish(struct dns_job *job)
{
    static const struct timeval now = { 0, 0 };

    if (job->finished)
        return;
    job->finished = true;
    evtimer_del(job->timer);
    evtimer_add(job->timer, &now);
}

/* -------------------------------------------------------------- queries */

static void query_answered(void *arg, int err, struct ub_result *res)
{
    struct dns_query *q = arg;

    q->active = false;
    q->done(q, err, res);
    ub_resolve_free(res);
}

int dns_query_start(struct dns_query *q, struct dns_job *job, const char *name,
                    int type, void (*done)(struct dns_query *, int, struct ub_result *))
{
    int rc;

    q->job = job;
    q->done = done;
    q->active = true;
    rc = ub_resolve_async(job->r->ctx, name, type, DNS_CLASS_IN, q, query_answered,
                          &q->async_id);
    if (rc != 0)
        q->active = false;
    return rc;
}

void dns_query_cancel(struct dns_query *q)
{
    if (!q->active)
        return;
    q->active = false;
    (void)ub_cancel(q->job->r->ctx, q->async_id);
}

/* ------------------------------------------------------- classification */

static const char *rcode_name(int rcode)
{
    static const char *const names[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
        "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
    };
    if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
        return names[rcode];
    return "error";
}

void dns_classify(int err, const struct ub_result *res, struct dns_answer *out)
{
    out->dnssec = DNSSEC_INSECURE;
    out->why[0] = '\0';
    if (err != 0 || res == NULL) {
        out->kind = DNS_ANS_TEMPFAIL;
        dns_printable(out->why, sizeof(out->why), err ? ub_strerror(err) : "no result");
        return;
    }
    if (res->bogus) {
        const char *why = res->why_bogus ? res->why_bogus : "validation failure";
        const char *end;
        /* "validation failure <name type class>: reason": the caller
         * already names the query, keep the reason. */
        if (strncmp(why, "validation failure <", 20) == 0 &&
            (end = strstr(why, ">: ")) != NULL && end[3] != '\0')
            why = end + 3;
        out->kind = DNS_ANS_BOGUS;
        out->dnssec = DNSSEC_BOGUS;
        dns_printable(out->why, sizeof(out->why), why);
        return;
    }
    out->dnssec = res->secure ? DNSSEC_SECURE : DNSSEC_INSECURE;
    if (res->rcode == 3 || res->nxdomain) {
        out->kind = DNS_ANS_NXDOMAIN;
        dns_printable(out->why, sizeof(out->why), "NXDOMAIN");
    } else if (res->rcode != 0) {
        out->kind = DNS_ANS_TEMPFAIL;
        dns_printable(out->why, sizeof(out->why), rcode_name(res->rcode));
    } else if (res->data != NULL && res->data[0] != NULL) {
        out->kind = DNS_ANS_DATA;
    } else {
        out->kind = DNS_ANS_NODATA;
        dns_printable(out->why, sizeof(out->why), "no records");
    }
}

enum dnssec_status dns_worse(enum dnssec_status a, enum dnssec_status b)
{
    if (a == DNSSEC_BOGUS || b == DNSSEC_BOGUS)
        return DNSSEC_BOGUS;
    if (a == DNSSEC_INSECURE || b == DNSSEC_INSECURE)
        return DNSSEC_INSECURE;
    return DNSSEC_SECURE;
}

const char *dns_dnssec_name(enum dnssec_status s)
{
    switch (s) {
    case DNSSEC_SECURE:
        return "secure";
    case DNSSEC_BOGUS:
        return "bogus";
    case DNSSEC_INSECURE:
        break;
    }
    return "insecure";
}

const char *dns_type_name(int type)
{
    switch (type) {
    case DNS_TYPE_A:
        return "A";
    case DNS_TYPE_AAAA:
        return "AAAA";
    case DNS_TYPE_MX:
        return "MX";
    case DNS_TYPE_TLSA:
        return "TLSA";
    }
    return "?";
}

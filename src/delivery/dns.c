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
    struct dns_ub *ub = arg;
    int err;

    (void)fd;
    (void)what;
    err = ub_process(ub->ctx);
    if (err != 0) {
        /* The background worker is gone; its pipe would stay readable
         * forever. Stop listening: pending lookups hit their deadline. */
        log_error("event=dns_error error=\"ub_process: %s\"", ub_strerror(err));
        event_del(ub->ev);
    }
}

/* Does the unbound config already name a trust anchor of its own? If so,
 * zone gets the owner of its first anchor (for dns_probe_dnssec). */
static bool config_has_anchor(struct ub_ctx *ctx, char *zone, size_t zonesize)
{
    static const char *const opts[] = {
        "trust-anchor-file", "trust-anchor", "auto-trust-anchor-file",
        "trusted-keys-file",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char *val = NULL;
        if (ub_ctx_get_option(ctx, opts[i], &val) == 0 && val != NULL) {
            bool set = val[0] != '\0';
            if (set && strcmp(opts[i], "trust-anchor") == 0)
                dns_anchor_zone_of_text(val, zone, zonesize);
            else if (set)
                dns_anchor_zone_of_file(val, zone, zonesize);
            free(val);
            if (set)
                return true;
        }
    }
    return false;
}

/* plain: the fallback context, without the validator module and without
 * anchors (its answers are all insecure); *validates and zone are then
 * left alone. */
static int setup_ctx(struct ub_ctx *ctx, const struct dns_config *cfg, bool plain,
                     bool *validates, char *zone, size_t zonesize, char *err, size_t errsize)
{
    int rc;

    if (!plain) {
        *validates = true;
        zone[0] = '\0';
    }
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
    if (plain) {
        if ((rc = ub_ctx_set_option(ctx, "module-config:", "iterator")) != 0) {
            snprintf(err, errsize, "resolver: module-config: %s", ub_strerror(rc));
            return -1;
        }
    } else if (cfg->trust_anchor != NULL) {
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
        dns_anchor_zone_of_file(cfg->trust_anchor, zone, zonesize);
    } else if (!config_has_anchor(ctx, zone, zonesize)) {
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

/* Make one context (plain: the non-validating fallback) and watch it. */
static bool ub_open(struct dns_resolver *r, struct dns_ub *ub, const struct dns_config *cfg,
                    bool plain, bool *validates, char *zone, size_t zonesize,
                    char *err, size_t errsize)
{
    ub->r = r;
    if ((ub->ctx = ub_ctx_create()) == NULL) {
        snprintf(err, errsize, "resolver: ub_ctx_create: %s", strerror(errno));
        return false;
    }
    if (setup_ctx(ub->ctx, cfg, plain, validates, zone, zonesize, err, errsize) != 0)
        return false;
    ub->ev = event_new(r->base, ub_fd(ub->ctx), EV_READ | EV_PERSIST, ub_readable, ub);
    if (ub->ev == NULL || event_add(ub->ev, NULL) != 0) {
        snprintf(err, errsize, "resolver: cannot watch the libunbound pipe");
        return false;
    }
    return true;
}

static void ub_close(struct dns_ub *ub)
{
    if (ub->ev != NULL)
        event_free(ub->ev);
    if (ub->ctx != NULL)
        ub_ctx_delete(ub->ctx);
    ub->ev = NULL;
    ub->ctx = NULL;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_config *cfg,
                                      char *err, size_t errsize)
{
    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    bool validates = false;
    char zone[256] = "";

    r->base = base;
    if (!ub_open(r, &r->validating, cfg, false, &validates, zone, sizeof(zone), err,
                 errsize) ||
        (validates && !ub_open(r, &r->plain, cfg, true, &validates, zone, sizeof(zone), err,
                               errsize))) {
        ub_close(&r->plain);
        ub_close(&r->validating);
        free(r);
        return NULL;
    }
    r->ctx = r->validating.ctx;
    r->validates = validates;
    memcpy(r->anchor_zone, zone, sizeof(r->anchor_zone));
    r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
    return r;
}

void dns_resolver_stop_validating(struct dns_resolver *r)
{
    r->validates = false;
    if (r->plain.ctx != NULL)
        r->ctx = r->plain.ctx;
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
    ub_close(&r->plain);
    ub_close(&r->validating);
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
    q->ctx = job->r->ctx;
    rc = ub_resolve_async(q->ctx, name, type, DNS_CLASS_IN, q, query_answered,
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
    (void)ub_cancel(q->ctx, q->async_id);
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

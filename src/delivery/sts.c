/*
 * sts.c - MTA-STS policy discovery, fetch and cache (see sts.h for the
 * rules and what is trusted).
 *
 * One lookup: TXT "_mta-sts.DOMAIN" -> (maybe) address of
 * "mta-sts.DOMAIN" -> (maybe) HTTPS GET -> one callback. The cache is a
 * short list (at most STS_CACHE_MAX domains; the oldest fetch goes when
 * it is full), searched per connection, not per message.
 */
#define _GNU_SOURCE 1
#include "delivery/sts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/sts_http.h"
#include "delivery/sts_txt.h"
#include "util/log.h"
#include "util/xalloc.h"

#define STS_CA_FILE_MAX (16u * 1024 * 1024)     /* octets of the CA bundle */
#define STS_RESOLVE_ADDRS 4                     /* addresses handed to curl */

struct sts_entry {
    struct sts_entry *next;
    struct sts_record rec;              /* body included: up to 64 KiB */
    struct sts_policy pol;
};

struct sts {
    struct event_base *base;
    struct dns_resolver *dns;
    struct sts_http *http;
    X509_STORE *store;
    unsigned port;
    sts_store_fn store_fn;
    void *store_arg;
    struct sts_entry *cache;
    size_t cached;
    struct sts_lookup *lookups;
};

struct sts_lookup {
    struct sts *s;
    struct sts_lookup *prev, *next;
    bool cancelled;                     /* freed when its pending callback comes */
    char domain[STS_DOMAIN_MAX + 1];
    char id[STS_ID_MAX + 1];            /* from the TXT record, for a fetch */
    struct sts_http_req *req;
    sts_cb cb;
    void *arg;
};

const char *sts_mode_name(enum sts_mode m)
{
    return m == STS_MODE_ENFORCE ? "enforce" : m == STS_MODE_TESTING ? "testing" : "none";
}

const char *sts_source_name(enum sts_source src)
{
    return src == STS_SRC_CACHE ? "cache" : src == STS_SRC_FETCHED ? "fetched" : "none";
}

/* ---------------------------------------------------------------- cache */

static struct sts_entry *cache_find(struct sts *s, const char *domain)
{
    for (struct sts_entry *e = s->cache; e; e = e->next) {
        if (strcmp(e->rec.domain, domain) == 0)
            return e;
    }
    return NULL;
}

static void cache_remove(struct sts *s, struct sts_entry *gone)
{
    for (struct sts_entry **p = &s->cache; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            free(gone);
            s->cached--;
            return;
        }
    }
}

/* The unexpired entry for domain, or NULL (an expired one is dropped). */
static struct sts_entry *cache_valid(struct sts *s, const char *domain)
{
    struct sts_entry *e = cache_find(s, domain);

    if (e != NULL && sts_record_expired(&e->rec, &e->pol, time(NULL))) {
        cache_remove(s, e);
        return NULL;
    }
    return e;
}

static struct sts_entry *cache_put(struct sts *s, const struct sts_record *rec,
                                   const struct sts_policy *pol)
{
    struct sts_entry *e = cache_find(s, rec->domain);

    if (e == NULL) {
        if (s->cached >= STS_CACHE_MAX) {
            struct sts_entry *oldest = s->cache;
            for (struct sts_entry *x = s->cache; x; x = x->next)
                if (x->rec.fetched < oldest->rec.fetched)
                    oldest = x;
            cache_remove(s, oldest);
        }
        e = xcalloc(1, sizeof(*e));
        e->next = s->cache;
        s->cache = e;
        s->cached++;
    }
    e->rec = *rec;
    e->pol = *pol;
    return e;
}

bool sts_cache_load(struct sts *s, const void *data, size_t len, char *err, size_t errsize)
{
    static struct sts_record rec;       /* large: not on the stack */
    static struct sts_policy pol;

    if (!sts_record_decode(data, len, &rec, &pol, err, errsize))
        return false;
    if (!sts_record_expired(&rec, &pol, time(NULL)))
        cache_put(s, &rec, &pol);
    return true;
}

/* -------------------------------------------------------------- results */

static void lookup_free(struct sts_lookup *lk)
{
    struct sts *s = lk->s;

    if (lk->prev)
        lk->prev->next = lk->next;
    else
        s->lookups = lk->next;
    if (lk->next)
        lk->next->prev = lk->prev;
    if (lk->req)
        sts_http_cancel(lk->req);
    free(lk);
}

/* Answer with e (NULL: no policy), then free the lookup. */
static void deliver(struct sts_lookup *lk, const struct sts_entry *e, enum sts_source src,
                    enum sts_fetch_verdict failure, const char *why)
{
    struct sts_result r;

    memset(&r, 0, sizeof(r));
    r.domain = lk->domain;
    r.source = e != NULL ? src : STS_SRC_NONE;
    r.id = e != NULL ? e->rec.id : "";
    r.policy = e != NULL ? &e->pol : NULL;
    r.body = e != NULL ? e->rec.body : "";
    r.body_len = e != NULL ? e->rec.body_len : 0;
    r.failure = failure;
    r.why = why;
    lk->cb(&r, lk->arg);
    lk->req = NULL;
    lookup_free(lk);
}

/* Something went wrong: the unexpired cached policy, else none. */
static void fall_back(struct sts_lookup *lk, enum sts_fetch_verdict failure, const char *why)
{
    deliver(lk, cache_valid(lk->s, lk->domain), STS_SRC_CACHE, failure, why);
}

/* ---------------------------------------------------------------- fetch */

static void fetched(const struct sts_http_response *resp, void *arg)
{
    struct sts_lookup *lk = arg;
    static struct sts_record rec;       /* large: not on the stack */
    static struct sts_policy pol;
    char why[400];
    enum sts_fetch_verdict v;

    lk->req = NULL;
    v = sts_response_check(resp, &pol, why, sizeof(why));
    if (v != STS_FETCH_OK) {
        fall_back(lk, v, why);
        return;
    }
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.domain, sizeof(rec.domain), "%s", lk->domain);
    snprintf(rec.id, sizeof(rec.id), "%s", lk->id);
    rec.fetched = (int64_t)time(NULL);
    rec.body_len = resp->body_len;
    memcpy(rec.body, resp->body, resp->body_len);
    if (lk->s->store_fn)
        lk->s->store_fn(&rec, lk->s->store_arg);
    deliver(lk, cache_put(lk->s, &rec, &pol), STS_SRC_FETCHED, STS_FETCH_OK, "");
}

/* "HOST:PORT:ADDR,ADDR" for CURLOPT_RESOLVE (IPv6 in brackets). */
static void resolve_entry(const char *host, unsigned port, const struct dns_host *h,
                          char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "%s:%u:", host, port);

    for (size_t i = 0; i < h->addr_count && i < STS_RESOLVE_ADDRS && used < size; i++) {
        char a[INET6_ADDRSTRLEN];
        const struct sockaddr_storage *ss = &h->addrs[i];
        bool v6 = ss->ss_family == AF_INET6;
        const void *raw = v6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                             : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

        if (inet_ntop(ss->ss_family, raw, a, sizeof(a)) == NULL)
            continue;
        used += (size_t)snprintf(out + used, size - used, "%s%s%s%s", i ? "," : "",
                                 v6 ? "[" : "", a, v6 ? "]" : "");
    }
}

static void host_resolved(const struct dns_mx_result *res, void *arg)
{
    struct sts_lookup *lk = arg;
    char host[STS_DOMAIN_MAX + 16], url[STS_DOMAIN_MAX + 80], resolve[600], why[300];
    unsigned port = lk->s->port;

    if (lk->cancelled) {
        lookup_free(lk);
        return;
    }
    if (res->outcome != DNS_OK || res->host_count == 0) {
        snprintf(why, sizeof(why), "no address for the policy host: %s", res->error);
        fall_back(lk, STS_FETCH_ERROR, why);
        return;
    }
    snprintf(host, sizeof(host), "mta-sts.%s", lk->domain);
    if (port == 443)
        snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);
    else
        snprintf(url, sizeof(url), "https://%s:%u/.well-known/mta-sts.txt", host, port);
    resolve_entry(host, port, &res->hosts[0], resolve, sizeof(resolve));
    lk->req = sts_http_get(lk->s->http, url, resolve, fetched, lk);
}

/* ------------------------------------------------------------ discovery */

/* Exactly one valid STSv1 record among the TXT records: its id in *id. */
static bool one_sts_record(const struct dns_txt_result *res, struct sts_txt *id,
                           char *why, size_t whysize)
{
    size_t found = 0;
    struct sts_txt t;

    for (size_t i = 0; i < res->count; i++) {
        const struct dns_txt_record *rec = &res->records[i];
        enum sts_txt_result r;

        if (rec->too_long) {
            if (rec->len >= 7 && memcmp(rec->data, "v=STSv1", 7) == 0 &&
                (rec->len == 7 || strchr("; \t", rec->data[7]) != NULL)) {
                snprintf(why, whysize, "an STSv1 TXT record is too long");
                return false;
            }
            continue;
        }
        r = sts_txt_parse(rec->data, rec->len, &t);
        if (r == STS_TXT_OTHER)
            continue;
        if (r == STS_TXT_INVALID) {
            snprintf(why, whysize, "invalid STSv1 TXT record: %s", t.error);
            return false;
        }
        if (++found > 1) {
            snprintf(why, whysize, "more than one STSv1 TXT record");
            return false;
        }
        *id = t;
    }
    if (found == 0)
        snprintf(why, whysize, "no STSv1 TXT record");
    return found == 1;
}

static void txt_done(struct dns_txt_result *res, void *arg)
{
    struct sts_lookup *lk = arg;
    struct sts_entry *e;
    struct sts_txt t;
    char why[200], host[STS_DOMAIN_MAX + 16];

    if (lk->cancelled) {
        free(res);
        lookup_free(lk);
        return;
    }
    if (res->outcome != DNS_TXT_OK) {
        snprintf(why, sizeof(why), "%s", res->why);
        free(res);
        fall_back(lk, STS_FETCH_OK, why);
        return;
    }
    if (!one_sts_record(res, &t, why, sizeof(why))) {
        free(res);
        fall_back(lk, STS_FETCH_OK, why);
        return;
    }
    free(res);
    e = cache_valid(lk->s, lk->domain);
    if (e != NULL && strcmp(e->rec.id, t.id) == 0) {
        deliver(lk, e, STS_SRC_CACHE, STS_FETCH_OK, "");
        return;
    }
    snprintf(lk->id, sizeof(lk->id), "%s", t.id);
    snprintf(host, sizeof(host), "mta-sts.%s", lk->domain);
    dns_resolve_host(lk->s->dns, host, (uint16_t)lk->s->port, host_resolved, lk);
}

struct sts_lookup *sts_lookup_start(struct sts *s, const char *domain, sts_cb cb, void *arg)
{
    struct sts_lookup *lk = xcalloc(1, sizeof(*lk));
    char name[STS_DOMAIN_MAX + 16];

    lk->s = s;
    lk->cb = cb;
    lk->arg = arg;
    snprintf(lk->domain, sizeof(lk->domain), "%s", domain);
    lk->next = s->lookups;
    if (s->lookups)
        s->lookups->prev = lk;
    s->lookups = lk;
    snprintf(name, sizeof(name), "_mta-sts.%s", domain);
    dns_resolve_txt(s->dns, name, txt_done, lk);
    return lk;
}

void sts_lookup_cancel(struct sts_lookup *lk)
{
    if (lk->req) {
        sts_http_cancel(lk->req);
        lk->req = NULL;
        lookup_free(lk);
        return;
    }
    lk->cancelled = true;       /* a DNS answer is pending: freed then, or by sts_free */
}

/* ----------------------------------------------------------- life cycle */

/* The whole CA file, read now (before the sandbox). */
static char *read_ca(const char *path, size_t *len, char *err, size_t errsize)
{
    FILE *fp = fopen(path, "re");
    char *buf;
    long size;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
        (unsigned long)size > STS_CA_FILE_MAX || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err, errsize, "cannot read the MTA-STS CA file %s: %s", path,
                 fp ? "too large or not seekable" : strerror(errno));
        if (fp)
            fclose(fp);
        return NULL;
    }
    buf = xmalloc((size_t)size + 1);
    *len = fread(buf, 1, (size_t)size, fp);
    fclose(fp);
    if (*len != (size_t)size) {
        snprintf(err, errsize, "cannot read the MTA-STS CA file %s", path);
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

struct sts *sts_new(struct event_base *base, struct dns_resolver *dns,
                    const struct sts_config *cfg, char *err, size_t errsize)
{
    const char *path = cfg->ca_file ? cfg->ca_file : X509_get_default_cert_file();
    struct sts *s;
    size_t ca_len = 0;
    char *ca = read_ca(path, &ca_len, err, errsize);

    if (ca == NULL)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->dns = dns;
    s->port = cfg->port ? cfg->port : 443;
    s->store_fn = cfg->store;
    s->store_arg = cfg->store_arg;
    s->store = X509_STORE_new();
    if (s->store == NULL || X509_STORE_load_file(s->store, path) != 1) {
        snprintf(err, errsize, "cannot load the MTA-STS CA file %s", path);
        free(ca);
        sts_free(s);
        return NULL;
    }
    s->http = sts_http_new(base, ca, ca_len, cfg->timeout_s ? cfg->timeout_s : 30,
                           STS_POLICY_BODY_MAX, err, errsize);
    free(ca);
    if (s->http == NULL) {
        sts_free(s);
        return NULL;
    }
    return s;
}

void sts_free(struct sts *s)
{
    if (s == NULL)
        return;
    while (s->lookups)
        lookup_free(s->lookups);
    sts_http_free(s->http);
    X509_STORE_free(s->store);
    while (s->cache)
        cache_remove(s, s->cache);
    free(s);
}

X509_STORE *sts_x509_store(struct sts *s)
{
    return s->store;
}

void sts_set_store(struct sts *s, sts_store_fn store, void *arg)
{
    s->store_fn = store;
    s->store_arg = arg;
}

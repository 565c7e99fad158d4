/*
 * outbound.c - destination queues and connection management for remote
 * delivery (see outbound.h).
 *
 * Life of a job: queued at its destination -> a connection slot resolves
 * the destination (dns.c), opens a connection (smtp_client.c) and sends
 * queued jobs one after another on it -> each job's done callback gets a
 * result per recipient. An idle connection waits OUTBOUND_IDLE_SECONDS
 * for more work to the same destination, then says QUIT.
 *
 * A job goes only to a connection that is ready: an idle connection the
 * server ends (or breaks, see smtp_conn_watch_idle) leaves the pool at
 * once, and one found dead when a job is handed out is dropped and the
 * job waits for a fresh connection instead of failing on the dead one.
 * Only a connection's first job is sent without that check (it was
 * opened for it; a dead one then defers it), so a next hop that hangs
 * up after every greeting cannot make connections spin.
 *
 * Trusts: the config; remote text (replies in results, DNS errors) and
 * destination names (recipient domains, maybe UTF-8) reach the log only
 * through log_quote() / log_value().
 */
#include "delivery/outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "delivery/dns.h"
#include "delivery/sts.h"
#include "delivery/tls_decide.h"
#include "delivery/tlsa.h"
#include "util/ascii.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

#define OUTBOUND_IDLE_SECONDS 5

struct destination;

/* A [destination]'s fingerprints as DANE-EE(3) records: each digest as
 * SHA-256 of the certificate (3 0 1) and of the public key (3 1 1). */
struct pins {
    struct tlsa_record rec[2 * CONFIG_MAX_FINGERPRINTS];
    size_t count;
};

struct slot {
    struct outbound *ob;
    struct destination *dest;
    struct smtp_conn *conn;             /* NULL while resolving/connecting */
    struct outbound_job *job;           /* being sent */
    struct event *idle_timer;
    struct slot *next_idle;
    struct slot *prev_all, *next_all;   /* every slot, for outbound_free */
    struct dns_mx_result *mx;           /* while the TLSA records are looked up */
    struct dns_tlsa_result *tres;       /* while the MTA-STS policy is looked up */
    struct sts_lookup *sts_lk;          /* that lookup */
    uint16_t port;                      /* the port connected to (TLSA name) */
    bool host_deferred;                 /* some MX was skipped for a reason that may
                                           pass (failed TLSA lookup, ...) */
    struct slot_report *report;         /* TLS-RPT: per-host policies, or NULL */
};

/* TLS-RPT: the policy each host of a slot's connection is under (a copy,
 * report_set_policy), and the result a host gets when it is skipped or
 * its TLS works. */
struct host_report {
    enum tlsrpt_policy_type type;
    enum tlsrpt_result skipped;         /* HOST_TLS_DEFER's result */
    bool tlsa_unusable;                 /* secure TLSA records, none usable */
    size_t string_count, pattern_count;
    char strings[TLSRPT_POLICY_STRINGS][TLSRPT_POLICY_STRING_MAX + 1];
    char patterns[TLSRPT_MX_PATTERNS][TLSRPT_NAME_MAX + 1];
};

struct slot_report {
    size_t count;
    struct host_report hosts[];         /* one per MX host of the connection */
};

struct destination {
    char name[256];
    bool relaxed;                       /* "TLS-Required: No" jobs: no DANE/MTA-STS */
    bool requiretls;                    /* REQUIRETLS jobs: authenticated MX hosts only */
    struct outbound_job *head, *tail;   /* waiting jobs */
    size_t waiting;
    unsigned slots;                     /* open or opening connections */
    unsigned opening;                   /* resolving or connecting */
    struct slot *idle;
    struct destination *next;
};

struct outbound {
    struct event_base *base;
    const struct config *cfg;
    struct dns_resolver *dns;
    struct smtp_client_config client;
    X509_STORE *relay_store;            /* [relay] security = verify: system CAs */
    struct relay_credentials *relay_auth;   /* relayhost_credentials, or NULL */
    X509_STORE *relay_auth_store;       /* with them: [relay] ca_file or the system CAs */
    char relay_name[256];               /* the relayhost without brackets: the name
                                           its certificate must carry for AUTH */
    X509_STORE *dest_store[CONFIG_MAX_DESTINATIONS];   /* per [destination] */
    struct pins *dest_pins[CONFIG_MAX_DESTINATIONS];   /* security = fingerprint */
    struct sts *sts;                    /* MTA-STS policies (dane-or-sts) */
    unsigned total_slots;
    struct slot *slots;
    struct destination *dests;
    struct tlsrpt_notes *tlsrpt;        /* NULL: no TLS reporting */
};

static void pump(struct outbound *ob, struct destination *d);

static struct destination *find_destination(struct outbound *ob, const char *name,
                                            bool relaxed, bool requiretls)
{
    struct destination *d;

    for (d = ob->dests; d; d = d->next) {
        if (strcmp(d->name, name) == 0 && d->relaxed == relaxed && d->requiretls == requiretls)
            return d;
    }
    d = xcalloc(1, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->relaxed = relaxed;
    d->requiretls = requiretls;
    d->next = ob->dests;
    ob->dests = d;
    return d;
}

static struct outbound_job *pop_job(struct destination *d)
{
    struct outbound_job *job = d->head;

    if (job) {
        d->head = job->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->waiting--;
        job->next = NULL;
    }
    return job;
}

/* Every waiting job of d gets result r (DNS or connection failure). */
static void fail_waiting(struct destination *d, const struct smtp_result *r)
{
    struct outbound_job *job;

    while ((job = pop_job(d)) != NULL)
        outbound_job_finish_all(job, r, "");
}

/* abort: at shutdown, drop the connection without QUIT. */
static void slot_free(struct slot *s, bool abort)
{
    struct destination *d = s->dest;

    if (s->idle_timer)
        event_free(s->idle_timer);
    if (s->sts_lk)
        sts_lookup_cancel(s->sts_lk);
    dns_tlsa_result_free(s->tres);
    free(s->mx);
    free(s->report);
    if (s->conn && abort)
        smtp_conn_abort(s->conn);
    else if (s->conn)
        smtp_conn_close(s->conn);
    if (s->prev_all)
        s->prev_all->next_all = s->next_all;
    else
        s->ob->slots = s->next_all;
    if (s->next_all)
        s->next_all->prev_all = s->prev_all;
    d->slots--;
    s->ob->total_slots--;
    free(s);
}

static void remove_idle(struct destination *d, struct slot *s)
{
    for (struct slot **p = &d->idle; *p; p = &(*p)->next_idle) {
        if (*p == s) {
            *p = s->next_idle;
            s->next_idle = NULL;
            return;
        }
    }
}

static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    struct destination *d = s->dest;

    (void)fd;
    (void)what;
    remove_idle(d, s);
    slot_free(s, false);
}

static void send_next(struct slot *s);

/* The server ended or broke the idle connection of s. */
static void idle_lost(struct smtp_conn *conn, void *arg)
{
    struct slot *s = arg;
    struct destination *d = s->dest;
    struct outbound *ob = s->ob;

    (void)conn;
    remove_idle(d, s);
    slot_free(s, false);
    pump(ob, d);
}

static void sent(struct smtp_conn *conn, const struct smtp_result *results, size_t count,
                 bool connection_ok, void *arg)
{
    struct slot *s = arg;
    struct outbound_job *job = s->job;
    struct outbound *ob = s->ob;
    struct destination *d = s->dest;

    (void)count;
    s->job = NULL;
    job->dsn_passed = smtp_conn_offers_dsn(conn);
    job->done(job, results, smtp_conn_peer(conn), smtp_conn_tls(conn));
    if (!connection_ok || !smtp_conn_ready(conn)) {
        slot_free(s, false);
        pump(ob, d);
        return;
    }
    send_next(s);
}

/* Send the next waiting job on s, or park s as idle. */
static void send_next(struct slot *s)
{
    struct destination *d = s->dest;
    struct outbound_job *job = pop_job(d);
    struct smtp_transaction tx;
    struct timeval tv = { OUTBOUND_IDLE_SECONDS, 0 };

    if (job == NULL) {
        s->next_idle = d->idle;
        d->idle = s;
        evtimer_add(s->idle_timer, &tv);
        return;
    }
    s->job = job;
    memset(&tx, 0, sizeof(tx));
    tx.env = &job->msg->env;
    tx.rcpt_index = job->rcpt_index;
    tx.rcpt_count = job->rcpt_count;
    tx.msg_fd = job->msg->fd;
    tx.body_offset = job->msg->body_offset;
    tx.body_size = job->msg->body_size;
    smtp_conn_send(s->conn, &tx, sent, s);
}

static void connected(struct smtp_conn *conn, const struct smtp_result *err, void *arg)
{
    struct slot *s = arg;
    struct destination *d = s->dest;
    struct outbound *ob = s->ob;
    char q[sizeof(err->text) * 4 + 8], qd[sizeof(d->name) * 4 + 8];

    d->opening--;
    if (conn == NULL) {
        struct smtp_result r = *err;

        s->conn = NULL;     /* the client freed its attempt */
        log_info("event=connect_failed destination=%s reason=%s",
                 log_value(qd, sizeof(qd), d->name),
                 log_quote(q, sizeof(q), err->text, strlen(err->text)));
        /* RFC 8689 4.2.1: every MX tried, none gave authenticated TLS:
         * a non-delivery notice with 5.7.10, not a retry (unless an MX
         * was skipped for a reason that may pass). */
        if (d->requiretls && strcmp(err->dsn, "4.7.5") == 0 && !s->host_deferred) {
            r.outcome = SMTP_FAILED;
            snprintf(r.dsn, sizeof(r.dsn), "5.7.10");
        }
        fail_waiting(d, &r);
        slot_free(s, false);
        return;
    }
    s->idle_timer = evtimer_new(ob->base, idle_expired, s);
    smtp_conn_watch_idle(conn, idle_lost, s);
    send_next(s);
}

static void dns_failure(const struct dns_mx_result *res, struct smtp_result *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->text, sizeof(r->text), "%s", res->error);
    switch (res->outcome) {
    case DNS_NXDOMAIN:
        r->outcome = SMTP_FAILED;
        snprintf(r->dsn, sizeof(r->dsn), "5.1.2");
        break;
    case DNS_NULL_MX:
        r->outcome = SMTP_FAILED;
        snprintf(r->dsn, sizeof(r->dsn), "5.1.10");
        break;
    case DNS_NO_ADDRESS:
        r->outcome = SMTP_FAILED;
        snprintf(r->dsn, sizeof(r->dsn), "5.4.4");
        break;
    default:
        r->outcome = SMTP_DEFERRED;
        snprintf(r->dsn, sizeof(r->dsn), "4.4.3");
        break;
    }
}

/* The fixed next hop of a recipient domain ([destination D] / [route D]
 * nexthop), or NULL: MX lookup, or the relayhost. */
static const struct destination_config *dest_route(const struct outbound *ob, const char *name)
{
    char lower[256];
    const struct destination_config *dc;

    if (name[0] == '[')
        return NULL;
    ascii_lower_copy(lower, sizeof(lower), name, strlen(name));
    dc = config_find_destination(ob->cfg, lower);
    return dc && dc->nexthop ? dc : NULL;
}

/* The security policy of d: its [destination] section, else [relay];
 * with the CA store and the pinned fingerprints that go with it. */
static enum tls_security dest_security(const struct outbound *ob, const struct destination *d,
                                       X509_STORE **store, const struct pins **pins)
{
    char name[256];
    size_t len = strlen(d->name);
    const struct destination_config *dc;

    if (d->name[0] == '[' && len > 2 && d->name[len - 1] == ']')
        snprintf(name, sizeof(name), "%.*s", (int)(len - 2), d->name + 1);
    else
        snprintf(name, sizeof(name), "%s", d->name);
    *pins = NULL;
    if (ob->relay_auth != NULL) {
        /* AUTH to the smart host: only over TLS PKIX-verified for its name */
        *store = ob->relay_auth_store;
        return TLS_SEC_VERIFY;
    }
    dc = config_find_destination(ob->cfg, name);
    if (dc != NULL) {
        *store = ob->dest_store[dc - ob->cfg->destinations];
        *pins = ob->dest_pins[dc - ob->cfg->destinations];
        return (enum tls_security)dc->security;
    }
    *store = ob->relay_store;
    return (enum tls_security)ob->cfg->relay.security;
}

static void decide_in(const struct slot *s, size_t i, enum tls_security sec,
                      const struct dns_tlsa_result *tres, struct tls_decide_in *in)
{
    memset(in, 0, sizeof(*in));
    /* TLS-Required: No (RFC 8689 5): recipient policies (DANE) do not apply */
    in->resolver_validates = dns_resolver_validates(s->ob->dns) && !s->dest->relaxed;
    in->mx_dnssec = s->mx->mx_dnssec;
    in->addr_dnssec = s->mx->hosts[i].addr_dnssec;
    in->tlsa = tres != NULL ? tres->hosts[i].state : TLSA_ST_NOT_LOOKED_UP;
    in->security = sec;
}

/* One host's decision: DANE first (tls_decide), then the MTA-STS policy
 * sts (may be NULL) for a host DANE left opportunistic. */
static void decide_host(const struct slot *s, size_t i, enum tls_security sec,
                        const struct dns_tlsa_result *tres, const struct sts_result *sts,
                        struct tls_decision *dec, struct tls_decide_in *in)
{
    decide_in(s, i, sec, tres, in);
    tls_decide(in, dec);
    if (sts != NULL && sts->policy != NULL)
        tls_decide_sts(true, sts->policy->mode,
                       sts_mx_matches(sts->policy, s->mx->hosts[i].name), dec);
}

/*
 * A REQUIRETLS destination (RFC 8689 4.2.1) uses only MX hosts that can
 * be authenticated: DANE, or PKIX / a pinned fingerprint for an MX from
 * a DNSSEC-secure lookup, or PKIX for an MX an MTA-STS policy lists (of
 * any mode: the certificate must verify, so "testing" is enforced). The
 * others are skipped before any connection, so a later MX that qualifies
 * is used. A host already deferred (a failed TLSA lookup, an MX an
 * enforced MTA-STS policy does not list) stays so: that may pass.
 */
enum rt_host { RT_USABLE, RT_DEFERRED, RT_NEVER };

static enum rt_host requiretls_host(const struct slot *s, struct smtp_host_tls *ht,
                                    char *why, size_t whysize)
{
    bool secure_mx = s->mx->mx_dnssec == DNSSEC_SECURE;
    bool ok = ht->mode == HOST_TLS_DANE ||
              (ht->mode == HOST_TLS_PKIX && (secure_mx || ht->sts_mx)) ||
              (ht->mode == HOST_TLS_FINGERPRINT && secure_mx);

    if (!s->dest->requiretls)
        return ht->mode == HOST_TLS_DEFER ? RT_DEFERRED : RT_USABLE;
    if (ok) {
        ht->report_only = false;
        return RT_USABLE;
    }
    if (ht->mode == HOST_TLS_DEFER)
        return RT_DEFERRED;
    snprintf(why, whysize, "REQUIRETLS: the MX host cannot be authenticated (no DANE, no "
             "MTA-STS policy listing it, no verify policy for a DNSSEC-secure MX)");
    ht->mode = HOST_TLS_DEFER;
    ht->dsn = "5.7.10";
    return RT_NEVER;
}

/* No MX host qualifies for a REQUIRETLS message: bounce it (5.7.10)
 * without connecting anywhere. */
static void requiretls_unreachable(struct slot *s)
{
    struct smtp_result r;
    struct destination *d = s->dest;

    memset(&r, 0, sizeof(r));
    r.outcome = SMTP_FAILED;
    snprintf(r.dsn, sizeof(r.dsn), "5.7.10");
    snprintf(r.text, sizeof(r.text), "REQUIRETLS: no MX host of %s can be authenticated "
             "(DANE, or MTA-STS / verify with a DNSSEC-secure MX)", d->name);
    d->opening--;
    fail_waiting(d, &r);
    slot_free(s, false);
}

/* "3 1 1 ab12..": a TLSA record as a TLS-RPT policy string; "" when it
 * does not fit. */
static void tlsa_string(const struct tlsa_record *r, char *out, size_t outsize)
{
    int n = snprintf(out, outsize, "%u %u %u ", r->usage, r->selector, r->mtype);

    if (n < 0 || (size_t)n + 2 * r->data_len >= outsize) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < r->data_len; i++)
        snprintf(out + n + 2 * i, 3, "%02x", r->data[i]);
}

/* Put a host under pol (copied, within the record's bounds). MTA-STS
 * will call it with { TLSRPT_POLICY_STS, the policy lines, its mx
 * patterns } for the hosts its policy covers. */
static void report_set_policy(struct host_report *h, const struct tlsrpt_policy *pol)
{
    h->type = pol->type;
    h->string_count = h->pattern_count = 0;
    for (size_t k = 0; k < pol->string_count && h->string_count < TLSRPT_POLICY_STRINGS; k++)
        if (strlen(pol->strings[k]) < sizeof(h->strings[0]))
            memcpy(h->strings[h->string_count++], pol->strings[k], strlen(pol->strings[k]) + 1);
    for (size_t k = 0; k < pol->mx_pattern_count && h->pattern_count < TLSRPT_MX_PATTERNS; k++)
        if (strlen(pol->mx_patterns[k]) < sizeof(h->patterns[0]))
            memcpy(h->patterns[h->pattern_count++], pol->mx_patterns[k],
                   strlen(pol->mx_patterns[k]) + 1);
}

/* The TLS-RPT policy of a host (RFC 8460 4.3): DANE ("tlsa", its TLSA
 * records, the host as mx-host) when its TLSA lookup said anything but
 * "none", else no policy. */
static void report_host(struct host_report *h, const char *name,
                        const struct dns_tlsa_host *th)
{
    char strings[TLSA_USABLE_MAX][TLSRPT_POLICY_STRING_MAX + 1];
    const char *sp[TLSA_USABLE_MAX], *mx[1] = { name };
    struct tlsrpt_policy pol = { TLSRPT_POLICY_TLSA, sp, 0, mx, 1 };

    memset(h, 0, sizeof(*h));
    h->type = TLSRPT_POLICY_NONE;
    h->skipped = TLSRPT_DANE_REQUIRED;      /* deferred without a TLSA verdict: dane-only */
    if (th == NULL || th->state == TLSA_ST_NONE || th->state == TLSA_ST_NOT_LOOKED_UP)
        return;
    for (size_t k = 0; th->state == TLSA_ST_USABLE && th->set && k < th->set->usable_count;
         k++) {
        tlsa_string(&th->set->usable[k], strings[pol.string_count], sizeof(strings[0]));
        if (strings[pol.string_count][0]) {
            sp[pol.string_count] = strings[pol.string_count];
            pol.string_count++;
        }
    }
    report_set_policy(h, &pol);
    h->tlsa_unusable = th->state == TLSA_ST_UNUSABLE;
    if (th->state == TLSA_ST_FAILED)
        h->skipped = th->malformed ? TLSRPT_TLSA_INVALID : TLSRPT_DNSSEC_INVALID;
}

/* The MTA-STS policy of r as a TLS-RPT policy (RFC 8460 4.3: its lines as
 * policy-string, its mx patterns as mx-host), for h. */
static void report_sts_host(struct host_report *h, const struct sts_result *r)
{
    char lines[TLSRPT_POLICY_STRINGS][TLSRPT_POLICY_STRING_MAX + 1];
    const char *sp[TLSRPT_POLICY_STRINGS], *mx[TLSRPT_MX_PATTERNS];
    struct tlsrpt_policy pol = { TLSRPT_POLICY_STS, sp, 0, mx, 0 };
    size_t start = 0;

    for (size_t i = 0; i <= r->body_len && pol.string_count < TLSRPT_POLICY_STRINGS; i++) {
        size_t len;

        if (i < r->body_len && r->body[i] != '\n')
            continue;
        len = i - start;
        if (len > 0 && r->body[start + len - 1] == '\r')
            len--;
        if (len > 0 && len < sizeof(lines[0])) {
            memcpy(lines[pol.string_count], r->body + start, len);
            lines[pol.string_count][len] = '\0';
            sp[pol.string_count] = lines[pol.string_count];
            pol.string_count++;
        }
        start = i + 1;
    }
    for (size_t k = 0; k < r->policy->mx_count && k < TLSRPT_MX_PATTERNS; k++)
        mx[pol.mx_pattern_count++] = r->policy->mx[k];
    report_set_policy(h, &pol);
    h->skipped = TLSRPT_VALIDATION_FAILURE;     /* an MX the policy does not list */
    h->tlsa_unusable = false;
}

/* smtp_client's per-host TLS outcome, as a TLS-RPT record. */
static void attempt_noted(const struct smtp_attempt *a, void *arg)
{
    struct slot *s = arg;
    const struct host_report *h;
    const char *strings[TLSRPT_POLICY_STRINGS], *patterns[TLSRPT_MX_PATTERNS];
    struct tlsrpt_policy pol;
    enum tlsrpt_result res = TLSRPT_SUCCESS;
    const char *reason = "";

    if (s->report == NULL || a->host_index >= s->report->count)
        return;
    h = &s->report->hosts[a->host_index];
    switch (a->outcome) {
    case ATTEMPT_TLS_OK:
        res = h->tlsa_unusable ? TLSRPT_TLSA_INVALID : TLSRPT_SUCCESS;
        break;
    case ATTEMPT_NO_STARTTLS:
        res = TLSRPT_STARTTLS_NOT_SUPPORTED;
        break;
    case ATTEMPT_TLS_FAILED:
        res = a->verify_error ? tlsrpt_result_of_verify(a->verify_error)
                              : TLSRPT_VALIDATION_FAILURE;
        reason = a->verify_error ? X509_verify_cert_error_string(a->verify_error)
                                 : "TLS handshake failed";
        break;
    case ATTEMPT_NOT_AUTHENTICATED:
        res = TLSRPT_VALIDATION_FAILURE;
        reason = "server not authenticated";
        break;
    case ATTEMPT_HOST_SKIPPED:
        res = h->skipped;
        break;
    }
    for (size_t k = 0; k < h->string_count; k++)
        strings[k] = h->strings[k];
    for (size_t k = 0; k < h->pattern_count; k++)
        patterns[k] = h->patterns[k];
    pol.type = h->type;
    pol.strings = strings;
    pol.string_count = h->string_count;
    pol.mx_patterns = patterns;
    pol.mx_pattern_count = h->pattern_count;
    tlsrpt_note(s->ob->tlsrpt, s->dest->name, &pol, a->host, a->ip, a->local_ip, res, reason);
}

/* Is the slot's destination a policy domain (a recipient domain reached
 * through its MX, not a relayhost or an address literal)? */
static bool reports(const struct slot *s)
{
    return s->ob->tlsrpt != NULL && s->ob->cfg->relay.relayhost == NULL &&
           s->dest->name[0] != '[' && dest_route(s->ob, s->dest->name) == NULL;
}

/* What verifies host i (its TLSA records, or the pinned fingerprints) and,
 * for TLS-RPT, the policy it is reported under. */
static void host_material(struct slot *s, size_t i, const struct tls_decision *dec,
                          const struct dns_tlsa_host *th, const struct sts_result *sts,
                          const struct pins *pins, struct smtp_host_tls *ht)
{
    if (s->report) {
        report_host(&s->report->hosts[i], s->mx->hosts[i].name, th);
        if (sts != NULL && sts->policy != NULL && dec->mode != HOST_TLS_DANE &&
            sts->policy->mode != STS_MODE_NONE)
            report_sts_host(&s->report->hosts[i], sts);
    }
    if (dec->mode == HOST_TLS_DANE && th != NULL && th->set != NULL) {
        ht->tlsa = th->set->usable;
        ht->tlsa_count = th->set->usable_count;
        ht->tlsa_at_canon = th->at_canon;
    }
    if (dec->mode == HOST_TLS_FINGERPRINT && pins != NULL) {
        ht->tlsa = pins->rec;
        ht->tlsa_count = pins->count;
    }
}

static void log_tls_policy(const struct slot *s, size_t i, enum tls_security sec,
                           const char *sts_mode, const struct tls_decide_in *in,
                           const struct tls_decision *dec, const struct smtp_host_tls *ht)
{
    const struct dns_mx_result *mx = s->mx;
    char qd[sizeof(s->dest->name) * 4 + 8], q[1300];

    log_info("event=tls_policy destination=%s host=%s%s%s policy=%s mx_dnssec=%s "
             "addr_dnssec=%s tlsa=%s sts=%s sts_mx=%s tls=%s%s%s%s reason=%s",
             log_value(qd, sizeof(qd), s->dest->name), mx->hosts[i].name,
             mx->hosts[i].canon_name[0] ? " cname=" : "",
             mx->hosts[i].canon_name[0] ? mx->hosts[i].canon_name : "",
             tls_security_name(sec), dns_dnssec_name(mx->mx_dnssec),
             dns_dnssec_name(mx->hosts[i].addr_dnssec), tlsa_state_name(in->tlsa), sts_mode,
             dec->sts_mx ? "yes" : "no", host_tls_name(ht->mode),
             ht->report_only ? " report_only=yes" : "",
             s->dest->relaxed ? " tls_required=no" : s->dest->requiretls ? " requiretls=yes" : "",
             s->ob->relay_auth ? " relay_auth=yes" : "",
             log_quote(q, sizeof(q), ht->why, strlen(ht->why)));
}

/* Decide each host's TLS security and connect. tres and sts may be NULL. */
static void open_secure(struct slot *s, const struct dns_tlsa_result *tres,
                        const struct sts_result *sts)
{
    const struct dns_mx_result *mx = s->mx;
    struct smtp_host_tls ht[DNS_MAX_HOSTS];
    char whys[DNS_MAX_HOSTS][300];
    X509_STORE *store = NULL;
    const struct pins *pins = NULL;
    enum tls_security sec = dest_security(s->ob, s->dest, &store, &pins);
    const char *sts_mode = sts && sts->policy ? sts_mode_name(sts->policy->mode) : "-";
    size_t maybe = 0;           /* hosts usable now or perhaps later */
    struct smtp_client_config cc = s->ob->client;

    memset(ht, 0, sizeof(ht));
    if (reports(s)) {
        size_t n = mx->host_count < DNS_MAX_HOSTS ? mx->host_count : DNS_MAX_HOSTS;

        s->report = xcalloc(1, sizeof(*s->report) + n * sizeof(s->report->hosts[0]));
        s->report->count = n;
        cc.on_attempt = attempt_noted;
        cc.attempt_arg = s;
    }
    for (size_t i = 0; i < mx->host_count && i < DNS_MAX_HOSTS; i++) {
        struct tls_decide_in in;
        struct tls_decision dec;
        const struct dns_tlsa_host *th = tres != NULL ? &tres->hosts[i] : NULL;

        decide_host(s, i, sec, tres, sts, &dec, &in);
        metrics_tls_policy((unsigned)dec.mode);
        ht[i].mode = dec.mode;
        ht[i].mx_dnssec = mx->mx_dnssec;
        ht[i].pkix_store = dec.sts_mx && dec.mode == HOST_TLS_PKIX ? sts_x509_store(s->ob->sts)
                                                                   : store;
        ht[i].sts_mx = dec.sts_mx;
        ht[i].report_only = dec.report_only;
        ht[i].dsn = dec.dsn;
        snprintf(whys[i], sizeof(whys[i]), "%s%s%s", dec.why,
                 th && th->why[0] && !dec.sts_mx ? ": " : "", th && !dec.sts_mx ? th->why : "");
        ht[i].why = whys[i];
        ht[i].verify_name = s->ob->relay_auth != NULL ? s->ob->relay_name : NULL;
        host_material(s, i, &dec, th, sts, pins, &ht[i]);
        switch (requiretls_host(s, &ht[i], whys[i], sizeof(whys[i]))) {
        case RT_DEFERRED:
            s->host_deferred = true;
            maybe++;
            break;
        case RT_USABLE:
            maybe++;
            break;
        case RT_NEVER:
            break;
        }
        log_tls_policy(s, i, sec, sts_mode, &in, &dec, &ht[i]);
    }
    if (maybe == 0 && s->dest->requiretls) {
        requiretls_unreachable(s);
        return;
    }
    /* The handle lets outbound_free abandon the attempt; it becomes the
     * connection when `connected` reports success. */
    s->conn = smtp_conn_open_secure(s->ob->base, &cc, mx->hosts, ht,
                                    mx->host_count, connected, s);
    free(s->mx);
    s->mx = NULL;
}

/* The policy lines, one quoted value ("version: STSv1|mode: enforce|..."),
 * for the log and for TLS-RPT's policy-string. */
static void policy_lines(const struct sts_result *r, char *out, size_t size)
{
    size_t used = 0;

    for (size_t i = 0; i < r->body_len && used + 1 < size; i++) {
        char c = r->body[i];
        if (c == '\r')
            continue;
        out[used++] = c == '\n' ? '|' : c;
    }
    while (used > 0 && out[used - 1] == '|')
        used--;
    out[used] = '\0';
}

/* TLS-RPT: a policy fetch that failed is a failure of policy type "sts"
 * for the domain (RFC 8460 4.3.1), with no MX host. */
static void report_fetch_failure(const struct slot *s, const struct sts_result *r)
{
    struct tlsrpt_policy pol = { TLSRPT_POLICY_STS, NULL, 0, NULL, 0 };
    enum tlsrpt_result res = r->failure == STS_FETCH_INVALID   ? TLSRPT_STS_POLICY_INVALID
                           : r->failure == STS_FETCH_WEBPKI    ? TLSRPT_STS_WEBPKI_INVALID
                                                               : TLSRPT_STS_POLICY_FETCH_ERROR;

    if (reports(s))
        tlsrpt_note(s->ob->tlsrpt, s->dest->name, &pol, "", "", "", res, r->why);
}

static void sts_done(const struct sts_result *r, void *arg)
{
    struct slot *s = arg;
    struct dns_tlsa_result *tres;
    char qd[sizeof(s->dest->name) * 4 + 8], q[1300], lines[2048], ql[sizeof(lines) * 4 + 8];

    s->sts_lk = NULL;
    /* TLS-RPT: r->failure (sts-policy-fetch-error, sts-policy-invalid,
     * sts-webpki-invalid) is a failed policy fetch for r->domain. */
    if (r->failure != STS_FETCH_OK) {
        log_warn("event=sts_fetch_failed domain=%s result=%s cached=%s reason=%s",
                 log_value(qd, sizeof(qd), r->domain), sts_fetch_verdict_name(r->failure),
                 r->policy ? "yes" : "no", log_quote(q, sizeof(q), r->why, strlen(r->why)));
        report_fetch_failure(s, r);
    }
    if (r->policy != NULL) {
        /* TLS-RPT: policy-type "sts", policy-domain r->domain, policy-string
         * the body lines (r->body), mx-host the policy's mx patterns. */
        policy_lines(r, lines, sizeof(lines));
        log_info("event=sts_policy domain=%s mode=%s id=%s max_age=%u source=%s policy=%s",
                 log_value(qd, sizeof(qd), r->domain), sts_mode_name(r->policy->mode), r->id,
                 (unsigned)r->policy->max_age, sts_source_name(r->source),
                 log_quote(ql, sizeof(ql), lines, strlen(lines)));
    } else {
        log_info("event=sts_policy domain=%s source=none reason=%s",
                 log_value(qd, sizeof(qd), r->domain),
                 log_quote(q, sizeof(q), r->why, strlen(r->why)));
    }
    tres = s->tres;             /* open_secure may free s (REQUIRETLS bounce) */
    s->tres = NULL;
    open_secure(s, tres, r);
    dns_tlsa_result_free(tres);
}

/* Does MTA-STS apply? dane-or-sts, a real domain (not a relayhost or an
 * address literal), not relaxed, and some host that DANE left
 * opportunistic (RFC 8461 2: DANE wins). */
static bool sts_wanted(const struct slot *s, const struct dns_tlsa_result *tres)
{
    X509_STORE *store;
    const struct pins *pins;
    enum tls_security sec = dest_security(s->ob, s->dest, &store, &pins);

    if (sec != TLS_SEC_DANE_OR_STS || s->ob->cfg->relay.relayhost || s->dest->relaxed ||
        dest_route(s->ob, s->dest->name) ||
        s->ob->sts == NULL || !sts_domain_valid(s->dest->name))
        return false;
    for (size_t i = 0; i < s->mx->host_count && i < DNS_MAX_HOSTS; i++) {
        struct tls_decide_in in;
        struct tls_decision dec;

        decide_in(s, i, sec, tres, &in);
        tls_decide(&in, &dec);
        if (dec.mode == HOST_TLS_OPPORTUNISTIC)
            return true;
    }
    return false;
}

/* DANE is decided (tres may be NULL): MTA-STS next, or connect. Takes tres. */
static void after_dane(struct slot *s, struct dns_tlsa_result *tres)
{
    if (sts_wanted(s, tres)) {
        s->tres = tres;
        s->sts_lk = sts_lookup_start(s->ob->sts, s->dest->name, sts_done, s);
        return;
    }
    open_secure(s, tres, NULL);
    dns_tlsa_result_free(tres);
}

static void tlsa_done(struct dns_tlsa_result *tres, void *arg)
{
    after_dane(arg, tres);
}

static void resolved(const struct dns_mx_result *res, void *arg)
{
    struct slot *s = arg;
    struct destination *d = s->dest;
    struct smtp_result r;
    char q[sizeof(res->error) * 4 + 8], qd[sizeof(d->name) * 4 + 8];
    char names[DNS_MAX_HOSTS][256], canon[DNS_MAX_HOSTS][256];
    bool want[DNS_MAX_HOSTS], any = false;
    X509_STORE *store;
    const struct pins *pins;
    enum tls_security sec = dest_security(s->ob, d, &store, &pins);

    if (res->outcome != DNS_OK) {
        d->opening--;
        dns_failure(res, &r);
        log_info("event=dns_failed destination=%s outcome=%d reason=%s",
                 log_value(qd, sizeof(qd), d->name), (int)res->outcome,
                 log_quote(q, sizeof(q), res->error, strlen(res->error)));
        fail_waiting(d, &r);
        slot_free(s, false);
        return;
    }
    s->mx = xmalloc(sizeof(*s->mx));
    memcpy(s->mx, res, sizeof(*s->mx));
    for (size_t i = 0; i < res->host_count && i < DNS_MAX_HOSTS; i++) {
        struct tls_decide_in in;

        decide_in(s, i, sec, NULL, &in);
        want[i] = tls_decide_wants_tlsa(&in);
        any |= want[i];
        memcpy(names[i], res->hosts[i].name, sizeof(names[i]));
        memcpy(canon[i], res->hosts[i].canon_name, sizeof(canon[i]));
    }
    if (!any) {
        after_dane(s, NULL);
        return;
    }
    dns_resolve_tlsa(s->ob->dns, (const char (*)[256])names, (const char (*)[256])canon,
                     want, res->host_count, s->port, tlsa_done, s);
}

static void open_slot(struct outbound *ob, struct destination *d)
{
    struct slot *s = xcalloc(1, sizeof(*s));
    const struct relay_config *rc = &ob->cfg->relay;
    const struct destination_config *route = dest_route(ob, d->name);
    const char *name = d->name, *hop = route ? route->nexthop : rc->relayhost;
    unsigned hop_port = route ? route->nexthop_port : rc->relayhost_port;
    size_t len;
    char host[256];

    s->ob = ob;
    s->dest = d;
    s->next_all = ob->slots;
    if (ob->slots)
        ob->slots->prev_all = s;
    ob->slots = s;
    d->slots++;
    d->opening++;
    ob->total_slots++;
    if (hop) {
        name = hop;
        len = strlen(name);
        if (name[0] == '[' && len > 2 && name[len - 1] == ']') {
            snprintf(host, sizeof(host), "%.*s", (int)(len - 2), name + 1);
            s->port = (uint16_t)hop_port;
            dns_resolve_host(ob->dns, host, s->port, resolved, s);
        } else {
            s->port = (uint16_t)hop_port;
            dns_resolve_mx(ob->dns, name, s->port, resolved, s);
        }
    } else if (name[0] == '[') {
        /* address literal domain: deliver to that address */
        len = strlen(name);
        snprintf(host, sizeof(host), "%.*s", (int)(len > 2 ? len - 2 : 0), name + 1);
        s->port = (uint16_t)rc->smtp_port;
        dns_resolve_host(ob->dns, host, s->port, resolved, s);
    } else {
        s->port = (uint16_t)rc->smtp_port;
        dns_resolve_mx(ob->dns, name, s->port, resolved, s);
    }
}

/* Put waiting jobs on idle connections, open more connections if allowed. */
static void pump(struct outbound *ob, struct destination *d)
{
    const struct relay_config *rc = &ob->cfg->relay;

    while (d->head && d->idle) {
        struct slot *s = d->idle;

        d->idle = s->next_idle;
        s->next_idle = NULL;
        evtimer_del(s->idle_timer);
        if (!smtp_conn_ready(s->conn)) {
            slot_free(s, false);    /* lost while idle: a fresh one below */
            continue;
        }
        send_next(s);
    }
    while (d->waiting > d->opening && d->slots < rc->destination_concurrency &&
           ob->total_slots < rc->max_outbound_connections)
        open_slot(ob, d);
}

void outbound_set_relay_credentials(struct outbound *ob, const struct relay_credentials *rc)
{
    if (ob->relay_auth == NULL)
        ob->relay_auth = xmalloc(sizeof(*ob->relay_auth));
    memcpy(ob->relay_auth, rc, sizeof(*rc));
    ob->client.auth = ob->relay_auth;
}

void outbound_set_tlsrpt(struct outbound *ob, tlsrpt_emit_cb emit, void *arg)
{
    if (ob->cfg->tlsrpt.enabled && ob->tlsrpt == NULL)
        ob->tlsrpt = tlsrpt_notes_new(ob->dns, emit, arg);
}

void outbound_submit(struct outbound *ob, struct outbound_job *job)
{
    bool requiretls = job->msg->env.requiretls;
    /* a domain's own next hop ([route D]) wins over the relayhost */
    const char *relayhost = dest_route(ob, job->destination) ? NULL : ob->cfg->relay.relayhost;
    struct destination *d = find_destination(ob, relayhost ? relayhost : job->destination,
                                             job->tls_required_no && !requiretls, requiretls);

    job->next = NULL;
    if (d->tail)
        d->tail->next = job;
    else
        d->head = job;
    d->tail = job;
    d->waiting++;
    pump(ob, d);
}

/* A CA store read now, before the chroot: file, or the system bundle;
 * purpose for the message. */
static X509_STORE *load_store_for(const char *file, const char *purpose, char *err,
                                  size_t errsize)
{
    X509_STORE *st = X509_STORE_new();
    const char *path = file ? file : X509_get_default_cert_file();

    if (st == NULL || X509_STORE_load_file(st, path) != 1) {
        snprintf(err, errsize, "cannot load the CA file %s for %s", path, purpose);
        X509_STORE_free(st);
        return NULL;
    }
    return st;
}

static X509_STORE *load_store(const char *file, char *err, size_t errsize)
{
    return load_store_for(file, "security = verify", err, errsize);
}

static struct pins *make_pins(const struct destination_config *dc)
{
    struct pins *p = xcalloc(1, sizeof(*p));

    for (size_t i = 0; i < dc->fingerprint_count; i++) {
        for (uint8_t selector = 0; selector <= 1; selector++) {
            struct tlsa_record *r = &p->rec[p->count++];
            r->usage = 3;
            r->selector = selector;
            r->mtype = 1;
            r->data_len = sizeof(dc->fingerprints[i].sha256);
            memcpy(r->data, dc->fingerprints[i].sha256, r->data_len);
        }
    }
    return p;
}

/* CA stores for every policy that verifies by PKIX; pinned records for
 * every fingerprint policy. */
static bool load_stores(struct outbound *ob, char *err, size_t errsize)
{
    const struct config *cfg = ob->cfg;

    for (size_t i = 0; i < cfg->destination_count; i++)
        if (cfg->destinations[i].security == TLS_SEC_FINGERPRINT)
            ob->dest_pins[i] = make_pins(&cfg->destinations[i]);

    if (cfg->relay.security == TLS_SEC_VERIFY &&
        (ob->relay_store = load_store(NULL, err, errsize)) == NULL)
        return false;
    if (cfg->relay.relayhost_credentials != NULL &&
        (ob->relay_auth_store = load_store_for(cfg->relay.ca_file, "the relayhost (AUTH)", err,
                                               errsize)) == NULL)
        return false;
    for (size_t i = 0; i < cfg->destination_count; i++) {
        const struct destination_config *dc = &cfg->destinations[i];
        if (dc->security != TLS_SEC_VERIFY)
            continue;
        if ((ob->dest_store[i] = load_store(dc->ca_file, err, errsize)) == NULL)
            return false;
    }
    return true;
}

static void probe_done(const struct dns_probe_result *res, void *arg)
{
    (void)arg;
    switch (res->verdict) {
    case DNS_PROBE_BROKEN:
        log_error("event=dns_config error=\"the resolver path cannot deliver DNSSEC (zone "
                  "%s: %s): every answer is treated as insecure and DANE is OFF; check "
                  "[relay] resolver and the trust anchor\" action=insecure",
                  res->zone, res->why);
        break;
    case DNS_PROBE_UNKNOWN:
        log_warn("event=dns_probe zone=%s result=unknown reason=\"%s\" action=validate",
                 res->zone, res->why);
        break;
    case DNS_PROBE_SECURE:
        log_info("event=dns_probe zone=%s result=secure", res->zone);
        break;
    case DNS_PROBE_NO_ANCHOR:
        break;
    }
}

void outbound_start(struct outbound *ob)
{
    dns_probe_dnssec(ob->dns, probe_done, ob);
}

/* MTA-STS needs the policy fetcher (its CA file is read now, before the
 * sandbox) only when some policy is dane-or-sts. */
static bool start_sts(struct outbound *ob, char *err, size_t errsize)
{
    const struct config *cfg = ob->cfg;
    struct sts_config sc = { cfg->relay.ca_file, cfg->relay.mta_sts_timeout,
                             cfg->relay.mta_sts_port, NULL, NULL };
    bool used = cfg->relay.security == TLS_SEC_DANE_OR_STS && cfg->relay.relayhost == NULL;

    for (size_t i = 0; i < cfg->destination_count && cfg->relay.relayhost == NULL; i++)
        used |= cfg->destinations[i].security == TLS_SEC_DANE_OR_STS;
    if (!used)
        return true;
    ob->sts = sts_new(ob->base, ob->dns, &sc, err, errsize);
    if (ob->sts == NULL && cfg->relay.ca_file == NULL) {
        /* No system CA bundle: MTA-STS cannot verify anything; deliver
         * without it rather than not at all (loudly). */
        log_warn("event=sts_disabled reason=\"%s\"", err);
        return true;
    }
    return ob->sts != NULL;
}

void outbound_set_sts_store(struct outbound *ob, sts_store_fn store, void *arg)
{
    if (ob->sts != NULL)
        sts_set_store(ob->sts, store, arg);
}

bool outbound_sts_load(struct outbound *ob, const void *data, size_t len, char *err,
                       size_t errsize)
{
    static struct sts_record rec;       /* large: not on the stack */
    static struct sts_policy pol;

    if (ob->sts == NULL)                /* no MTA-STS in this config: check only */
        return sts_record_decode(data, len, &rec, &pol, err, errsize);
    return sts_cache_load(ob->sts, data, len, err, errsize);
}

struct outbound *outbound_new(struct event_base *base, const struct config *cfg,
                              char *err, size_t errsize)
{
    struct outbound *ob = xcalloc(1, sizeof(*ob));
    const struct relay_config *rc = &cfg->relay;
    struct dns_config dc = { rc->resolver, rc->trust_anchor, rc->unbound_config,
                             rc->dns_timeout * 1000u };

    ob->base = base;
    ob->cfg = cfg;
    ob->dns = dns_resolver_new(base, &dc, err, errsize);
    if (ob->dns == NULL) {
        free(ob);
        return NULL;
    }
    ob->client.helo_name = rc->helo_name[0] ? rc->helo_name : cfg->hostname;
    ob->client.implicit_tls = rc->relayhost != NULL && rc->relayhost_tls == RELAYHOST_TLS_IMPLICIT;
    if (rc->relayhost != NULL) {
        size_t len = strlen(rc->relayhost);
        bool brackets = rc->relayhost[0] == '[' && len > 2 && rc->relayhost[len - 1] == ']';

        snprintf(ob->relay_name, sizeof(ob->relay_name), "%.*s",
                 (int)(brackets ? len - 2 : len), rc->relayhost + brackets);
    }
    ob->client.tls_ctx = smtp_client_tls_ctx_new();
    if (!load_stores(ob, err, errsize) || !start_sts(ob, err, errsize)) {
        outbound_free(ob);
        return NULL;
    }
    smtp_client_timeouts_default(&ob->client.timeouts);
    ob->client.timeouts.connect = rc->connect_timeout ? rc->connect_timeout : 30;
    if (rc->smtp_timeout) {
        struct smtp_client_timeouts *t = &ob->client.timeouts;
        t->greeting = t->command = t->data_init = t->data_block = t->data_done = rc->smtp_timeout;
    }
    return ob;
}

void outbound_free(struct outbound *ob)
{
    if (ob == NULL)
        return;
    while (ob->slots)
        slot_free(ob->slots, true);
    for (struct destination *d = ob->dests, *next; d; d = next) {
        next = d->next;
        free(d);
    }
    sts_free(ob->sts);                  /* before the resolver: its lookups use it */
    dns_resolver_free(ob->dns);
    tlsrpt_notes_free(ob->tlsrpt);      /* after the resolver: no TXT answer can come */
    SSL_CTX_free(ob->client.tls_ctx);
    X509_STORE_free(ob->relay_store);
    X509_STORE_free(ob->relay_auth_store);
    if (ob->relay_auth != NULL) {
        relay_credentials_wipe(ob->relay_auth);
        free(ob->relay_auth);
    }
    for (size_t i = 0; i < CONFIG_MAX_DESTINATIONS; i++) {
        X509_STORE_free(ob->dest_store[i]);
        free(ob->dest_pins[i]);
    }
    free(ob);
}

/*
 * dns.h - asynchronous DNS for outbound delivery: libunbound with its own
 * DNSSEC validation, driven by the caller's libevent loop (ub_fd).
 *
 * Every answer carries its DNSSEC status (secure / insecure / bogus) so
 * that DANE (RFC 7672) can rely on it. Trusts: the resolver settings and
 * the trust anchor; answers are data from the network, checked for size
 * and syntax before use.
 */
#ifndef SEALPOST_DELIVERY_DNS_H
#define SEALPOST_DELIVERY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#define DNS_MAX_HOSTS  16      /* MX hosts kept per domain */
#define DNS_MAX_ADDRS  8       /* addresses kept per host */

enum dnssec_status {
    DNSSEC_INSECURE = 0,        /* no validated chain (unsigned zone) */
    DNSSEC_SECURE,              /* validated */
    DNSSEC_BOGUS,               /* validation failed: never use the data */
};

enum dns_outcome {
    DNS_OK = 0,
    DNS_NXDOMAIN,               /* the domain does not exist: permanent */
    DNS_NULL_MX,                /* RFC 7505 "MX 0 .": accepts no mail: permanent */
    DNS_NO_ADDRESS,             /* no MX host (or the domain) has an address: permanent */
    DNS_TEMPFAIL,               /* SERVFAIL, timeout, bogus answer: retry later */
};

/* The outcome of the TLSA lookup of one host. */
enum tlsa_state {
    TLSA_ST_NOT_LOOKED_UP = 0,  /* DANE did not apply: no query made */
    TLSA_ST_NONE,               /* no records (secure or insecure denial), or
                                   an insecure answer: no DANE */
    TLSA_ST_USABLE,             /* secure, at least one usable record */
    TLSA_ST_UNUSABLE,           /* secure records, none usable for SMTP */
    TLSA_ST_FAILED,             /* SERVFAIL, timeout, bogus, malformed: defer */
};

struct dns_host {
    char name[256];             /* MX exchange (or the domain itself, implicit MX) */
    unsigned preference;
    enum dnssec_status addr_dnssec;  /* worst status of its A/AAAA answers (a bogus
                                        answer is never used: never BOGUS here) */
    /* IPv4 and IPv6 alternate (IPv4 first) while both last, in answer order */
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    socklen_t addr_lens[DNS_MAX_ADDRS];
    size_t addr_count;
};

struct dns_mx_result {
    enum dns_outcome outcome;
    bool implicit_mx;           /* no MX RRset: the domain's own A/AAAA (RFC 5321 5.1) */
    enum dnssec_status mx_dnssec;    /* status of the MX answer */
    struct dns_host hosts[DNS_MAX_HOSTS];  /* ordered: preference, random among equal */
    size_t host_count;          /* only hosts with at least one address */
    char error[160];            /* for logs and DSNs when outcome != DNS_OK */
};

/*
 * resolver: every query is forwarded there. When NULL and no
 *   unbound_config is given, the nameservers of /etc/resolv.conf are the
 *   forwarders; when NULL but unbound_config is given, that file decides
 *   (its forward-zone, or full recursion from the root hints).
 * trust_anchor: when NULL and unbound_config names no anchor of its own
 *   (trust-anchor-file, trust-anchor, auto-trust-anchor-file,
 *   trusted-keys-file), the system root key /usr/share/dns/root.key is
 *   used read-only if it exists; otherwise nothing validates (all answers
 *   insecure, and a warning is logged).
 * All files are read by dns_resolver_new(), so it must run before any
 * chroot; its errors (bad config, unreadable anchor) are reported there.
 */
struct dns_config {
    const char *resolver;       /* "IP[@port]" to forward to, or NULL: see above */
    const char *trust_anchor;   /* file with DS/DNSKEY anchors, or NULL: see above */
    const char *unbound_config; /* extra libunbound config file, or NULL */
    unsigned timeout_ms;        /* deadline for one whole lookup (MX plus all its
                                   A/AAAA); 0: DNS_DEFAULT_TIMEOUT_MS */
};

#define DNS_DEFAULT_TIMEOUT_MS 30000

struct dns_resolver;

typedef void (*dns_mx_cb)(const struct dns_mx_result *res, void *arg);

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_config *cfg,
                                      char *err, size_t errsize);
/* Cancels every lookup in progress: no callback runs after this returns.
 * May be called from inside a dns_mx_cb. NULL is allowed. */
void dns_resolver_free(struct dns_resolver *r);

/*
 * Resolve where mail for domain goes: MX lookup, then A and AAAA of each
 * MX host (IPv4 and IPv6). No MX RRset -> implicit MX. A CNAME is
 * followed. The callback runs exactly once, later (never inside this
 * call). port is stored in every address.
 */
void dns_resolve_mx(struct dns_resolver *r, const char *domain, uint16_t port,
                    dns_mx_cb cb, void *arg);

/*
 * A domain in brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]", "[host]") is
 * a next hop without MX lookup: it is handled like dns_resolve_host().
 * A syntactically invalid domain gives DNS_NXDOMAIN without a query.
 */

/* Resolve one host name without MX lookup (a "[relayhost]"); the result
 * has implicit_mx set and a single host. An IP literal needs no DNS.
 * Brackets around the name are ignored; "[IPv6:...]" is accepted. For a
 * name, mx_dnssec is the worst status of its A/AAAA answers (there is no
 * MX answer; DANE for such a next hop rests on the address lookup), and
 * DNS_NXDOMAIN means both A and AAAA said NXDOMAIN. For an IP literal
 * both statuses are DNSSEC_INSECURE. */
void dns_resolve_host(struct dns_resolver *r, const char *host, uint16_t port,
                      dns_mx_cb cb, void *arg);

/*
 * DANE (RFC 7672): the TLSA records of some hosts, looked up in parallel
 * at "_PORT._tcp.NAME" (NAME as the MX RRset names the host; a CNAME on
 * the host name is followed by the resolver, but the TLSA base name is
 * not changed to its target: RFC 7672 2.2.2's preferred name is not
 * tried yet). Each host gets a state; the whole lookup has the
 * resolver's deadline, and a host still unanswered at the deadline is
 * TLSA_ST_FAILED (deferred, never downgraded).
 */
struct tlsa_set;

struct dns_tlsa_host {
    enum tlsa_state state;
    struct tlsa_set *set;       /* TLSA_ST_USABLE: its usable records; else NULL */
    char why[120];              /* TLSA_ST_FAILED / _NONE: printable reason */
    bool malformed;             /* TLSA_ST_FAILED because a secure record was malformed
                                   (TLS-RPT tlsa-invalid; else dnssec-invalid) */
};

struct dns_tlsa_result {
    struct dns_tlsa_host hosts[DNS_MAX_HOSTS];
    size_t count;
};

/* The callback owns res: free it with dns_tlsa_result_free(). */
typedef void (*dns_tlsa_cb)(struct dns_tlsa_result *res, void *arg);

/* Look up the TLSA records of names[i] for every i with want[i] (others
 * stay TLSA_ST_NOT_LOOKED_UP). count <= DNS_MAX_HOSTS. The callback runs
 * exactly once, later. */
void dns_resolve_tlsa(struct dns_resolver *r, const char (*names)[256], const bool *want,
                      size_t count, uint16_t port, dns_tlsa_cb cb, void *arg);
void dns_tlsa_result_free(struct dns_tlsa_result *res);

/* "secure", "insecure", "bogus" */
const char *dns_dnssec_name(enum dnssec_status s);

/* Does this resolver validate (has a trust anchor)? */
bool dns_resolver_validates(const struct dns_resolver *r);

#endif

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
    char canon_name[256];       /* where its address answers' CNAME chain led,
                                   when it differs from name; else "" */
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
 * at "_PORT._tcp.NAME". For a host whose addresses were reached through
 * a CNAME chain (canon[i] not empty; the caller asks only when those
 * answers are secure, hence the whole chain is), the CNAME-expanded name
 * is tried first and the name from the MX record only when the expanded
 * one has no TLSA records (RFC 7672 2.2.2, RFC 7671 7); a failed lookup
 * at the expanded name is a failure, not a reason to try the other name.
 * Each host gets a state and the base name its records came from; the
 * whole lookup has the resolver's deadline, and a host still unanswered
 * at the deadline is TLSA_ST_FAILED (deferred, never downgraded).
 */
struct tlsa_set;

struct dns_tlsa_host {
    enum tlsa_state state;
    struct tlsa_set *set;       /* TLSA_ST_USABLE: its usable records; else NULL */
    char why[120];              /* TLSA_ST_FAILED / _NONE: printable reason */
    bool at_canon;              /* the answer is the CNAME-expanded name's */
    bool malformed;             /* TLSA_ST_FAILED because a secure record was malformed
                                   (TLS-RPT tlsa-invalid; else dnssec-invalid) */
};

struct dns_tlsa_result {
    struct dns_tlsa_host hosts[DNS_MAX_HOSTS];
    size_t count;
};

/* The callback owns res: free it with dns_tlsa_result_free(). */
typedef void (*dns_tlsa_cb)(struct dns_tlsa_result *res, void *arg);

/* Look up the TLSA records of names[i] (first canon[i] when it is not
 * empty; canon may be NULL) for every i with want[i] (others stay
 * TLSA_ST_NOT_LOOKED_UP). count <= DNS_MAX_HOSTS. The callback runs
 * exactly once, later. */
void dns_resolve_tlsa(struct dns_resolver *r, const char (*names)[256],
                      const char (*canon)[256], const bool *want, size_t count,
                      uint16_t port, dns_tlsa_cb cb, void *arg);
void dns_tlsa_result_free(struct dns_tlsa_result *res);

/*
 * TXT records of one name (MTA-STS "_mta-sts.DOMAIN", RFC 8461 3.1):
 * each record's character-strings joined without separator. A record
 * longer than DNS_TXT_RECORD_MAX keeps its first DNS_TXT_RECORD_MAX
 * octets and is marked too_long (the caller refuses it if it matters).
 * A bogus answer, SERVFAIL or timeout is DNS_TXT_FAILED; NXDOMAIN and
 * NODATA are DNS_TXT_NONE. CNAMEs are followed by the resolver.
 */
#define DNS_TXT_MAX_RECORDS 16      /* records kept per answer */
#define DNS_TXT_RECORD_MAX  8192    /* joined octets kept per record */

enum dns_txt_outcome {
    DNS_TXT_OK = 0,
    DNS_TXT_NONE,
    DNS_TXT_FAILED,
};

struct dns_txt_record {
    size_t len;
    bool too_long;
    char data[DNS_TXT_RECORD_MAX];
};

struct dns_txt_result {
    enum dns_txt_outcome outcome;
    enum dnssec_status dnssec;
    uint32_t ttl;               /* of the answer with records (0 otherwise) */
    size_t count;
    struct dns_txt_record records[DNS_TXT_MAX_RECORDS];
    char why[160];              /* printable reason for DNS_TXT_FAILED / _NONE */
};

/* The callback owns res: free() it. Runs exactly once, later. */
typedef void (*dns_txt_cb)(struct dns_txt_result *res, void *arg);
void dns_resolve_txt(struct dns_resolver *r, const char *name, dns_txt_cb cb, void *arg);

/* Join the character-strings of one TXT rdata (wire form: length octet,
 * octets, ...) into rec. False when the rdata is malformed (a string runs
 * past the end). Pure: unit-tested. */
bool dns_txt_join(const uint8_t *rdata, size_t len, struct dns_txt_record *rec);

/* "secure", "insecure", "bogus" */
const char *dns_dnssec_name(enum dnssec_status s);

/* Does this resolver validate (has a trust anchor, and no probe found
 * the path unable to deliver DNSSEC)? */
bool dns_resolver_validates(const struct dns_resolver *r);

/*
 * Can the configured resolver path deliver DNSSEC? (stalwart#1578: a
 * forwarder that strips signatures, or a stale trust anchor, makes every
 * answer bogus and every delivery fail in silence.) Asks for the DNSKEY
 * RRset of the first trust anchor's zone: secure means yes; bogus or
 * insecure means no; no answer (SERVFAIL, timeout) means unknown.
 */
enum dns_probe_verdict {
    DNS_PROBE_NO_ANCHOR = 0,    /* nothing to check: the resolver does not validate */
    DNS_PROBE_SECURE,
    DNS_PROBE_BROKEN,           /* answers cannot validate: DNSSEC is unusable */
    DNS_PROBE_UNKNOWN,          /* no answer at all: cannot tell */
};

struct dns_probe_result {
    enum dns_probe_verdict verdict;
    char zone[256];             /* the zone asked ("." for the root) */
    char why[160];              /* printable: the answer's status or error */
};

typedef void (*dns_probe_cb)(const struct dns_probe_result *res, void *arg);

/* Probe r (the callback runs once, later). On DNS_PROBE_BROKEN the
 * resolver stops validating before the callback runs: every answer is
 * then insecure (no DANE) instead of bogus (no delivery). */
void dns_probe_dnssec(struct dns_resolver *r, dns_probe_cb cb, void *arg);

/* The same for `sealpost check`: its own loop and resolver, at most
 * timeout_ms. Returns the verdict; res is filled in, also on errors
 * setting up the resolver (then DNS_PROBE_UNKNOWN with the reason). */
enum dns_probe_verdict dns_probe_dnssec_now(const struct dns_config *cfg, unsigned timeout_ms,
                                            struct dns_probe_result *res);

#endif

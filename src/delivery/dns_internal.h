/*
 * dns_internal.h - pieces shared by the files of src/dns/, not for other
 * callers: the resolver object, the life cycle of one lookup ("job"),
 * single libunbound queries that can be cancelled, the classification of
 * an answer, and the name/address helpers of dns_name.c.
 *
 * Trusts: nothing that arrives in an answer; every helper here checks
 * lengths and syntax before anything is copied.
 */
#ifndef SEALPOST_DELIVERY_DNS_INTERNAL_H
#define SEALPOST_DELIVERY_DNS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "delivery/dns.h"
#include "delivery/tlsa.h"

struct ub_ctx;
struct ub_result;

#define DNS_TYPE_A     1
#define DNS_TYPE_MX    15
#define DNS_TYPE_TXT   16
#define DNS_TYPE_AAAA  28
#define DNS_TYPE_TLSA  52
#define DNS_TYPE_DNSKEY 48
#define DNS_CLASS_IN   1

#define DNS_NAME_MAX   253      /* text form, without the trailing dot */
#define DNS_WHY_MAX    120      /* reason text kept from one answer */

struct dns_job;

/* A libunbound context and the event watching its answer pipe. */
struct dns_ub {
    struct dns_resolver *r;
    struct ub_ctx *ctx;
    struct event *ev;           /* EV_READ|EV_PERSIST on ub_fd(ctx) */
};

struct dns_resolver {
    struct event_base *base;
    struct ub_ctx *ctx;         /* where new queries go: validating.ctx, or
                                   plain.ctx once the probe found the path
                                   unable to deliver DNSSEC */
    struct dns_ub validating;
    struct dns_ub plain;        /* same settings without the validator (only
                                   made when there is a trust anchor) */
    unsigned timeout_ms;
    bool validates;             /* a DNSSEC trust anchor is loaded (and, after
                                   dns_probe_dnssec, the path delivers DNSSEC) */
    char anchor_zone[256];      /* owner of the first trust anchor ("" = root) */
    struct dns_job *jobs;       /* every lookup whose callback has not run */
};

/*
 * One lookup as the caller sees it (one callback). Its timer first
 * enforces the deadline, then (with a zero timeout) delivers the result
 * from the event loop, so user callbacks never run inside dns_resolve_*
 * nor inside ub_process().
 */
struct dns_job {
    struct dns_resolver *r;
    struct dns_job *prev, *next;
    struct event *timer;
    bool finished;              /* result complete, delivery scheduled */
    void (*expire)(struct dns_job *job);   /* deadline: cancel queries, finish */
    void (*deliver)(struct dns_job *job);  /* run the callback, free the job */
    void (*release)(struct dns_job *job);  /* cancel queries, free, no callback */
};

void dns_job_start(struct dns_job *job, struct dns_resolver *r);
void dns_job_finish(struct dns_job *job);

/* One libunbound query; embedded in the job that owns it. */
struct dns_query {
    struct dns_job *job;
    struct ub_ctx *ctx;         /* the context it was sent to */
    int async_id;
    bool active;                /* sent, answer not yet received */
    int tag;                    /* owner's use (which host, which type) */
    void (*done)(struct dns_query *q, int err, struct ub_result *res);
};

/* Send a query; returns 0 or a libunbound error (then done never runs). */
int dns_query_start(struct dns_query *q, struct dns_job *job, const char *name,
                    int type, void (*done)(struct dns_query *, int, struct ub_result *));
/* Cancel if active; its done callback will not run. */
void dns_query_cancel(struct dns_query *q);

enum dns_answer_kind {
    DNS_ANS_DATA,               /* records of the asked type */
    DNS_ANS_NODATA,             /* name exists, no such records */
    DNS_ANS_NXDOMAIN,
    DNS_ANS_TEMPFAIL,           /* SERVFAIL, REFUSED, library error, timeout */
    DNS_ANS_BOGUS,              /* DNSSEC validation failed */
};

struct dns_answer {
    enum dns_answer_kind kind;
    enum dnssec_status dnssec;
    char why[DNS_WHY_MAX];      /* printable ASCII: rcode name, error, why_bogus */
};

void dns_classify(int err, const struct ub_result *res, struct dns_answer *out);

/*
 * The DANE verdict on one TLSA answer (RFC 7672 2.2, KumoMTA#543): a
 * failed or bogus answer is TLSA_ST_FAILED, never "no DANE"; a denial
 * (secure or not) or an insecure answer is TLSA_ST_NONE; a secure
 * answer is parsed into *set: malformed -> TLSA_ST_FAILED, no usable
 * record -> TLSA_ST_UNUSABLE, else TLSA_ST_USABLE. why gets a printable
 * reason for every state but USABLE. Pure: unit-tested offline.
 */
enum tlsa_state dns_tlsa_classify(const struct dns_answer *ans, const struct tlsa_rdata *rrs,
                                  size_t count, struct tlsa_set *set, char *why,
                                  size_t whysize);

/* The owner name of the first record in a trust anchor file (DS or
 * DNSKEY lines in zone-file syntax, or unbound's trust-anchor text),
 * lower-cased without the trailing dot: "" for the root, and also when
 * the file cannot be read or parsed (the root is the usual anchor). */
void dns_anchor_zone_of_file(const char *path, char *out, size_t outsize);
void dns_anchor_zone_of_text(const char *text, char *out, size_t outsize);

/* From now on: no validation (new queries go to the plain context, every
 * answer is insecure). Queries already sent finish where they are. */
void dns_resolver_stop_validating(struct dns_resolver *r);

/* "Worse" of two statuses: bogus > insecure > secure. */
enum dnssec_status dns_worse(enum dnssec_status a, enum dnssec_status b);
const char *dns_type_name(int type);

/* ---- dns_name.c: pure helpers, no I/O ---- */

/*
 * Check a domain or host name in text form (LDH labels, '_' allowed,
 * 1..63 octets per label, at most DNS_NAME_MAX octets, one optional
 * trailing dot) and write it lowercased without the trailing dot.
 * Returns false (out undefined) if it is not such a name.
 */
bool dns_name_normalize(const char *in, char *out, size_t outsize);

/*
 * Decode an uncompressed wire-format name from buf (len octets
 * available) into lowercase text without the trailing dot ("" for the
 * root). Rejects compression pointers, extended label types, names over
 * 255 octets and labels with characters dns_name_normalize refuses.
 * Returns the number of octets consumed, or 0 on error.
 */
size_t dns_wire_name(const uint8_t *buf, size_t len, char *out, size_t outsize);

/*
 * Parse an IP literal: "192.0.2.1", "2001:db8::1", optionally inside
 * [ ] and, in brackets, with the RFC 5321 "IPv6:" tag. On success fills
 * the address with port (network order set here), its length and its
 * canonical text; returns false if s is not an IP literal.
 */
bool dns_ip_literal(const char *s, uint16_t port, struct sockaddr_storage *ss,
                    socklen_t *sslen, char *text, size_t textsize);

/* Copy s into out, replacing anything but printable ASCII, and the
 * quote and backslash, by '?': safe inside a quoted log value. */
void dns_printable(char *out, size_t outsize, const char *s);

#endif

/*
 * outbound.h - remote delivery: per-destination queues, connection
 * limits and reuse, on top of dns.c (where does mail for a domain go) and
 * smtp_client.c (talk SMTP to it).
 *
 * A destination is a recipient domain, or the configured relayhost for
 * all remote mail. Each destination has at most
 * relay.destination_concurrency connections and all destinations together
 * at most relay.max_outbound_connections, so one slow destination never
 * starves the others. Jobs of a message with "TLS-Required: No" (RFC 8689
 * 5) go to a destination of their own ("relaxed"), whose connections
 * skip DANE and MTA-STS and use opportunistic TLS. Trusts: the config;
 * everything remote is handled by the modules below it.
 */
#ifndef SEALPOST_DELIVERY_OUTBOUND_H
#define SEALPOST_DELIVERY_OUTBOUND_H

#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "delivery/smtp_client.h"
#include "delivery/sts.h"
#include "delivery/tlsrpt_note.h"
#include "mail/delivery_job.h"

struct outbound;

struct outbound *outbound_new(struct event_base *base, const struct config *cfg,
                              char *err, size_t errsize);
/* The smart host's login ([relay] relayhost_credentials, parsed from the
 * master's snapshot), copied (the caller wipes its own copy; outbound_free
 * wipes this one). From then on the relayhost's TLS must be PKIX-verified
 * for the relayhost name against [relay] ca_file (or the system CAs),
 * whatever the security policy says, and every connection logs in. Call
 * once, before the first job, and only with relayhost_credentials set
 * (outbound_new loaded the CA store for it). */
void outbound_set_relay_credentials(struct outbound *ob, const struct relay_credentials *rc);
/* TLS-RPT (RFC 8460): report each session's TLS outcome for recipient
 * domains (not for a relayhost or an address literal) to emit, when
 * [tlsrpt] enabled. Call once, before the first job. */
void outbound_set_tlsrpt(struct outbound *ob, tlsrpt_emit_cb emit, void *arg);
/* Queue a job; done runs exactly once, later. */
void outbound_submit(struct outbound *ob, struct outbound_job *job);
/* Drop every connection; pending jobs never complete (their messages stay
 * queued and are retried after a restart). */
/* Once sandboxed: the first DNS query (libunbound starts its thread
 * here, under the role's filters) asks whether the resolver path
 * delivers DNSSEC (dns_probe_dnssec); a path that cannot is logged at
 * level error and DANE is turned off rather than every answer bogus. */
void outbound_start(struct outbound *ob);
void outbound_free(struct outbound *ob);

/* MTA-STS policy cache persistence (sts.h): store runs for every policy
 * fetched (to be sent to the queue); outbound_sts_load takes one record
 * the queue handed back (false with err: malformed). */
void outbound_set_sts_store(struct outbound *ob, sts_store_fn store, void *arg);
bool outbound_sts_load(struct outbound *ob, const void *data, size_t len, char *err,
                       size_t errsize);

#endif

/*
 * conn_limits.h - connection counts shared by every smtpd worker, so that
 * max_connections and max_connections_per_ip hold for the whole server,
 * not per process. A table in shared memory (a memory file the master
 * creates and every worker maps) with one row per worker slot; a worker counts its connections
 * only in its own row, and readers sum the rows. When the last process of
 * a slot has exited, the master clears its row, so a crashed worker's
 * counts do not outlive it.
 *
 * Per-IP counts are keyed on the client itself, compared in full: the
 * exact IPv4 address, or the IPv6 address cut to a prefix (per_ip_ipv6_prefix,
 * default /64: one site or host usually holds a whole /64). A row holds at
 * most `capacity` distinct keys (the master sizes it from max_connections);
 * when a row is full, the connection is refused as over the total limit.
 *
 * Trusts: the address text (from inet_ntop on accept). Lock-free: counts
 * change by compare-and-swap, so a retired worker still draining on a slot
 * and its replacement can share that row without losing an update.
 */
#ifndef SEALPOST_SMTPD_CONN_LIMITS_H
#define SEALPOST_SMTPD_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

#define CONN_LIMITS_MAX_SLOTS 64
#define CONN_LIMITS_MAX_CAPACITY (1u << 24)

/* Who a per-IP count belongs to: 16 octets, an IPv4 address as ::ffff:a.b.c.d
 * (also when it arrived as an IPv4-mapped IPv6 address), an IPv6 address
 * with the bits past the prefix cleared. */
struct conn_key {
    unsigned char b[16];
};

/* The key of an address in text form. Text that is no address (never
 * from accept) gives the all-ones key, so all such clients share one
 * count; returns false then. ipv6_prefix is clamped to 0..128. */
bool conn_key_from_text(const char *ip, unsigned ipv6_prefix, struct conn_key *out);

struct conn_limits;

/* Entries per row: enough for a worker holding every connection, each
 * from its own address, plus slack for admissions that race. */
unsigned conn_limits_capacity(const struct config *cfg, unsigned workers);

/* Master: a table of slots rows of capacity entries in a new memory file
 * (its size sealed), its descriptor in *fd (close-on-exec), mapped; fatal
 * on failure. Pages that no connection reaches are never touched. */
struct conn_limits *conn_limits_create(unsigned slots, unsigned capacity, int *fd);
/* Worker: map the table from fd (the master's, passed on) with the same
 * geometry, checking that its size is sealed and right and that slot is
 * a row. NULL + err. */
struct conn_limits *conn_limits_attach(int fd, unsigned slots, unsigned capacity,
                                       unsigned slot, char *err, size_t errsize);
void conn_limits_detach(struct conn_limits *cl);
void conn_limits_reset_slot(struct conn_limits *cl, unsigned slot);

enum conn_verdict { CONN_ADMIT, CONN_TOO_MANY, CONN_TOO_MANY_FROM_IP };

/* Check both limits and, if admitted, count the connection in slot's row.
 * A full row (or a bad slot) gives CONN_TOO_MANY. */
enum conn_verdict conn_limits_admit(struct conn_limits *cl, unsigned slot,
                                    const struct conn_key *key, unsigned max_total,
                                    unsigned max_per_ip);
/* Undo one admitted connection of key in slot's row (no-op if none). */
void conn_limits_release(struct conn_limits *cl, unsigned slot, const struct conn_key *key);

/* Current counts over all rows (for tests and diagnostics). */
unsigned conn_limits_count(const struct conn_limits *cl, const struct conn_key *key);
unsigned conn_limits_total(const struct conn_limits *cl);

#endif

/*
 * relay_recipients.h - the recipients sealpost accepts in its
 * [relay] relay_domains ([relay] relay_recipients = FILE, like Postfix's
 * relay_recipient_maps), parsed strictly:
 *
 *     # comment (a line whose first non-blank is '#'), blank lines
 *     alice@backup.example        this address
 *     @intranet.example           any local part of that domain
 *
 * One address a line, without angle brackets, as RFC 5321 writes a
 * mailbox (a quoted local part is decoded: "a.b"@x is a.b@x; UTF-8 is
 * taken). The domain must be one of relay_domains (a line for any other
 * domain could never match: a typo) and not an address literal; the
 * local part must not be empty. Anything else refuses the whole file
 * with "PATH:LINE: reason", so `sealpost check`, the start and a SIGHUP
 * reload name the line. Duplicates are harmless.
 *
 * Matching is ASCII case-insensitive, on the domain and on the decoded
 * local part (as [domain] mailboxes files compare theirs). A relay
 * domain with no line at all takes no recipient: the list applies to
 * every relay domain, as in Postfix.
 *
 * Limits: RELAY_RECIPIENTS_MAX entries (and the file snapshot's size).
 *
 * Trusts: the operator's file, but checks every octet (it is parsed in
 * the workers and the queue too, and fuzzed: tests/fuzz/fuzz_alias.c).
 */
#ifndef SEALPOST_MAIL_RELAY_RECIPIENTS_H
#define SEALPOST_MAIL_RELAY_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/address.h"

#define RELAY_RECIPIENTS_MAX 1000000    /* address and @domain lines together */

struct relay_recipients;

/* Parse data[0..len); domains[0..n) are the relay domains (lower-case).
 * NULL + err "PATH:LINE: reason" (path names the file in messages only). */
struct relay_recipients *relay_recipients_parse(const char *data, size_t len, const char *path,
                                                char *const *domains, size_t n,
                                                char *err, size_t errsize);
void relay_recipients_free(struct relay_recipients *t);

/* Is mb (a parsed recipient in a relay domain) listed, by its address or
 * its domain's "@domain" line? */
bool relay_recipients_allows(const struct relay_recipients *t, const struct mailbox *mb);
/* The address lines and the "@domain" lines kept (duplicates included). */
size_t relay_recipients_count(const struct relay_recipients *t);

#endif

/*
 * alias_expand.h - the queue's expansion of an envelope's aliases, done
 * once when a worker's envelope is accepted (queue_server.c, before the
 * message is first written): the queue is the authority over the
 * envelope, so a compromised smtpd worker cannot choose alias targets.
 *
 * Each recipient that is an alias (or falls to a catch-all) is replaced
 * by its final recipients (recipient_expand, recipient.h), in order,
 * each with the original recipient's NOTIFY and, as ORCPT (RFC 3461
 * 4.2), the original recipient's ORCPT or else "rfc822;" + the original
 * address, so a DSN names what the sender wrote. A recipient that is
 * already in the envelope is not added again (the first one stays).
 *
 * Bounds: one recipient expands to at most max_per_rcpt addresses
 * ([server] max_alias_recipients); the whole envelope to at most
 * ENVELOPE_MAX_RCPTS. Past either, or on a loop or an unknown local
 * target, the envelope is refused with the reason in why (the worker's
 * RCPT check refuses those recipients first, so this is a compromised
 * worker or a file reloaded in between).
 *
 * Trusts: the recipient policy (operator's files); the envelope has
 * passed rcpt_policy_check_envelope.
 */
#ifndef SEALPOST_MAIL_ALIAS_EXPAND_H
#define SEALPOST_MAIL_ALIAS_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"
#include "mail/recipient.h"

/* out gets in's fields with the recipients expanded (envelope_clear it).
 * false + why: out is cleared. */
bool alias_expand_envelope(const struct recipient_policy *p, size_t max_per_rcpt,
                           const struct envelope *in, struct envelope *out,
                           char *why, size_t whysize);

/* "rfc822;" + xtext(addr) (RFC 3461 4), "" when addr is not ASCII or
 * the result does not fit out. */
void alias_orcpt(const char *addr, char *out, size_t outsize);

#endif

/*
 * tls_policy.h - the cleartext policy: on a listener with
 * require_tls = yes, a recipient is accepted before STARTTLS only when
 * it is listed in cleartext_recipients (a bare local part matches that
 * local part in any domain; a full address matches itself).
 *
 * Trusts: the listener config. The mailbox is validated by address.c.
 */
#ifndef SEALPOST_MAIL_TLS_POLICY_H
#define SEALPOST_MAIL_TLS_POLICY_H

#include <stdbool.h>

#include "config/config.h"
#include "mail/address.h"

/* The exact reply for a recipient refused in cleartext (documented). */
#define TLS_POLICY_REPLY "530 5.7.0 Must issue a STARTTLS command first"

bool tls_policy_cleartext_allowed(const struct listener_config *lc, const struct mailbox *mb);

#endif

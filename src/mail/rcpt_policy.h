/*
 * rcpt_policy.h - the one decision on a recipient, made twice: by the
 * smtpd worker when the client sends RCPT (to answer it), and again by
 * the queue process when a worker asks it to start a message (so that a
 * compromised worker cannot make the queue accept a recipient the policy
 * refuses - an open relay, a mailbox that does not exist, a protected
 * mailbox in cleartext).
 *
 * The rules: on a require_tls listener without TLS, only the cleartext
 * recipients (tls_policy.h); local domains take their listed mailboxes
 * (recipient.h), their aliases when the expansion (recipient_expand)
 * has no loop and at most max_alias_recipients addresses; a domain in
 * [relay] relay_domains takes any recipient from any client, or with
 * [relay] relay_recipients only those it lists (relay_recipients.h;
 * trusted and authenticated clients included); any other domain is
 * relaying, allowed for clients in
 * [relay] trusted_networks and for authenticated submission users, who
 * may use only the senders [submission] senders gives them (senders.h).
 *
 * Trusts: the config and mailbox lists; the facts in the context are the
 * caller's (the worker saw them; the queue takes the worker's word for
 * the client address and TLS state, which only decide what that client
 * itself could have done).
 */
#ifndef SEALPOST_MAIL_RCPT_POLICY_H
#define SEALPOST_MAIL_RCPT_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "mail/address.h"
#include "mail/envelope.h"
#include "mail/recipient.h"

struct rcpt_context {
    const struct config *cfg;
    const struct recipient_policy *recipients;
    const struct listener_config *listener;
    const char *client_ip;
    bool tls;
    const char *auth_user;      /* the SMTP AUTH identity, NULL when none */
};

enum rcpt_decision {
    RCPT_ACCEPT,
    RCPT_TLS_REQUIRED,          /* 530 5.7.0 (tls_policy.h) */
    RCPT_UNKNOWN_USER,          /* 550 5.1.1 */
    RCPT_RELAY_DENIED,          /* 554 5.7.1 */
    RCPT_ALIAS_LOOP,            /* 550 5.4.6: an alias loops or nests too deep */
    RCPT_ALIAS_TOO_MANY,        /* 550 5.5.3: expands past max_alias_recipients */
    RCPT_UNKNOWN_RELAY_USER,    /* 550 5.1.1: a relay domain's, not in relay_recipients */
};

/* The transaction is cleartext on a listener that requires TLS. */
bool rcpt_context_cleartext(const struct rcpt_context *c);

enum rcpt_decision rcpt_policy_decide(const struct rcpt_context *c, const struct mailbox *to);
const char *rcpt_decision_name(enum rcpt_decision d);

/*
 * The queue's check of a whole envelope a worker sent: every recipient
 * as rcpt_policy_decide would answer it, their number within
 * max_recipients, REQUIRETLS only under TLS, and a cleartext transaction
 * on a require_tls listener marked so (no DSN content, no SUCCESS/DELAY
 * notices). false with the first reason in why.
 */
bool rcpt_policy_check_envelope(const struct rcpt_context *c, const struct envelope *env,
                                char *why, size_t whysize);

/* May the authenticated user of c use from ("" = <>) as envelope sender?
 * true when c has no auth_user (sender rules are for submission). */
bool rcpt_policy_sender_allowed(const struct rcpt_context *c, const char *from);

#endif

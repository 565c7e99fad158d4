/*
 * recipient.h - which recipients this server accepts (RFC 5321 4.5.1,
 * 3.6.2): local domains only; a local part must be listed in the
 * domain's mailboxes file when it has one; postmaster of every local
 * domain is always accepted; every other domain is relaying, which is
 * relaying (rcpt_policy.h decides it). An alias of a local domain, or
 * any local part when the domain's alias file has a catch-all, is
 * accepted like a mailbox; recipient_expand says what it stands for.
 *
 * The [relay] relay_recipients file travels and reloads with the mailbox
 * lists (it is read, parsed and refused the same way); rcpt_policy.h
 * applies it.
 *
 * Trusts: the config and mailbox files (operator's), read through a file
 * snapshot (util/snapshot.h): the master reads the files, the workers
 * parse its copy. The mailbox passed in has been validated by
 * mail/address.c.
 */
#ifndef SEALPOST_MAIL_RECIPIENT_H
#define SEALPOST_MAIL_RECIPIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "mail/address.h"

enum rcpt_verdict {
    VERDICT_ACCEPT,
    VERDICT_UNKNOWN_USER,       /* 550 5.1.1 */
    VERDICT_RELAY_DENIED,       /* 554 5.7.1 */
};

struct recipient_policy;
struct file_snapshot;

/* Read every domain's mailboxes file into a new snapshot. NULL + err
 * ("PATH: reason") when one cannot be read. */
struct file_snapshot *recipient_read_files(const struct config *cfg, char *err, size_t errsize);

/* The policy for cfg, its mailbox lists parsed from files (which must
 * hold every mailboxes file the config names). NULL + err. */
struct recipient_policy *recipient_policy_new(const struct config *cfg,
                                              const struct file_snapshot *files,
                                              char *err, size_t errsize);
void recipient_policy_free(struct recipient_policy *p);

/* The [submission] senders map parsed with the policy, or NULL when the
 * config names none (senders.h). */
struct sender_map;
const struct sender_map *recipient_policy_senders(const struct recipient_policy *p);
/* The [relay] relay_recipients list parsed with the policy, or NULL when
 * the config names none (relay_recipients.h). */
struct relay_recipients;
const struct relay_recipients *recipient_policy_relay(const struct recipient_policy *p);

enum rcpt_verdict recipient_check(const struct recipient_policy *p,
                                  const struct mailbox *mb);

/*
 * Aliases (mail/alias.h): what a recipient "local@domain" stands for.
 * In a local domain: an alias line of its local part, else its mailbox,
 * else the catch-all line; targets are expanded again the same way, at
 * most RECIPIENT_ALIAS_DEPTH alias lines deep. A target naming the alias
 * itself is its own mailbox ("bob: bob, bob@elsewhere"); any other
 * address met again along one chain is a loop. Addresses outside the
 * local domains are final (relayed). Repeats are dropped; at most
 * out->max results. EXPAND_OK with out->aliased false: addr is final.
 */
#define RECIPIENT_ALIAS_DEPTH 10

enum expand_result {
    EXPAND_OK,
    EXPAND_LOOP,                /* 5.4.6 */
    EXPAND_TOO_DEEP,            /* 5.4.6 */
    EXPAND_TOO_MANY,            /* more than out->max */
    EXPAND_UNKNOWN,             /* a local address with no mailbox, alias or catch-all */
};

struct recipient_expansion {
    char **addrs;               /* final recipients, "local@domain" */
    size_t count;
    size_t max;                 /* set by the caller */
    bool aliased;               /* some alias line was used */
};

enum expand_result recipient_expand(const struct recipient_policy *p, const char *addr,
                                    struct recipient_expansion *out);
void recipient_expansion_clear(struct recipient_expansion *out);

/* True for "postmaster" (any case), the RFC 5321 reserved local part. */
bool recipient_is_postmaster(const struct mailbox *mb);


#endif

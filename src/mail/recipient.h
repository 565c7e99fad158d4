/*
 * recipient.h - which recipients this server accepts (RFC 5321 4.5.1,
 * 3.6.2): local domains only; a local part must be listed in the
 * domain's mailboxes file when it has one; postmaster of every local
 * domain is always accepted; every other domain is relaying, which is
 * denied (outbound relay comes with the relay issue).
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

enum rcpt_verdict recipient_check(const struct recipient_policy *p,
                                  const struct mailbox *mb);

/* True for "postmaster" (any case), the RFC 5321 reserved local part. */
bool recipient_is_postmaster(const struct mailbox *mb);


#endif

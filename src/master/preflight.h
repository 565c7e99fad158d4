/*
 * preflight.h - what `sealpost check` and `sealpost serve` (before it
 * opens any listener) verify: the mailbox lists parse, every certificate
 * and key loads and matches (and the key is private), the role users
 * exist, the spool can be made and reached by the queue user, and every
 * Maildir root can be made or written by it.
 */
#ifndef SEALPOST_MASTER_PREFLIGHT_H
#define SEALPOST_MASTER_PREFLIGHT_H

#include <stdio.h>

#include "config/config.h"

/* Print one "sealpost: ..." line per problem to out; the problem count. */
unsigned preflight_check(const struct config *cfg, FILE *out);

/*
 * `sealpost check` only (serve's delivery process asks the same at start
 * and logs it): can the configured resolver path deliver DNSSEC? A path
 * that cannot (signatures stripped, stale trust anchor) is a problem; no
 * trust anchor, or no answer within a few seconds, is a note. Returns the
 * problem count (0 or 1).
 */
unsigned preflight_dns(const struct config *cfg, FILE *out);

#endif

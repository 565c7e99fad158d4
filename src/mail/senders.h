/*
 * senders.h - which envelope senders an authenticated submission user may
 * use ([submission] senders): lines "address user" (that address) and
 * "@domain user" (any address in the domain), '#' comments, blank lines.
 * An address may list several users on several lines. Without a map a
 * user may send only as the address that is its own name.
 *
 * Used twice, like the recipient policy: by the smtpd worker to answer
 * MAIL (553 5.7.1) and by the queue to refuse an envelope a compromised
 * worker would send anyway. The worker applies the same rules to the
 * From: addresses of a submitted message (smtpd/session_data.c). The null sender "<>" is always allowed (an
 * authenticated program may send notifications that must not bounce).
 *
 * Trusts: the operator's file, checked (lengths, one '@' with text on
 * both sides or a leading '@', user names as credentials.h takes them).
 * Comparisons are ASCII case-insensitive.
 */
#ifndef SEALPOST_MAIL_SENDERS_H
#define SEALPOST_MAIL_SENDERS_H

#include <stdbool.h>
#include <stddef.h>

#define SENDERS_MAX_LINES 100000

struct sender_map;

/* Parse data[0..len). NULL + err ("line N: reason"). */
struct sender_map *sender_map_parse(const char *data, size_t len, char *err, size_t errsize);
/* May user send as address (local@domain without brackets, "" = <>)?
 * map NULL: only as itself. */
bool sender_map_allows(const struct sender_map *map, const char *user, const char *address);
void sender_map_free(struct sender_map *map);

#endif

/*
 * mailbox_list.h - the addresses in an RFC 5322 address list, as a From:
 * field body holds them (3.4, 3.6.2), well enough for real mail: display
 * names (atoms, quoted strings, RFC 2047 encoded words, UTF-8 per RFC
 * 6532), comments in parentheses (nested, anywhere CFWS may be), angle
 * addresses (an obsolete source route "<@a,@b:x@y>" is skipped), bare
 * addr-specs, groups ("name: a@x, b@y;", members are addresses; an empty
 * group names none), several addresses separated by commas, empty list
 * elements (obs-mbox-list). Folding must have been removed (CR and LF
 * count as blanks anyway).
 *
 * Each address is given as "local@domain": a quoted local part whose
 * content is a dot-atom without its quotes (RFC 5322 3.4.1 says they are
 * the same), other quoted local parts quoted again with '\' before '"'
 * and '\'; the domain as written (a dot-atom or a [literal]).
 *
 * Not accepted (a syntax error): an unquoted display name with specials
 * (e.g. a comma: "Doe, John <j@x>"), an address without '@', a local part
 * or domain in several pieces with blanks or comments between them
 * (obs-local-part / obs-domain), control characters (also a tab in a
 * quoted local part), an unterminated
 * quoted string, comment or literal, comments nested deeper than
 * MAILBOX_COMMENT_DEPTH, an address longer than ADDR_PATH_MAX octets.
 *
 * Trusts nothing in the text; reads exactly text[0..len), keeps no state.
 */
#ifndef SEALPOST_MAIL_MAILBOX_LIST_H
#define SEALPOST_MAIL_MAILBOX_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/address.h"

#define MAILBOX_COMMENT_DEPTH 32

/* Called for each address in order; return false to stop the parse. */
typedef bool (*mailbox_list_cb)(void *arg, const char *addr);

/*
 * Parse text[0..len). Returns the number of addresses given to each
 * (which may be 0: an empty list or empty groups); -1 on a syntax error
 * with the reason in err; -2 when each stopped the parse. each may be NULL.
 */
int mailbox_list_parse(const char *text, size_t len, mailbox_list_cb each, void *arg,
                       char *err, size_t errsize);

/* The same, with flags: MAILBOX_BARE_LOCAL also takes an element that
 * is one word alone ("root") as an address without '@' (a local name the
 * caller completes, as `sendmail root` means); a word followed by more
 * words is still a display name that needs its <address>. */
#define MAILBOX_BARE_LOCAL 1u
int mailbox_list_parse_flags(const char *text, size_t len, unsigned flags, mailbox_list_cb each,
                             void *arg, char *err, size_t errsize);

#endif

/*
 * milter_apply.h - apply the header edits and the body replacement that
 * milters asked for (struct milter_outcome) to a stored message, writing
 * the edited message to another descriptor (the memfd the milter role
 * hands to the queue). Pure: no network, no allocation that grows with
 * the message body. docs/SMTP.md "Milter edits" says exactly what is
 * applied.
 *
 * Trusts: the caller for the descriptors, and the stored message for
 * being what the spool holds (CRLF line ends, no NUL; a header line with
 * a bare LF is still refused, never passed on). Trusts nothing in the
 * outcome: every name, value and body octet came from a milter and is
 * checked here; anything that would put a bare CR, a bare LF, a NUL, a
 * line of only white space inside a field, or a line longer than RFC
 * 5322's 998 octets into the header is refused, never repaired.
 *
 * The message is read from in_fd with pread(2) (the descriptor's offset
 * is not used or moved); the header section is held in memory (at most
 * MILTER_APPLY_HEADER_MAX octets), the body is copied in chunks of
 * MILTER_APPLY_CHUNK octets.
 */
#ifndef SEALPOST_MILTER_MILTER_APPLY_H
#define SEALPOST_MILTER_MILTER_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "milter/milter_types.h"

/* The largest header section (every field up to the empty line) that is
 * edited; a message with a longer one is refused (smtpd keeps every
 * line within max_text_line_length, but not their number). */
#define MILTER_APPLY_HEADER_MAX (1024 * 1024)
/* Octets per read of the body that is kept. */
#define MILTER_APPLY_CHUNK (64 * 1024)
/* RFC 5322 2.1.1: a line of the edited message (header fields a milter
 * wrote, and a body it replaced) is at most 998 octets before its CRLF. */
#define MILTER_APPLY_LINE_MAX 998

/*
 * Read the message in_fd[offset .. offset+size) (header section, then
 * the empty line and the body, CRLF line ends) and write to out_fd, at
 * its current position, the message with the header edits of o->edits
 * applied in order and, when o->body_replaced, o->body as the body.
 * Recipient and sender edits are ignored (the queue applies them).
 *
 * hidden_fields: how many fields at the top of the message the milters
 * were not shown (0, or 1 when the role kept sealpost's own Received:
 * from them, as Postfix and Sendmail do): a CHANGE index does not count
 * them, an INSERT index does (Postfix's and Sendmail's rule).
 *
 * true: *out_size octets written. false: err says why (a milter's edit
 * refused, the header section too long, the result over max_size, a read
 * or write error); what was written to out_fd is then to be thrown away.
 */
bool milter_apply(int in_fd, off_t offset, size_t size, const struct milter_outcome *o,
                  unsigned hidden_fields, int out_fd, size_t max_size, size_t *out_size,
                  char *err, size_t errsize);

/*
 * The header field starting at line[0..len) (len without the CRLF):
 * length of its name when the line starts a field (a name of printable
 * ASCII other than ':', optional SP/HTAB, then ':'), else 0. The milter
 * role splits the header it shows the milters with the same rule, so the
 * indexes of their edits count the same fields.
 */
size_t milter_field_name_len(const char *line, size_t len);

#endif

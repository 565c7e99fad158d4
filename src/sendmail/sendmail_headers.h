/*
 * sendmail_headers.h - what `sealpost sendmail` reads in the header
 * section of a message it submits: whether there is a From:, Date: and
 * Message-ID:, the recipient fields for -t (To/Cc/Bcc, or the Resent-
 * ones when the message has any), and the message without its Bcc
 * fields. The addresses in those fields are parsed by
 * mail/mailbox_list.h.
 *
 * Trusts nothing: the message is whatever the local caller piped in.
 * Works on the canonical form (CRLF lines, mail/maildrop_format.h).
 */
#ifndef SEALPOST_SENDMAIL_SENDMAIL_HEADERS_H
#define SEALPOST_SENDMAIL_SENDMAIL_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* One recipient field's value, unfolded (CRLF before WSP removed). */
struct header_rcpt_field {
    char *value;
    bool resent;
};

struct sendmail_headers {
    size_t header_len;              /* octets of the header section in the output */
    bool no_separator;              /* a body follows with no empty line before it */
    bool has_from;
    bool has_date;                  /* RFC 6409 8.3: added when missing */
    bool has_message_id;
    bool has_resent_rcpt;           /* any Resent-To/-Cc/-Bcc */
    struct header_rcpt_field *fields;
    size_t field_count;
};

/*
 * Scan msg[0..len) (canonical). The header section is the leading lines
 * of the form "name: ..." (and their continuation lines), up to an empty
 * line or the first line that is not a field. Writes the message without
 * its Bcc and Resent-Bcc fields into out (len octets suffice); returns
 * the length written.
 */
size_t sendmail_headers_scan(const char *msg, size_t len, struct sendmail_headers *hs, char *out);
void sendmail_headers_free(struct sendmail_headers *hs);

#endif

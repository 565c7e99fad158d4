/*
 * maildrop_format.h - the file a local `sealpost sendmail` leaves in
 * <spool>/maildrop/ for the queue process to pick up (docs/SPOOL.md).
 *
 * One place for both ends: the writer (the sendmail command, running as
 * any local user) and the strict parser (the queue's pickup, which
 * trusts nothing in the file: any local user can write one by hand).
 *
 *   sealpost-maildrop 1\n
 *   from ADDR\n            envelope sender, "" for the null sender <>
 *   body 7bit|8bitmime\n   8bitmime iff the message has an octet >= 0x80
 *   size N\n               octets of message that follow the empty line
 *   rcpt ADDR\n            1 .. MAILDROP_RCPTS_MAX lines
 *   \n
 *   message               canonical: every line ends in CRLF, no other
 *                         CR or LF, no line longer than the limit given
 *
 * Addresses are "local@domain" as address.c accepts them inside <...>
 * (UTF-8 allowed; it makes the message SMTPUTF8). Keys appear exactly in
 * this order, once each; anything else is refused. Pure functions: no
 * I/O, no allocation.
 */
#ifndef SEALPOST_MAIL_MAILDROP_FORMAT_H
#define SEALPOST_MAIL_MAILDROP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/address.h"

#define MAILDROP_MAGIC      "sealpost-maildrop 1"
/* Recipients one file may name (the pickup also applies [server]
 * max_recipients, which may be lower). */
#define MAILDROP_RCPTS_MAX  1000
/* The longest head: magic, from, body, size, every rcpt line, the
 * empty line. */
#define MAILDROP_HEAD_MAX \
    (64 + (sizeof("from \n") + ADDR_PATH_MAX) + 64 + \
     (size_t)MAILDROP_RCPTS_MAX * (sizeof("rcpt \n") + ADDR_PATH_MAX))

struct maildrop_head {
    char from[ADDR_PATH_MAX + 1];       /* "" = null sender */
    bool eight_bit;                     /* body 8bitmime */
    bool smtputf8;                      /* some address has UTF-8 (parser output) */
    uint64_t size;                      /* message octets after the head */
    size_t rcpt_count;
    char rcpts[MAILDROP_RCPTS_MAX][ADDR_PATH_MAX + 1];
};

/* A usable envelope address ("local@domain", or "" when allow_null):
 * what the writer checks before it writes and the parser after it reads.
 * *utf8 is set when it needs SMTPUTF8. */
bool maildrop_addr_valid(const char *addr, bool allow_null, bool *utf8);

/* The head in the form above into out; its length, 0 if it does not fit
 * or a field is invalid. */
size_t maildrop_head_format(const struct maildrop_head *h, char *out, size_t outsize);

/* Parse the head at the start of data[0..len). Returns the head's length
 * (the offset of the message), 0 with a reason in err when it is not
 * exactly the form above. */
size_t maildrop_head_parse(const char *data, size_t len, struct maildrop_head *h, char *err,
                           size_t errsize);

/* Streaming check of the message bytes (canonical CRLF, line length,
 * 8-bit octets), for the pickup while it copies. */
struct maildrop_body_check {
    size_t max_line;            /* octets per line without CRLF */
    uint64_t total;
    size_t line_len;
    bool prev_cr;
    bool eight_bit;
    const char *bad;            /* first problem, a constant string */
};

void maildrop_body_begin(struct maildrop_body_check *c, size_t max_line);
/* false once the bytes so far are not canonical (c->bad says why). */
bool maildrop_body_feed(struct maildrop_body_check *c, const void *data, size_t len);
/* The whole message was fed: it must end in CRLF (or be empty). */
bool maildrop_body_end(struct maildrop_body_check *c);

/*
 * The writer's side: a message as read from stdin made canonical. LF and
 * CRLF end a line, a CR not followed by LF too; a last line without an
 * end gets CRLF. With dot_ends, a line that is exactly "." ends the
 * message (sendmail without -i); nothing is dot-stuffed or unstuffed.
 * out must hold 2 * len + 2 octets. Returns the length written.
 */
size_t maildrop_canonical(const char *in, size_t len, bool dot_ends, char *out);

#endif

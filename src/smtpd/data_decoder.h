/*
 * data_decoder.h - the DATA stream state machine (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Fed raw bytes after "354", it removes dot-stuffing, finds the end of
 * data, and reports what is wrong with the message without stopping:
 *
 *  - End of data is CRLF "." CRLF only (the opening CRLF may be the one
 *    that ended the DATA command, i.e. "." CRLF as the first line).
 *    Every other variant (LF.LF, CR.CR, LF.CRLF, CRLF.LF, ...) is message
 *    content, never an end: a message can never be split in two
 *    (SMTP smuggling, CVE-2023-51766 class).
 *  - A bare CR or bare LF anywhere sets DATA_BAD_NEWLINE; the session
 *    rejects such a message after end of data.
 *  - A NUL octet anywhere sets DATA_NUL: RFC 5322 2.3 and RFC 6152 allow
 *    none in a 7bit or 8BITMIME body (only BINARYMIME would, and it is
 *    not offered), and a NUL passed on can make a next hop read the
 *    message differently; the session rejects such a message too. A NUL
 *    never ends data or a line: "CRLF NUL . CRLF" is content.
 *  - A text line longer than max_line (octets including CRLF, measured
 *    after unstuffing: the transparency dot does not count, RFC 5321
 *    4.5.3.1.6) sets DATA_LINE_TOO_LONG.
 *
 * Output is the unstuffed message with CRLF line ends exactly as
 * received. The decoder holds no more than a few bytes of state; the
 * caller streams output to the spool. The same decoder, with
 * dot_stuffing off, checks BDAT chunks (there the end is given by the
 * chunk sizes, so data_decoder_finish() is called after the LAST chunk).
 */
#ifndef SEALPOST_SMTPD_DATA_DECODER_H
#define SEALPOST_SMTPD_DATA_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DATA_BAD_NEWLINE    1u
#define DATA_LINE_TOO_LONG  2u
#define DATA_NUL            4u

struct data_decoder {
    int state;              /* private */
    bool dot_stuffing;      /* true for DATA, false for BDAT */
    size_t max_line;
    size_t line_len;        /* private: octets in the current line */
    unsigned flags;         /* DATA_* bits seen so far */
    uint64_t out_bytes;     /* octets written to out so far */
    bool done;              /* end of data seen (DATA only) */
};

void data_decoder_init(struct data_decoder *d, bool dot_stuffing, size_t max_line);

/*
 * Decode in[0..len). Decoded bytes go to out, which must have room for
 * len + 2 bytes (a held-back CR or ".CR" may be released); *out_len says
 * how many were written. Returns the number of input bytes consumed:
 * all of them, unless end of data was seen (DATA mode), in which case
 * decoding stops right after the final LF and d->done is set; the rest
 * of the input belongs to the next command (pipelining).
 *
 * Clarifications (behaviour the tests pin down):
 *  - Only CRLF ends a line; after a bare CR or bare LF the decoder is
 *    still inside the same line (no unstuffing, no end of data there),
 *    and the line's octets keep counting toward max_line.
 *  - The leading "." of a line is always removed, also when a bare CR
 *    or bare LF follows it (".\rX" -> "\rX"); such a message carries
 *    DATA_BAD_NEWLINE anyway.
 *  - Only a CR after a leading "." is held back, so at most len + 1
 *    bytes are written; the len + 2 room stays the contract.
 *  - The LF of the closing "." CRLF is not counted toward max_line
 *    ("." CR is, before the LF arrives), so max_line must be >= 2;
 *    RFC 5321 4.5.3.1.6 asks for at least 1000.
 *  - Once d->done is set, feed consumes and writes nothing (returns 0).
 *  - Output is identical however the input is split between calls.
 */
size_t data_decoder_feed(struct data_decoder *d, const char *in, size_t len,
                         char *out, size_t *out_len);

/*
 * BDAT mode only: call after the LAST chunk. Releases held-back bytes
 * (a trailing CR is a bare CR) into out (room for 2 bytes) and sets
 * flags accordingly. A message not ending in CRLF is accepted as is.
 * (In BDAT mode feed writes a CR at once, so finish writes nothing and
 * only flags a trailing CR as bare; always append its output anyway.
 * After finish the decoder is at the beginning of a line again.)
 */
void data_decoder_finish(struct data_decoder *d, char *out, size_t *out_len);

#endif

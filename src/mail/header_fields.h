/*
 * header_fields.h - the header section of a message as it streams by:
 * which of From:, Date: and Message-ID: it has, the text of its From:
 * fields, and the one place where fields a submission server adds
 * (RFC 6409 8.3: Date, Message-ID) go. Used by the smtpd worker on
 * authenticated submission; written so that another caller (a local
 * pickup) can do the same with its own sink.
 *
 * A filter: header_scan_feed() takes message octets in pieces of any
 * size and passes them to the caller's sink unchanged and in order,
 * holding back at most HEADER_NAME_MAX octets (the start of a line that
 * may still turn out to be a field name). When the header section ends
 * the scanner calls at_end() exactly once, at that point of the stream,
 * so what at_end writes to the same sink lands in the right place:
 *
 *  - before the empty line that ends the header section;
 *  - before the first line that is neither a header field ("name:" with
 *    a name of printable ASCII other than ':', blanks allowed before the
 *    colon, RFC 5322 obs-optional) nor a continuation (a line starting
 *    with SP or HTAB after a field). The scanner then adds the empty
 *    line itself (after at_end), so that the line and everything after
 *    it is body for every reader: a header the scanner did not read can
 *    never reach anyone as a header (this also covers a message with no
 *    header section at all, and a field name longer than
 *    HEADER_NAME_MAX);
 *  - at the end of the message when it has no body (header_scan_finish;
 *    a last line without CRLF gets one first).
 *
 * Field names are matched case-insensitively, only in the header
 * section, never in the body. Only CRLF ends a line (a bare CR or LF is
 * line content; the session rejects such a message anyway).
 *
 * The From: fields' bodies are collected unfolded (CRLF removed, the
 * blanks kept), several From: fields joined by ",", up to HEADER_FROM_MAX
 * octets (from_overflow beyond). mail/mailbox_list.h parses them.
 *
 * Trusts nothing in the message: any octets are accepted, state is
 * bounded (sizeof(struct header_scan)), work is linear in the input.
 */
#ifndef SEALPOST_MAIL_HEADER_FIELDS_H
#define SEALPOST_MAIL_HEADER_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HEADER_NAME_MAX 128         /* longest field name recognised */
#define HEADER_FROM_MAX 8192        /* octets of From: field bodies kept */

#define HEADER_HAS_FROM       1u
#define HEADER_HAS_DATE       2u
#define HEADER_HAS_MESSAGE_ID 4u

enum header_end {
    HEADER_END_NONE,        /* still in the header section */
    HEADER_END_BLANK,       /* at the empty line */
    HEADER_END_BODY_LINE,   /* at a line that is no field: an empty line was added */
    HEADER_END_EOF,         /* the message ended in (or without) the header section */
};

struct header_scan;
typedef void (*header_sink)(void *arg, const char *data, size_t len);
typedef void (*header_at_end)(void *arg, const struct header_scan *h);

struct header_scan {
    /* results */
    unsigned seen;                  /* HEADER_HAS_* */
    enum header_end end;
    unsigned from_fields;           /* From: fields seen */
    bool from_overflow;             /* more than HEADER_FROM_MAX octets of them */
    size_t from_len;
    char from[HEADER_FROM_MAX];     /* their bodies, unfolded, joined by "," */
    /* private */
    int state;
    unsigned field;                 /* HEADER_HAS_* of the field being read, 0: other */
    bool prev_cr;
    size_t hold_len;
    char hold[HEADER_NAME_MAX + 1];
    header_sink sink;
    header_at_end at_end;
    void *arg;
};

/* Start a message. at_end may be NULL (then nothing is inserted). */
void header_scan_init(struct header_scan *h, header_sink sink, header_at_end at_end, void *arg);

/* Pass in[0..len) on to the sink, noting fields, calling at_end where
 * the header section ends. Once it has ended, the input goes to the sink
 * in one call. */
void header_scan_feed(struct header_scan *h, const char *in, size_t len);

/* The message is complete: releases what is held, and calls at_end if
 * the header section did not end before. */
void header_scan_finish(struct header_scan *h);

/* "Date: <RFC 5322 date-time of when>\r\n" into out; its length, 0 when
 * it does not fit. */
size_t header_format_date(char *out, size_t size, time_t when);

/* "Message-ID: <UNIQUE.NONCE@HOST>\r\n": unique is the caller's id for
 * the message (e.g. the queue id; letters, digits, '.', '-', '_' kept,
 * others dropped), nonce printed as 16 hex digits, host the server's
 * hostname. Its length, 0 when it does not fit. */
size_t header_format_message_id(char *out, size_t size, const char *unique, uint64_t nonce,
                                const char *host);

/* The fields h lacks among Date and Message-ID, formatted as above,
 * concatenated into out. Its length (0: nothing missing or no room). */
size_t header_format_missing(const struct header_scan *h, char *out, size_t size,
                             time_t when, const char *unique, uint64_t nonce,
                             const char *host);

#endif

/*
 * milter_proto.h - the Sendmail milter protocol, version 6, as an MTA
 * (client) speaks it: encoders for the commands we send and a strict
 * decoder for every reply a milter may send. Pure codec, no I/O (the
 * conversation is milter_conv.c).
 *
 * On the wire a packet is a 4-octet big-endian length (covering the
 * command octet and the data), the command octet, then the data.
 * Strings are NUL-terminated. Numbers are 32-bit big-endian.
 *
 * Trusts: nothing in a reply. Every length is checked against the packet
 * and the limits below; a reply that breaks a rule is refused with a
 * reason, never guessed at.
 *
 * What the decoder hands over (the conventions milter_apply.c and the
 * queue rely on):
 *  - header names: 1..MILTER_NAME_MAX printable ASCII octets, no ':'
 *    (RFC 5322 ftext);
 *  - header values: at most MILTER_VALUE_MAX octets, no NUL, no control
 *    octet but HTAB, and CR/LF only as folding: a line break is "\n" or
 *    "\r\n" (libmilter passes through whatever the milter gave it; OpenDKIM
 *    folds with "\n\t", rspamd with "\r\n\t" or "\n\t") and is always
 *    followed by SP or HTAB and then something else than white space (no
 *    folded line of only white space, RFC 5322 3.2.2). No line break at
 *    the end. Octets >= 0x80 are
 *    kept (an SMTPUTF8 Subject: rewritten by a milter). The value is what
 *    follows "Name: " (we never offer SMFIP_HDR_LEADSPC, so the single
 *    space after the colon is not part of it), folding as the milter sent
 *    it: milter_apply turns each "\n" or "\r\n" into CRLF.
 *  - addresses (SMFIR_ADDRCPT/_PAR, DELRCPT, CHGFROM): one pair of
 *    enclosing <> removed, at most ADDR_PATH_MAX octets, no control octet;
 *    "" only for CHGFROM (the null sender). Syntax is the queue's job.
 *  - ESMTP args: printable ASCII, NULL when absent or empty.
 *  - SMFIR_REPLYCODE: folded to one line "CODE X.Y.Z text" (see
 *    milter_reply_decode below).
 */
#ifndef SEALPOST_MILTER_MILTER_PROTO_H
#define SEALPOST_MILTER_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "milter/milter_types.h"

#define MILTER_PROTO_VERSION 6

/* The longest reply packet (command octet + data) we read. Postfix takes
 * up to 2^30; libmilter sends at most 64 KiB per packet (REPLBODY chunks
 * included) unless an MTA offers SMFIP_MDS_1M, which we do not. */
#define MILTER_PACKET_MAX (1024 * 1024 + 1)
/* The most data we put in one packet: libmilter refuses a packet whose
 * data is longer than this (its default Maxdatasize). Body chunks are
 * this size; a longer header field is truncated to fit. */
#define MILTER_SEND_DATA_MAX 65535
#define MILTER_ARGS_MAX 1024            /* ESMTP args of CHGFROM/ADDRCPT_PAR */
#define MILTER_SYMLIST_MAX 1024         /* one stage's macro names (OPTNEG) */
#define MILTER_SMTP_LINE_MAX 510        /* RFC 5321 4.5.3.1.5 without CRLF */

/* Commands, MTA to milter. */
#define SMFIC_ABORT   'A'
#define SMFIC_BODY    'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO   'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO    'H'
#define SMFIC_HEADER  'L'
#define SMFIC_MAIL    'M'
#define SMFIC_EOH     'N'
#define SMFIC_OPTNEG  'O'
#define SMFIC_QUIT    'Q'
#define SMFIC_RCPT    'R'
#define SMFIC_DATA    'T'

/* Replies, milter to MTA. */
#define SMFIR_ADDRCPT     '+'
#define SMFIR_DELRCPT     '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_ACCEPT      'a'
#define SMFIR_REPLBODY    'b'
#define SMFIR_CONTINUE    'c'
#define SMFIR_DISCARD     'd'
#define SMFIR_CHGFROM     'e'
#define SMFIR_ADDHEADER   'h'
#define SMFIR_INSHEADER   'i'
#define SMFIR_CHGHEADER   'm'
#define SMFIR_PROGRESS    'p'
#define SMFIR_QUARANTINE  'q'
#define SMFIR_REJECT      'r'
#define SMFIR_SKIP        's'
#define SMFIR_TEMPFAIL    't'
#define SMFIR_REPLYCODE   'y'
#define SMFIR_OPTNEG      'O'

/* Actions a milter may take (SMFIF_*). */
#define SMFIF_ADDHDRS     0x001u
#define SMFIF_CHGBODY     0x002u
#define SMFIF_ADDRCPT     0x004u
#define SMFIF_DELRCPT     0x008u
#define SMFIF_CHGHDRS     0x010u
#define SMFIF_QUARANTINE  0x020u
#define SMFIF_CHGFROM     0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST  0x100u
/* All of them: we can carry out every modification. */
#define MILTER_ACTIONS_OFFERED 0x1ffu

/* Protocol steps (SMFIP_*). */
#define SMFIP_NOCONNECT   0x000001u
#define SMFIP_NOHELO      0x000002u
#define SMFIP_NOMAIL      0x000004u
#define SMFIP_NORCPT      0x000008u
#define SMFIP_NOBODY      0x000010u
#define SMFIP_NOHDRS      0x000020u
#define SMFIP_NOEOH       0x000040u
#define SMFIP_NR_HDR      0x000080u
#define SMFIP_NOUNKNOWN   0x000100u
#define SMFIP_NODATA      0x000200u
#define SMFIP_SKIP        0x000400u
#define SMFIP_RCPT_REJ    0x000800u
#define SMFIP_NR_CONN     0x001000u
#define SMFIP_NR_HELO     0x002000u
#define SMFIP_NR_MAIL     0x004000u
#define SMFIP_NR_RCPT     0x008000u
#define SMFIP_NR_DATA     0x010000u
#define SMFIP_NR_UNKN     0x020000u
#define SMFIP_NR_EOH      0x040000u
#define SMFIP_NR_BODY     0x080000u
#define SMFIP_HDR_LEADSPC 0x100000u
/* What we offer: every step may be left out (NO*) or left unanswered
 * (NR_*), and SMFIR_SKIP works. Not offered: SMFIP_RCPT_REJ (we replay
 * only accepted recipients, there are no rejected ones to show) and
 * SMFIP_HDR_LEADSPC (one convention for header values, see above).
 * Bits a milter asks for that we did not offer are ignored, as Postfix
 * does. */
#define MILTER_PROTOCOL_OFFERED 0x0ff7ffu

/* The stages a milter may ask macros for (SMFIM_*, OPTNEG symlists). */
enum milter_stage {
    MILTER_STAGE_CONNECT = 0, MILTER_STAGE_HELO, MILTER_STAGE_MAIL,
    MILTER_STAGE_RCPT, MILTER_STAGE_DATA, MILTER_STAGE_EOM, MILTER_STAGE_EOH,
    MILTER_STAGES
};

/* One packet to send: length word, command, data. */
struct milter_packet {
    size_t len;                                     /* octets in buf */
    unsigned char buf[4 + 1 + MILTER_SEND_DATA_MAX];
};

/* Encoders: false when the data would exceed MILTER_SEND_DATA_MAX (or a
 * header value holds a NUL); the packet is then unusable. */
void milter_encode_optneg(struct milter_packet *p, uint32_t version, uint32_t actions,
                          uint32_t protocol);
void milter_encode_empty(struct milter_packet *p, char cmd);   /* T N E A Q */
/* SMFIC_MACRO for command cmd: names[i] = values[i], n pairs. */
bool milter_encode_macro(struct milter_packet *p, char cmd, const char *const *names,
                         const char *const *values, size_t n);
/* SMFIC_CONNECT: family '4' or '6' with port and address, 'U' without. */
bool milter_encode_connect(struct milter_packet *p, const char *hostname, char family,
                           uint16_t port, const char *addr);
bool milter_encode_helo(struct milter_packet *p, const char *helo);
/* SMFIC_MAIL / SMFIC_RCPT: "<addr>" then each ESMTP arg, all NUL-ended. */
bool milter_encode_addr(struct milter_packet *p, char cmd, const char *addr,
                        const char *const *args, size_t nargs);
/* SMFIC_HEADER: name\0value\0; value_len octets of value (no NUL). */
bool milter_encode_header(struct milter_packet *p, const char *name, const char *value,
                          size_t value_len);
/* SMFIC_BODY: len <= MILTER_SEND_DATA_MAX octets. */
bool milter_encode_body(struct milter_packet *p, const void *data, size_t len);

/* The length word of a reply: false (with why) unless
 * 1 <= length <= MILTER_PACKET_MAX. */
bool milter_packet_length(const unsigned char word[4], uint32_t *len,
                          char *err, size_t errsize);

/* A decoded reply. Pointers point into the packet given to the decoder
 * (which must outlive their use). name, args and symlist[] are
 * NUL-terminated there; value is value_len octets (NUL-terminated too,
 * except an address whose enclosing <> were removed). */
struct milter_reply {
    char cmd;                                   /* SMFIR_* */
    /* SMFIR_OPTNEG */
    uint32_t version, actions, protocol;
    const char *symlist[MILTER_STAGES];         /* NULL: not given */
    /* SMFIR_INSHEADER, SMFIR_CHGHEADER */
    uint32_t index;
    /* ADDHEADER/INSHEADER/CHGHEADER: name and value; ADDRCPT(_PAR),
     * DELRCPT, CHGFROM: value is the address; QUARANTINE: the reason. */
    const char *name;
    const char *value;
    size_t value_len;
    const char *args;                           /* ADDRCPT_PAR, CHGFROM */
    /* SMFIR_REPLBODY */
    const unsigned char *body;
    size_t body_len;
    /* SMFIR_REPLYCODE: "CODE X.Y.Z text" (see milter_reply_decode) */
    char reply[MILTER_REPLY_MAX + 1];
};

/*
 * Decode one reply packet: pkt[0] is the command octet, pkt[1..len-1] its
 * data (len as the length word said). Checks the form of each reply
 * (which replies are allowed when is milter_conv.c's business). False
 * with a reason for anything malformed: an unknown command, data where
 * none belongs, a string without its NUL, a NUL or a forbidden octet
 * inside a value, a value too long, an OPTNEG reply shorter than 12
 * octets or with a bad symlist, a reply code that is not 4xx/5xx or
 * whose second digit is not 0-5 (RFC 5321 4.2.1).
 *
 * SMFIR_REPLYCODE: a NUL-terminated SMTP reply, one line or several
 * joined by "\r\n" (smfi_setmlreply) with "CODE-" on every line but the
 * last and the same code on all; each line at most MILTER_SMTP_LINE_MAX
 * printable ASCII octets; an enhanced status code (RFC 3463), when a
 * line has one, of the same class as the reply code. "%%" reads as "%"
 * and a lone "%" is dropped (milters double it for Sendmail, which uses
 * the text as a format; Postfix does the same). The lines are folded
 * into one: the code, the first line's enhanced code (or 5.7.1 / 4.7.1
 * when it has none), then each line's text separated by single spaces,
 * cut to MILTER_SMTP_LINE_MAX octets. An empty text becomes Postfix's
 * "Command rejected" / "Service unavailable - try again later".
 */
bool milter_reply_decode(const unsigned char *pkt, size_t len, struct milter_reply *r,
                         char *err, size_t errsize);

#endif

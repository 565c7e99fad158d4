/*
 * smtp_reply.h - the pure parts of the SMTP client: reply parser
 * (RFC 5321 4.2), enhanced status codes (RFC 3463), EHLO capabilities,
 * and the DATA dot-stuffing encoder (RFC 5321 4.5.2).
 *
 * No sockets and no allocation, so every function here is unit-tested
 * on plain byte strings (tests/unit/test_smtp_reply.c).
 *
 * Trusts: nothing. Reply bytes come from a remote server; every line is
 * bounded (SMTP_REPLY_LINE_MAX) and so is the number of lines.
 */
#ifndef SEALPOST_DELIVERY_SMTP_REPLY_H
#define SEALPOST_DELIVERY_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX   512   /* octets per reply line, CRLF included */
#define SMTP_REPLY_LINES_MAX  100   /* lines per reply */
#define SMTP_REPLY_TEXT_MAX   (SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINE_MAX)

enum smtp_reply_status {
    REPLY_NEED_MORE = 0,    /* no complete line in the input yet */
    REPLY_CONTINUE,         /* one line consumed; the reply goes on ("250-") */
    REPLY_DONE,             /* the last line consumed; the reply is complete */
    REPLY_ERR_TOO_LONG,     /* a line over SMTP_REPLY_LINE_MAX octets */
    REPLY_ERR_TOO_MANY,     /* more than SMTP_REPLY_LINES_MAX lines */
    REPLY_ERR_SYNTAX,       /* not "ddd", "ddd text" or "ddd-text", or code outside 200-599 */
    REPLY_ERR_MIXED,        /* a continuation line with a different code */
};

/*
 * One reply being assembled. text holds the text of every line (after
 * the "250-" / "250 "), separated by '\n' and NUL-terminated; a reply
 * line cannot contain LF, so the separator is unambiguous. dsn is set
 * when the reply is complete: the RFC 3463 code at the start of the
 * first line when its class matches the reply code, else "2.0.0",
 * "4.0.0" or "5.0.0" (and "3.0.0" for 354).
 */
struct smtp_reply {
    int code;                       /* 0 until the first line */
    size_t lines;
    size_t text_len;
    char dsn[16];
    char text[SMTP_REPLY_TEXT_MAX];
};

void smtp_reply_init(struct smtp_reply *r);

/*
 * Consume at most one line from buf[0..len). A line ends with LF (a CR
 * before it is dropped); it must start with three digits forming a code
 * of 200-599, followed by end of line, SP (last line) or '-' (more
 * lines follow). *consumed is the number of bytes used (0 unless the
 * status is REPLY_CONTINUE or REPLY_DONE). After REPLY_DONE or an
 * error, call smtp_reply_init() before parsing the next reply.
 */
enum smtp_reply_status smtp_reply_parse(struct smtp_reply *r, const char *buf, size_t len,
                                        size_t *consumed);

/* Words for an error status, for logs and deferral texts. */
const char *smtp_reply_status_text(enum smtp_reply_status st);

/*
 * Iterate over the lines of a complete reply: pass *pos = 0 first; each
 * call sets *line / *len and advances *pos. Returns false at the end.
 */
bool smtp_reply_next_line(const struct smtp_reply *r, size_t *pos, const char **line,
                          size_t *len);

/*
 * If text starts with an RFC 3463 code "c.sss.ddd" (class c equal to
 * reply_class, 1-3 digits each for subject and detail) followed by SP
 * or the end, copy it to dsn and return its length; else return 0 and
 * leave dsn alone. dsnsize must be at least 10.
 */
size_t smtp_enhanced_code(const char *text, size_t len, int reply_class, char *dsn,
                          size_t dsnsize);

/*
 * The reply on one line for results and logs: "550 5.1.1 No such user"
 * (code, then the text of every line joined by " "). Control bytes
 * become '?'. Truncated to fit; out is always NUL-terminated.
 */
void smtp_reply_format(const struct smtp_reply *r, char *out, size_t outsize);

/* What a server offers in its EHLO reply (RFC 5321 4.1.1.1). */
struct smtp_caps {
    bool esmtp;                     /* EHLO was accepted (else HELO) */
    bool pipelining;                /* RFC 2920 */
    bool size;                      /* RFC 1870 */
    uint64_t size_max;              /* 0: SIZE without a (valid) limit */
    bool eightbitmime;              /* RFC 6152 */
    bool smtputf8;                  /* RFC 6531 */
    bool starttls;                  /* RFC 3207 */
    bool chunking;                  /* RFC 3030 */
    bool dsn;                       /* RFC 3461 */
    bool requiretls;                /* RFC 8689 */
    bool auth_plain, auth_login;    /* RFC 4954 AUTH (also the old "AUTH=" form) */
};

/* Apply one EHLO keyword line ("SIZE 10240000"); case-insensitive;
 * unknown keywords are ignored. Returns true if the keyword is known. */
bool smtp_caps_line(struct smtp_caps *caps, const char *line, size_t len);

/* Reset caps and apply every line of an EHLO reply but the first (the
 * server's name); sets esmtp. */
void smtp_caps_parse(struct smtp_caps *caps, const struct smtp_reply *ehlo);

/*
 * Dot-stuffing encoder for DATA: a '.' at the start of a line is
 * doubled. Line starts are found after every LF (so a bare LF counts,
 * which is the safe reading). State carries across chunks, so input
 * may be split anywhere.
 */
struct dot_stuffer {
    bool line_start;                /* the next byte starts a line */
    char prev, last;                /* the last two input bytes */
    bool any;                       /* some input was seen */
};

#define DOT_STUFF_END_MAX 5         /* "\r\n.\r\n" */

void dot_stuff_init(struct dot_stuffer *d);

/* Encode in[0..len) into out, which must hold 2 * len bytes; returns
 * the number of bytes written. */
size_t dot_stuff(struct dot_stuffer *d, const char *in, size_t len, char *out);

/* The end of the data: CRLF if the input did not end with one, then
 * ".\r\n". out must hold DOT_STUFF_END_MAX bytes; returns the length. */
size_t dot_stuff_end(const struct dot_stuffer *d, char *out);

#endif

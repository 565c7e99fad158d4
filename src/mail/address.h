/*
 * address.h - RFC 5321 path and mailbox parser (with RFC 6531 SMTPUTF8).
 *
 * Trusts nothing: input is raw bytes from the network. Output is a
 * validated mailbox whose parts contain no control characters, no CR/LF
 * and no NUL, so they are safe to put in logs (quoted), headers and the
 * queue envelope. Never builds paths: see mail/recipient.c for that.
 */
#ifndef SEALPOST_MAIL_ADDRESS_H
#define SEALPOST_MAIL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX   64    /* RFC 5321 4.5.3.1.1, octets, wire form */
#define ADDR_DOMAIN_MAX  255   /* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX    256   /* RFC 5321 4.5.3.1.3, including < > */

enum addr_status {
    ADDR_OK = 0,
    ADDR_ERR_SYNTAX,        /* not a valid path */
    ADDR_ERR_TOO_LONG,      /* local part, domain or path over its limit */
    ADDR_ERR_UTF8,          /* non-ASCII but UTF-8 not allowed here */
};

struct mailbox {
    bool is_null;                       /* "<>" */
    bool is_bare_postmaster;            /* "<Postmaster>" without domain */
    bool has_utf8;                      /* some octet >= 0x80 */
    bool domain_is_literal;             /* "[...]" */
    char local[ADDR_LOCAL_MAX + 1];     /* wire form, quotes kept */
    char local_unquoted[ADDR_LOCAL_MAX + 1]; /* quoted-string decoded */
    char domain[ADDR_DOMAIN_MAX + 1];   /* as written, brackets kept */
};

/*
 * Parse a path that starts at s[0] == '<'. On ADDR_OK, *consumed is the
 * number of bytes up to and including the closing '>'. allow_utf8 is
 * true when the transaction announced SMTPUTF8; then UTF-8 in local part
 * and domain is accepted (it must be well-formed UTF-8; anything else is
 * ADDR_ERR_SYNTAX). A source route ("<@a,@b:user@c>") is accepted and
 * dropped. "<>" sets is_null. "<postmaster>" (any case) sets
 * is_bare_postmaster with an empty domain.
 *
 * Clarifications (address.c): the verdict order is SYNTAX, then TOO_LONG,
 * then UTF8, so ADDR_ERR_UTF8 means "valid path that needs SMTPUTF8".
 * The path limit counts the consumed bytes, source route included. C1
 * controls (U+0080..U+009F) are refused like C0 controls. has_utf8 covers
 * local part and domain only (a dropped source route does not set it).
 * On any error *out is zeroed and *consumed is 0. local_unquoted may be
 * empty ("<\"\"@x>") and may hold SP, '"', '\\', '/', "..": callers that
 * build anything from it must check it themselves.
 */
enum addr_status address_parse_path(const char *s, size_t len, bool allow_utf8,
                                    struct mailbox *out, size_t *consumed);

/* "local@domain" (wire form), or "" for the null path, into out.
 * A bare postmaster (empty domain) is written as the local part alone.
 * Truncates to outsize (always NUL-terminated unless outsize is 0). */
void mailbox_format(const struct mailbox *mb, char *out, size_t outsize);

/*
 * The canonical "local@domain" of mb (RFC 5321 4.1.2: a Quoted-string
 * and the Dot-string it decodes to name the same local part; a quoted
 * pair "\\x" is the octet x). The local part is the decoded local part
 * written as a Dot-string when it is one, else as a Quoted-string that
 * escapes only '"' and '\\'. Case is kept as written (callers compare
 * ASCII case-insensitively where they need to); the domain is kept as
 * written. It is never longer than the wire form, so it fits every
 * buffer mailbox_format fits. "" for the null path; a bare postmaster is
 * "postmaster" as written.
 */
void mailbox_format_canonical(const struct mailbox *mb, char *out, size_t outsize);

/* Well-formed UTF-8 check (no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

#endif

/*
 * command.h - SMTP command line parser (RFC 5321 4.1, 3030, 1870, 6152,
 * 6531, 8689, 3461).
 *
 * Input is one command line without its CRLF, straight from the network.
 * The parser only checks syntax; sequencing and policy belong to the
 * session (smtpd/session.c).
 */
#ifndef SEALPOST_SMTPD_COMMAND_H
#define SEALPOST_SMTPD_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/address.h"
#include "mail/mail_params.h"

enum smtp_verb {
    VERB_UNKNOWN = 0,
    VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_BDAT,
    VERB_RSET, VERB_NOOP, VERB_QUIT, VERB_VRFY, VERB_EXPN, VERB_HELP,
    VERB_STARTTLS, VERB_AUTH,
};

struct smtp_command {
    enum smtp_verb verb;
    const char *args;       /* points into the line after the verb and */
    size_t args_len;        /* its single separating space; may be 0    */
};

/*
 * Split a command line into verb and arguments. The verb is matched
 * case-insensitively and must be followed by end of line or one SP.
 * Returns false for an empty line or a verb that is not a letter string;
 * an unknown letter string yields true with VERB_UNKNOWN.
 */
bool command_split(const char *line, size_t len, struct smtp_command *cmd);

/* Verdict of parsing MAIL or RCPT arguments; the session maps these to
 * replies (see reply text in smtpd/session.c). */
enum param_status {
    PARAM_OK = 0,
    PARAM_ERR_SYNTAX,         /* 501 5.5.4: broken "FROM:"/"TO:" or params */
    PARAM_ERR_ADDRESS,        /* 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
    PARAM_ERR_ADDRESS_UTF8,   /* 553 5.6.7: non-ASCII address w/o SMTPUTF8 */
    PARAM_ERR_UNKNOWN,        /* 555 5.5.4: unknown or unadvertised param */
    PARAM_ERR_VALUE,          /* 501 5.5.4: bad value of a known param */
    PARAM_ERR_DUPLICATE,      /* 501 5.5.4: parameter given twice */
};

/* Which optional extensions the session currently advertises. A
 * parameter whose extension is off is PARAM_ERR_UNKNOWN. */
struct param_features {
    bool requiretls;    /* REQUIRETLS (only inside TLS) */
    bool dsn;           /* RET/ENVID/NOTIFY/ORCPT */
    bool auth;          /* MAIL AUTH=<mailbox> (RFC 4954 5), where AUTH is offered */
};

struct mail_args {
    struct mailbox from;
    bool has_size;
    uint64_t size;
    enum body_type body;
    bool smtputf8;
    bool requiretls;
    enum dsn_ret ret;
    char envid[DSN_ENVID_MAX + 1];     /* xtext as given, "" if none */
};

struct rcpt_args {
    struct mailbox to;
    unsigned notify;                   /* DSN_NOTIFY_* bits, 0 = unset */
    char orcpt[DSN_ORCPT_MAX + 1];     /* "rfc822;xtext" as given, "" if none */
};

/*
 * Parse the arguments of MAIL ("FROM:<path> [params]") and RCPT
 * ("TO:<path> [params]"). "FROM:" / "TO:" are case-insensitive; spaces
 * between the colon and '<' are tolerated (common client behaviour,
 * documented in docs/SMTP.md). Parameters are separated by single or
 * multiple SP. For RCPT, utf8_ok is the SMTPUTF8 state of the
 * transaction; for MAIL it is derived from the SMTPUTF8 parameter.
 *
 * Clarifications (command.c): nothing after "FROM:"/"TO:" is
 * PARAM_ERR_SYNTAX; something that is not a valid path (also a missing
 * '<') is PARAM_ERR_ADDRESS, and so is "<Postmaster>" in MAIL and "<>" in
 * RCPT. The path must be followed by SP or end of line. Address errors
 * come before parameter errors, except the MAIL SMTPUTF8 verdict
 * (PARAM_ERR_ADDRESS_UTF8), which needs the parameters first. Parameters
 * are checked left to right and the first problem decides; a bad
 * esmtp-keyword or esmtp-value (e.g. "SIZE=") is PARAM_ERR_SYNTAX. SIZE,
 * BODY and SMTPUTF8 are always known; ENVID/ORCPT limits apply to the
 * xtext as given. feat may be NULL (no optional extensions).
 */
enum param_status command_parse_mail(const char *args, size_t len,
                                     const struct param_features *feat,
                                     struct mail_args *out);
enum param_status command_parse_rcpt(const char *args, size_t len, bool utf8_ok,
                                     const struct param_features *feat,
                                     struct rcpt_args *out);

/*
 * Parse BDAT arguments: "<chunk-size> [LAST]" (RFC 3030). Size is 1*DIGIT
 * and must fit in uint64_t (at most 19 digits accepted). Returns false on
 * syntax error.
 */
bool command_parse_bdat(const char *args, size_t len, uint64_t *size, bool *last);

/*
 * Check a HELO/EHLO argument: a domain (letters, digits, '-', '_', '.';
 * UTF-8 labels allowed) or an address literal "[...]" with printable
 * content, at most 255 octets, nothing after it except SP and text which
 * is ignored. On success copies the identity into out (NUL-terminated).
 * Only the character set is checked (no label structure), so policy may
 * want to be stricter. Returns false, with out = "", when the identity
 * and its NUL do not fit in outsize.
 */
bool command_parse_helo(const char *args, size_t len, char *out, size_t outsize);

#endif

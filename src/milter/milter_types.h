/*
 * milter_types.h - what the milter role knows about one message and what
 * a milter answered about it: the shared vocabulary of the milter
 * conversation (milter_conv.h), the editing of the message
 * (milter_apply.h) and the role (milter_role.c).
 *
 * Everything in struct milter_outcome came from a network peer (the
 * milter) and was length-checked by milter_proto.c; it is still only a
 * milter's opinion: the queue re-checks the envelope changes.
 */
#ifndef SEALPOST_MILTER_MILTER_TYPES_H
#define SEALPOST_MILTER_MILTER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mail/address.h"
#include "mail/envelope.h"

/* Where a milter listens: "unix:/path" or "inet:host:port" (Postfix and
 * Sendmail spell them so; inet6:[addr]:port too). host is an IP address
 * literal (the role resolves nothing). */
#define MILTER_PATH_MAX 108                     /* sun_path */
struct milter_target {
    bool is_unix;
    char path[MILTER_PATH_MAX];                 /* unix */
    char host[64];                              /* inet: IPv4 or IPv6 literal */
    uint16_t port;
};

/* How far a conversation goes: the whole message (a milter with stage =
 * data), or up to and including one SMTP command (stage = connect, mail
 * or rcpt: a check whose verdict answers that command; the envelope then
 * holds what the session has so far, and at RCPT only that recipient). */
enum milter_upto {
    MILTER_UPTO_EOM = 0, MILTER_UPTO_CONNECT, MILTER_UPTO_MAIL, MILTER_UPTO_RCPT,
};

/* What the milter hears about the session and the message: the SMTP
 * events it would have seen, replayed from the queue's envelope. */
struct milter_facts {
    enum milter_upto upto;              /* EOM: the whole conversation */
    const char *hostname;               /* this MTA ("j" macro) */
    const char *queue_id;               /* "i" macro */
    const char *client_addr;            /* IP literal */
    uint16_t client_port;               /* 0: unknown */
    const char *client_name;            /* reverse name, or "[ADDR]" when unknown */
    const char *helo;
    const char *auth_user;              /* "" when the session did not AUTH */
    /* The SASL mechanism of that AUTH ("PLAIN", "LOGIN"; "" without AUTH
     * or when unknown): the {auth_type} macro, which OpenDKIM asks for to
     * tell an authenticated sender (whose mail it signs) from others. */
    const char *auth_type;
    const char *tls_version;            /* "" in cleartext, else e.g. "TLSv1.3" */
    const char *tls_cipher;
    const struct envelope *env;         /* from, recipients (with DSN parameters) */
    /* How many header fields at the top of the message the milters are
     * not shown: 0, or 1 to keep sealpost's own Received: from them as
     * Postfix and Sendmail do (milter_apply's hidden_fields: then an
     * INSERT index counts it, a CHANGE index does not). */
    unsigned hidden_fields;
    int msg_fd;                         /* the spool file, read-only (EOM only) */
    off_t msg_offset;                   /* where the message (header) starts */
    size_t msg_size;                    /* octets of message, CRLF line ends */
    /* The longest replacement body (SMFIR_REPLBODY) taken from a milter:
     * the listener's message size limit; 0: MILTER_BODY_MAX_DEFAULT.
     * A milter that sends more breaks the protocol (default_action). */
    size_t body_max;
};
#define MILTER_BODY_MAX_DEFAULT (64u * 1024 * 1024)

/* How the conversation ended. When several milters answer, the first
 * REJECT, TEMPFAIL or DISCARD decides (see MILTER_ACCEPT). */
enum milter_verdict {
    MILTER_CONTINUE = 0,    /* go on: accept with the edits collected */
    MILTER_ACCEPT,          /* accept: this milter wants no more events.
                               Like CONTINUE for the others: in Postfix and
                               Sendmail an ACCEPT ends only that milter's
                               conversation, later milters still run (rspamd
                               and OpenDKIM both answer EOM with ACCEPT: were
                               later milters skipped, rspamd first would
                               keep OpenDKIM from signing) */
    MILTER_REJECT,          /* 5xx (reply text in outcome.reply) */
    MILTER_TEMPFAIL,        /* 4xx */
    MILTER_DISCARD,         /* accept and drop silently */
};

enum milter_edit_kind {
    MILTER_EDIT_ADD_HEADER,     /* SMFIR_ADDHEADER: append name: value */
    MILTER_EDIT_INSERT_HEADER,  /* SMFIR_INSHEADER: insert at index (0 = top) */
    MILTER_EDIT_CHANGE_HEADER,  /* SMFIR_CHGHEADER: index-th (1-based) field
                                   of that name; empty value deletes it */
    MILTER_EDIT_ADD_RCPT,       /* SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR */
    MILTER_EDIT_DELETE_RCPT,    /* SMFIR_DELRCPT */
    MILTER_EDIT_CHANGE_FROM,    /* SMFIR_CHGFROM */
};

#define MILTER_NAME_MAX   128           /* header field name */
#define MILTER_VALUE_MAX  8192          /* header field value (unfolded or not) */
#define MILTER_REPLY_MAX  512           /* one SMTP reply, "550 5.7.1 text" */
#define MILTER_EDITS_MAX  256           /* edits per message, all milters */

struct milter_edit {
    enum milter_edit_kind kind;
    uint32_t index;                     /* insert/change header */
    char name[MILTER_NAME_MAX + 1];     /* header name, or unused */
    char *value;                        /* header value, or the address (without
                                           <>) for rcpt/from edits; malloc'ed,
                                           NUL-terminated, never NUL inside */
    char *args;                         /* ESMTP args of ADDRCPT_PAR/CHGFROM, or NULL */
};

struct milter_outcome {
    enum milter_verdict verdict;        /* CONTINUE..DISCARD */
    /* For REJECT/TEMPFAIL: a complete reply "CODE X.Y.Z text" (one line,
     * printable ASCII), from SMFIR_REPLYCODE or made up ("550 5.7.1
     * Command rejected" / "451 4.7.1 Service unavailable - try again
     * later", Postfix's words). */
    char reply[MILTER_REPLY_MAX + 1];
    bool quarantine;                    /* SMFIR_QUARANTINE seen */
    char reason[MILTER_REPLY_MAX + 1];  /* its reason, printable ASCII */
    struct milter_edit edits[MILTER_EDITS_MAX];
    size_t edit_count;
    /* SMFIR_REPLBODY chunks, concatenated (malloc'ed; NULL: body kept).
     * CRLF line ends as the milter sent them; milter_apply checks them. */
    bool body_replaced;
    char *body;
    size_t body_len;
    char milter[64];                    /* the name of the milter that decided */
};

void milter_outcome_init(struct milter_outcome *o);
void milter_outcome_clear(struct milter_outcome *o);   /* frees edits and body */

#endif

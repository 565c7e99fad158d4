/*
 * envelope.h - the envelope of a queued message and its on-disk form.
 *
 * A spool file is the envelope (text, one "key value" per line, ending
 * with an empty line) followed by the message bytes exactly as they will
 * be delivered (CRLF line ends). See docs/SPOOL.md. Values written here
 * come from validated session state (addresses already parsed, no CR/LF);
 * the reader trusts only the spool directory's owner but still checks
 * every line, so a damaged file is reported, never misread.
 */
#ifndef SEALPOST_MAIL_ENVELOPE_H
#define SEALPOST_MAIL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "util/ipc.h"
#include "mail/address.h"
#include "mail/mail_params.h"

#define QUEUE_ID_LEN     16
#define ENVELOPE_MAGIC   "sealpost-envelope 1"
#define ENVELOPE_MAX_RCPTS 100000

/*
 * The serialized envelope travels from an smtpd worker to the queue in
 * one IPC message, with room to spare for what a message type may add:
 * a RCPT that would make it longer is refused (452 4.5.3), so no client
 * can build an envelope the channel cannot carry. ENVELOPE_RCPT_LINE_MAX
 * is the longest "rcpt" line; ENVELOPE_HEAD_MAX bounds everything else.
 */
#define ENVELOPE_WIRE_MAX (IPC_MAX_PAYLOAD - 1024)
#define ENVELOPE_RCPT_LINE_MAX (sizeof("rcpt 15  \n") + DSN_ORCPT_MAX + ADDR_PATH_MAX)
#define ENVELOPE_HEAD_MAX 1536
/* Recipients of any size that always fit: RFC 5321 4.5.3.1.8 says a
 * server must take at least 100; a client sending more of the largest
 * kind gets 452 and sends the rest in another transaction (RFC 5321
 * 4.5.3.1.10). */
#define ENVELOPE_RCPTS_ALWAYS_FIT \
    ((ENVELOPE_WIRE_MAX - ENVELOPE_HEAD_MAX) / ENVELOPE_RCPT_LINE_MAX)
_Static_assert(ENVELOPE_RCPTS_ALWAYS_FIT >= 100,
               "an envelope of 100 maximal recipients must fit one IPC message");

struct envelope_rcpt {
    char addr[ADDR_PATH_MAX + 1];       /* local@domain, as received */
    unsigned notify;                    /* DSN_NOTIFY_* */
    char orcpt[DSN_ORCPT_MAX + 1];
};

struct envelope {
    char id[QUEUE_ID_LEN + 1];
    time_t arrival;
    char client[64];                    /* client IP address */
    char helo[256];
    char from[ADDR_PATH_MAX + 1];       /* "" for the null reverse-path */
    enum body_type body;
    bool smtputf8;
    bool requiretls;
    enum dsn_ret ret;
    char envid[DSN_ENVID_MAX + 1];
    /* A DSN about this message carries none of it: no header, no body,
     * no ENVID, no ORCPT (received in cleartext on a require_tls
     * listener, docs/SMTP.md). Key "dsn_content none", written only when
     * set, so spools without it read as before. */
    bool dsn_content_withheld;
    struct envelope_rcpt *rcpts;
    size_t rcpt_count;
    size_t rcpt_alloc;
    size_t rcpt_bytes;                  /* serialized "rcpt" lines, kept by add */
};

/* name is a well-formed queue id (nothing else can name a spool file). */
bool queue_id_valid(const char *name);

void envelope_init(struct envelope *env);
void envelope_clear(struct envelope *env);    /* frees recipients */
void envelope_add_rcpt(struct envelope *env, const char *addr,
                       unsigned notify, const char *orcpt);

/* Octets the serialized envelope would take with one more recipient
 * (addr == NULL: as it is). Cheap: the recipients' share is kept. */
size_t envelope_wire_len(const struct envelope *env, const char *addr, unsigned notify,
                         const char *orcpt);

/* Serialize into a malloc'ed buffer (NUL-terminated, *len excludes NUL). */
char *envelope_serialize(const struct envelope *env, size_t *len);

/*
 * Parse the envelope at the start of an open spool file. On success the
 * stream is positioned at the first message byte and *body_offset is set.
 * Returns false with a reason in err on a malformed envelope.
 */
bool envelope_read(FILE *fp, struct envelope *env, long *body_offset,
                   char *err, size_t errsize);
/* The same for an envelope still being built (a milter check at MAIL or
 * RCPT, mail/milter_check.h): the id and the recipients may be missing. */
bool envelope_read_partial(FILE *fp, struct envelope *env, char *err, size_t errsize);

#endif

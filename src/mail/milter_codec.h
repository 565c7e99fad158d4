/*
 * milter_codec.h - the two messages between the queue process and the
 * milter role (README "Milters", docs/ARCHITECTURE.md):
 *
 *   job     queue -> milter: ask the listener's milters about this
 *           message (the spool file travels beside it as a read-only
 *           descriptor; the milter role reads the envelope from it);
 *   result  milter -> queue: the verdict, the envelope changes, and
 *           whether the message was rewritten (the new message then
 *           travels beside it in a sealed memfd).
 *
 * A job names the authenticated user and its SASL mechanism both or
 * neither ("auth USER", "auth_type PLAIN"). The milter role talks to
 * milters, which are network peers, so the queue decodes a result as
 * untrusted input: known keys only, every value bounded, printable ASCII
 * (addresses may be UTF-8; a milter's name only letters, digits, '-' and
 * '_', as in the config), counts bounded, the reply a well-formed SMTP
 * reply of the verdict's class. Both directions are "key value" lines
 * (the form of the spool's envelope).
 */
#ifndef SEALPOST_MAIL_MILTER_CODEC_H
#define SEALPOST_MAIL_MILTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "mail/address.h"
#include "mail/auth_codec.h"

#define MILTER_CODEC_REPLY_MAX 512
#define MILTER_CODEC_RCPT_EDITS 100     /* added + deleted recipients per message */

struct milter_job_msg {
    uint64_t job_id;
    char listener[CONFIG_NAME_MAX];     /* whose milters to ask */
    char auth_user[256];                /* "" when the session did not AUTH */
    char auth_type[AUTH_MECH_NAME_MAX + 1];  /* its SASL mechanism, with auth_user */
    bool tls;                           /* the transaction ran under TLS */
};

enum milter_result_verdict {
    MILTER_RESULT_ACCEPT = 0,           /* commit (with the changes below) */
    MILTER_RESULT_REJECT,               /* reply is 5xx */
    MILTER_RESULT_TEMPFAIL,             /* reply is 4xx */
    MILTER_RESULT_DISCARD,              /* 250 to the client, nothing kept */
};

struct milter_result_msg {
    uint64_t job_id;
    enum milter_result_verdict verdict;
    char reply[MILTER_CODEC_REPLY_MAX + 1];  /* "CODE X.Y.Z text" for reject/tempfail */
    char milter[CONFIG_NAME_MAX];       /* who decided, or "" */
    bool quarantine;                    /* commit, but hold (`sealpost queue release`) */
    char reason[MILTER_CODEC_REPLY_MAX + 1];
    bool content;                       /* a memfd with the new message comes along */
    bool change_from;
    char from[ADDR_PATH_MAX + 1];       /* new reverse-path ("" = <>) */
    size_t add_count, delete_count;
    char add[MILTER_CODEC_RCPT_EDITS][ADDR_PATH_MAX + 1];
    char del[MILTER_CODEC_RCPT_EDITS][ADDR_PATH_MAX + 1];
};

/* 0 when it does not fit outsize. */
size_t milter_job_encode(const struct milter_job_msg *m, char *out, size_t outsize);
bool milter_job_decode(const void *payload, size_t len, struct milter_job_msg *m,
                       char *err, size_t errsize);

size_t milter_result_encode(const struct milter_result_msg *m, char *out, size_t outsize);
bool milter_result_decode(const void *payload, size_t len, struct milter_result_msg *m,
                          char *err, size_t errsize);

/* Is s a well-formed reply line for a 4xx (temp) or 5xx (!temp) answer:
 * "DDD X.Y.Z text" or "DDD text" (the enhanced code, when present, of the
 * same class), printable ASCII, at most MILTER_CODEC_REPLY_MAX octets? */
bool milter_reply_valid(const char *s, bool temp);

#endif

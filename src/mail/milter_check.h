/*
 * milter_check.h - the question "what do this listener's milters say
 * now?" asked during the SMTP dialogue, for milters with stage =
 * connect, mail or rcpt (README "Milters"). It travels twice in the same
 * form: smtpd worker -> queue, then queue -> milter role, both as
 * IPC_MILTER_CHECK. The answer is a milter_codec.h result (job = the
 * check's id): accept, reject, tempfail or discard, with the reply.
 *
 * Wire form: one line "check ID STAGE PORT", optional lines "auth USER"
 * and "auth_type MECHANISM", both or neither (only from the queue: the
 * user its AUTH token stands for, and how that user authenticated),
 * then a queue_request.h request: the session facts and the envelope as
 * far as it goes (no id; the sender and its parameters from MAIL on, the
 * one recipient asked about at RCPT).
 *
 * The worker faces the internet and the queue decides what the milter
 * role sees, so each decodes as untrusted input: every field bounded and
 * NUL-free, the envelope read by the strict spool reader, addresses
 * parsed as SMTP paths, and the envelope must match the stage (no sender
 * at connect, exactly one recipient at rcpt).
 */
#ifndef SEALPOST_MAIL_MILTER_CHECK_H
#define SEALPOST_MAIL_MILTER_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "mail/auth_codec.h"
#include "mail/envelope.h"
#include "mail/queue_request.h"

#define MILTER_CHECK_USER_MAX 255

struct milter_check {
    uint64_t id;                        /* the asker's: answered with the same */
    int stage;                          /* enum milter_when, not MILTER_AT_DATA */
    uint16_t client_port;
    char auth_user[MILTER_CHECK_USER_MAX + 1];  /* queue -> milter role only */
    char auth_type[AUTH_MECH_NAME_MAX + 1];     /* with auth_user: "PLAIN", "LOGIN" */
    struct queue_request_facts facts;   /* listener, TLS, the AUTH token (worker) */
    struct envelope env;                /* client, helo; from (mail, rcpt); 1 rcpt (rcpt) */
};

/* The stage's name ("connect", "mail", "rcpt"). */
const char *milter_check_stage_name(int stage);

/* A malloc'ed payload of *len octets; NULL when it would not fit one IPC
 * message. */
char *milter_check_encode(const struct milter_check *c, size_t *len);

/* Decode and check; on success c->env must be released with
 * envelope_clear(). */
bool milter_check_decode(const void *payload, size_t len, struct milter_check *c,
                         char *err, size_t errsize);

/* Only the id of a question whose first line is well-formed (to answer
 * one that fails milter_check_decode without dropping the channel). */
bool milter_check_peek_id(const void *payload, size_t len, uint64_t *id);

#endif

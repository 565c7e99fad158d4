/*
 * queue_request.h - the NEW request an smtpd worker sends the queue
 * process to start a message: the session facts the queue needs to
 * re-check the envelope against policy (the listener the client came in
 * on, whether the session is under TLS, the token the queue gave the
 * session's SMTP AUTH, if any), then the envelope in its spool form
 * (envelope.h).
 *
 * The worker faces the internet, so the queue decodes this as untrusted
 * input: every field bounded and NUL-terminated, the envelope parsed by
 * the strict spool reader, nothing after it.
 */
#ifndef SEALPOST_MAIL_QUEUE_REQUEST_H
#define SEALPOST_MAIL_QUEUE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "mail/auth_codec.h"
#include "mail/envelope.h"

struct queue_request_facts {
    bool tls;                           /* the transaction ran under TLS */
    char listener[CONFIG_NAME_MAX];     /* the listener's name */
    char auth_token[AUTH_TOKEN_LEN + 1];    /* the session's AUTH token, "" when none */
};

/* Encode into a malloc'ed buffer (*len octets); NULL when it would not
 * fit one IPC message (the worker keeps envelopes smaller than that). */
char *queue_request_encode(const struct queue_request_facts *facts,
                           const struct envelope *env, size_t *len);

/* Decode; on success env must be released with envelope_clear(). */
bool queue_request_decode(const void *payload, size_t len, struct queue_request_facts *facts,
                          struct envelope *env, char *err, size_t errsize);
/* The same for an envelope still being built (mail/milter_check.h): no
 * id, maybe no recipient (envelope_read_partial). */
bool queue_request_decode_partial(const void *payload, size_t len,
                                  struct queue_request_facts *facts, struct envelope *env,
                                  char *err, size_t errsize);

#endif

/*
 * queue_client.h - an smtpd worker's link to the queue process. The
 * worker never opens a spool file: it asks the queue to start a message
 * (the envelope and the session facts the queue re-checks), receives one
 * append-only descriptor, writes the message into it and asks for a
 * commit. Nothing here waits: every answer arrives through the event loop
 * and runs a callback, so a slow queue delays only the sessions that
 * wait for it.
 *
 * Trusts: the queue process only as far as util/ipc.c checks its
 * messages. A fault on the channel never ends the worker: every request
 * still waiting fails (its session answers 451 4.3.0; nothing was
 * acknowledged), later requests fail at once, and on_broken runs once.
 */
#ifndef SEALPOST_SMTPD_QUEUE_CLIENT_H
#define SEALPOST_SMTPD_QUEUE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/auth_codec.h"
#include "mail/envelope.h"
#include "mail/milter_codec.h"
#include "mail/queue_request.h"

struct event_base;
struct queue_link;
struct incoming_msg;
struct incoming_request;

/* The queue's answer to a start: msg, or NULL with err (an errno). */
typedef void (*incoming_ready_cb)(struct incoming_msg *msg, int err, void *arg);
/* A commit finished; ok=false: the message is gone, the client gets 4xx. */
typedef void (*incoming_commit_cb)(struct incoming_msg *msg, bool ok, void *arg);

struct queue_link *queue_link_new(int channel, struct event_base *base);
/* cb runs once, from the event loop, if the channel fails. queue_gone:
 * the queue's end closed (EOF, EPIPE, reset): the queue process died or
 * never came up, rather than a fault on a channel it still serves. */
void queue_link_on_broken(struct queue_link *link, void (*cb)(void *arg, bool queue_gone),
                          void *arg);
/* The channel works: false once it failed (nothing can be queued). */
bool queue_link_up(const struct queue_link *link);
void queue_link_free(struct queue_link *link);

/*
 * Ask the queue to start a message for env (whose id it fills in when
 * the answer comes). cb runs exactly once, later, from the event loop,
 * unless the request is cancelled first. env must stay valid until then.
 */
struct incoming_request *incoming_start(struct queue_link *link, struct envelope *env,
                                        const struct queue_request_facts *facts,
                                        incoming_ready_cb cb, void *arg);
/* The session is gone: cb will not run; a file the queue made is dropped. */
void incoming_cancel(struct incoming_request *req);

const char *incoming_id(const struct incoming_msg *msg);
/* After a failed commit: the reply a milter refused the message with
 * ("CODE X.Y.Z text", checked), or "" when the failure was the queue's. */
const char *incoming_refusal(const struct incoming_msg *msg);
/* Append message bytes (buffered). false once any write failed. */
bool incoming_write(struct incoming_msg *msg, const void *data, size_t len);
/* errno of the first failure, 0 if none. */
int incoming_error(const struct incoming_msg *msg);
/* Flush and ask for the commit; cb runs later (after the queue's fsyncs),
 * then msg is freed. */
void incoming_commit(struct incoming_msg *msg, incoming_commit_cb cb, void *arg);
/* Drop an uncommitted message. */
void incoming_abort(struct incoming_msg *msg);

/*
 * SMTP AUTH: the queue process checks the password (the worker never sees
 * a hash). cb runs once, later, from the event loop, with the verdict
 * (AUTH_TEMPFAIL when the channel breaks) and on AUTH_OK the token the
 * session's NEW requests carry. creds are wiped here once queued.
 */
struct auth_pending;
struct sasl_creds;
typedef void (*auth_answer_cb)(const struct auth_answer *ans, void *arg);
struct auth_pending *auth_start(struct queue_link *link, const char *client,
                                enum auth_mechanism mechanism, struct sasl_creds *creds,
                                auth_answer_cb cb, void *arg);
/* The session is gone: cb will not run. */
void auth_cancel(struct auth_pending *p);

/*
 * A milter check at connect, MAIL or RCPT (mail/milter_check.h): the
 * queue asks the listener's milters of that stage. c->id is set here; c
 * may be freed on return. cb runs once, later, from the event loop, with
 * the verdict and, for reject and tempfail, the reply ("CODE X.Y.Z
 * text", checked); a broken channel answers tempfail.
 */
struct milter_pending;
struct milter_check;
typedef void (*milter_answer_cb)(enum milter_result_verdict verdict, const char *reply,
                                 void *arg);
struct milter_pending *milter_check_start(struct queue_link *link, struct milter_check *c,
                                          milter_answer_cb cb, void *arg);
/* The session is gone: cb will not run. */
void milter_check_cancel(struct milter_pending *p);

#endif

/*
 * bounce.h - delivery status notifications (RFC 3464, RFC 3461, RFC 6522):
 * a multipart/report message from MAILER-DAEMON with the null
 * reverse-path, queued like any other message.
 *
 * Trusts: the queued message it reports on (already validated when it was
 * received) and the diagnostic texts given (remote replies: they are
 * sanitised here before they go into headers: no CR/LF, printable ASCII,
 * bounded length).
 */
#ifndef SEALPOST_QUEUE_BOUNCE_H
#define SEALPOST_QUEUE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config/config.h"
#include "queue/queue.h"

enum bounce_action { BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_RELAYED, BOUNCE_DELIVERED };

struct bounce_rcpt {
    size_t index;                   /* into m->env.rcpts */
    enum bounce_action action;
    const char *status;             /* enhanced status code, e.g. "5.1.1" */
    const char *remote_mta;         /* host name that answered, or NULL */
    const char *diagnostic;         /* remote reply or local reason, or NULL */
    time_t last_attempt;
};

/*
 * Queue a DSN about rcpts[0..count) of message m to m's envelope sender.
 * Returns false (with err) and queues nothing when m has the null
 * reverse-path (never bounce a bounce) or on a spool error. RET=HDRS (or
 * unspecified) attaches the original header section as
 * text/rfc822-headers, RET=FULL the whole message as message/rfc822.
 * On success the new queue id is written to new_id (QUEUE_ID_LEN + 1).
 *
 * Clarifications (bounce.c):
 * - A recipient is reported only if its NOTIFY asks for this action
 *   (unset NOTIFY = FAILURE,DELAY; NEVER = nothing; delivered and relayed
 *   need SUCCESS). When none is left: false, err "nothing to report".
 *   The null sender gives err "null sender: no bounce". An index past
 *   m->env.rcpt_count is a caller bug: false, nothing queued.
 * - RET=FULL returns the whole message only in a report with a failed
 *   recipient (RFC 3461 4.3); delay and success reports get the header
 *   section (capped at 64 KiB, whole lines).
 * - status may be NULL or malformed: then 5.0.0 / 4.0.0 / 2.0.0 by action.
 *   Diagnostic-Code is "smtp;" when remote_mta is set, else "X-Sealpost;".
 * - For an SMTPUTF8 original the returned part is message/global or
 *   message/global-headers (RFC 6532, 6533) and UTF-8 addresses appear as
 *   "utf-8; " utf-8-addr-xtext; the report inherits REQUIRETLS (RFC 8689).
 * - An original whose envelope has dsn_content_withheld (received in
 *   cleartext on a require_tls listener) is reported without any part of
 *   it: no returned message or header section, no Original-Envelope-Id,
 *   no Original-Recipient; the human part says why.
 * - Relies on queue_msg_commit calling back before it returns (it does
 *   today); an asynchronous commit would be fatal here.
 */
/* How a DSN reaches a sender address that is a local alias: its
 * envelope is expanded like a received one (queue_server_expand). Set
 * once at start, before the scheduler thread runs; fn must be safe from
 * any thread. Unset, or when fn fails (logged), the DSN goes to the
 * address as it is. */
typedef bool (*bounce_expand_fn)(void *arg, const struct envelope *in, struct envelope *out,
                                 char *why, size_t whysize);
void bounce_set_expander(bounce_expand_fn fn, void *arg);

bool bounce_queue(struct queue *q, const struct config *cfg, const struct queued_message *m,
                  const struct bounce_rcpt *rcpts, size_t count, char *new_id,
                  char *err, size_t errsize);

#endif

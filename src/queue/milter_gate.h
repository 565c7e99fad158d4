/*
 * milter_gate.h - the queue's end of the milter channel: at COMMIT, a
 * message that came in on a listener with milters goes to the milter
 * role first (README "Milters"); what comes back decides whether it is
 * committed as it is, committed rewritten (headers, body, sender,
 * recipients), committed on hold (quarantine), dropped (discard) or
 * refused with a reply for the client.
 *
 * The milter role talks to milters, which are network peers: its results
 * are decoded as untrusted input (mail/milter_codec.h), recipients and
 * sender it names are parsed as SMTP paths, and the new message it sends
 * must have CRLF line ends, no NUL and fit max_message_size. A result
 * that fails any of this, a role that is gone, or one that takes longer
 * than MILTER_GATE_DEADLINE counts as "milter unavailable": the
 * listener's milters' default_action decides.
 */
#ifndef SEALPOST_QUEUE_MILTER_GATE_H
#define SEALPOST_QUEUE_MILTER_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "config/config.h"
#include "mail/milter_codec.h"
#include "queue/queue.h"

/* Seconds a message may wait for the milter role: below the worker's
 * 120 s wait for a commit answer (smtpd/queue_client.c REPLY_TIMEOUT). */
#define MILTER_GATE_DEADLINE 100

enum milter_gate_outcome {
    MILTER_GATE_COMMIT,         /* commit msg (possibly rewritten, maybe on hold) */
    MILTER_GATE_REFUSE,         /* msg was aborted; reply is for the client */
    MILTER_GATE_DISCARD,        /* msg was aborted; the client gets its 250 */
};

/* The verdict on message id: msg to commit (COMMIT), or NULL (the gate
 * dropped it); reply: "CODE X.Y.Z text" for REFUSE. */
typedef void (*milter_gate_done_cb)(struct queue_msg *msg, const char *id,
                                    enum milter_gate_outcome outcome, const char *reply,
                                    unsigned long channel, void *arg);

/* A check's answer (job_id = the worker's id for it, verdict, reply,
 * milter), for the worker on channel `channel`. */
typedef void (*milter_gate_check_cb)(unsigned long channel,
                                     const struct milter_result_msg *verdict, void *arg);

struct milter_gate;
struct milter_check;

struct milter_gate *milter_gate_new(struct event_base *base, const struct config *cfg,
                                    struct queue *q, milter_gate_done_cb done, void *arg);
void milter_gate_free(struct milter_gate *g);
/* The master started a milter process in slot (< [server]
 * milter_processes): its channel (replaces that slot's dead one). Jobs
 * go to the process with the fewest in hand. */
void milter_gate_set_channel(struct milter_gate *g, int slot, int fd);
/* Does a message of this listener go through milters? */
bool milter_gate_wanted(const struct milter_gate *g, const char *listener);
/*
 * Ask the listener's milters about msg (from channel `channel`). done
 * runs later, from the event loop, exactly once (also when the gate is
 * freed: with the default action).
 */
void milter_gate_ask(struct milter_gate *g, struct queue_msg *msg, const char *listener,
                     const char *auth_user, const char *auth_type, bool tls,
                     unsigned long channel);

/*
 * Ask the listener's milters of c's stage (connect, mail, rcpt) for a
 * verdict on an SMTP command, on behalf of the worker on `channel`;
 * auth_user, auth_type: the user the session's AUTH token stands for and
 * the SASL mechanism it used, or NULL (as for milter_gate_ask).
 * The answer goes to the callback set with milter_gate_on_check, later,
 * exactly once (the default action when the role is gone or late).
 * false: c does not fit a message to the role (nothing is asked).
 */
bool milter_gate_check(struct milter_gate *g, const struct milter_check *c,
                       const char *auth_user, const char *auth_type, unsigned long channel);
void milter_gate_on_check(struct milter_gate *g, milter_gate_check_cb cb, void *arg);
#endif

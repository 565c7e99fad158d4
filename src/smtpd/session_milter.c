/*
 * session_milter.c - milters asked during the SMTP dialogue: a milter
 * with stage = connect, mail or rcpt answers that command (README
 * "Milters"). The worker never talks to a milter: it sends the queue a
 * question (mail/milter_check.h) with what the session knows so far,
 * the queue adds the authenticated user and hands it to the milter role,
 * and the verdict comes back through queue_client.h. Until then the
 * session reads no input (ST_COMMIT, as for AUTH and a commit), so
 * pipelined commands wait their turn and replies stay in order.
 *
 * Trusts: the verdict as queue_client.c checked it (the reply is a
 * well-formed single line of the verdict's class).
 */
#include "smtpd/session_internal.h"

#include <string.h>

#include "mail/milter_check.h"
#include "util/log.h"

bool session_milters_at(const struct session *s, enum milter_when when)
{
    return config_milters_at(s->cfg, s->listener->name, when);
}

void session_milter_drop(struct session *s)
{
    if (s->milter_req) {
        milter_check_cancel(s->milter_req);
        s->milter_req = NULL;
    }
}

static void answered(enum milter_result_verdict v, const char *reply, void *arg)
{
    struct session *s = arg;

    s->milter_req = NULL;
    s->state = ST_COMMAND;
    if (!s->client_gone)
        s->milter_then(s, v, reply);
    session_resume(s);
}

/* What the session knows at this stage, as the envelope the milters
 * hear it from: the client; its HELO and the sender with its
 * parameters from MAIL on; the one recipient at RCPT. */
static void fill(const struct session *s, enum milter_when when,
                 const struct envelope_rcpt *rcpt, struct milter_check *c)
{
    c->stage = (int)when;
    c->client_port = (uint16_t)s->client_port;
    session_request_facts(s, &c->facts);
    snprintf(c->env.client, sizeof(c->env.client), "%s", s->client_ip);
    if (when == MILTER_AT_CONNECT || s->tx == NULL)
        return;
    session_tx_envelope(s, &c->env);
    if (when == MILTER_AT_RCPT && rcpt)
        envelope_add_rcpt(&c->env, rcpt->addr, rcpt->notify, rcpt->orcpt);
}

void session_milter_ask(struct session *s, enum milter_when when,
                        const struct envelope_rcpt *rcpt,
                        void (*then)(struct session *s, enum milter_result_verdict v,
                                     const char *reply))
{
    static struct milter_check c;       /* large: not on the stack */

    memset(&c, 0, sizeof(c));
    envelope_init(&c.env);
    fill(s, when, rcpt, &c);
    s->milter_then = then;
    s->state = ST_COMMIT;               /* no input is read until the verdict */
    s->milter_req = milter_check_start(s->srv->queue, &c, answered, s);
    envelope_clear(&c.env);
}

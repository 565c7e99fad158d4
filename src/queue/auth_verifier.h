/*
 * auth_verifier.h - SMTP AUTH passwords checked in the queue process,
 * which holds the users file; smtpd workers (which parse SMTP from the
 * internet) never see a hash.
 *
 * crypt(3) with yescrypt or bcrypt takes tens of milliseconds on purpose,
 * so it runs on a thread of its own: the queue's event loop (commits,
 * deliveries) never waits for it. Every failure is answered only after
 * [submission] auth_failure_delay, and a client address with
 * auth_failures failures within auth_window is refused (AUTH_LOCKED, no
 * password check at all) for auth_lockout. An unknown user costs the same
 * crypt as a known one.
 *
 * Trusts: the users file (the operator's), and the requests only as far
 * as auth_codec.h checked them; passwords are wiped once checked.
 */
#ifndef SEALPOST_QUEUE_AUTH_VERIFIER_H
#define SEALPOST_QUEUE_AUTH_VERIFIER_H

#include <event2/event.h>

#include "config/config.h"
#include "mail/auth_codec.h"
#include "mail/credentials.h"

#define AUTH_MAX_PENDING    256     /* requests waiting for the thread */
#define AUTH_FAILURE_SLOTS  4096    /* client addresses remembered */

struct auth_verifier;

/* The verdict for a request of channel `serial`; user is the
 * authenticated name and mechanism the SASL mechanism ("PLAIN") when
 * ans->verdict is AUTH_OK, else NULL. */
typedef void (*auth_done_cb)(unsigned long serial, const struct auth_answer *ans,
                             const char *user, const char *mechanism, void *arg);

/* NULL when the thread cannot start (then AUTH is answered 454). */
struct auth_verifier *auth_verifier_new(struct event_base *base,
                                        const struct submission_config *sc, auth_done_cb cb,
                                        void *arg);
/* Replace the users (takes c; NULL: nobody can authenticate). */
void auth_verifier_set_users(struct auth_verifier *av, struct credentials *c);
/* Check req (its password is wiped here); the callback runs later. */
void auth_verifier_check(struct auth_verifier *av, unsigned long serial,
                         struct auth_request *req);
void auth_verifier_free(struct auth_verifier *av);

#endif

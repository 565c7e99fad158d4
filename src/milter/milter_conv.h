/*
 * milter_conv.h - one whole milter conversation about one message, on a
 * connection of its own (Sendmail milter protocol 6 as Postfix's
 * milter8.c speaks it; the codec is milter_proto.h).
 *
 * The conversation: OPTNEG, then CONNECT, HELO, MAIL, one RCPT per
 * recipient, DATA, one HEADER per header field, EOH, BODY chunks of at
 * most 64 KiB, EOM (SMFIC_BODYEOB), then QUIT (ABORT first when the
 * milter decided after MAIL and before the end of the message). A check
 * (f->upto CONNECT, MAIL or RCPT: a milter with an early stage) stops
 * after that event's answer: CONNECT; CONNECT, HELO, MAIL; or CONNECT,
 * HELO, MAIL and the envelope's one RCPT; then ABORT (after MAIL) and
 * QUIT. Its verdict answers that command. Each event is preceded
 * by its macros (SMFIC_MACRO); a milter's OPTNEG symlist overrides which.
 * Steps the milter asked not to see (SMFIP_NO*) are not sent; steps it
 * said it will not answer (SMFIP_NR_*) are not waited for; after
 * SMFIR_SKIP the rest of that kind (recipients, headers, body chunks) is
 * not sent.
 *
 * What is sent, and how (Postfix's conventions, so milters that work
 * behind Postfix see the same):
 *  - CONNECT: client_name, family '4'/'6' with the port and client_addr,
 *    or 'U' alone when client_addr is not an IP address.
 *  - MAIL: "<from>" then BODY=, SMTPUTF8, RET=, ENVID= as the envelope
 *    has them; RCPT: "<addr>" then NOTIFY=, ORCPT=.
 *  - HEADER: every field of the header section as it is in the spool
 *    but the first f->hidden_fields (1: sealpost's own Received:, kept
 *    from the milters as Postfix and Sendmail do), name without the colon and
 *    any space before it, value after "Name:" minus one leading space,
 *    folded lines joined by "\n" (CRLF becomes LF, as Postfix and
 *    Sendmail send them). A field longer than one packet can carry
 *    (MILTER_SEND_DATA_MAX) is cut. The header section ends at the empty
 *    line, or at the first line that is neither a field nor a
 *    continuation (which then starts the body).
 *  - BODY: the octets after the empty line, CRLF line ends, unchanged.
 *  - Macros: j {daemon_name} v _ {client_addr} {client_name}
 *    {client_port} at CONNECT; {tls_version} {cipher} at HELO;
 *    i {auth_type} {auth_authen} {mail_addr} at MAIL; i {rcpt_addr} at RCPT; i at
 *    DATA, EOH and EOM. A macro with an empty value is not sent.
 *
 * Verdicts: SMFIR_ACCEPT, DISCARD, REJECT, TEMPFAIL and REPLYCODE end the
 * conversation at any step. REPLYCODE 5xx is REJECT and 4xx TEMPFAIL with
 * the milter's text; REJECT/TEMPFAIL get Postfix's "550 5.7.1 Command
 * rejected" / "451 4.7.1 Service unavailable - try again later". A reject
 * at RCPT rejects the whole message (the recipients were accepted
 * already; failing the message is visible to the client, dropping one
 * recipient would not be). DISCARD at CONNECT or HELO breaks the
 * protocol (Sendmail does not allow it either). Modifications
 * (headers, body, recipients, sender) are taken only in reply to EOM and
 * only those the milter announced in OPTNEG (SMFIF_*); quarantine
 * (SMFIF_QUARANTINE) at any step. SMFIR_PROGRESS restarts the timeout,
 * at most MILTER_PROGRESS_MAX times per step.
 *
 * Trusts: the facts (the queue's own); nothing the milter sends.
 * Not reentrant (static I/O buffers: the role runs one at a time).
 */
#ifndef SEALPOST_MILTER_MILTER_CONV_H
#define SEALPOST_MILTER_MILTER_CONV_H

#include <stdbool.h>
#include <stddef.h>

#include "milter/milter_types.h"

#define MILTER_PROGRESS_MAX 60          /* SMFIR_PROGRESS replies per step */
#define MILTER_DAEMON_NAME "sealpost"   /* the v macro ({daemon_name} is the host name) */

/*
 * Talk to the milter at t about the message in f. Every connect, read
 * and write may take at most timeout_seconds.
 *
 * out must have been set up with milter_outcome_init; it may already hold
 * what earlier milters said. This milter's edits are appended (at most
 * MILTER_EDITS_MAX in all), a replacement body replaces any earlier one,
 * and when its verdict is not CONTINUE it sets verdict, reply and
 * milter (= milter_name), unless an earlier milter's REJECT, TEMPFAIL
 * or DISCARD is there already (that one stands).
 *
 * Returns false with a reason in err when the milter cannot be reached,
 * does not answer in time or breaks the protocol (including too many
 * edits or too large a body): out is then exactly as it was on entry and
 * the caller applies the milter's default_action.
 */
bool milter_converse(const char *milter_name, const struct milter_target *t,
                     const struct milter_facts *f, unsigned timeout_seconds,
                     struct milter_outcome *out, char *err, size_t errsize);

/* Parse a milter socket as the config does (config_parse_milter_socket:
 * "unix:/path", "inet:HOST:PORT", "inet:PORT@HOST", "inet6:[ADDR]:PORT";
 * HOST an IP literal or localhost). False with a reason otherwise. */
bool milter_target_parse(const char *spec, struct milter_target *t, char *err,
                         size_t errsize);

#endif

/*
 * remote_server.h - the delivery process: takes remote delivery jobs
 * from the queue process, carries them out with outbound.c (DNS, SMTP
 * client, TLS) and sends one result per job back.
 *
 * This is the process that talks to other mail servers and resolvers,
 * so it holds nothing worth stealing: no spool, no file system (it runs
 * chrooted into an empty directory under its own user, with a seccomp
 * allow-list), only the read-only descriptor of each message it is
 * sending, which it closes when the job ends.
 *
 * Trusts: the queue process (its channel), within the checks of
 * remote_job_decode; a malformed job is fatal (the master restarts the
 * process and the queue retries the jobs). When the queue closes the
 * channel the process stops (its jobs are retried by the queue).
 */
#ifndef SEALPOST_DELIVERY_REMOTE_SERVER_H
#define SEALPOST_DELIVERY_REMOTE_SERVER_H

#include <event2/event.h>

#include "config/config.h"
#include "mail/relay_credentials.h"

struct remote_server;

/* Set up DNS and TLS (reads the resolver's trust anchor and config files:
 * call before the privilege drop). NULL + err on failure. */
struct remote_server *remote_server_new(struct event_base *base, const struct config *cfg,
                                        char *err, size_t errsize);
/* The smart host's login (outbound_set_relay_credentials); copied. */
void remote_server_set_relay_credentials(struct remote_server *rs,
                                         const struct relay_credentials *rc);
/* Start serving jobs from channel (after the drop); the event loop exits
 * when the queue closes it. */
void remote_server_start(struct remote_server *rs, int channel);
void remote_server_free(struct remote_server *rs);

#endif

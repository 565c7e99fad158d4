/*
 * master.h - the master process: starts as root, reads the config, binds
 * the listeners, loads certificates and keys and the mailbox lists,
 * prepares the spool, then forks the roles and supervises them:
 *
 *   queue     owns the spool (queue_user): creates, commits and delivers
 *             messages (the delivery side runs in this process for now);
 *   smtpd x N everything that faces the internet (user, chrooted into an
 *             empty folder, seccomp allow-list); reaches the queue only
 *             through its channel.
 *
 * A child that dies is restarted, with a growing delay when it keeps
 * dying. SIGTERM/SIGINT stop everything gracefully; SIGHUP reloads
 * certificates and mailbox lists and replaces the workers (old ones
 * finish their sessions first).
 */
#ifndef SEALPOST_MASTER_MASTER_H
#define SEALPOST_MASTER_MASTER_H

#include "config/config.h"

/* Run the server until stopped; returns the exit status. */
int master_run(struct config *cfg);

#endif

/*
 * master.h - the master process: starts as root, reads the config, binds
 * the listeners, loads certificates and keys and the mailbox lists,
 * prepares the spool, then starts the roles, each a fresh execution of
 * the sealpost binary (sandbox/role.h), and supervises them:
 *
 *   queue     owns the spool (queue_user): creates and commits messages,
 *             delivers locally, schedules remote delivery;
 *   smtpd x N everything that faces the internet (user, chrooted into an
 *             empty folder, seccomp allow-list); reaches the queue only
 *             through its channel;
 *   delivery  remote delivery: DNS, SMTP client (delivery_user, chrooted,
 *             seccomp allow-list); gets its jobs from the queue.
 *
 * A child that dies is restarted, with a growing delay when it keeps
 * dying. SIGTERM/SIGINT stop everything gracefully; SIGHUP reloads
 * certificates and mailbox lists (master/master_files.h) and replaces
 * the workers (old ones finish their sessions first).
 */
#ifndef SEALPOST_MASTER_MASTER_H
#define SEALPOST_MASTER_MASTER_H

#include "config/config.h"

/* Run the server until stopped; returns the exit status. */
int master_run(struct config *cfg);

#endif

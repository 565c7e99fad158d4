/*
 * sandbox.h - seccomp filters per process role (libseccomp), installed
 * after the role has initialised and dropped privileges.
 *
 *  smtpd  allow-list: socket I/O on descriptors it already has, memory,
 *         time, signals, randomness. Opening files or sockets fails with
 *         EACCES; any other system call stops the process (SIGSYS), which
 *         the master logs and answers with a restart.
 *  queue  allow-list: what a mail spool, Maildir delivery and an SMTP/DNS
 *         client need; anything else fails with EPERM, and exec, ptrace,
 *         mount, module loading, privilege changes and kernel-wide
 *         operations kill the process.
 *
 * See docs/SECURITY.md for the lists. Sanitizer builds skip the filter
 * (the sanitizer runtimes need system calls of their own).
 */
#ifndef SEALPOST_PRIVSEP_SANDBOX_H
#define SEALPOST_PRIVSEP_SANDBOX_H

enum sandbox_role { SANDBOX_SMTPD, SANDBOX_QUEUE };

/* Install the filter for role; fatal if it cannot be installed. */
void sandbox_enter(enum sandbox_role role);

#endif

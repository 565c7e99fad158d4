/*
 * sandbox.h - seccomp filters per process role (libseccomp), installed
 * after the role has initialised and dropped privileges.
 *
 *  smtpd  allow-list: socket I/O on descriptors it already has, memory,
 *         time, signals, randomness. Opening files or sockets fails with
 *         EACCES; any other system call stops the process (SIGSYS), which
 *         the master logs and answers with a restart.
 *  delivery  the smtpd list plus new IPv4/IPv6 sockets (connect, bind for
 *         DNS source ports) and threads (libunbound); files fail with
 *         EACCES; anything else (other socket families too): SIGSYS.
 *  queue  allow-list: what a mail spool, Maildir delivery and bounces
 *         need, and no network at all; anything else fails with EPERM,
 *         and exec, ptrace, mount, module loading, privilege changes and
 *         kernel-wide operations kill the process.
 *
 *  local  the queue's list and actions (files, no network).
 *
 * smtpd and delivery also get a Landlock ruleset that allows no file
 * access at all (sandbox/landlock.h; smtpd: no TCP bind or connect
 * either), where the kernel has Landlock; local one that allows creating
 * and writing files only beneath its Maildir roots (and no TCP).
 *
 * See docs/SECURITY.md for the lists. Sanitizer builds skip the filters
 * (the sanitizer runtimes need system calls of their own).
 */
#ifndef SEALPOST_SANDBOX_SANDBOX_H
#define SEALPOST_SANDBOX_SANDBOX_H

#include <stddef.h>

/* SANDBOX_LMTP: the delivery role's filter plus AF_UNIX sockets (LMTP to
 * a unix socket), Landlock without any file access. */
/* metrics: the smtpd list and Landlock rules (it serves HTTP on a socket
 * it was given, with every block mapped before the filter). */
/* SANDBOX_MILTER: SANDBOX_LMTP (milters on unix or TCP sockets) plus
 * memfd_create (a rewritten message goes to the queue in a sealed memory
 * file). */
enum sandbox_role { SANDBOX_SMTPD, SANDBOX_QUEUE, SANDBOX_DELIVERY, SANDBOX_LOCAL,
                    SANDBOX_LMTP, SANDBOX_METRICS, SANDBOX_MILTER };

/* Install the filter for role; fatal if it cannot be installed. */
void sandbox_enter(enum sandbox_role role);
/* The same; SANDBOX_LOCAL's Landlock rules allow file work beneath
 * paths[0..n) only (each must exist; one that cannot be opened is
 * logged and left out). */
void sandbox_enter_paths(enum sandbox_role role, const char *const *paths, size_t n);

#endif

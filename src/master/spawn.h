/*
 * spawn.h - start a role as a fresh program image: fork, put the
 * descriptors it gets at their fixed numbers (role.h), close every other
 * one at exec, and execute the sealpost binary again.
 *
 * The binary is the one the master was started from, opened once at
 * start (spawn_open_self): a package upgrade that replaces the file
 * during a run starts no role of another version.
 *
 * Trusts: its caller (the master).
 */
#ifndef SEALPOST_MASTER_SPAWN_H
#define SEALPOST_MASTER_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "smtpd/server.h"

/* Descriptors a role can get: ROLE_FD_CONFIG .. the last listening socket. */
#define SPAWN_MAX_FDS (5 + SERVER_MAX_SOCKETS)     /* + the metric block */

/* The running binary (/proc/self/exe), read-only, close-on-exec; fatal
 * when it cannot be opened. */
int spawn_open_self(void);

/*
 * Fork a child that executes exe (from spawn_open_self) with argv, with
 * fds[i] at descriptor ROLE_FD_CONFIG + i (n at most SPAWN_MAX_FDS).
 * Signals stay blocked across the fork, so nothing sent to the child
 * before the exec runs the master's handlers, and the role's own ones
 * (role_signals) across the exec, until the role has its handlers; the
 * child dies with the
 * master (PR_SET_PDEATHSIG survives the exec of a binary that is not
 * set-id) - two queue processes on one spool would deliver twice - and
 * gives up at once if the master is already gone. A child that cannot
 * exec writes one line to stderr and exits with 127.
 * Returns the child's pid, or -1 + errno.
 */
pid_t spawn_role(int exe, char *const argv[], const int *fds, size_t n);

#endif

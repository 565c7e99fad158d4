/*
 * local_role.h - the local delivery role: Maildir delivery for the
 * domains of one [domain] owner that is not the queue user, one process
 * per such owner, running as that owner.
 *
 * Trusts: the master's descriptors (sandbox/role.h); the queue's channel
 * within remote_job_decode's checks and its own recomputation of every
 * target (see local_role.c).
 */
#ifndef SEALPOST_LOCAL_LOCAL_ROLE_H
#define SEALPOST_LOCAL_LOCAL_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_local_ops;

#endif

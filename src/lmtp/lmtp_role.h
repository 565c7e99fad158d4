/*
 * lmtp_role.h - the LMTP delivery role: delivers the recipients of the
 * [domain]s with deliver = lmtp:... to their LMTP server (RFC 2033),
 * one process, started and restarted by the master, fed by the queue
 * with the same job/result messages as the delivery process.
 *
 * Trusts: the master's descriptors (sandbox/role.h); the queue's channel
 * within remote_job_decode's checks and its own recomputation of every
 * recipient's target (see lmtp_role.c); nothing an LMTP server sends.
 */
#ifndef SEALPOST_LMTP_LMTP_ROLE_H
#define SEALPOST_LMTP_LMTP_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_lmtp_ops;

#endif

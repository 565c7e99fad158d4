/*
 * queue_role.h - the queue process: spool, scheduler, local delivery, as a role for the
 * one main loop (sandbox/role.h).
 */
#ifndef SEALPOST_QUEUE_QUEUE_ROLE_H
#define SEALPOST_QUEUE_QUEUE_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_queue_ops;

#endif

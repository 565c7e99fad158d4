/*
 * role_jobs.h - the job channel of a role that works for the queue one
 * job at a time (local delivery, LMTP, milters): read every job waiting
 * on ROLE_FD_CHANNEL, hand each to the role with the descriptor that
 * came with it, and leave the event loop when the queue closes the
 * channel.
 *
 * Trusts the queue only as far as util/ipc.c checks a message: a job of
 * another type, or a malformed one, ends the process (the queue is its
 * one peer; a role that no longer understands it must not guess).
 */
#ifndef SEALPOST_SANDBOX_ROLE_JOBS_H
#define SEALPOST_SANDBOX_ROLE_JOBS_H

#include <stddef.h>

#include <event2/event.h>

#include "util/ipc.h"

/* One job: payload[0..len) (in the buffer given to role_jobs_start) and
 * the descriptor that came with it, or -1. */
typedef void (*role_job_cb)(void *arg, size_t len, int fd);

struct role_jobs;

/* Read jobs of type `type` into buf (bufsize octets) on ROLE_FD_CHANNEL,
 * made non-blocking. role names the process in the log
 * ("event=ROLE_stopping"). */
struct role_jobs *role_jobs_start(struct event_base *base, const char *role,
                                  enum ipc_type type, void *buf, size_t bufsize,
                                  role_job_cb cb, void *arg);
/* Jobs of a second type go to cb (same buffer, same argument). */
void role_jobs_also(struct role_jobs *rj, enum ipc_type type, role_job_cb cb);
/* Stop the loop (e.g. the channel broke while answering). */
void role_jobs_stop(struct role_jobs *rj, const char *why);
void role_jobs_free(struct role_jobs *rj);

#endif

/*
 * queue_server.h - the queue process's side of the worker channels:
 * creates message files for smtpd workers, passes them each one
 * writable fd, and commits or discards them on request.
 *
 * Trusts: the master (control channel). Worker channels carry requests
 * from processes that parse internet input: every request is checked
 * (envelope parsed strictly, ids must be ones this channel was given);
 * a malformed request closes that channel, which ends the worker (the
 * master restarts it) and discards its unacknowledged messages.
 */
#ifndef SEALPOST_PRIVSEP_QUEUE_SERVER_H
#define SEALPOST_PRIVSEP_QUEUE_SERVER_H

#include <event2/event.h>

#include "queue/queue.h"

struct queue_server;

/* Serve worker channels handed over on control (IPC_CHANNEL messages). */
struct queue_server *queue_server_new(struct event_base *base, struct queue *q, int control);
void queue_server_free(struct queue_server *qs);

#endif

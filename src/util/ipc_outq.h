/*
 * ipc_outq.h - send IPC messages (ipc.h) without ever blocking the event
 * loop. What the channel takes now is sent at once; what it does not take
 * waits in order in a bounded queue and leaves when the channel becomes
 * writable. One slow or stuck peer therefore costs memory up to the bound,
 * never the time of everyone else the process serves.
 *
 * Trusts: the caller for the payloads; the peer for nothing (a peer that
 * stops reading fills the queue, and the bound turns that into an error
 * for this channel alone).
 */
#ifndef SEALPOST_UTIL_IPC_OUTQ_H
#define SEALPOST_UTIL_IPC_OUTQ_H

#include <stdbool.h>
#include <stddef.h>

#include "util/ipc.h"

struct event_base;
struct ipc_outq;

/* Runs (from the event loop) when a queued message could not be sent:
 * the channel is broken; err is the errno. */
typedef void (*ipc_outq_error_cb)(int err, void *arg);

/* sock must be non-blocking; it stays the caller's to close. */
struct ipc_outq *ipc_outq_new(struct event_base *base, int sock, size_t max_queued,
                              ipc_outq_error_cb on_error, void *arg);
void ipc_outq_free(struct ipc_outq *q);

/*
 * Send now or queue. A descriptor to pass is duplicated when the message
 * has to wait, so the caller may close its own at once. false with errno
 * when the message can never go: a send error, EMSGSIZE, or ENOBUFS when
 * max_queued messages already wait (the peer does not read).
 */
bool ipc_outq_send(struct ipc_outq *q, enum ipc_type type, const void *payload, size_t len,
                   int fd_to_pass);

/* Messages waiting for room. */
size_t ipc_outq_pending(const struct ipc_outq *q);

#endif

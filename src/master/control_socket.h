/*
 * control_socket.h - the listening socket of `sealpost queue`:
 * SPOOL/control/queue.sock, made by the master (root) at start and
 * passed to every queue process it starts (ROLE_FD_QUEUE_CONTROL), so a
 * command sent while the queue restarts waits in the backlog for the
 * next one (docs/ARCHITECTURE.md "The control socket").
 *
 * Who can connect: the folder SPOOL/control belongs to the master's user
 * (root); when the queue runs as its own user the folder is mode 02750
 * with the queue user's group and the socket 0660 in that group, so
 * root and the queue user's group can connect; else both are 0700/0600
 * for the one user everything runs as. The queue user cannot replace
 * either: they are not its files. The socket is made with those modes
 * (umask), never chmod'ed by path. Also the client side (connect).
 *
 * Trusts: the config (spool path) and the drop plan.
 */
#ifndef SEALPOST_MASTER_CONTROL_SOCKET_H
#define SEALPOST_MASTER_CONTROL_SOCKET_H

#include <stddef.h>

#include "sandbox/drop.h"

#define CONTROL_DIR "control"
#define CONTROL_SOCKET "queue.sock"
/* Connections the kernel keeps waiting while the queue is busy or
 * restarting. */
#define CONTROL_BACKLOG 16

/* The listening socket (non-blocking, close-on-exec), or -1 + err. */
int control_socket_open(const char *spool, const struct drop_plan *queue_plan, char *err,
                        size_t errsize);

/* A connected stream socket to a running queue, or -1 with errno
 * (ENOENT/ECONNREFUSED: nobody listens; EACCES: not allowed) and err. */
int control_socket_connect(const char *spool, char *err, size_t errsize);

#endif

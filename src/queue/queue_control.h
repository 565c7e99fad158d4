/*
 * queue_control.h - the queue process's end of the control socket that
 * `sealpost queue` talks to (docs/OPERATIONS.md "Inspecting the queue",
 * docs/ARCHITECTURE.md "The control socket").
 *
 * The master (root) makes the listening socket, spool/control/queue.sock,
 * and passes it to every queue process it starts (ROLE_FD_QUEUE_CONTROL).
 * The server runs on the scheduler's thread and event loop, so a command
 * is carried out between delivery rounds by the code that owns them, never
 * by a client touching spool files. Per connection: one command line of
 * at most QUEUE_CMD_LINE_MAX octets (queue_command.h) within
 * QUEUE_CONTROL_TIMEOUT seconds, one answer (queue_admin.h), close. At
 * most QUEUE_CONTROL_MAX_CLIENTS connections at a time; more wait in the
 * socket's backlog until one ends. Nothing blocks: a client that does not send, or does
 * not read its answer, holds only its own connection until the timeout.
 *
 * Trusts: nothing a client sends (the parser checks it); the socket's
 * permissions say who can connect (root and the queue user).
 */
#ifndef SEALPOST_QUEUE_QUEUE_CONTROL_H
#define SEALPOST_QUEUE_QUEUE_CONTROL_H

#include <event2/event.h>

struct scheduler;
struct queue;
struct queue_control;

/* Connections served at a time, and the seconds one may take to send its
 * command and then to read its answer. */
#define QUEUE_CONTROL_MAX_CLIENTS 8
#define QUEUE_CONTROL_TIMEOUT 30

/* Serve the listening socket fd (taken over) on base. */
struct queue_control *queue_control_new(struct event_base *base, int fd, struct scheduler *s,
                                        struct queue *q);
void queue_control_free(struct queue_control *c);   /* NULL: nothing */

#endif

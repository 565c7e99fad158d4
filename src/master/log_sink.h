/*
 * log_sink.h - where every sealpost process logs ([server] log): stderr
 * as it is, the local syslog socket, or a file.
 *
 * The roles cannot open anything once sandboxed, so the master arranges
 * before it starts them that their stderr is the target: for syslog, a
 * datagram socket connected to syslog_socket (each line one datagram, in
 * the syslog format); for a file, one end of a datagram socket pair whose
 * other end the master reads, writing each line to the file (so only the
 * master holds the file, and can reopen it on SIGHUP when logrotate has
 * renamed it). Both sockets are non-blocking: a log that cannot keep up
 * loses lines, never stalls a process.
 *
 * Trusts: the config; the roles' lines only as bytes to append (one
 * datagram, at most one line buffer, is one write).
 */
#ifndef SEALPOST_MASTER_LOG_SINK_H
#define SEALPOST_MASTER_LOG_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"

struct log_sink;

/* Point this process's and its future children's stderr at cfg->log.
 * NULL + err when the target cannot be opened. */
struct log_sink *log_sink_open(const struct config *cfg, struct event_base *base, char *err,
                               size_t errsize);
/* SIGHUP: a file target is opened again (after logrotate renamed it);
 * false + err keeps the old one. Nothing to do for the others. */
bool log_sink_reopen(struct log_sink *ls, char *err, size_t errsize);
/* Write what the roles still sent, then close. */
void log_sink_close(struct log_sink *ls);

/* A role: log in the format its target wants (the master opened it). */
void log_sink_role(const struct config *cfg);

#endif

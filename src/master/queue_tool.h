/*
 * queue_tool.h - `sealpost queue`: the operator's client of the queue
 * control socket (control_socket.h, queue/queue_admin.h).
 *
 *   sealpost queue [-c FILE] list | show ID | flush [ID] | delete ID |
 *                            hold ID | release ID
 *
 * Exit status: 0 done, 1 refused (no such message, in delivery,
 * permission denied), 2 usage, 75 (EX_TEMPFAIL) sealpost is not running
 * or its answer was cut short.
 *
 * Trusts: its command line and config; the answer comes from the queue
 * process (root's own daemon) and is only copied to stdout/stderr.
 */
#ifndef SEALPOST_MASTER_QUEUE_TOOL_H
#define SEALPOST_MASTER_QUEUE_TOOL_H

#define QUEUE_TOOL_EX_TEMPFAIL 75
/* Seconds to wait for the queue's answer. */
#define QUEUE_TOOL_TIMEOUT 120

/* argv[1] is "queue"; returns the exit status. default_config: the
 * config file without -c. */
int queue_tool_main(int argc, char **argv, const char *default_config);

#endif

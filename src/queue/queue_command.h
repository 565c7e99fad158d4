/*
 * queue_command.h - the one-line commands of the queue control socket
 * (`sealpost queue`, docs/OPERATIONS.md "Inspecting the queue"): what a
 * client may ask the queue process, and the parser for it.
 *
 * A command is one line of at most QUEUE_CMD_LINE_MAX octets, ended by
 * LF (the parser gets it without the LF):
 *
 *   list | show ID | flush | flush ID | delete ID | hold ID | release ID
 *
 * words separated by exactly one space, ID a queue id (16 upper-case hex
 * digits, queue_id_valid). Anything else is refused with a reason.
 *
 * Trusts: nothing. The client is whoever could connect to the socket;
 * the parser reads exactly len octets and never more.
 */
#ifndef SEALPOST_QUEUE_QUEUE_COMMAND_H
#define SEALPOST_QUEUE_QUEUE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"

/* The longest command line, LF excluded ("release " + an id, and room). */
#define QUEUE_CMD_LINE_MAX 64

enum queue_cmd_verb {
    QUEUE_CMD_LIST,
    QUEUE_CMD_SHOW,
    QUEUE_CMD_FLUSH,                /* id "" : every message that is not held */
    QUEUE_CMD_DELETE,
    QUEUE_CMD_HOLD,
    QUEUE_CMD_RELEASE,
};

struct queue_cmd {
    enum queue_cmd_verb verb;
    char id[QUEUE_ID_LEN + 1];      /* "" when the command takes none */
};

/* Parse line[0..len) (no LF). false + a one-line reason in err (printable
 * ASCII, never a copy of the input) on anything but the forms above. */
bool queue_cmd_parse(const char *line, size_t len, struct queue_cmd *out, char *err,
                     size_t errsize);

/* The verb's name ("list", ...), as the parser accepts it. */
const char *queue_cmd_name(enum queue_cmd_verb verb);

/* Whether the verb changes the queue (logged as event=queue_admin). */
bool queue_cmd_mutates(enum queue_cmd_verb verb);

#endif

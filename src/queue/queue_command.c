/*
 * queue_command.c - parser of the queue control socket's command line
 * (see queue_command.h).
 *
 * Trusts: nothing; reads exactly len octets, copies only a well-formed id.
 */
#include "queue/queue_command.h"

#include <stdio.h>
#include <string.h>

struct verb_info {
    const char *name;
    enum queue_cmd_verb verb;
    int id;                         /* 0: none, 1: required, 2: optional */
};

static const struct verb_info verbs[] = {
    { "list", QUEUE_CMD_LIST, 0 },       { "show", QUEUE_CMD_SHOW, 1 },
    { "flush", QUEUE_CMD_FLUSH, 2 },     { "delete", QUEUE_CMD_DELETE, 1 },
    { "hold", QUEUE_CMD_HOLD, 1 },       { "release", QUEUE_CMD_RELEASE, 1 },
};

const char *queue_cmd_name(enum queue_cmd_verb verb)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (verbs[i].verb == verb)
            return verbs[i].name;
    }
    return "?";
}

bool queue_cmd_mutates(enum queue_cmd_verb verb)
{
    return verb != QUEUE_CMD_LIST && verb != QUEUE_CMD_SHOW;
}

/* The id argument line[0..len): exactly a queue id. */
static bool parse_id(const char *arg, size_t len, struct queue_cmd *out, char *err,
                     size_t errsize)
{
    char id[QUEUE_ID_LEN + 1];

    if (len != QUEUE_ID_LEN) {
        snprintf(err, errsize, "a queue id is %d hex digits", QUEUE_ID_LEN);
        return false;
    }
    memcpy(id, arg, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    if (!queue_id_valid(id)) {
        snprintf(err, errsize, "a queue id is %d upper-case hex digits", QUEUE_ID_LEN);
        return false;
    }
    memcpy(out->id, id, sizeof(out->id));
    return true;
}

bool queue_cmd_parse(const char *line, size_t len, struct queue_cmd *out, char *err,
                     size_t errsize)
{
    const char *space;
    size_t word;

    memset(out, 0, sizeof(*out));
    if (len > QUEUE_CMD_LINE_MAX) {
        snprintf(err, errsize, "command line too long");
        return false;
    }
    if (len > 0 && memchr(line, '\0', len) != NULL) {
        snprintf(err, errsize, "NUL in the command line");
        return false;
    }
    space = len > 0 ? memchr(line, ' ', len) : NULL;
    word = space ? (size_t)(space - line) : len;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        const struct verb_info *v = &verbs[i];

        if (strlen(v->name) != word || memcmp(v->name, line, word) != 0)
            continue;
        out->verb = v->verb;
        if (space == NULL) {
            if (v->id == 1)
                snprintf(err, errsize, "%s wants a queue id", v->name);
            return v->id != 1;
        }
        if (v->id == 0) {
            snprintf(err, errsize, "%s takes no argument", v->name);
            return false;
        }
        return parse_id(space + 1, len - word - 1, out, err, errsize);
    }
    snprintf(err, errsize, "unknown command (list, show, flush, delete, hold, release)");
    return false;
}

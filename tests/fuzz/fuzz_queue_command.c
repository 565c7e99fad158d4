/*
 * fuzz_queue_command.c - libFuzzer target for the control socket's
 * command parser (src/queue/queue_command.c), which reads whatever a
 * client of spool/control/queue.sock sends.
 *
 * Input layout: the whole input is one command line (without LF), in a
 * buffer of exactly its size. Checked:
 *  - a refusal leaves a non-empty reason of printable ASCII and no id;
 *  - a success has a known verb; its id is "" or a valid queue id, and
 *    empty exactly for list and a bare flush; formatting the command
 *    again ("verb" or "verb ID") gives back the input octet for octet
 *    (one spelling per command).
 */
#include "fuzz.h"

#include "queue/queue_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    struct queue_cmd cmd;
    char err[160], again[QUEUE_CMD_LINE_MAX + 32];
    bool ok;
    int n;

    memcpy(line, data, size);
    ok = queue_cmd_parse(line, size, &cmd, err, sizeof(err));
    free(line);
    if (!ok) {
        FUZZ_CHECK(err[0] != '\0' && cmd.id[0] == '\0');
        for (const char *p = err; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
        return 0;
    }
    FUZZ_CHECK(cmd.verb <= QUEUE_CMD_RELEASE);
    FUZZ_CHECK(cmd.id[0] == '\0' || queue_id_valid(cmd.id));
    if (cmd.verb == QUEUE_CMD_LIST)
        FUZZ_CHECK(cmd.id[0] == '\0');
    else if (cmd.verb != QUEUE_CMD_FLUSH)
        FUZZ_CHECK(cmd.id[0] != '\0');
    n = snprintf(again, sizeof(again), "%s%s%s", queue_cmd_name(cmd.verb),
                 cmd.id[0] ? " " : "", cmd.id);
    FUZZ_CHECK(n > 0 && (size_t)n == size && memcmp(again, data, size) == 0);
    return 0;
}

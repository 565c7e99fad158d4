/*
 * queue_tool.c - `sealpost queue` (see queue_tool.h): checks the command
 * itself (queue/queue_command.h), sends it to the queue process over the
 * control socket and prints the answer.
 *
 * Trusts: its command line and config file; the answer only as text to
 * pass on (lines are copied, never interpreted beyond the status line).
 */
#include "master/queue_tool.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "master/control_socket.h"
#include "queue/queue_command.h"
#include "util/fileio.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: sealpost queue [-c FILE] list            one line per queued message\n"
                 "       sealpost queue [-c FILE] show ID         envelope, recipients, headers\n"
                 "       sealpost queue [-c FILE] flush [ID]      attempt now (all but held)\n"
                 "       sealpost queue [-c FILE] delete ID       remove, without a bounce\n"
                 "       sealpost queue [-c FILE] hold ID         no attempts until released\n"
                 "       sealpost queue [-c FILE] release ID      back from hold, attempted now\n");
}

/* The command line to send, from argv[optind..]; false: usage error. */
static bool build_line(int argc, char **argv, char *line, size_t size)
{
    struct queue_cmd cmd;
    char err[160];
    int n;

    if (argc - optind < 1 || argc - optind > 2)
        return false;
    n = snprintf(line, size, "%s%s%s", argv[optind], argc - optind == 2 ? " " : "",
                 argc - optind == 2 ? argv[optind + 1] : "");
    if (n < 0 || (size_t)n >= size || !queue_cmd_parse(line, (size_t)n, &cmd, err, sizeof(err))) {
        fprintf(stderr, "sealpost: queue: %s\n",
                n < 0 || (size_t)n >= size ? "command too long" : err);
        return false;
    }
    return true;
}

/* Copy the answer; the exit status. */
static int read_answer(int fd)
{
    FILE *in = fdopen(fd, "r");
    char line[8192], reason[8192] = "";
    bool ok, complete = false, bol = true;

    if (in == NULL || fgets(line, sizeof(line), in) == NULL) {
        fprintf(stderr, "sealpost: queue: no answer from the queue process (%s)\n",
                in && ferror(in) ? strerror(errno) : "connection closed");
        if (in)
            fclose(in);
        return QUEUE_TOOL_EX_TEMPFAIL;
    }
    ok = strcmp(line, "ok\n") == 0;
    if (!ok && strncmp(line, "fail ", 5) == 0)
        snprintf(reason, sizeof(reason), "%.*s", (int)strcspn(line + 5, "\n"), line + 5);
    else if (!ok)
        snprintf(reason, sizeof(reason), "unexpected answer from the queue process");
    while (fgets(line, sizeof(line), in) != NULL) {
        if (bol && strcmp(line, ".\n") == 0) {
            complete = true;
            break;
        }
        bol = strchr(line, '\n') != NULL;
        fputs(line, ok ? stdout : stderr);
    }
    fclose(in);
    if (!complete) {
        fprintf(stderr, "sealpost: queue: the answer was cut short (the queue process "
                        "stopped?)\n");
        return QUEUE_TOOL_EX_TEMPFAIL;
    }
    if (!ok)
        fprintf(stderr, "sealpost: queue: %s\n", reason);
    return fflush(stdout) == 0 && ok ? 0 : 1;
}

static int run(const char *spool, const char *line)
{
    char err[4400], msg[QUEUE_CMD_LINE_MAX + 2];
    struct timeval tv = { QUEUE_TOOL_TIMEOUT, 0 };
    int fd = control_socket_connect(spool, err, sizeof(err));
    size_t len;

    if (fd < 0 && (errno == EACCES || errno == EPERM)) {
        fprintf(stderr, "sealpost: queue: %s (run it as root or as the queue user)\n", err);
        return 1;
    }
    if (fd < 0) {
        fprintf(stderr, "sealpost: queue: sealpost is not running (%s)\n", err);
        return QUEUE_TOOL_EX_TEMPFAIL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    len = (size_t)snprintf(msg, sizeof(msg), "%s\n", line);
    if (!write_all(fd, msg, len)) {
        fprintf(stderr, "sealpost: queue: cannot send the command: %s\n", strerror(errno));
        close(fd);
        return QUEUE_TOOL_EX_TEMPFAIL;
    }
    return read_answer(fd);
}

int queue_tool_main(int argc, char **argv, const char *default_config)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = default_config;
    char line[QUEUE_CMD_LINE_MAX + 1], err[1024];
    struct config *cfg;
    int opt, status;

    signal(SIGPIPE, SIG_IGN);       /* a queue that goes away: EPIPE, said below */
    optind = 2;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (opt == 'c') {
            path = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!build_line(argc, argv, line, sizeof(line))) {
        usage(stderr);
        return 2;
    }
    cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "sealpost: %s\n", err);
        return 1;
    }
    status = run(cfg->spool, line);
    config_free(cfg);
    return status;
}

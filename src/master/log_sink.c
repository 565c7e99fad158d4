/*
 * log_sink.c - the log target of every process (see log_sink.h).
 */
#include "master/log_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

#define LOG_LINE_MAX 4096           /* util/log.c writes no longer line */

enum target { TARGET_STDERR, TARGET_SYSLOG, TARGET_FILE };

struct log_sink {
    enum target target;
    const char *path;               /* the file (TARGET_FILE) */
    int file_fd;                    /* the file, written by the master */
    int relay_fd;                   /* our end of the roles' socket pair */
    struct event *relay_ev;
};

static enum target target_of(const struct config *cfg)
{
    if (strcmp(cfg->log, "stderr") == 0)
        return TARGET_STDERR;
    return strcmp(cfg->log, "syslog") == 0 ? TARGET_SYSLOG : TARGET_FILE;
}

void log_sink_role(const struct config *cfg)
{
    if (target_of(cfg) == TARGET_SYSLOG)
        log_set_output(STDERR_FILENO, true);
}

/* Make fd this process's stderr (inherited by every role), non-blocking. */
static bool become_stderr(int fd, char *err, size_t errsize)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        dup2(fd, STDERR_FILENO) < 0) {
        snprintf(err, errsize, "log: %s", strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

static bool open_syslog(const struct config *cfg, char *err, size_t errsize)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (strlen(cfg->syslog_socket) >= sizeof(sun.sun_path)) {
        snprintf(err, errsize, "syslog_socket %s: path too long", cfg->syslog_socket);
        if (fd >= 0)
            close(fd);
        return false;
    }
    memcpy(sun.sun_path, cfg->syslog_socket, strlen(cfg->syslog_socket) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errsize, "cannot reach syslog at %s: %s", cfg->syslog_socket,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    if (!become_stderr(fd, err, errsize))
        return false;
    log_set_output(STDERR_FILENO, true);
    return true;
}

static int open_file(const char *path, char *err, size_t errsize)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        snprintf(err, errsize, "cannot open log file %s: %s", path, strerror(errno));
    return fd;
}

/* Append what the roles sent, one line per datagram. */
static void relay(evutil_socket_t fd, short what, void *arg)
{
    struct log_sink *ls = arg;
    char line[LOG_LINE_MAX + 1];
    ssize_t n;

    (void)what;
    while ((n = recv(fd, line, sizeof(line) - 1, MSG_DONTWAIT)) > 0) {
        if (line[n - 1] != '\n')
            line[n++] = '\n';
        if (write(ls->file_fd, line, (size_t)n) < 0) {
            /* a full disk loses log lines, nothing else */
        }
    }
}

static bool open_relay(struct log_sink *ls, struct event_base *base, char *err,
                       size_t errsize)
{
    int sv[2];

    if ((ls->file_fd = open_file(ls->path, err, errsize)) < 0)
        return false;
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errsize, "log: socketpair: %s", strerror(errno));
        return false;
    }
    if (!become_stderr(sv[1], err, errsize)) {
        close(sv[0]);
        return false;
    }
    ls->relay_fd = sv[0];
    ls->relay_ev = event_new(base, sv[0], EV_READ | EV_PERSIST, relay, ls);
    event_add(ls->relay_ev, NULL);
    log_set_output(ls->file_fd, false);         /* the master writes itself */
    return true;
}

struct log_sink *log_sink_open(const struct config *cfg, struct event_base *base, char *err,
                               size_t errsize)
{
    struct log_sink *ls = xcalloc(1, sizeof(*ls));
    bool ok = true;

    ls->target = target_of(cfg);
    ls->path = cfg->log;
    ls->file_fd = ls->relay_fd = -1;
    if (ls->target == TARGET_SYSLOG)
        ok = open_syslog(cfg, err, errsize);
    else if (ls->target == TARGET_FILE)
        ok = open_relay(ls, base, err, errsize);
    if (!ok) {
        log_sink_close(ls);
        return NULL;
    }
    return ls;
}

bool log_sink_reopen(struct log_sink *ls, char *err, size_t errsize)
{
    int fd;

    if (ls->target != TARGET_FILE)
        return true;
    if ((fd = open_file(ls->path, err, errsize)) < 0)
        return false;
    relay(ls->relay_fd, EV_READ, ls);           /* the old file gets what it was sent */
    close(ls->file_fd);
    ls->file_fd = fd;
    log_set_output(fd, false);
    return true;
}

void log_sink_close(struct log_sink *ls)
{
    if (ls == NULL)
        return;
    if (ls->relay_ev) {
        relay(ls->relay_fd, EV_READ, ls);
        event_free(ls->relay_ev);
    }
    if (ls->relay_fd >= 0)
        close(ls->relay_fd);
    if (ls->file_fd >= 0) {
        log_set_output(STDERR_FILENO, false);
        close(ls->file_fd);
    }
    free(ls);
}

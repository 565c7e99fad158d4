/*
 * log.c - single-line key=value logging (see log.h): to stderr, or to
 * the descriptor the log target gave (a syslog or relay socket).
 * Each line is formatted into a bounded buffer and written with one
 * write(2), so lines from different threads do not interleave.
 */
#include "util/log.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a line may wait for room on a full log socket. */
#define LOG_FULL_WAIT_MS 100

static enum log_level min_level = LOG_LEVEL_INFO;
static int out_fd = STDERR_FILENO;
static bool syslog_format;

static const char *level_names[] = { "debug", "info", "warn", "error" };
/* RFC 5424 severities of the levels, with facility mail (2). */
static const int syslog_pri[] = { 2 * 8 + 7, 2 * 8 + 6, 2 * 8 + 4, 2 * 8 + 3 };

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_set_output(int fd, bool syslog)
{
    out_fd = fd;
    syslog_format = syslog;
}

/* "<PRI>Mmm dd hh:mm:ss sealpost[PID]: " (RFC 3164, local time), as the
 * local syslog socket expects; returns its length. */
static size_t syslog_prefix(char *line, size_t size, enum log_level level,
                            const struct timespec *now)
{
    struct tm tm;
    size_t n;
    int r = snprintf(line, size, "<%d>", syslog_pri[level]);

    localtime_r(&now->tv_sec, &tm);
    n = r > 0 ? (size_t)r : 0;
    n += strftime(line + n, size - n, "%b %e %H:%M:%S", &tm);
    r = snprintf(line + n, size - n, " sealpost[%ld]: level=%s ", (long)getpid(),
                 level_names[level]);
    return n + (r > 0 ? (size_t)r : 0);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    int saved_errno = errno;            /* callers may still need theirs */
    char line[4096];
    struct timespec now;
    struct tm tm;
    size_t n;
    int r;

    clock_gettime(CLOCK_REALTIME, &now);
    if (syslog_format) {
        n = syslog_prefix(line, sizeof(line), level, &now);
    } else {
        gmtime_r(&now.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof(line) - n, ".%03ldZ sealpost[%ld]: level=%s ",
                     now.tv_nsec / 1000000L, (long)getpid(), level_names[level]);
        if (r > 0)
            n += (size_t)r;
    }
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (r < 0)
        r = 0;
    n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line (one datagram on a log socket, atomic on a pipe).
     * A log socket is non-blocking: when it is full, wait for it a little
     * (a burst at start-up), then give the line up - a log that cannot
     * keep up loses lines rather than stalling the server. */
    if (write(out_fd, line, n) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = { out_fd, POLLOUT, 0 };

        if (poll(&pfd, 1, LOG_FULL_WAIT_MS) > 0 && write(out_fd, line, n) < 0) {
            /* nothing sensible to do */
        }
    }
    errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}

char *log_quote(char *out, size_t outsize, const char *in, size_t inlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (outsize < 6) {
        if (outsize)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[4];
        size_t tl;

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tl = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            tl = 1;
        } else {
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[c >> 4];
            tmp[3] = hex[c & 15];
            tl = 4;
        }
        if (o + tl + 5 > outsize) {       /* room for ...", NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *log_value(char *out, size_t outsize, const char *text)
{
    size_t len = strlen(text);
    bool bare = len > 0 && len < outsize;

    for (size_t k = 0; bare && k < len; k++) {
        unsigned char c = (unsigned char)text[k];

        bare = c > ' ' && c < 0x7f && c != '"' && c != '\\';
    }
    if (!bare)
        return log_quote(out, outsize, text, len);
    memcpy(out, text, len + 1);
    return out;
}

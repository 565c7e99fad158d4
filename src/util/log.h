/*
 * log.h - one line per event, key=value fields, to stderr.
 *
 * Every line starts with a UTC timestamp, the program name and pid, and a
 * level; callers add `event=... id=...` fields. Values that may contain
 * client-supplied bytes must go through log_quote() first so that a line
 * can never be split or forged.
 */
#ifndef SEALPOST_UTIL_LOG_H
#define SEALPOST_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
/* Write lines to fd (default: stderr); syslog: with the syslog prefix
 * ("<PRI>Mmm dd hh:mm:ss sealpost[PID]: ") instead of the ISO time. */
void log_set_output(int fd, bool syslog);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Log at error level and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Render untrusted bytes as a double-quoted log value into out (size
 * outsize, always NUL-terminated): printable ASCII is kept, '"' and '\\'
 * are escaped, anything else becomes \xNN. Truncates with "..." when the
 * input does not fit. Returns out.
 */
char *log_quote(char *out, size_t outsize, const char *in, size_t inlen);

/*
 * Untrusted text as a log value: as is when it is non-empty printable
 * ASCII without blank, '"' or '\\' (a host name, "<a@b.example>"), else
 * log_quote()d. Either way no value can end early or carry a raw byte
 * outside 0x21-0x7e. Returns out.
 */
const char *log_value(char *out, size_t outsize, const char *text);

#endif

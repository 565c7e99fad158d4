/*
 * config_internal.h - shared between the config_*.c files only: the
 * table of settings, the value syntax helpers and the loader state.
 *
 * Nothing outside src/config/ (except the config unit test) includes
 * this; the contract for the rest of sealpost is config.h.
 */
#ifndef SEALPOST_CONFIG_CONFIG_INTERNAL_H
#define SEALPOST_CONFIG_CONFIG_INTERNAL_H

#include "config/config.h"

#include <stdarg.h>

#include <ini.h>

/* inih's line buffer (INI_MAX_LINE): 199 characters plus the NUL. */
#define CONFIG_LINE_MAX     200
/* The reader hands inih lines of at most INI_MAX_LINE bytes: one size. */
_Static_assert(CONFIG_LINE_MAX == INI_MAX_LINE, "config lines are inih's lines");
#define CONFIG_MSG_MAX      512
#define CONFIG_SETTINGS_MAX 32      /* keys in the largest section */

enum section_kind { SECTION_SERVER, SECTION_LISTENER, SECTION_DOMAIN, SECTION_TLS,
                    SECTION_QUEUE, SECTION_RELAY, SECTION_DESTINATION, SECTION_TLSRPT,
                    SECTION_SUBMISSION, SECTION_METRICS, SECTION_MILTER };

enum setting_type {
    ST_UINT,        /* unsigned, plain number */
    ST_SIZE,        /* size_t, plain number */
    ST_BYTES,       /* uint64_t, number with optional k/M/G */
    ST_SECONDS,     /* unsigned, duration */
    ST_BOOL,        /* bool */
    ST_ENUM,        /* int, one of setting.names */
    ST_HOSTNAME,    /* char[max + 1], a domain name */
    ST_USERNAME,    /* char[max + 1], a system user name, or empty */
    ST_PATH,        /* char *, resolved against the config folder */
    ST_FILE,        /* ST_PATH that must name a readable regular file */
    ST_TEMPLATE,    /* ST_PATH with {domain} and {local} placeholders */
    ST_MAILBOX,     /* char *, local@domain */
    ST_ADDRESSES,   /* listener addresses, comma-separated list */
    ST_RECIPIENTS,  /* char *[max], comma-separated local parts/addresses */
    ST_PATHS,       /* char *[max], one path per value */
    ST_NETWORKS,    /* struct network[max], CIDR list (commas and/or blanks) */
    ST_DURATIONS,   /* unsigned[CONFIG_MAX_RETRY], durations (commas and/or
                       blanks); min, max bound each item */
    ST_NEXTHOP,     /* char *, "host" or "[host]" with an optional ":port";
                       the port goes to the unsigned at count_offset (0: none) */
    ST_RESOLVER,    /* char *, "IP" or "IP@port" */
    ST_LOG_TARGET,  /* char *, "stderr", "syslog", or an ST_PATH */
    ST_FINGERPRINTS, /* struct fingerprint[max], SHA-256 digests in hex, colons
                       allowed (commas and/or blanks between them) */
    ST_DOMAINS,     /* char *[max], domain names (commas and/or blanks),
                       lower-cased, repeats dropped */
    ST_DELIVER,     /* char *, NULL for "maildir", else an lmtp: target
                       (config_parse_deliver) */
    ST_MILTER_SOCKET, /* char *, a milter's socket (config_parse_milter_socket) */
    ST_NAMES,       /* char *[max], section names (commas and/or blanks),
                       lower-cased, repeats dropped */
};

/* How a type takes several values. */
enum list_style { LIST_NONE, LIST_COMMA, LIST_REPEAT };

struct enum_name {
    const char *name;
    int value;
};

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;                  /* field in the section's struct */
    size_t count_offset;            /* lists: their size_t item count;
                                       ST_NEXTHOP: its unsigned port */
    uint64_t min, max;              /* numbers: bounds; strings, lists: max
                                       length / item count */
    const char *def;                /* default in config syntax; NULL when
                                       there is none or it is computed */
    bool required;
    const struct enum_name *names;  /* ST_ENUM, NULL-terminated */
};

struct section_def {
    const char *name;               /* "server", "listener", ... */
    enum section_kind kind;
    bool named;                     /* [listener NAME] */
    const struct setting *settings;
    size_t count;
};

/* config_settings.c */
const struct section_def *config_section(enum section_kind kind);
const struct section_def *config_section_by_name(const char *name);
/* The known key nearest to a misspelt name (two edits at most), or NULL. */
const char *config_setting_nearest(const struct section_def *sec, const char *name);
const struct setting *config_setting_find(const struct section_def *sec,
                                          const char *name);
int config_setting_index(const struct section_def *sec, const char *name);

/* config_value.c: parse, format and free one setting of a section struct */
enum list_style config_value_list_style(const struct setting *s);
bool config_value_parse(const struct setting *s, void *base, const char *value,
                        const struct config *cfg, char *msg, size_t msgsize);
size_t config_value_count(const struct setting *s, const void *base);
void config_value_format(const struct setting *s, const void *base, size_t i,
                         char *buf, size_t bufsize);
void config_value_free(const struct setting *s, void *base);

/* config_syntax.c */
bool config_parse_number(const char *s, uint64_t *out);
void config_format_duration(uint64_t seconds, char *buf, size_t bufsize);
void config_format_size(uint64_t bytes, char *buf, size_t bufsize);
bool config_valid_domain(const char *s);
bool config_valid_local_part(const char *s, size_t len);
bool config_valid_listener_name(const char *s);
void config_lowercase(char *s);
bool config_parse_network(const char *text, struct network *out, char *msg,
                          size_t msgsize);
bool config_parse_nexthop(const char *text, char *host, size_t hostsize,
                          unsigned *port, char *msg, size_t msgsize);
bool config_parse_resolver(const char *text, char *msg, size_t msgsize);
bool config_parse_listen_address(const char *text, struct listen_address *out,
                                 char *msg, size_t msgsize);
bool config_same_address(const struct listen_address *a,
                         const struct listen_address *b);
char *config_resolve_path(const char *dir, const char *value, char *msg,
                          size_t msgsize);

/* What the loader knows about one section instance. */
struct section_state {
    int header_line;                        /* 0: section absent */
    int key_line[CONFIG_SETTINGS_MAX];      /* first line a key was set on */
};

struct loader {
    struct config *cfg;
    FILE *fp;
    const char *path;               /* as given, for messages */
    const char *hostname;           /* config_load_copy: the master's */
    int line_size;                  /* inih's buffer size */
    int lineno;                     /* physical lines read so far */
    bool have_prev_key;             /* inih would continue an indented line */
    bool continuation;              /* the current line is one */

    const struct section_def *sec;  /* current section, NULL before any */
    void *base;                     /* its struct */
    struct section_state *state;
    char label[CONFIG_LINE_MAX + 2];        /* "[listener mx]" */

    struct section_state server, tls, queue, relay, tlsrpt, submission;
    struct section_state metrics;
    struct section_state listeners[CONFIG_MAX_LISTENERS];
    struct section_state domains[CONFIG_MAX_DOMAINS];
    struct section_state destinations[CONFIG_MAX_DESTINATIONS];
    struct section_state milters[CONFIG_MAX_MILTERS];

    bool failed;
    int err_line;                   /* 0: no line */
    char err[CONFIG_MSG_MAX];
};

/* config.c: record the first error; always returns false. */
bool loader_error(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_section_label(const struct section_def *def, const char *name,
                          char *buf, size_t bufsize);

/* config_check.c: defaults, computed defaults and cross-section checks. */
bool config_finish(struct loader *ld);

#endif

/*
 * config_value.c - parse, format and free one setting, by type, in the
 * struct of its section (struct config, listener_config, domain_config,
 * tls_config, queue_config or relay_config) at the offsets given by the
 * settings table.
 *
 * Trusts the settings table (offsets and types match config.h) and that
 * values are NUL-terminated; trusts nothing about their content. Every
 * value is checked against its syntax and bounds before it is stored.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/ascii.h"
#include "util/xalloc.h"

#define FIELD(type, base, s) ((type *)(void *)((char *)(base) + (s)->offset))
#define CFIELD(type, base, s) \
    ((const type *)(const void *)((const char *)(base) + (s)->offset))
#define COUNT_FIELD(base, s) ((size_t *)(void *)((char *)(base) + (s)->count_offset))
#define CCOUNT_FIELD(base, s) \
    ((const size_t *)(const void *)((const char *)(base) + (s)->count_offset))
#define PORT_FIELD(base, s) ((unsigned *)(void *)((char *)(base) + (s)->count_offset))
#define CPORT_FIELD(base, s) \
    ((const unsigned *)(const void *)((const char *)(base) + (s)->count_offset))

typedef bool parse_fn(const struct setting *s, void *base, const char *value,
                      const struct config *cfg, char *msg, size_t msgsize);

/* ---- numbers ---------------------------------------------------------- */

static void format_number(enum setting_type type, uint64_t v, char *buf, size_t n)
{
    if (type == ST_SECONDS)
        config_format_duration(v, buf, n);
    else if (type == ST_BYTES)
        config_format_size(v, buf, n);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

static bool number_syntax(enum setting_type type, const char *value, uint64_t *v,
                          const char **expected)
{
    if (type == ST_SECONDS) {
        *expected = "a duration like 30s, 5m, 2h or 1d";
        return config_parse_duration(value, v);
    }
    if (type == ST_BYTES) {
        *expected = "a size like 1048576, 512k, 50M or 1G";
        return config_parse_size(value, v);
    }
    *expected = "a whole number";
    return config_parse_number(value, v);
}

static void store_number(const struct setting *s, void *base, uint64_t v)
{
    if (s->type == ST_BYTES)
        *FIELD(uint64_t, base, s) = v;
    else if (s->type == ST_SIZE)
        *FIELD(size_t, base, s) = (size_t)v;
    else
        *FIELD(unsigned, base, s) = (unsigned)v;
}

static uint64_t load_number(const struct setting *s, const void *base)
{
    if (s->type == ST_BYTES)
        return *CFIELD(uint64_t, base, s);
    if (s->type == ST_SIZE)
        return *CFIELD(size_t, base, s);
    return *CFIELD(unsigned, base, s);
}

static bool parse_number_value(const struct setting *s, void *base, const char *value,
                               const struct config *cfg, char *msg, size_t n)
{
    const char *expected;
    char lo[32], hi[32];
    uint64_t v;

    (void)cfg;
    if (!number_syntax(s->type, value, &v, &expected)) {
        snprintf(msg, n, "%s = %s: expected %s", s->name, value, expected);
        return false;
    }
    if (v < s->min || v > s->max) {
        format_number(s->type, s->min, lo, sizeof(lo));
        format_number(s->type, s->max, hi, sizeof(hi));
        snprintf(msg, n, "%s = %s is out of range (%s..%s)", s->name, value, lo, hi);
        return false;
    }
    store_number(s, base, v);
    return true;
}

/* ---- booleans and enumerations --------------------------------------- */

static bool parse_bool_value(const struct setting *s, void *base, const char *value,
                             const struct config *cfg, char *msg, size_t n)
{
    static const char *const truths[] = { "yes", "true", "on", "1" };
    static const char *const lies[] = { "no", "false", "off", "0" };

    (void)cfg;
    for (size_t i = 0; i < sizeof(truths) / sizeof(truths[0]); i++) {
        if (strcasecmp(value, truths[i]) == 0 || strcasecmp(value, lies[i]) == 0) {
            *FIELD(bool, base, s) = strcasecmp(value, truths[i]) == 0;
            return true;
        }
    }
    snprintf(msg, n, "%s = %s: expected yes or no", s->name, value);
    return false;
}

static bool parse_enum_value(const struct setting *s, void *base, const char *value,
                             const struct config *cfg, char *msg, size_t n)
{
    size_t used;

    (void)cfg;
    for (const struct enum_name *e = s->names; e->name; e++) {
        if (strcasecmp(value, e->name) == 0) {
            *FIELD(int, base, s) = e->value;
            return true;
        }
    }
    used = (size_t)snprintf(msg, n, "%s = %s: expected one of", s->name, value);
    for (const struct enum_name *e = s->names; e->name && used < n; e++)
        used += (size_t)snprintf(msg + used, n - used, " %s", e->name);
    return false;
}

static const char *enum_name(const struct setting *s, int value)
{
    for (const struct enum_name *e = s->names; e->name; e++)
        if (e->value == value)
            return e->name;
    return "?";
}

/* ---- names and addresses --------------------------------------------- */

static bool parse_hostname_value(const struct setting *s, void *base, const char *value,
                                 const struct config *cfg, char *msg, size_t n)
{
    (void)cfg;
    if (strlen(value) > s->max || !config_valid_domain(value)) {
        snprintf(msg, n, "%s = %s: not a valid domain name", s->name, value);
        return false;
    }
    snprintf(FIELD(char, base, s), s->max + 1, "%s", value);
    return true;
}

/* A POSIX-portable user name ([a-z_][a-z0-9_-]*), or empty for "none". */
static bool parse_username_value(const struct setting *s, void *base, const char *value,
                                 const struct config *cfg, char *msg, size_t n)
{
    size_t len = strlen(value);
    bool ok = len <= s->max;

    (void)cfg;
    for (size_t i = 0; ok && i < len; i++) {
        char c = value[i];
        ok = (c >= 'a' && c <= 'z') || c == '_' ||
             (i > 0 && ((c >= '0' && c <= '9') || c == '-'));
    }
    if (!ok) {
        snprintf(msg, n, "%s = %s: not a valid user name", s->name, value);
        return false;
    }
    snprintf(FIELD(char, base, s), s->max + 1, "%s", value);
    return true;
}

/* "local@domain" with a valid local part and domain; domain lower-cased. */
static char *parse_mailbox(const char *value)
{
    const char *at = strrchr(value, '@');
    char *copy;

    if (!at || !config_valid_local_part(value, (size_t)(at - value)) ||
        !config_valid_domain(at + 1))
        return NULL;
    copy = xstrdup(value);
    config_lowercase(copy + (at - value));
    return copy;
}

static bool parse_mailbox_value(const struct setting *s, void *base, const char *value,
                                const struct config *cfg, char *msg, size_t n)
{
    char *mailbox = parse_mailbox(value);

    (void)cfg;
    if (!mailbox) {
        snprintf(msg, n, "%s = %s: expected an address like local@domain", s->name, value);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = mailbox;
    return true;
}

/* ---- paths ------------------------------------------------------------ */

static bool check_readable_file(const char *path, char *msg, size_t n)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(msg, n, "cannot read '%s': %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, n, "'%s' is not a regular file", path);
        return false;
    }
    return true;
}

/* A maildir template needs {local}; {domain} is optional; no other {...}. */
static bool check_template(const char *t, char *msg, size_t n)
{
    for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{')) {
        if (strncmp(p, "{local}", 7) != 0 && strncmp(p, "{domain}", 8) != 0) {
            snprintf(msg, n, "maildir '%s': unknown placeholder at '%.20s' "
                     "(use {domain} and {local})", t, p);
            return false;
        }
    }
    if (!strstr(t, "{local}")) {
        snprintf(msg, n, "maildir '%s' must contain {local}", t);
        return false;
    }
    return true;
}

static bool parse_path_value(const struct setting *s, void *base, const char *value,
                             const struct config *cfg, char *msg, size_t n)
{
    char *path = config_resolve_path(cfg->dir, value, msg, n);

    if (!path)
        return false;
    /* A copy in a role: the master checked the files when it loaded. */
    if ((s->type == ST_FILE && !cfg->replayed && !check_readable_file(path, msg, n)) ||
        (s->type == ST_TEMPLATE && !check_template(path, msg, n))) {
        free(path);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = path;
    return true;
}

static bool parse_paths_value(const struct setting *s, void *base, const char *value,
                              const struct config *cfg, char *msg, size_t n)
{
    char **items = FIELD(char *, base, s);
    size_t *count = COUNT_FIELD(base, s);
    char *path;

    if (*value == '\0')
        return true;
    if (*count >= s->max) {
        snprintf(msg, n, "too many %s values (max %llu)", s->name,
                 (unsigned long long)s->max);
        return false;
    }
    path = config_resolve_path(cfg->dir, value, msg, n);
    if (!path)
        return false;
    items[(*count)++] = path;
    return true;
}

/* ---- next hops and resolvers ----------------------------------------- */

static bool parse_nexthop_value(const struct setting *s, void *base, const char *value,
                                const struct config *cfg, char *msg, size_t n)
{
    char host[300], why[CONFIG_MSG_MAX / 2];
    unsigned port;

    (void)cfg;
    if (!config_parse_nexthop(value, host, sizeof(host), &port, why, sizeof(why))) {
        snprintf(msg, n, "%s = %s: %s", s->name, value, why);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = xstrdup(host);
    *PORT_FIELD(base, s) = port;
    return true;
}

static bool parse_resolver_value(const struct setting *s, void *base, const char *value,
                                 const struct config *cfg, char *msg, size_t n)
{
    char why[CONFIG_MSG_MAX / 2];

    (void)cfg;
    if (!config_parse_resolver(value, why, sizeof(why))) {
        snprintf(msg, n, "%s = %s: %s", s->name, value, why);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = xstrdup(value);
    return true;
}

/* "maildir" is the default (NULL); an lmtp: target is kept as written. */
static bool parse_deliver_value(const struct setting *s, void *base, const char *value,
                                const struct config *cfg, char *msg, size_t n)
{
    struct lmtp_target t;
    char why[CONFIG_MSG_MAX / 2];
    bool lmtp;

    (void)cfg;
    if (!config_parse_deliver(value, &lmtp, &t, why, sizeof(why))) {
        snprintf(msg, n, "%s = %s: %s", s->name, value, why);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = lmtp ? xstrdup(value) : NULL;
    return true;
}

/* "stderr" and "syslog" are kept as they are; anything else is a file,
 * resolved like every path (a relative one against the config's folder). */
static bool parse_log_target_value(const struct setting *s, void *base, const char *value,
                                   const struct config *cfg, char *msg, size_t n)
{
    if (strcmp(value, "stderr") != 0 && strcmp(value, "syslog") != 0)
        return parse_path_value(s, base, value, cfg, msg, n);
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = xstrdup(value);
    return true;
}

/* ---- lists ------------------------------------------------------------- */

typedef bool item_fn(const struct setting *s, void *base, const char *item,
                     const struct config *cfg, char *msg, size_t msgsize);

/* Addresses and recipients are separated by commas only; networks and
 * durations by commas and/or blanks. */
static const char *item_separators(const struct setting *s)
{
    return s->type == ST_NETWORKS || s->type == ST_DURATIONS || s->type == ST_FINGERPRINTS ||
                   s->type == ST_DOMAINS || s->type == ST_NAMES
               ? ", \t" : ",";
}

/* Call fn for every non-empty, blank-trimmed item of value. */
static bool for_each_item(const struct setting *s, void *base, const char *value,
                          const struct config *cfg, char *msg, size_t n, item_fn *fn)
{
    const char *seps = item_separators(s);
    char item[CONFIG_LINE_MAX];

    while (*value) {
        size_t len = strcspn(value, seps);
        const char *start = value;
        ascii_trim_wsp(&start, &len);
        if (len >= sizeof(item)) {
            snprintf(msg, n, "%s: item too long", s->name);
            return false;
        }
        memcpy(item, start, len);
        item[len] = '\0';
        if (len > 0 && !fn(s, base, item, cfg, msg, n))
            return false;
        value += strcspn(value, seps);
        if (*value)
            value++;
    }
    return true;
}

/* Is la already used by this or any other listener? */
static const char *address_owner(const struct config *cfg,
                                 const struct listen_address *la)
{
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct listener_config *l = &cfg->listeners[i];
        for (size_t j = 0; j < l->address_count; j++)
            if (config_same_address(&l->addresses[j], la))
                return l->name;
    }
    return NULL;
}

static bool add_address(const struct setting *s, void *base, const char *item,
                        const struct config *cfg, char *msg, size_t n)
{
    /* the setting's own fields: [listener] address, [metrics] listen */
    struct listen_address *addresses = (struct listen_address *)((char *)base + s->offset);
    size_t *count = (size_t *)((char *)base + s->count_offset);
    struct listen_address la;
    const char *owner;

    if (*count >= s->max) {
        snprintf(msg, n, "too many addresses in one %s (max %llu)",
                 s->max == 1 ? "setting" : "listener", (unsigned long long)s->max);
        return false;
    }
    if (!config_parse_listen_address(item, &la, msg, n))
        return false;
    owner = address_owner(cfg, &la);
    if (owner) {
        snprintf(msg, n, "address %s is already used by [listener %s]", item, owner);
        return false;
    }
    addresses[(*count)++] = la;
    return true;
}

static bool valid_recipient(const char *item)
{
    const char *at = strrchr(item, '@');

    if (!at)
        return config_valid_local_part(item, strlen(item));
    return config_valid_local_part(item, (size_t)(at - item)) &&
           config_valid_domain(at + 1);
}

static bool add_recipient(const struct setting *s, void *base, const char *item,
                          const struct config *cfg, char *msg, size_t n)
{
    struct listener_config *l = base;
    char *lower;

    (void)cfg;
    if (!valid_recipient(item)) {
        snprintf(msg, n, "%s: '%s' is not a local part or local@domain", s->name, item);
        return false;
    }
    for (size_t i = 0; i < l->cleartext_count; i++)
        if (strcasecmp(l->cleartext_recipients[i], item) == 0)
            return true;
    if (l->cleartext_count >= s->max) {
        snprintf(msg, n, "too many %s (max %llu)", s->name, (unsigned long long)s->max);
        return false;
    }
    lower = xstrdup(item);
    config_lowercase(lower);
    l->cleartext_recipients[l->cleartext_count++] = lower;
    return true;
}

static bool add_network(const struct setting *s, void *base, const char *item,
                        const struct config *cfg, char *msg, size_t n)
{
    struct network *nets = FIELD(struct network, base, s);
    size_t *count = COUNT_FIELD(base, s);
    struct network net;
    char why[CONFIG_MSG_MAX / 2];

    (void)cfg;
    if (!config_parse_network(item, &net, why, sizeof(why))) {
        snprintf(msg, n, "%s: %s", s->name, why);
        return false;
    }
    for (size_t i = 0; i < *count; i++)
        if (strcmp(nets[i].text, net.text) == 0)
            return true;
    if (*count >= s->max) {
        snprintf(msg, n, "too many %s (max %llu)", s->name, (unsigned long long)s->max);
        return false;
    }
    nets[(*count)++] = net;
    return true;
}

/* 64 hex digits, optionally in colon-separated pairs ("AB:CD:..."). */
static bool parse_fingerprint(const char *item, struct fingerprint *fp)
{
    size_t got = 0;

    for (const char *p = item; *p != '\0';) {
        int hi = ascii_hex_value(p[0]), lo = hi < 0 ? -1 : ascii_hex_value(p[1]);

        if (hi < 0 || lo < 0 || got == sizeof(fp->sha256))
            return false;
        fp->sha256[got] = (unsigned char)(hi << 4 | lo);
        snprintf(fp->text + 2 * got, 3, "%02x", fp->sha256[got]);
        got++;
        p += 2;
        if (*p == ':' && p[1] != '\0')
            p++;
    }
    return got == sizeof(fp->sha256);
}

static bool add_fingerprint(const struct setting *s, void *base, const char *item,
                            const struct config *cfg, char *msg, size_t n)
{
    struct fingerprint *fps = FIELD(struct fingerprint, base, s);
    size_t *count = COUNT_FIELD(base, s);
    struct fingerprint fp;

    (void)cfg;
    memset(&fp, 0, sizeof(fp));
    if (!parse_fingerprint(item, &fp)) {
        snprintf(msg, n, "%s: '%.80s' is not a SHA-256 digest (64 hex digits, colons "
                 "allowed)", s->name, item);
        return false;
    }
    for (size_t i = 0; i < *count; i++)
        if (memcmp(fps[i].sha256, fp.sha256, sizeof(fp.sha256)) == 0)
            return true;
    if (*count >= s->max) {
        snprintf(msg, n, "too many %s (max %llu)", s->name, (unsigned long long)s->max);
        return false;
    }
    fps[(*count)++] = fp;
    return true;
}

static bool add_duration(const struct setting *s, void *base, const char *item,
                         const struct config *cfg, char *msg, size_t n)
{
    unsigned *items = FIELD(unsigned, base, s);
    size_t *count = COUNT_FIELD(base, s);
    char lo[32], hi[32];
    uint64_t v;

    (void)cfg;
    if (!config_parse_duration(item, &v)) {
        snprintf(msg, n, "%s: '%s' is not a duration like 30s, 5m, 2h or 1d",
                 s->name, item);
        return false;
    }
    if (v < s->min || v > s->max) {
        config_format_duration(s->min, lo, sizeof(lo));
        config_format_duration(s->max, hi, sizeof(hi));
        snprintf(msg, n, "%s: %s is out of range (%s..%s)", s->name, item, lo, hi);
        return false;
    }
    if (*count >= CONFIG_MAX_RETRY) {
        snprintf(msg, n, "too many %s values (max %d)", s->name, CONFIG_MAX_RETRY);
        return false;
    }
    items[(*count)++] = (unsigned)v;
    return true;
}

static bool parse_networks_value(const struct setting *s, void *base, const char *value,
                                 const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_network);
}

static bool parse_durations_value(const struct setting *s, void *base, const char *value,
                                  const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_duration);
}

static bool parse_fingerprints_value(const struct setting *s, void *base, const char *value,
                                     const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_fingerprint);
}

static bool parse_addresses_value(const struct setting *s, void *base, const char *value,
                                  const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_address);
}

static bool parse_recipients_value(const struct setting *s, void *base, const char *value,
                                   const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_recipient);
}

static bool add_domain(const struct setting *s, void *base, const char *item,
                       const struct config *cfg, char *msg, size_t n)
{
    char **names = FIELD(char *, base, s);
    size_t *count = COUNT_FIELD(base, s);
    char *lower;

    (void)cfg;
    if (s->type == ST_NAMES ? !config_valid_listener_name(item) : !config_valid_domain(item)) {
        snprintf(msg, n, "%s: '%s' is not a %s", s->name, item,
                 s->type == ST_NAMES ? "section name" : "domain name");
        return false;
    }
    for (size_t i = 0; i < *count; i++)
        if (strcasecmp(names[i], item) == 0)
            return true;
    if (*count >= s->max) {
        snprintf(msg, n, "too many %s (max %llu)", s->name, (unsigned long long)s->max);
        return false;
    }
    lower = xstrdup(item);
    config_lowercase(lower);
    names[(*count)++] = lower;
    return true;
}

static bool parse_domains_value(const struct setting *s, void *base, const char *value,
                                const struct config *cfg, char *msg, size_t n)
{
    return for_each_item(s, base, value, cfg, msg, n, add_domain);
}

/* A milter socket is kept as written once it parses. */
static bool parse_milter_socket_value(const struct setting *s, void *base, const char *value,
                                      const struct config *cfg, char *msg, size_t n)
{
    struct lmtp_target t;
    char why[CONFIG_MSG_MAX / 2];

    (void)cfg;
    if (!config_parse_milter_socket(value, &t, why, sizeof(why))) {
        snprintf(msg, n, "%s = %s: %s", s->name, value, why);
        return false;
    }
    free(*FIELD(char *, base, s));
    *FIELD(char *, base, s) = xstrdup(value);
    return true;
}

/* ---- dispatch --------------------------------------------------------- */

static parse_fn *const parsers[] = {
    [ST_UINT] = parse_number_value,      [ST_SIZE] = parse_number_value,
    [ST_BYTES] = parse_number_value,     [ST_SECONDS] = parse_number_value,
    [ST_BOOL] = parse_bool_value,        [ST_ENUM] = parse_enum_value,
    [ST_HOSTNAME] = parse_hostname_value, [ST_USERNAME] = parse_username_value,
    [ST_PATH] = parse_path_value,
    [ST_FILE] = parse_path_value,        [ST_TEMPLATE] = parse_path_value,
    [ST_MAILBOX] = parse_mailbox_value,  [ST_ADDRESSES] = parse_addresses_value,
    [ST_RECIPIENTS] = parse_recipients_value, [ST_PATHS] = parse_paths_value,
    [ST_NETWORKS] = parse_networks_value, [ST_DURATIONS] = parse_durations_value,
    [ST_NEXTHOP] = parse_nexthop_value,  [ST_RESOLVER] = parse_resolver_value,
    [ST_LOG_TARGET] = parse_log_target_value, [ST_FINGERPRINTS] = parse_fingerprints_value,
    [ST_DOMAINS] = parse_domains_value,
    [ST_DELIVER] = parse_deliver_value,
    [ST_MILTER_SOCKET] = parse_milter_socket_value,
    [ST_NAMES] = parse_domains_value,
};

bool config_value_parse(const struct setting *s, void *base, const char *value,
                        const struct config *cfg, char *msg, size_t msgsize)
{
    return parsers[s->type](s, base, value, cfg, msg, msgsize);
}

enum list_style config_value_list_style(const struct setting *s)
{
    switch (s->type) {
    case ST_ADDRESSES:
    case ST_RECIPIENTS:
    case ST_NETWORKS:
    case ST_DURATIONS:
    case ST_FINGERPRINTS:
    case ST_DOMAINS:
    case ST_NAMES:
        return LIST_COMMA;
    case ST_PATHS:
        return LIST_REPEAT;
    default:
        return LIST_NONE;
    }
}

/* Number of values to print: list items, 0 for an unset string, else 1. */
size_t config_value_count(const struct setting *s, const void *base)
{
    switch (s->type) {
    case ST_ADDRESSES:
    case ST_RECIPIENTS:
    case ST_PATHS:
    case ST_NETWORKS:
    case ST_DURATIONS:
    case ST_FINGERPRINTS:
    case ST_DOMAINS:
    case ST_NAMES:
        return *CCOUNT_FIELD(base, s);
    case ST_PATH:
    case ST_FILE:
    case ST_TEMPLATE:
    case ST_MAILBOX:
    case ST_NEXTHOP:
    case ST_RESOLVER:
    case ST_LOG_TARGET:
    case ST_MILTER_SOCKET:
        return *CFIELD(char *, base, s) ? 1 : 0;
    case ST_DELIVER:
        return 1;
    default:
        return 1;
    }
}

/* Value i (0 for scalars) in the syntax config_value_parse accepts. */
void config_value_format(const struct setting *s, const void *base, size_t i,
                         char *buf, size_t n)
{
    switch (s->type) {
    case ST_BOOL:
        snprintf(buf, n, "%s", *CFIELD(bool, base, s) ? "yes" : "no");
        break;
    case ST_ENUM:
        snprintf(buf, n, "%s", enum_name(s, *CFIELD(int, base, s)));
        break;
    case ST_HOSTNAME:
    case ST_USERNAME:
        snprintf(buf, n, "%s", CFIELD(char, base, s));
        break;
    case ST_PATH:
    case ST_FILE:
    case ST_TEMPLATE:
    case ST_MAILBOX:
    case ST_RESOLVER:
    case ST_LOG_TARGET:
    case ST_MILTER_SOCKET:
        snprintf(buf, n, "%s", *CFIELD(char *, base, s));
        break;
    case ST_DELIVER:
        snprintf(buf, n, "%s", *CFIELD(char *, base, s) ? *CFIELD(char *, base, s) : "maildir");
        break;
    case ST_NEXTHOP:
        if (*CPORT_FIELD(base, s))
            snprintf(buf, n, "%s:%u", *CFIELD(char *, base, s), *CPORT_FIELD(base, s));
        else
            snprintf(buf, n, "%s", *CFIELD(char *, base, s));
        break;
    case ST_NETWORKS:
        snprintf(buf, n, "%s", CFIELD(struct network, base, s)[i].text);
        break;
    case ST_DURATIONS:
        config_format_duration(CFIELD(unsigned, base, s)[i], buf, n);
        break;
    case ST_FINGERPRINTS:
        snprintf(buf, n, "%s", CFIELD(struct fingerprint, base, s)[i].text);
        break;
    case ST_ADDRESSES:
        snprintf(buf, n, "%s", CFIELD(struct listen_address, base, s)[i].text);
        break;
    case ST_RECIPIENTS:
    case ST_PATHS:
    case ST_DOMAINS:
    case ST_NAMES:
        snprintf(buf, n, "%s", CFIELD(char *, base, s)[i]);
        break;
    default:
        format_number(s->type, load_number(s, base), buf, n);
        break;
    }
}

void config_value_free(const struct setting *s, void *base)
{
    switch (s->type) {
    case ST_PATH:
    case ST_FILE:
    case ST_TEMPLATE:
    case ST_MAILBOX:
    case ST_NEXTHOP:
    case ST_RESOLVER:
    case ST_LOG_TARGET:
    case ST_MILTER_SOCKET:
    case ST_DELIVER:
        free(*FIELD(char *, base, s));
        *FIELD(char *, base, s) = NULL;
        break;
    case ST_NETWORKS:
    case ST_DURATIONS:
        *COUNT_FIELD(base, s) = 0;
        break;
    case ST_RECIPIENTS:
    case ST_PATHS:
    case ST_DOMAINS:
    case ST_NAMES:
        for (size_t i = 0; i < *COUNT_FIELD(base, s); i++)
            free(FIELD(char *, base, s)[i]);
        *COUNT_FIELD(base, s) = 0;
        break;
    default:
        break;
    }
}

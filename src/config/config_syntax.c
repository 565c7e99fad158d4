/*
 * config_syntax.c - the syntax of single config values: numbers,
 * durations, sizes, domain names, local parts, listener names, listen
 * addresses, networks, next hops ("[host]:port"), resolver addresses
 * and paths relative to the config folder.
 *
 * Trusts nothing about its input strings beyond NUL termination; every
 * function checks length and characters itself and overflow is an error.
 * Never touches the file system: path resolution is purely lexical.
 * Character classes are ASCII, independent of the locale.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/ascii.h"
#include "util/xalloc.h"

struct unit {
    char suffix;
    uint64_t factor;
};

static const struct unit duration_units[] = {
    { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 }, { 0, 0 },
};

static const struct unit size_units[] = {
    { 'G', 1024ULL * 1024 * 1024 }, { 'M', 1024 * 1024 }, { 'k', 1024 },
    { 'g', 1024ULL * 1024 * 1024 }, { 'm', 1024 * 1024 }, { 'K', 1024 },
    { 0, 0 },
};

/* Digits only, at least one, no sign or blanks; false on overflow. */
bool config_parse_number(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!ascii_digit((unsigned char)*s))
        return false;
    for (; ascii_digit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (*s != '\0')
        return false;
    *out = v;
    return true;
}

/* A number with an optional one-letter unit from units. */
static bool parse_with_unit(const char *s, const struct unit *units, uint64_t *out)
{
    char digits[32];
    size_t len = strlen(s);
    uint64_t factor = 1, v;

    if (len == 0 || len >= sizeof(digits))
        return false;
    memcpy(digits, s, len + 1);
    for (const struct unit *u = units; u->suffix; u++) {
        if (digits[len - 1] == u->suffix) {
            factor = u->factor;
            digits[len - 1] = '\0';
            break;
        }
    }
    if (!config_parse_number(digits, &v) || v > UINT64_MAX / factor)
        return false;
    *out = v * factor;
    return true;
}

bool config_parse_duration(const char *s, uint64_t *seconds)
{
    return parse_with_unit(s, duration_units, seconds);
}

bool config_parse_size(const char *s, uint64_t *bytes)
{
    return parse_with_unit(s, size_units, bytes);
}

/* The largest unit that divides v exactly; units ordered largest first. */
static void format_with_unit(uint64_t v, const struct unit *units,
                             char *buf, size_t bufsize)
{
    for (const struct unit *u = units; u->suffix; u++) {
        if (v != 0 && v % u->factor == 0) {
            snprintf(buf, bufsize, "%llu%c",
                     (unsigned long long)(v / u->factor), u->suffix);
            return;
        }
    }
    snprintf(buf, bufsize, "%llu", (unsigned long long)v);
}

void config_format_duration(uint64_t seconds, char *buf, size_t bufsize)
{
    if (seconds == 0)
        snprintf(buf, bufsize, "0s");
    else
        format_with_unit(seconds, duration_units, buf, bufsize);
}

void config_format_size(uint64_t bytes, char *buf, size_t bufsize)
{
    format_with_unit(bytes, size_units, buf, bufsize);
}

static bool valid_label(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!ascii_alnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!ascii_digit((unsigned char)s[i]))
            return false;
    return true;
}

/* RFC 1123 host name: LDH labels of 1..63, at most 253 in all, no
 * trailing dot, and a last label that is not all digits (not an IP). */
bool config_valid_domain(const char *s)
{
    size_t total = strlen(s);
    const char *label = s;

    if (total == 0 || total > 253)
        return false;
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t len = dot ? (size_t)(dot - label) : strlen(label);
        if (!valid_label(label, len))
            return false;
        if (!dot)
            return !all_digits(label, len);
        label = dot + 1;
    }
}

/* RFC 5322 dot-atom, at most 64 octets. */
bool config_valid_local_part(const char *s, size_t len)
{
    static const char specials[] = "!#$%&'*+-/=?^_`{|}~";

    if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.')
            return false;
        if (!ascii_alnum((unsigned char)c) && c != '.' && (c == '\0' || !strchr(specials, c)))
            return false;
    }
    return true;
}

bool config_valid_listener_name(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!ascii_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

void config_lowercase(char *s)
{
    for (; *s; s++)
        *s = ascii_lower((unsigned char)*s);
}

/* A port number 1..65535, digits only. */
static bool parse_port_number(const char *s, unsigned *port)
{
    uint64_t v;

    if (strlen(s) > 5 || !config_parse_number(s, &v) || v < 1 || v > 65535)
        return false;
    *port = (unsigned)v;
    return true;
}

static bool parse_port(const char *s, in_port_t *port)
{
    unsigned v;

    if (!parse_port_number(s, &v))
        return false;
    *port = htons((in_port_t)v);
    return true;
}

static bool set_ipv6(const char *host, in_port_t port, struct listen_address *out)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;

    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return false;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = port;
    out->addrlen = sizeof(*sin6);
    return true;
}

/* "*" is the IPv4 wildcard; "[::]" is the IPv6 one. */
static bool set_ipv4(const char *host, in_port_t port, struct listen_address *out)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;

    if (strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return false;
    sin->sin_family = AF_INET;
    sin->sin_port = port;
    out->addrlen = sizeof(*sin);
    return true;
}

/* Split "host:port" or "[v6]:port" in buf (modified) into its parts. */
static bool split_host_port(char *buf, char **host, char **port, bool *v6)
{
    char *colon;

    *v6 = buf[0] == '[';
    if (*v6) {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':')
            return false;
        *close = '\0';
        *host = buf + 1;
        *port = close + 2;
        return true;
    }
    colon = strrchr(buf, ':');
    if (!colon || strchr(buf, ':') != colon)
        return false;
    *colon = '\0';
    *host = buf;
    *port = colon + 1;
    return true;
}

bool config_parse_listen_address(const char *text, struct listen_address *out,
                                 char *msg, size_t msgsize)
{
    char buf[sizeof(out->text)];
    char *host, *port;
    in_port_t nport;
    bool v6, ok;

    memset(out, 0, sizeof(*out));
    if (strlen(text) >= sizeof(buf)) {
        snprintf(msg, msgsize, "address '%.40s...' is too long", text);
        return false;
    }
    snprintf(out->text, sizeof(out->text), "%s", text);
    snprintf(buf, sizeof(buf), "%s", text);
    if (!split_host_port(buf, &host, &port, &v6)) {
        snprintf(msg, msgsize, "address '%s': expected IPV4:PORT, [IPV6]:PORT "
                 "or *:PORT", text);
        return false;
    }
    if (!parse_port(port, &nport)) {
        snprintf(msg, msgsize, "address '%s': port must be 1..65535", text);
        return false;
    }
    ok = v6 ? set_ipv6(host, nport, out) : set_ipv4(host, nport, out);
    if (!ok)
        snprintf(msg, msgsize, "address '%s': '%s' is not a numeric %s address",
                 text, host, v6 ? "IPv6" : "IPv4");
    return ok;
}

/* ---- networks, next hops, resolvers ---------------------------------- */

/*
 * text failed cidr_parse. If only its host bits are wrong, write the
 * network it probably meant ("10.0.0.0/8" for "10.0.0.1/8") to buf.
 */
static bool suggest_network(const char *text, char *buf, size_t bufsize)
{
    unsigned char addr[16];
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : 0, alen;
    struct network net;
    uint64_t prefix;
    int family;

    if (!slash || hlen == 0 || hlen >= sizeof(host))
        return false;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    family = strchr(host, ':') ? AF_INET6 : AF_INET;
    alen = family == AF_INET6 ? 16 : 4;
    if (inet_pton(family, host, addr) != 1 || strlen(slash + 1) > 3 ||
        !config_parse_number(slash + 1, &prefix) || prefix > alen * 8)
        return false;
    for (size_t bit = (size_t)prefix; bit < alen * 8; bit++)
        addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    if (!inet_ntop(family, addr, host, sizeof(host)))
        return false;
    snprintf(buf, bufsize, "%s/%u", host, (unsigned)prefix);
    return cidr_parse(buf, &net);
}

bool config_parse_network(const char *text, struct network *out, char *msg,
                          size_t msgsize)
{
    char meant[INET6_ADDRSTRLEN + 8];

    if (cidr_parse(text, out))
        return true;
    if (suggest_network(text, meant, sizeof(meant)))
        snprintf(msg, msgsize, "%s has host bits set; did you mean %s?", text, meant);
    else
        snprintf(msg, msgsize, "'%s' is not a network like 192.0.2.0/24, "
                 "2001:db8::/32 or a single address", text);
    return false;
}

/* Inside brackets: an IPv4 address, an IPv6 address with or without the
 * RFC 5321 "IPv6:" tag, or a host name. */
static bool valid_bracketed(const char *inner)
{
    unsigned char addr[16];

    if (strncasecmp(inner, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, inner + 5, addr) == 1;
    if (strchr(inner, ':'))
        return inet_pton(AF_INET6, inner, addr) == 1;
    return inet_pton(AF_INET, inner, addr) == 1 || config_valid_domain(inner);
}

static bool nexthop_port(const char *text, const char *p, unsigned *port,
                         char *msg, size_t msgsize)
{
    if (!parse_port_number(p, port)) {
        snprintf(msg, msgsize, "port '%s' in %s must be 1..65535", p, text);
        return false;
    }
    return true;
}

/*
 * "host", "host:port", "[host]" or "[host]:port" (host in brackets: an
 * address literal or a name whose MX records are not looked up). host
 * (hostsize bytes) gets the text before the port, brackets kept; *port
 * the port or 0. IP addresses need brackets.
 */
bool config_parse_nexthop(const char *text, char *host, size_t hostsize,
                          unsigned *port, char *msg, size_t msgsize)
{
    char buf[300];
    size_t len = strlen(text);
    char *colon, *rest;

    *port = 0;
    if (len >= sizeof(buf) || len >= hostsize) {
        snprintf(msg, msgsize, "'%.40s...' is too long", text);
        return false;
    }
    memcpy(buf, text, len + 1);
    if (buf[0] == '[') {
        rest = strchr(buf, ']');
        if (!rest || (rest[1] != '\0' && rest[1] != ':')) {
            snprintf(msg, msgsize, "expected [HOST] or [HOST]:PORT");
            return false;
        }
        if (rest[1] == ':' && !nexthop_port(text, rest + 2, port, msg, msgsize))
            return false;
        rest[1] = '\0';
        *rest = '\0';
        if (!valid_bracketed(buf + 1)) {
            snprintf(msg, msgsize, "'%s' is not an IPv4 address, an IPv6 address "
                     "or a host name", buf + 1);
            return false;
        }
        *rest = ']';
    } else {
        colon = strchr(buf, ':');
        if (colon && strchr(colon + 1, ':')) {
            snprintf(msg, msgsize, "an IPv6 address must be in brackets, "
                     "like [IPv6:2001:db8::1]:25");
            return false;
        }
        if (colon) {
            if (!nexthop_port(text, colon + 1, port, msg, msgsize))
                return false;
            *colon = '\0';
        }
        if (!config_valid_domain(buf)) {
            unsigned char addr[4];
            if (inet_pton(AF_INET, buf, addr) == 1)
                snprintf(msg, msgsize, "an IP address must be in brackets, like [%s]", buf);
            else
                snprintf(msg, msgsize, "'%s' is not a valid host name", buf);
            return false;
        }
    }
    snprintf(host, hostsize, "%s", buf);
    return true;
}

/* "IP" or "IP@port", the forwarder syntax of libunbound. */
bool config_parse_resolver(const char *text, char *msg, size_t msgsize)
{
    char host[INET6_ADDRSTRLEN];
    unsigned char addr[16];
    const char *at = strchr(text, '@');
    size_t hlen = at ? (size_t)(at - text) : strlen(text);
    unsigned port;

    if (hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
        goto bad;
    if (at && !parse_port_number(at + 1, &port)) {
        snprintf(msg, msgsize, "port '%s' must be 1..65535", at + 1);
        return false;
    }
    return true;

bad:
    snprintf(msg, msgsize, "expected an IP address with an optional @PORT, "
             "like 127.0.0.1 or 127.0.0.1@5353");
    return false;
}

bool config_same_address(const struct listen_address *a,
                         const struct listen_address *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Drop the last component of an absolute path in buf ("/" stays "/"). */
static void drop_last_component(char *buf)
{
    char *slash = strrchr(buf, '/');

    if (slash == buf)
        buf[1] = '\0';
    else if (slash)
        *slash = '\0';
}

/* Fold leading "./" and "../" of *value into the absolute path in buf. */
static void fold_dots(char *buf, const char **value)
{
    const char *v = *value;

    for (;;) {
        if (strncmp(v, "./", 2) == 0 || strcmp(v, ".") == 0) {
            v += v[1] ? 2 : 1;
        } else if (strncmp(v, "../", 3) == 0 || strcmp(v, "..") == 0) {
            drop_last_component(buf);
            v += v[2] ? 3 : 2;
        } else {
            break;
        }
        while (*v == '/')
            v++;
    }
    *value = v;
}

/*
 * value as an absolute path: absolute values are kept, relative ones are
 * joined to dir (an absolute, symlink-free folder). Leading "./" and
 * "../" are folded into dir, which is exact because dir has no symlinks;
 * later components are kept as written. NULL and msg when too long.
 */
char *config_resolve_path(const char *dir, const char *value, char *msg,
                          size_t msgsize)
{
    char buf[PATH_MAX];
    const char *rest = value;
    size_t len;
    int n;

    if (value[0] == '/')
        return xstrdup(value);
    n = snprintf(buf, sizeof(buf), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(buf) || buf[0] != '/')
        goto too_long;
    fold_dots(buf, &rest);
    len = strlen(buf);
    if (*rest != '\0') {
        n = snprintf(buf + len, sizeof(buf) - len, "%s%s",
                     buf[len - 1] == '/' ? "" : "/", rest);
        if (n < 0 || (size_t)n >= sizeof(buf) - len)
            goto too_long;
    }
    return xstrdup(buf);

too_long:
    snprintf(msg, msgsize, "path '%s' is too long once resolved", value);
    return NULL;
}

/* ---- [domain] deliver (LMTP, RFC 2033) ---------------------------------- */

static bool parse_lmtp_unix(const char *path, struct lmtp_target *out, char *err,
                            size_t errsize)
{
    const char *base = strrchr(path, '/');

    if (path[0] != '/' || base == NULL || base[1] == '\0' || strstr(path, "/../") ||
        strstr(path, "/./")) {
        snprintf(err, errsize, "lmtp:unix: needs an absolute path to the socket, like "
                 "lmtp:unix:/run/dovecot/lmtp");
        return false;
    }
    /* sockaddr_un.sun_path holds 108 octets with the NUL */
    if (strlen(path) >= 108) {
        snprintf(err, errsize, "socket path is over 107 octets");
        return false;
    }
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errsize, "socket path contains a blank or control character");
            return false;
        }
    }
    out->unix_socket = true;
    snprintf(out->path, sizeof(out->path), "%s", path);
    return true;
}

bool config_parse_deliver(const char *value, bool *is_lmtp, struct lmtp_target *out,
                          char *err, size_t errsize)
{
    char host[LMTP_TARGET_MAX];
    const char *h;
    size_t len;

    memset(out, 0, sizeof(*out));
    *is_lmtp = false;
    if (strcmp(value, "maildir") == 0)
        return true;
    if (strncmp(value, "lmtp:", 5) != 0) {
        snprintf(err, errsize, "expected maildir, lmtp:unix:/PATH or lmtp:[HOST]:PORT");
        return false;
    }
    *is_lmtp = true;
    if (strncmp(value + 5, "unix:", 5) == 0)
        return parse_lmtp_unix(value + 10, out, err, errsize);
    if (!config_parse_nexthop(value + 5, host, sizeof(host), &out->port, err, errsize))
        return false;
    if (out->port == 0) {
        snprintf(err, errsize, "lmtp: over TCP needs a port, like lmtp:[127.0.0.1]:24");
        return false;
    }
    h = host;
    len = strlen(h);
    if (h[0] == '[') {                  /* "[192.0.2.1]" or "[IPv6:2001:db8::1]" */
        h++;
        len -= 2;
        if (len > 5 && strncasecmp(h, "IPv6:", 5) == 0) {
            h += 5;
            len -= 5;
        }
    }
    snprintf(out->host, sizeof(out->host), "%.*s", (int)len, h);
    if (strcasecmp(out->host, "localhost") == 0)    /* as for milters: no lookup */
        snprintf(out->host, sizeof(out->host), "127.0.0.1");
    return true;
}

/* ---- [milter] socket ----------------------------------------------------- */

/* HOST is an IP literal or localhost; the port 1-65535. */
static bool milter_inet(const char *host, size_t hlen, const char *port,
                        size_t plen, struct lmtp_target *out, char *err, size_t errsize)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char h[64], p[8];
    unsigned long n;
    char *end;

    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']')
        host++, hlen -= 2;
    if (hlen == 0 || hlen >= sizeof(h) || plen == 0 || plen >= sizeof(p)) {
        snprintf(err, errsize, "expected inet:HOST:PORT with an IP address, like "
                 "inet:127.0.0.1:11332");
        return false;
    }
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    memcpy(p, port, plen);
    p[plen] = '\0';
    if (strcasecmp(h, "localhost") == 0)
        snprintf(h, sizeof(h), "127.0.0.1");
    if (inet_pton(AF_INET, h, addr) != 1 && inet_pton(AF_INET6, h, addr) != 1) {
        snprintf(err, errsize, "'%s' is not an IP address (the milter role resolves no "
                 "names; localhost is 127.0.0.1)", h);
        return false;
    }
    n = strtoul(p, &end, 10);
    if (*end || p[0] < '0' || p[0] > '9' || n == 0 || n > 65535) {
        snprintf(err, errsize, "'%s' is not a port (1-65535)", p);
        return false;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->host, sizeof(out->host), "%s", h);
    out->port = (unsigned)n;
    return true;
}

bool config_parse_milter_socket(const char *value, struct lmtp_target *out, char *err,
                                size_t errsize)
{
    const char *rest, *sep;

    memset(out, 0, sizeof(*out));
    if (strncmp(value, "unix:", 5) == 0 || strncmp(value, "local:", 6) == 0) {
        if (!parse_lmtp_unix(value + (value[0] == 'u' ? 5 : 6), out, err, errsize)) {
            snprintf(err, errsize, "expected unix:/ABSOLUTE/PATH (at most 107 octets, "
                     "no blanks)");
            return false;
        }
        return true;
    }
    if (strncmp(value, "inet:", 5) == 0)
        rest = value + 5;
    else if (strncmp(value, "inet6:", 6) == 0)
        rest = value + 6;
    else {
        snprintf(err, errsize, "expected unix:/PATH, inet:HOST:PORT or inet:PORT@HOST");
        return false;
    }
    if ((sep = strchr(rest, '@')) != NULL)         /* PORT@HOST */
        return milter_inet(sep + 1, strlen(sep + 1), rest, (size_t)(sep - rest), out, err,
                           errsize);
    if ((sep = strrchr(rest, ':')) == NULL) {
        snprintf(err, errsize, "expected inet:HOST:PORT or inet:PORT@HOST");
        return false;
    }
    return milter_inet(rest, (size_t)(sep - rest), sep + 1, strlen(sep + 1), out, err,
                       errsize);
}

void config_milter_socket_dir(const struct config *cfg, char *out, size_t size)
{
    char err[200];

    if (size)
        out[0] = '\0';
    for (size_t i = 0; i < cfg->milter_count; i++) {
        struct lmtp_target t;

        if (cfg->milters[i].socket &&
            config_parse_milter_socket(cfg->milters[i].socket, &t, err, sizeof(err)) &&
            t.unix_socket) {
            const char *slash = strrchr(t.path, '/');
            size_t len = slash == t.path ? 1 : (size_t)(slash - t.path);

            snprintf(out, size, "%.*s", (int)len, t.path);
            return;
        }
    }
}

bool config_lmtp_target(const struct domain_config *dc, struct lmtp_target *out)
{
    char err[200];
    bool lmtp = false;

    if (dc == NULL || dc->deliver == NULL)
        return false;
    return config_parse_deliver(dc->deliver, &lmtp, out, err, sizeof(err)) && lmtp;
}

void config_lmtp_socket_dir(const struct config *cfg, char *out, size_t size)
{
    if (size)
        out[0] = '\0';
    for (size_t i = 0; i < cfg->domain_count; i++) {
        struct lmtp_target t;

        if (config_lmtp_target(&cfg->domains[i], &t) && t.unix_socket) {
            const char *slash = strrchr(t.path, '/');
            size_t len = slash == t.path ? 1 : (size_t)(slash - t.path);

            snprintf(out, size, "%.*s", (int)len, t.path);
            return;
        }
    }
}

bool config_uses_lmtp(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->domain_count; i++)
        if (cfg->domains[i].deliver)
            return true;
    return false;
}

/*
 * senders.c - the submission sender map (see senders.h).
 *
 * Trusts: the operator's file within the checks listed in the header;
 * the address and user asked about come from a client (already parsed
 * and bounded by the SMTP layer) and are only compared.
 */
#include "mail/senders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/address.h"
#include "mail/sasl.h"
#include "util/ascii.h"
#include "util/text_lines.h"
#include "util/xalloc.h"

struct sender_rule {
    char *pattern;              /* "local@domain" or "@domain", lower-cased */
    char *user;
};

struct sender_map {
    struct sender_rule *rules;
    size_t count;
};

static bool token_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* "local@domain" or "@domain": exactly one '@', text after it. */
static bool pattern_ok(const char *p, size_t len)
{
    const char *at = memchr(p, '@', len);

    return token_ok(p, len, ADDR_PATH_MAX) && at != NULL && at + 1 < p + len &&
           memchr(at + 1, '@', (size_t)(p + len - at - 1)) == NULL;
}

static char *lower_dup(const char *s, size_t len)
{
    char *d = xstrndup(s, len);

    for (char *p = d; *p; p++)
        *p = ascii_lower((unsigned char)*p);
    return d;
}

static bool parse_line(struct sender_map *m, const char *line, size_t len, unsigned lineno,
                       char *err, size_t errsize)
{
    size_t plen = 0, ulen;
    const char *user;

    while (plen < len && line[plen] != ' ' && line[plen] != '\t')
        plen++;                         /* the line has no NUL: stay within len */
    user = line + plen;
    ulen = len - plen;
    ascii_trim_wsp(&user, &ulen);
    if (!pattern_ok(line, plen) || !token_ok(user, ulen, SASL_USER_MAX) ||
        memchr(user, ' ', ulen) || memchr(user, '\t', ulen)) {
        snprintf(err, errsize, "line %u: expected \"address user\" or \"@domain user\"",
                 lineno);
        return false;
    }
    if (m->count >= SENDERS_MAX_LINES) {
        snprintf(err, errsize, "line %u: more than %d lines", lineno, SENDERS_MAX_LINES);
        return false;
    }
    m->rules = xrealloc(m->rules, (m->count + 1) * sizeof(*m->rules));
    m->rules[m->count].pattern = lower_dup(line, plen);
    m->rules[m->count].user = xstrndup(user, ulen);
    m->count++;
    return true;
}

struct sender_map *sender_map_parse(const char *data, size_t len, char *err, size_t errsize)
{
    struct sender_map *m = xcalloc(1, sizeof(*m));
    unsigned lineno = 0;
    const char *line;
    size_t pos = 0, llen;

    while (text_next_line(data, len, &pos, &line, &llen)) {
        lineno++;
        ascii_trim_wsp(&line, &llen);
        if (llen == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', llen) != NULL || !parse_line(m, line, llen, lineno, err,
                                                            errsize)) {
            if (memchr(line, '\0', llen) != NULL)
                snprintf(err, errsize, "line %u: NUL byte", lineno);
            sender_map_free(m);
            return NULL;
        }
    }
    return m;
}

bool sender_map_allows(const struct sender_map *map, const char *user, const char *address)
{
    const char *at = strrchr(address, '@');

    if (address[0] == '\0')
        return true;                    /* <> */
    if (map == NULL)
        return strcasecmp(user, address) == 0;
    for (size_t i = 0; i < map->count; i++) {
        const struct sender_rule *r = &map->rules[i];

        if (strcmp(r->user, user) != 0)
            continue;
        if (r->pattern[0] == '@' ? at != NULL && strcasecmp(r->pattern + 1, at + 1) == 0
                                 : strcasecmp(r->pattern, address) == 0)
            return true;
    }
    return false;
}

void sender_map_free(struct sender_map *map)
{
    if (map == NULL)
        return;
    for (size_t i = 0; i < map->count; i++) {
        free(map->rules[i].pattern);
        free(map->rules[i].user);
    }
    free(map->rules);
    free(map);
}

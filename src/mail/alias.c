/*
 * alias.c - the strict alias file parser (see alias.h). Lines are cut
 * from the buffer one at a time into a bounded copy; each target is
 * checked by the RFC 5321 path parser (mail/address.c) and kept in its
 * canonical form; the entries end up sorted for a binary search.
 */
#include "mail/alias.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/address.h"
#include "util/ascii.h"
#include "util/xalloc.h"

struct alias_table {
    struct alias_entry *entries;    /* sorted by local */
    size_t count;
    size_t alloc;
    struct alias_entry *catchall;   /* not in entries */
};

struct parse_state {
    struct alias_table *t;
    const char *path;
    const char *domain;
    unsigned lineno;
    char *err;
    size_t errsize;
};

__attribute__((format(printf, 2, 3)))
static bool fail(struct parse_state *ps, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errsize, "%s:%u: %s", ps->path, ps->lineno, why);
    return false;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

/* text parsed as the path "<text>", ASCII only, no source route, not a
 * bare postmaster; its canonical form (domain lower-cased) into out. */
static bool canonical_address(const char *text, char *out, size_t outsize)
{
    char path[ADDR_PATH_MAX + 3], *at;
    struct mailbox mb;
    size_t consumed = 0;
    int n = snprintf(path, sizeof(path), "<%s>", text);

    if (n < 3 || (size_t)n >= sizeof(path) || text[0] == '@' ||
        address_parse_path(path, (size_t)n, false, &mb, &consumed) != ADDR_OK ||
        consumed != (size_t)n || mb.is_null || mb.is_bare_postmaster ||
        mb.local_unquoted[0] == '\0')
        return false;
    mailbox_format_canonical(&mb, out, outsize);
    if ((at = strrchr(out, '@')) != NULL)
        ascii_lower_copy(at + 1, outsize - (size_t)(at + 1 - out), at + 1, strlen(at + 1));
    return true;
}

/* The forms this parser refuses by design, with why. */
static const char *unsupported(const char *target)
{
    if (target[0] == '|' || (target[0] == '"' && target[1] == '|'))
        return "delivery to a command (|) is not supported";
    if (target[0] == '/' || (target[0] == '"' && target[1] == '/'))
        return "delivery to a file is not supported";
    if (strncasecmp(target, ":include:", 9) == 0)
        return ":include: is not supported";
    return NULL;
}

static bool add_target(struct parse_state *ps, struct alias_entry *e, const char *target)
{
    char addr[ADDR_PATH_MAX + 1], full[ADDR_PATH_MAX + 2];
    const char *bad = unsupported(target);

    if (bad)
        return fail(ps, "'%s': %s", target, bad);
    if (target[0] == '\0')
        return fail(ps, "empty target (two commas, or a comma at the end)");
    if (strchr(target, '@') == NULL) {
        int n = snprintf(full, sizeof(full), "%s@%s", target, ps->domain);
        if (n < 0 || (size_t)n >= sizeof(full))
            return fail(ps, "'%s': target too long", target);
        target = full;
    }
    if (!canonical_address(target, addr, sizeof(addr)))
        return fail(ps, "'%s': not an address (local@domain or a local part)", target);
    if ((bad = unsupported(addr)) != NULL)  /* "\|x"@d: never mistaken for a command */
        return fail(ps, "'%s': %s", target, bad);
    if (e->count >= ALIAS_MAX_LINE_TARGETS)
        return fail(ps, "more than %d targets on one line (ALIAS_MAX_LINE_TARGETS)",
                    ALIAS_MAX_LINE_TARGETS);
    for (size_t i = 0; i < e->count; i++)
        if (strcasecmp(e->targets[i], addr) == 0)
            return true;                /* a repeat on one line is harmless */
    e->targets = xrealloc(e->targets, (e->count + 1) * sizeof(char *));
    e->targets[e->count++] = xstrdup(addr);
    return true;
}

/* The local part before ':' ("@" for the catch-all): a dot-atom. */
static bool valid_key(const char *key, const char *domain)
{
    char path[ADDR_PATH_MAX + 3];
    struct mailbox mb;
    size_t consumed = 0;
    int n;

    if (strcmp(key, ALIAS_CATCHALL) == 0)
        return true;
    if (key[0] == '"' || strchr(key, '@') != NULL || strchr(key, '\\') != NULL)
        return false;
    n = snprintf(path, sizeof(path), "<%s@%s>", key, domain[0] ? domain : "x.invalid");
    return n > 0 && (size_t)n < sizeof(path) &&
           address_parse_path(path, (size_t)n, false, &mb, &consumed) == ADDR_OK &&
           consumed == (size_t)n && strcmp(mb.local_unquoted, key) == 0;
}

static void entry_free(struct alias_entry *e)
{
    for (size_t i = 0; i < e->count; i++)
        free(e->targets[i]);
    free(e->targets);
    free(e->local);
}

static struct alias_entry *new_entry(struct parse_state *ps, const char *key)
{
    struct alias_table *t = ps->t;
    char lower[ADDR_LOCAL_MAX + 1];

    ascii_lower_copy(lower, sizeof(lower), key, strlen(key));
    if (strcmp(lower, ALIAS_CATCHALL) == 0) {
        if (t->catchall) {
            fail(ps, "a second catch-all line (@:)");
            return NULL;
        }
        t->catchall = xcalloc(1, sizeof(*t->catchall));
        t->catchall->local = xstrdup(lower);
        t->catchall->line = ps->lineno;
        return t->catchall;
    }
    if (t->count >= ALIAS_MAX_ENTRIES) {
        fail(ps, "more than %d aliases (ALIAS_MAX_ENTRIES)", ALIAS_MAX_ENTRIES);
        return NULL;
    }
    if (t->count == t->alloc) {
        t->alloc = t->alloc ? t->alloc * 2 : 16;
        t->entries = xrealloc(t->entries, t->alloc * sizeof(*t->entries));
    }
    memset(&t->entries[t->count], 0, sizeof(t->entries[0]));
    t->entries[t->count].local = xstrdup(lower);
    t->entries[t->count].line = ps->lineno;
    return &t->entries[t->count++];
}

/* One line, NUL-terminated, without its newline. */
static bool parse_line(struct parse_state *ps, char *line)
{
    char *s = trim(line), *colon, *key, *item, *next;
    struct alias_entry *e;

    if (*s == '\0' || *s == '#')
        return true;
    if ((colon = strchr(s, ':')) == NULL)
        return fail(ps, "expected 'local: target, ...' or '@: target'");
    *colon = '\0';
    key = trim(s);
    if (!valid_key(key, ps->domain))
        return fail(ps, "'%s': not a local part (a dot-atom) or '@'", key);
    if ((e = new_entry(ps, key)) == NULL)
        return false;
    item = trim(colon + 1);
    if (*item == '\0')
        return fail(ps, "'%s': no target", key);
    for (; item != NULL; item = next) {
        char *comma = strchr(item, ',');

        next = NULL;
        if (comma) {
            *comma = '\0';
            next = comma + 1;
        }
        if (!add_target(ps, e, trim(item)))
            return false;
    }
    return true;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && !(c == '\r' && i + 1 == n)) || c == 0x7f)
            return true;
    }
    return false;
}

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const struct alias_entry *)a)->local, ((const struct alias_entry *)b)->local);
}

/* Sorted, then a duplicate is two neighbours; the later line is named. */
static bool sort_check(struct parse_state *ps)
{
    struct alias_table *t = ps->t;

    if (t->count > 1)
        qsort(t->entries, t->count, sizeof(*t->entries), cmp_entries);
    for (size_t i = 1; i < t->count; i++) {
        if (strcmp(t->entries[i - 1].local, t->entries[i].local) == 0) {
            unsigned a = t->entries[i - 1].line, b = t->entries[i].line;
            ps->lineno = a > b ? a : b;
            return fail(ps, "'%s': a second line for this alias", t->entries[i].local);
        }
    }
    return true;
}

struct alias_table *alias_table_parse(const char *data, size_t len, const char *path,
                                      const char *domain, char *err, size_t errsize)
{
    struct parse_state ps = { xcalloc(1, sizeof(struct alias_table)), path, domain, 0,
                              err, errsize };
    char line[ALIAS_LINE_MAX + 1];
    size_t pos = 0;
    bool ok = true;

    while (ok && pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;

        ps.lineno++;
        if (n + 1 > ALIAS_LINE_MAX)
            ok = fail(&ps, "line longer than %d octets (ALIAS_LINE_MAX)", ALIAS_LINE_MAX);
        else if (has_control(data + pos, n))
            ok = fail(&ps, "a control character (other than a tab)");
        else {
            memcpy(line, data + pos, n);
            line[n] = '\0';
            ok = parse_line(&ps, line);
        }
        pos += n + (nl != NULL);
    }
    if (ok && sort_check(&ps))
        return ps.t;
    alias_table_free(ps.t);
    return NULL;
}

void alias_table_free(struct alias_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++)
        entry_free(&t->entries[i]);
    free(t->entries);
    if (t->catchall) {
        entry_free(t->catchall);
        free(t->catchall);
    }
    free(t);
}

const struct alias_entry *alias_table_find(const struct alias_table *t, const char *local)
{
    char lower[ADDR_LOCAL_MAX + 1];
    struct alias_entry key = { .local = lower };

    if (t == NULL || t->count == 0 || strlen(local) > ADDR_LOCAL_MAX)
        return NULL;
    ascii_lower_copy(lower, sizeof(lower), local, strlen(local));
    return bsearch(&key, t->entries, t->count, sizeof(*t->entries), cmp_entries);
}

const struct alias_entry *alias_table_catchall(const struct alias_table *t)
{
    return t ? t->catchall : NULL;
}

size_t alias_table_count(const struct alias_table *t)
{
    return t ? t->count + (t->catchall != NULL) : 0;
}

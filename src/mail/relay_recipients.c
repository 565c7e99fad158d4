/*
 * relay_recipients.c - the [relay] relay_recipients list (see
 * relay_recipients.h): each line checked by the RFC 5321 path parser
 * (mail/address.c), kept as two sorted arrays of lower-case strings,
 * "local@domain" and "domain"; a lookup is two binary searches.
 *
 * Trusts: nothing in the bytes; every line is bounded and parsed.
 */
#include "mail/relay_recipients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/text_lines.h"
#include "util/xalloc.h"

#define KEY_MAX (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)

struct name_array {
    char **names;               /* sorted after the parse */
    size_t count, alloc;
};

struct relay_recipients {
    struct name_array addrs;    /* "local@domain", lower-case, local part decoded */
    struct name_array domains;  /* "domain" of the "@domain" lines */
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_name(struct name_array *a, const char *name)
{
    if (a->count == a->alloc) {
        a->alloc = a->alloc ? a->alloc * 2 : 16;
        a->names = xrealloc(a->names, a->alloc * sizeof(char *));
    }
    a->names[a->count++] = xstrdup(name);
}

static void sort_names(struct name_array *a)
{
    if (a->count > 1)       /* an empty array has no pointer for qsort */
        qsort(a->names, a->count, sizeof(char *), cmp_names);
}

static bool has_name(const struct name_array *a, const char *name)
{
    return a->count > 0 &&
           bsearch(&name, a->names, a->count, sizeof(char *), cmp_names) != NULL;
}

static void free_names(struct name_array *a)
{
    for (size_t i = 0; i < a->count; i++)
        free(a->names[i]);
    free(a->names);
}

/* The key of a local part and a domain: both lower-cased, joined by '@'
 * (the domain has no '@', so the last one splits it again). */
static void make_key(char *key, size_t size, const char *local, const char *domain)
{
    char l[ADDR_LOCAL_MAX + 1], d[ADDR_DOMAIN_MAX + 1];

    ascii_lower_copy(l, sizeof(l), local, strlen(local));
    ascii_lower_copy(d, sizeof(d), domain, strlen(domain));
    snprintf(key, size, "%s@%s", l, d);
}

/* text[0..len) as "<text>" through the path parser: a whole mailbox with
 * a domain (no null path, no bare postmaster, no source route). */
static bool parse_mailbox(const char *text, size_t len, struct mailbox *mb)
{
    char path[ADDR_PATH_MAX + 3];
    size_t consumed = 0;

    if (len == 0 || len > ADDR_PATH_MAX || memchr(text, '\0', len) || text[0] == '@')
        return false;
    path[0] = '<';
    memcpy(path + 1, text, len);
    path[len + 1] = '>';
    return address_parse_path(path, len + 2, true, mb, &consumed) == ADDR_OK &&
           consumed == len + 2 && !mb->is_null && !mb->is_bare_postmaster;
}

static bool is_relay_domain(char *const *domains, size_t n, const char *lower)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(domains[i], lower) == 0)
            return true;
    return false;
}

struct parse_state {
    struct relay_recipients *t;
    char *const *domains;
    size_t n;
    const char *why;            /* set on refusal (a static text) */
    char domain[ADDR_DOMAIN_MAX + 1];   /* lower-case; on refusal, named before
                                           why unless empty */
};

/* One line without its blanks: "local@domain" or "@domain". */
static bool parse_entry(struct parse_state *st, const char *line, size_t len)
{
    bool any = line[0] == '@';
    struct mailbox mb;
    char key[KEY_MAX + 2];

    st->domain[0] = '\0';
    if (any) {  /* "@domain": checked as the domain of an address */
        char probe[ADDR_PATH_MAX + 1];
        int k = snprintf(probe, sizeof(probe), "x%.*s", (int)len, line);

        if (k < 0 || (size_t)k != len + 1 || !parse_mailbox(probe, (size_t)k, &mb)) {
            st->why = "not a domain: expected @domain";
            return false;
        }
    } else if (!parse_mailbox(line, len, &mb)) {
        st->why = "not an address: expected user@domain or @domain";
        return false;
    }
    if (mb.domain_is_literal) {
        st->why = "an address literal is not a relay domain";
        return false;
    }
    if (!any && mb.local_unquoted[0] == '\0') {
        st->why = "an empty local part names no recipient";
        return false;
    }
    ascii_lower_copy(st->domain, sizeof(st->domain), mb.domain, strlen(mb.domain));
    if (!is_relay_domain(st->domains, st->n, st->domain)) {
        st->why = "is not in [relay] relay_domains";
        return false;
    }
    if (st->t->addrs.count + st->t->domains.count >= RELAY_RECIPIENTS_MAX) {
        st->why = "more lines than RELAY_RECIPIENTS_MAX (1000000)";
        st->domain[0] = '\0';
        return false;
    }
    if (any) {
        add_name(&st->t->domains, st->domain);
    } else {
        make_key(key, sizeof(key), mb.local_unquoted, mb.domain);
        add_name(&st->t->addrs, key);
    }
    return true;
}

static void refuse(const struct parse_state *st, const char *path, unsigned lineno,
                   char *err, size_t errsize)
{
    if (st->domain[0] != '\0')
        snprintf(err, errsize, "%s:%u: %s %s", path, lineno, st->domain, st->why);
    else
        snprintf(err, errsize, "%s:%u: %s", path, lineno, st->why);
}

struct relay_recipients *relay_recipients_parse(const char *data, size_t len, const char *path,
                                                char *const *domains, size_t n,
                                                char *err, size_t errsize)
{
    struct parse_state st = { .t = xcalloc(1, sizeof(*st.t)), .domains = domains, .n = n };
    unsigned lineno = 0;
    const char *line;
    size_t pos = 0, llen;

    while (text_next_line(data, len, &pos, &line, &llen)) {
        lineno++;
        ascii_trim_wsp(&line, &llen);
        if (llen == 0 || line[0] == '#')
            continue;
        if (!parse_entry(&st, line, llen)) {
            refuse(&st, path, lineno, err, errsize);
            relay_recipients_free(st.t);
            return NULL;
        }
    }
    sort_names(&st.t->addrs);
    sort_names(&st.t->domains);
    return st.t;
}

void relay_recipients_free(struct relay_recipients *t)
{
    if (t == NULL)
        return;
    free_names(&t->addrs);
    free_names(&t->domains);
    free(t);
}

bool relay_recipients_allows(const struct relay_recipients *t, const struct mailbox *mb)
{
    char domain[ADDR_DOMAIN_MAX + 1], key[KEY_MAX + 2];

    ascii_lower_copy(domain, sizeof(domain), mb->domain, strlen(mb->domain));
    if (has_name(&t->domains, domain))
        return true;
    if (mb->local_unquoted[0] == '\0')
        return false;
    make_key(key, sizeof(key), mb->local_unquoted, mb->domain);
    return has_name(&t->addrs, key);
}

size_t relay_recipients_count(const struct relay_recipients *t)
{
    return t->addrs.count + t->domains.count;
}

/*
 * recipient.c - local recipient verdicts (see recipient.h). Mailbox lists
 * are read from disk into a snapshot (by the master, at start and on
 * SIGHUP), parsed from it into sorted arrays; a lookup is a binary search.
 * The domains' alias files come in the same snapshot (mail/alias.c);
 * recipient_expand follows them depth-first with the chain on the stack.
 */
#include "mail/recipient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/alias.h"
#include "mail/relay_recipients.h"
#include "mail/senders.h"
#include "util/ascii.h"
#include "util/snapshot.h"
#include "util/xalloc.h"

struct mailbox_list {
    const struct domain_config *domain;
    char **names;               /* sorted, lower-case; NULL = accept any */
    size_t count;
    struct alias_table *aliases;    /* [domain] aliases, or NULL */
};

struct recipient_policy {
    struct mailbox_list *lists;
    size_t count;
    struct sender_map *senders;     /* [submission] senders, or NULL */
    struct relay_recipients *relay; /* [relay] relay_recipients, or NULL */
    const char *postmaster;         /* [server] postmaster (the config's) */
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Trim spaces and a '#' comment; returns NULL for an empty line. */
static char *clean_line(char *line)
{
    char *hash = strchr(line, '#'), *end;

    if (hash)
        *hash = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    end = line + strlen(line);
    while (end > line && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return *line ? line : NULL;
}

static bool load_list(struct mailbox_list *list, const struct file_snapshot *files,
                      const char *path, char *err, size_t errsize)
{
    FILE *fp = snapshot_fopen(files, path);
    char line[512];
    size_t alloc = 0;

    if (fp == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return false;
    }
    list->names = xmalloc(sizeof(char *));
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *name = clean_line(line), lower[ADDR_LOCAL_MAX + 1];

        if (name == NULL)
            continue;
        if (list->count == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            list->names = xrealloc(list->names, alloc * sizeof(char *));
        }
        ascii_lower_copy(lower, sizeof(lower), name, strlen(name));
        list->names[list->count++] = xstrdup(lower);
    }
    fclose(fp);
    qsort(list->names, list->count, sizeof(char *), cmp_names);
    return true;
}

struct file_snapshot *recipient_read_files(const struct config *cfg, char *err, size_t errsize)
{
    struct file_snapshot *files = snapshot_new();
    char why[256];

    for (size_t i = 0; i < cfg->domain_count; i++) {
        const char *paths[] = { cfg->domains[i].mailboxes_file,
                                cfg->domains[i].aliases_file };

        for (size_t k = 0; k < 2; k++) {
            if (paths[k] && !snapshot_read_file(files, paths[k], why, sizeof(why))) {
                snprintf(err, errsize, "%s: %s", paths[k], why);
                snapshot_free(files);
                return NULL;
            }
        }
    }
    if (cfg->submission.senders &&
        !snapshot_read_file(files, cfg->submission.senders, why, sizeof(why))) {
        snprintf(err, errsize, "%s: %s", cfg->submission.senders, why);
        snapshot_free(files);
        return NULL;
    }
    if (cfg->relay.relay_recipients &&
        !snapshot_read_file(files, cfg->relay.relay_recipients, why, sizeof(why))) {
        snprintf(err, errsize, "%s: %s", cfg->relay.relay_recipients, why);
        snapshot_free(files);
        return NULL;
    }
    return files;
}

static bool load_aliases(struct mailbox_list *list, const struct file_snapshot *files,
                         const char *path, char *err, size_t errsize)
{
    const struct snapshot_file *f = snapshot_find(files, path);

    if (f == NULL) {
        snprintf(err, errsize, "%s: not read", path);
        return false;
    }
    list->aliases = alias_table_parse((const char *)f->data, f->len, path,
                                      list->domain->name, err, errsize);
    return list->aliases != NULL;
}

static bool load_senders(struct recipient_policy *p, const struct file_snapshot *files,
                         const char *path, char *err, size_t errsize)
{
    const struct snapshot_file *f = snapshot_find(files, path);
    char why[256];

    if (f == NULL) {
        snprintf(err, errsize, "%s: not read", path);
        return false;
    }
    p->senders = sender_map_parse((const char *)f->data, f->len, why, sizeof(why));
    if (p->senders == NULL) {
        snprintf(err, errsize, "%s: %s", path, why);
        return false;
    }
    return true;
}

static bool load_relay(struct recipient_policy *p, const struct config *cfg,
                       const struct file_snapshot *files, char *err, size_t errsize)
{
    const char *path = cfg->relay.relay_recipients;
    const struct snapshot_file *f = snapshot_find(files, path);

    if (f == NULL) {
        snprintf(err, errsize, "%s: not read", path);
        return false;
    }
    p->relay = relay_recipients_parse((const char *)f->data, f->len, path,
                                      cfg->relay.relay_domains, cfg->relay.relay_domain_count,
                                      err, errsize);
    return p->relay != NULL;
}

struct recipient_policy *recipient_policy_new(const struct config *cfg,
                                              const struct file_snapshot *files,
                                              char *err, size_t errsize)
{
    struct recipient_policy *p = xcalloc(1, sizeof(*p));

    p->lists = xcalloc(cfg->domain_count, sizeof(*p->lists));
    p->count = cfg->domain_count;
    p->postmaster = cfg->postmaster;
    for (size_t i = 0; i < cfg->domain_count; i++) {
        p->lists[i].domain = &cfg->domains[i];
        if (cfg->domains[i].mailboxes_file &&
            !load_list(&p->lists[i], files, cfg->domains[i].mailboxes_file, err, errsize)) {
            recipient_policy_free(p);
            return NULL;
        }
        if (cfg->domains[i].aliases_file &&
            !load_aliases(&p->lists[i], files, cfg->domains[i].aliases_file, err, errsize)) {
            recipient_policy_free(p);
            return NULL;
        }
    }
    if (cfg->submission.senders && !load_senders(p, files, cfg->submission.senders, err,
                                                 errsize)) {
        recipient_policy_free(p);
        return NULL;
    }
    if (cfg->relay.relay_recipients && !load_relay(p, cfg, files, err, errsize)) {
        recipient_policy_free(p);
        return NULL;
    }
    return p;
}

const struct sender_map *recipient_policy_senders(const struct recipient_policy *p)
{
    return p ? p->senders : NULL;
}

const struct relay_recipients *recipient_policy_relay(const struct recipient_policy *p)
{
    return p ? p->relay : NULL;
}

void recipient_policy_free(struct recipient_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++) {
        for (size_t j = 0; j < p->lists[i].count; j++)
            free(p->lists[i].names[j]);
        free(p->lists[i].names);
        alias_table_free(p->lists[i].aliases);
    }
    free(p->lists);
    sender_map_free(p->senders);
    relay_recipients_free(p->relay);
    free(p);
}

bool recipient_is_postmaster(const struct mailbox *mb)
{
    return mb->is_bare_postmaster || strcasecmp(mb->local_unquoted, "postmaster") == 0;
}

static const struct mailbox_list *find_list(const struct recipient_policy *p,
                                            const char *domain)
{
    char lower[ADDR_DOMAIN_MAX + 1];

    ascii_lower_copy(lower, sizeof(lower), domain, strlen(domain));
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->lists[i].domain->name, lower) == 0)
            return &p->lists[i];
    }
    return NULL;
}

enum rcpt_verdict recipient_check(const struct recipient_policy *p,
                                  const struct mailbox *mb)
{
    const struct mailbox_list *list;
    char lower[ADDR_LOCAL_MAX + 1];
    const char *key = lower;

    if (mb->is_bare_postmaster)
        return VERDICT_ACCEPT;
    if (mb->domain_is_literal || (list = find_list(p, mb->domain)) == NULL)
        return VERDICT_RELAY_DENIED;
    /* An empty quoted local part (""@domain) is valid syntax but names no
     * mailbox: accepting it would leave a message no Maildir can take. */
    if (mb->local_unquoted[0] == '\0')
        return VERDICT_UNKNOWN_USER;
    if (recipient_is_postmaster(mb) || list->names == NULL ||
        alias_table_find(list->aliases, mb->local_unquoted) != NULL)
        return VERDICT_ACCEPT;
    ascii_lower_copy(lower, sizeof(lower), mb->local_unquoted, strlen(mb->local_unquoted));
    if (bsearch(&key, list->names, list->count, sizeof(char *), cmp_names) ||
        alias_table_catchall(list->aliases) != NULL)
        return VERDICT_ACCEPT;
    return VERDICT_UNKNOWN_USER;
}

/* --- alias expansion ------------------------------------------------- */

/* A mailbox of a local domain: postmaster, listed, or any when unlisted. */
static bool is_mailbox(const struct mailbox_list *list, const struct mailbox *mb)
{
    char lower[ADDR_LOCAL_MAX + 1];
    const char *key = lower;

    if (recipient_is_postmaster(mb) || list->names == NULL)
        return true;
    ascii_lower_copy(lower, sizeof(lower), mb->local_unquoted, strlen(mb->local_unquoted));
    return bsearch(&key, list->names, list->count, sizeof(char *), cmp_names) != NULL;
}

struct expand_state {
    const struct recipient_policy *p;
    struct recipient_expansion *out;
    const char *chain[RECIPIENT_ALIAS_DEPTH + 1];
};

static enum expand_result emit(struct expand_state *st, const char *addr)
{
    struct recipient_expansion *out = st->out;

    for (size_t i = 0; i < out->count; i++)
        if (strcasecmp(out->addrs[i], addr) == 0)
            return EXPAND_OK;
    if (out->count >= out->max)
        return EXPAND_TOO_MANY;
    out->addrs = xrealloc(out->addrs, (out->count + 1) * sizeof(char *));
    out->addrs[out->count++] = xstrdup(addr);
    return EXPAND_OK;
}

static bool parse_addr(const char *addr, struct mailbox *mb)
{
    char path[ADDR_PATH_MAX + 3];
    size_t consumed = 0;
    int n = snprintf(path, sizeof(path), "<%s>", addr);

    return n > 0 && (size_t)n < sizeof(path) &&
           address_parse_path(path, (size_t)n, true, mb, &consumed) == ADDR_OK &&
           consumed == (size_t)n && !mb->is_null;
}

static enum expand_result expand_addr(struct expand_state *st, const char *addr, size_t depth);

/* postmaster@ a domain delivered over LMTP, with no alias of its own,
 * is [server] postmaster, as postmaster@ a Maildir domain is (maildir.c):
 * RFC 5321 4.5.1 wants it to reach someone, and Dovecot may have no such
 * user. Not when it is [server] postmaster itself. */
static bool lmtp_postmaster(const struct expand_state *st, const struct mailbox_list *list,
                            const struct mailbox *mb, const char *addr)
{
    return list->domain->deliver != NULL && recipient_is_postmaster(mb) &&
           st->p->postmaster != NULL && strcasecmp(addr, st->p->postmaster) != 0;
}

/* The targets of e, the alias entry that addr (at depth) matched. */
static enum expand_result expand_entry(struct expand_state *st, const struct alias_entry *e,
                                       const char *addr, bool mailbox, size_t depth)
{
    enum expand_result r = EXPAND_OK;

    for (size_t i = 0; i < depth; i++)
        if (strcasecmp(st->chain[i], addr) == 0)
            return EXPAND_LOOP;
    if (depth >= RECIPIENT_ALIAS_DEPTH)
        return EXPAND_TOO_DEEP;
    st->chain[depth] = addr;
    st->out->aliased = true;
    for (size_t i = 0; i < e->count && r == EXPAND_OK; i++) {
        if (strcasecmp(e->targets[i], addr) != 0)
            r = expand_addr(st, e->targets[i], depth + 1);
        else    /* "bob: bob, bob@elsewhere": bob's own mailbox */
            r = mailbox ? emit(st, addr) : EXPAND_LOOP;
    }
    return r;
}

static enum expand_result expand_addr(struct expand_state *st, const char *addr, size_t depth)
{
    const struct mailbox_list *list;
    const struct alias_entry *e;
    struct mailbox mb;
    bool mailbox;

    if (!parse_addr(addr, &mb) || mb.is_bare_postmaster || mb.domain_is_literal ||
        (list = find_list(st->p, mb.domain)) == NULL)
        return emit(st, addr);          /* not local: relayed as it is */
    mailbox = mb.local_unquoted[0] != '\0' && is_mailbox(list, &mb);
    if ((e = alias_table_find(list->aliases, mb.local_unquoted)) != NULL)
        return expand_entry(st, e, addr, mailbox, depth);
    if (lmtp_postmaster(st, list, &mb, addr)) {
        /* as if the aliases said "postmaster: [server] postmaster" */
        char *target = (char *)st->p->postmaster;
        const struct alias_entry pm = { .targets = &target, .count = 1 };

        return expand_entry(st, &pm, addr, mailbox, depth);
    }
    if (mailbox)
        return emit(st, addr);
    if ((e = alias_table_catchall(list->aliases)) != NULL && mb.local_unquoted[0] != '\0')
        return expand_entry(st, e, addr, false, depth);
    return EXPAND_UNKNOWN;
}

enum expand_result recipient_expand(const struct recipient_policy *p, const char *addr,
                                    struct recipient_expansion *out)
{
    struct expand_state st = { .p = p, .out = out };

    out->aliased = false;
    return expand_addr(&st, addr, 0);
}

void recipient_expansion_clear(struct recipient_expansion *out)
{
    for (size_t i = 0; i < out->count; i++)
        free(out->addrs[i]);
    free(out->addrs);
    out->addrs = NULL;
    out->count = 0;
    out->aliased = false;
}

/*
 * alias.h - a domain's alias file ([domain D] aliases = FILE), parsed
 * strictly:
 *
 *     # comment (a line whose first non-blank is '#'), blank lines
 *     info: alice, bob@example.org        local part: target, target...
 *     @: catchall                         the catch-all: any local part of
 *                                         D with no mailbox and no alias
 *
 * A target is an address "local@domain" (any domain: local ones are
 * delivered, others relayed) or a bare local part, which names a mailbox
 * of the file's own domain. ASCII only (no SMTPUTF8 addresses). The
 * Sendmail/Postfix forms "|command", "/file" and ":include:file" are
 * refused on purpose (sealpost runs no programs and writes no files on a
 * sender's behalf; so is a quoted local part that decodes to one of
 * them): the whole file is refused with "PATH:LINE: reason",
 * so `sealpost check` and the start name the line.
 *
 * Limits (each refuses the file): ALIAS_LINE_MAX octets a line,
 * ALIAS_MAX_ENTRIES alias lines, ALIAS_MAX_LINE_TARGETS targets a line,
 * no control characters (NUL, ...) but tabs, one line per local part (duplicates are an error).
 *
 * Expansion (recursion, loops, the depth and size limits) is
 * recipient.h's: it needs every domain's mailbox list.
 *
 * Trusts: the operator's file, but checks every octet (it is parsed in
 * the workers too, and fuzzed: tests/fuzz/fuzz_alias.c).
 */
#ifndef SEALPOST_MAIL_ALIAS_H
#define SEALPOST_MAIL_ALIAS_H

#include <stdbool.h>
#include <stddef.h>

#define ALIAS_LINE_MAX          4096    /* octets, newline included */
#define ALIAS_MAX_ENTRIES       100000
#define ALIAS_MAX_LINE_TARGETS  1000
#define ALIAS_CATCHALL          "@"     /* the local part the catch-all line uses */

struct alias_entry {
    char *local;                /* lower-case local part, or ALIAS_CATCHALL */
    char **targets;             /* "local@domain", the domain lower-cased */
    size_t count;
    unsigned line;
};

struct alias_table;

/* Parse data[0..len), the aliases of domain (lower-case; bare local parts
 * are completed with it). NULL + err "PATH:LINE: reason" (path names the
 * file in messages only). */
struct alias_table *alias_table_parse(const char *data, size_t len, const char *path,
                                      const char *domain, char *err, size_t errsize);
void alias_table_free(struct alias_table *t);

/* The entry for a local part (ASCII case-insensitive), or NULL. */
const struct alias_entry *alias_table_find(const struct alias_table *t, const char *local);
/* The catch-all line, or NULL. */
const struct alias_entry *alias_table_catchall(const struct alias_table *t);
size_t alias_table_count(const struct alias_table *t);

#endif

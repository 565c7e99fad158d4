/*
 * credentials.c - the submission users file (see credentials.h).
 *
 * Trusts: the operator's file, within the checks listed in the header.
 * Users are kept sorted for a binary search: the file may be long, and a
 * lookup happens on every AUTH.
 */
#include "mail/credentials.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/sasl.h"
#include "util/text_lines.h"
#include "util/xalloc.h"

struct entry {
    char *user;
    char *hash;
};

struct credentials {
    struct entry *entries;
    size_t count;
};

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->user, ((const struct entry *)b)->user);
}

/* A user name: as sasl.h takes them (no blanks or control bytes), no ':'. */
static bool user_name_ok(const char *u, size_t len)
{
    if (len == 0 || len > SASL_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == ':')
            return false;
    return true;
}

/* One line (without its end); false + err. */
static bool parse_line(struct credentials *c, const char *line, size_t len, unsigned lineno,
                       char *err, size_t errsize)
{
    const char *colon = memchr(line, ':', len), *hash, *end;
    char hashbuf[CREDENTIALS_HASH_MAX + 1];
    size_t ulen, hlen;

    if (colon == NULL) {
        snprintf(err, errsize, "line %u: expected user:hash", lineno);
        return false;
    }
    ulen = (size_t)(colon - line);
    hash = colon + 1;
    end = memchr(hash, ':', len - ulen - 1);
    hlen = end ? (size_t)(end - hash) : len - ulen - 1;
    if (!user_name_ok(line, ulen)) {
        snprintf(err, errsize, "line %u: invalid user name (1-%d octets, no blanks, "
                 "control characters or ':')", lineno, SASL_USER_MAX);
        return false;
    }
    if (hlen == 0 || hlen > CREDENTIALS_HASH_MAX) {
        snprintf(err, errsize, "line %u: missing or overlong password hash", lineno);
        return false;
    }
    memcpy(hashbuf, hash, hlen);
    hashbuf[hlen] = '\0';
    if (hashbuf[0] != '$' || crypt_checksalt(hashbuf) != CRYPT_SALT_OK) {
        explicit_bzero(hashbuf, sizeof(hashbuf));
        snprintf(err, errsize, "line %u: the password hash is not one libcrypt supports "
                 "(use mkpasswd -m yescrypt, or openssl passwd -6)", lineno);
        return false;
    }
    if (c->count >= CREDENTIALS_MAX_USERS) {
        explicit_bzero(hashbuf, sizeof(hashbuf));
        snprintf(err, errsize, "line %u: more than %d users", lineno, CREDENTIALS_MAX_USERS);
        return false;
    }
    c->entries = xrealloc(c->entries, (c->count + 1) * sizeof(*c->entries));
    c->entries[c->count].user = xstrndup(line, ulen);
    c->entries[c->count].hash = xstrdup(hashbuf);
    c->count++;
    explicit_bzero(hashbuf, sizeof(hashbuf));
    return true;
}

static bool find_duplicate(const struct credentials *c, char *err, size_t errsize)
{
    for (size_t i = 1; i < c->count; i++) {
        if (strcmp(c->entries[i - 1].user, c->entries[i].user) == 0) {
            snprintf(err, errsize, "user %.255s appears twice", c->entries[i].user);
            return true;
        }
    }
    return false;
}

struct credentials *credentials_parse(const char *data, size_t len, char *err, size_t errsize)
{
    struct credentials *c = xcalloc(1, sizeof(*c));
    unsigned lineno = 0;
    const char *line;
    size_t pos = 0, llen;

    while (text_next_line(data, len, &pos, &line, &llen)) {
        lineno++;
        if (llen == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', llen) != NULL) {
            snprintf(err, errsize, "line %u: NUL byte", lineno);
            credentials_free(c);
            return NULL;
        }
        if (!parse_line(c, line, llen, lineno, err, errsize)) {
            credentials_free(c);
            return NULL;
        }
    }
    if (c->count > 1)
        qsort(c->entries, c->count, sizeof(*c->entries), cmp_entries);
    if (find_duplicate(c, err, errsize)) {
        credentials_free(c);
        return NULL;
    }
    return c;
}

const char *credentials_hash(const struct credentials *c, const char *user)
{
    struct entry key = { (char *)user, NULL };
    const struct entry *e;

    if (c == NULL || c->count == 0)
        return NULL;
    e = bsearch(&key, c->entries, c->count, sizeof(*c->entries), cmp_entries);
    return e ? e->hash : NULL;
}

size_t credentials_count(const struct credentials *c)
{
    return c ? c->count : 0;
}

void credentials_free(struct credentials *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->count; i++) {
        explicit_bzero(c->entries[i].hash, strlen(c->entries[i].hash));
        free(c->entries[i].hash);
        free(c->entries[i].user);
    }
    free(c->entries);
    free(c);
}

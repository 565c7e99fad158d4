/*
 * fuzz_alias.c - libFuzzer target for the alias file parser
 * (src/mail/alias.c, alias_table_parse) on the input as a whole alias
 * file of the domain example.test.
 *
 * Checked: a refusal is "f:LINE: reason" with LINE within the input's
 * line count; an accepted table has at most ALIAS_MAX_ENTRIES entries,
 * each with 1..ALIAS_MAX_LINE_TARGETS targets; every key is lower-case
 * and found again by alias_table_find (also upper-cased); every target
 * has an '@', no control octets, no leading '|' or '/', at most
 * ADDR_PATH_MAX octets, and a lower-case domain; no '|', '/' or
 * ":include:" target is ever accepted; parsing is deterministic.
 *
 * The same input as a [relay] relay_recipients file
 * (src/mail/relay_recipients.c, relay_recipients_parse) with the relay
 * domains example.test and relay.test: a refusal is "f:LINE: reason"
 * with LINE within the input; an accepted list is deterministic, holds
 * no more entries than the input has lines, finds every line that is a
 * plain "user@domain" or "@domain" of a relay domain again (in any
 * case), and takes no address of a domain outside relay_domains.
 */
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#include "mail/address.h"
#include "mail/alias.h"
#include "mail/relay_recipients.h"

static void check_entry(const struct alias_table *t, const struct alias_entry *e)
{
    char upper[ADDR_LOCAL_MAX + 1];
    size_t n = strlen(e->local);

    FUZZ_CHECK(e->count >= 1 && e->count <= ALIAS_MAX_LINE_TARGETS);
    FUZZ_CHECK(n >= 1 && n <= ADDR_LOCAL_MAX);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(!isupper((unsigned char)e->local[i]));
        upper[i] = (char)toupper((unsigned char)e->local[i]);
    }
    upper[n] = '\0';
    if (strcmp(e->local, ALIAS_CATCHALL) != 0)
        FUZZ_CHECK(alias_table_find(t, upper) == e);
    for (size_t i = 0; i < e->count; i++) {
        const char *a = e->targets[i], *at = strrchr(a, '@');

        FUZZ_CHECK(at != NULL && at > a && strlen(a) <= ADDR_PATH_MAX);
        FUZZ_CHECK(a[0] != '|' && a[0] != '/' && strncasecmp(a, ":include:", 9) != 0);
        for (const char *p = a; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f && (unsigned char)*p < 0x80);
        for (const char *p = at + 1; *p; p++)
            FUZZ_CHECK(!isupper((unsigned char)*p));
    }
}

static char *relay_domains[] = { "example.test", "relay.test" };

static bool mailbox_of(const char *text, struct mailbox *mb)
{
    char path[ADDR_PATH_MAX + 3];
    size_t consumed = 0;
    int n = snprintf(path, sizeof(path), "<%s>", text);

    return n > 0 && (size_t)n < sizeof(path) &&
           address_parse_path(path, (size_t)n, true, mb, &consumed) == ADDR_OK &&
           consumed == (size_t)n && !mb->is_null && !mb->is_bare_postmaster;
}

/* A line of the input, without blanks, that the list must find again:
 * a plain ASCII "user@domain" (letters, digits, '.') or "@domain". */
static void check_relay_line(const struct relay_recipients *t, const char *line)
{
    char probe[ADDR_PATH_MAX + 2], upper[ADDR_PATH_MAX + 2];
    struct mailbox mb;
    size_t n = strlen(line);

    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)line[i]) && line[i] != '.' && line[i] != '@')
            return;
    snprintf(probe, sizeof(probe), "%s%s", line[0] == '@' ? "x" : "", line);
    if (!mailbox_of(probe, &mb))
        return;
    for (size_t i = 0; i <= strlen(probe); i++)
        upper[i] = (char)toupper((unsigned char)probe[i]);
    FUZZ_CHECK(relay_recipients_allows(t, &mb));
    FUZZ_CHECK(mailbox_of(upper, &mb) && relay_recipients_allows(t, &mb));
}

static void fuzz_relay_recipients(const uint8_t *data, size_t size, size_t lines)
{
    char err[1024], err2[1024];
    struct relay_recipients *t = relay_recipients_parse((const char *)data, size, "f",
                                                        relay_domains, 2, err, sizeof(err));
    struct relay_recipients *t2 = relay_recipients_parse((const char *)data, size, "f",
                                                         relay_domains, 2, err2,
                                                         sizeof(err2));
    struct mailbox mb;

    FUZZ_CHECK((t == NULL) == (t2 == NULL));
    if (t == NULL) {
        FUZZ_CHECK(strncmp(err, "f:", 2) == 0 && strcmp(err, err2) == 0);
        FUZZ_CHECK(strtoul(err + 2, NULL, 10) >= 1 && strtoul(err + 2, NULL, 10) <= lines);
        return;
    }
    FUZZ_CHECK(relay_recipients_count(t) == relay_recipients_count(t2));
    FUZZ_CHECK(relay_recipients_count(t) <= lines);
    FUZZ_CHECK(mailbox_of("x@elsewhere.test", &mb) && !relay_recipients_allows(t, &mb));
    for (size_t pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos, a = pos, b = pos + n;
        char line[ADDR_PATH_MAX + 1];

        while (a < b && (data[a] == ' ' || data[a] == '\t'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r'))
            b--;
        if (b > a && b - a < sizeof(line) && memchr(data + a, '\0', b - a) == NULL) {
            memcpy(line, data + a, b - a);
            line[b - a] = '\0';
            check_relay_line(t, line);
        }
        pos += n + (nl != NULL);
    }
    relay_recipients_free(t);
    relay_recipients_free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024], err2[1024];
    struct alias_table *t = alias_table_parse((const char *)data, size, "f", "example.test",
                                              err, sizeof(err));
    struct alias_table *t2 = alias_table_parse((const char *)data, size, "f", "example.test",
                                               err2, sizeof(err2));
    size_t lines = 1;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    fuzz_relay_recipients(data, size, lines);
    FUZZ_CHECK((t == NULL) == (t2 == NULL));
    if (t == NULL) {
        unsigned long line = 0;
        FUZZ_CHECK(strncmp(err, "f:", 2) == 0 && strcmp(err, err2) == 0);
        line = strtoul(err + 2, NULL, 10);
        FUZZ_CHECK(line >= 1 && line <= lines);
        return 0;
    }
    FUZZ_CHECK(alias_table_count(t) == alias_table_count(t2));
    FUZZ_CHECK(alias_table_count(t) <= ALIAS_MAX_ENTRIES + 1);
    if (alias_table_catchall(t))
        check_entry(t, alias_table_catchall(t));
    /* every key that parses: look each line's key up */
    for (size_t pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        const uint8_t *colon = memchr(data + pos, ':', n);
        char key[ADDR_LOCAL_MAX + 1];
        size_t a = pos, b = colon ? (size_t)(colon - data) : pos;

        while (a < b && (data[a] == ' ' || data[a] == '\t'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t'))
            b--;
        if (colon && b > a && b - a <= ADDR_LOCAL_MAX && data[a] != '#') {
            const struct alias_entry *e;
            memcpy(key, data + a, b - a);
            key[b - a] = '\0';
            if ((e = alias_table_find(t, key)) != NULL)
                check_entry(t, e);
        }
        pos += n + (nl != NULL);
    }
    alias_table_free(t);
    alias_table_free(t2);
    return 0;
}

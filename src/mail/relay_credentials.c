/*
 * relay_credentials.c - parse the smart host's "user:password" file (see
 * relay_credentials.h). Trusts: nothing in the bytes; bounded copies,
 * and nothing of a line in an error message.
 */
#define _GNU_SOURCE 1
#include "mail/relay_credentials.h"

#include <stdio.h>
#include <string.h>

void relay_credentials_wipe(struct relay_credentials *c)
{
    explicit_bzero(c, sizeof(*c));
}

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

/* One "user:password" line (without its line end); false + err. */
static bool parse_line(const char *line, size_t len, unsigned lineno,
                       struct relay_credentials *out, char *err, size_t errsize)
{
    const char *colon = memchr(line, ':', len);
    size_t ulen, plen;

    if (colon == NULL) {
        snprintf(err, errsize, "line %u: not \"user:password\"", lineno);
        return false;
    }
    ulen = (size_t)(colon - line);
    plen = len - ulen - 1;
    if (ulen == 0 || plen == 0) {
        snprintf(err, errsize, "line %u: empty %s", lineno, ulen == 0 ? "user" : "password");
        return false;
    }
    if (ulen > RELAY_CRED_FIELD_MAX || plen > RELAY_CRED_FIELD_MAX) {
        snprintf(err, errsize, "line %u: the %s is longer than %u octets", lineno,
                 ulen > RELAY_CRED_FIELD_MAX ? "user" : "password", RELAY_CRED_FIELD_MAX);
        return false;
    }
    if (has_control(line, len)) {
        snprintf(err, errsize, "line %u: control characters in the user or password",
                 lineno);
        return false;
    }
    memcpy(out->user, line, ulen);
    out->user[ulen] = '\0';
    memcpy(out->password, colon + 1, plen);
    out->password[plen] = '\0';
    return true;
}

bool relay_credentials_parse(const char *data, size_t len, struct relay_credentials *out,
                             char *err, size_t errsize)
{
    unsigned lineno = 0, found = 0;
    size_t pos = 0;

    relay_credentials_wipe(out);
    if (len > RELAY_CRED_FILE_MAX) {
        snprintf(err, errsize, "larger than %u octets", RELAY_CRED_FILE_MAX);
        return false;
    }
    while (pos < len) {
        const char *line = data + pos, *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;

        pos += llen + (nl != NULL);
        lineno++;
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen == 0 || line[0] == '#')
            continue;
        if (found++ > 0) {
            snprintf(err, errsize, "line %u: a second credentials line (one "
                     "\"user:password\" line only)", lineno);
            relay_credentials_wipe(out);
            return false;
        }
        if (!parse_line(line, llen, lineno, out, err, errsize)) {
            relay_credentials_wipe(out);
            return false;
        }
    }
    if (found == 0) {
        snprintf(err, errsize, "no \"user:password\" line");
        return false;
    }
    return true;
}

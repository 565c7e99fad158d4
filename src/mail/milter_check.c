/*
 * milter_check.c - encode and check a milter question asked during the
 * SMTP dialogue (see milter_check.h).
 *
 * Trusts nothing it decodes.
 */
#define _GNU_SOURCE 1
#include "mail/milter_check.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"
#include "util/ascii.h"
#include "util/ipc.h"
#include "util/xalloc.h"

#define HEAD_MAX (64 + MILTER_CHECK_USER_MAX)

static const char *const stage_names[] = {
    [MILTER_AT_CONNECT] = "connect", [MILTER_AT_MAIL] = "mail", [MILTER_AT_RCPT] = "rcpt",
};

const char *milter_check_stage_name(int stage)
{
    if (stage <= MILTER_AT_DATA || stage > MILTER_AT_RCPT)
        return "data";
    return stage_names[stage];
}

char *milter_check_encode(const struct milter_check *c, size_t *len)
{
    char head[HEAD_MAX + 16 + sizeof("auth_type \n") + AUTH_MECH_NAME_MAX];
    size_t rlen, hlen;
    char *req, *out;
    int n;

    n = snprintf(head, sizeof(head), "check %" PRIu64 " %s %u\n", c->id,
                 milter_check_stage_name(c->stage), (unsigned)c->client_port);
    if (c->auth_user[0] && n > 0 && (size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "auth %s\nauth_type %s\n",
                      c->auth_user, c->auth_type);
    if (n < 0 || (size_t)n >= sizeof(head))
        return NULL;
    hlen = (size_t)n;
    req = queue_request_encode(&c->facts, &c->env, &rlen);
    if (req == NULL || hlen + rlen > IPC_MAX_PAYLOAD) {
        free(req);
        return NULL;
    }
    out = xmalloc(hlen + rlen);
    memcpy(out, head, hlen);
    memcpy(out + hlen, req, rlen);
    free(req);
    *len = hlen + rlen;
    return out;
}

/* Printable ASCII, or UTF-8 octets where allowed; no control octet. */
static bool clean(const char *s, bool allow_8bit)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !allow_8bit))
            return false;
    }
    return true;
}

/* addr (without <>) is an SMTP path; null only for a sender. */
static bool path_ok(const char *addr, bool utf8, bool sender)
{
    char path[ADDR_PATH_MAX + 3];
    struct mailbox mb;
    size_t used;
    int n = snprintf(path, sizeof(path), "<%s>", addr);

    if (n < 0 || (size_t)n >= sizeof(path) ||
        address_parse_path(path, (size_t)n, utf8, &mb, &used) != ADDR_OK || used != (size_t)n)
        return false;
    return sender ? !mb.is_bare_postmaster : !mb.is_null;
}

/* The first line: "check ID STAGE PORT". */
static bool parse_head(const char *line, struct milter_check *c)
{
    char stage[16];
    uint64_t id;
    unsigned port;
    int used = 0;

    if (sscanf(line, "check %" SCNu64 " %15[a-z] %u%n", &id, stage, &port, &used) != 3 ||
        line[used] != '\0' || !ascii_digit((unsigned char)line[6]) || port > 65535)
        return false;
    for (int s = MILTER_AT_CONNECT; s <= MILTER_AT_RCPT; s++) {
        if (strcmp(stage, stage_names[s]) == 0) {
            c->id = id;
            c->stage = s;
            c->client_port = (uint16_t)port;
            return true;
        }
    }
    return false;
}

/* One "...\n" line of at most size-1 octets from *p into line. */
static bool take_line(const char **p, const char *end, char *line, size_t size)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : 0;

    if (nl == NULL || n >= size || memchr(*p, '\0', n))
        return false;
    memcpy(line, *p, n);
    line[n] = '\0';
    *p = nl + 1;
    return true;
}

/* The envelope fits the stage and holds nothing a milter must not see. */
static bool envelope_ok(const struct milter_check *c, char *err, size_t errsize)
{
    const struct envelope *e = &c->env;
    struct in6_addr a;
    bool utf8 = e->smtputf8;

    if (inet_pton(AF_INET, e->client, &a) != 1 && inet_pton(AF_INET6, e->client, &a) != 1) {
        snprintf(err, errsize, "client is not an IP address");
        return false;
    }
    if (!clean(e->helo, false) || !clean(e->from, true) || !clean(e->envid, false)) {
        snprintf(err, errsize, "control octets in HELO, sender or ENVID");
        return false;
    }
    if (e->id[0] || (c->stage == MILTER_AT_CONNECT && (e->from[0] || e->helo[0])) ||
        e->rcpt_count != (c->stage == MILTER_AT_RCPT ? 1u : 0u)) {
        snprintf(err, errsize, "envelope does not fit the %s stage",
                 milter_check_stage_name(c->stage));
        return false;
    }
    if (c->stage != MILTER_AT_CONNECT && e->from[0] && !path_ok(e->from, utf8, true)) {
        snprintf(err, errsize, "bad sender");
        return false;
    }
    if (c->stage == MILTER_AT_RCPT &&
        (!path_ok(e->rcpts[0].addr, utf8, false) || !clean(e->rcpts[0].orcpt, false))) {
        snprintf(err, errsize, "bad recipient");
        return false;
    }
    return true;
}

bool milter_check_peek_id(const void *payload, size_t len, uint64_t *id)
{
    const char *p = payload, *end = p + len;
    char line[HEAD_MAX + 1];
    struct milter_check c;

    if (!take_line(&p, end, line, sizeof(line)) || !parse_head(line, &c))
        return false;
    *id = c.id;
    return true;
}

bool milter_check_decode(const void *payload, size_t len, struct milter_check *c,
                         char *err, size_t errsize)
{
    const char *p = payload, *end = p + len;
    char line[HEAD_MAX + 1];

    memset(c, 0, sizeof(*c));
    envelope_init(&c->env);
    if (!take_line(&p, end, line, sizeof(line)) || !parse_head(line, c)) {
        snprintf(err, errsize, "bad check line");
        return false;
    }
    if (end - p > 5 && memcmp(p, "auth ", 5) == 0) {
        if (!take_line(&p, end, line, sizeof(line)) || line[5] == '\0' ||
            !clean(line + 5, true) || strlen(line + 5) > MILTER_CHECK_USER_MAX) {
            snprintf(err, errsize, "bad auth line");
            return false;
        }
        memcpy(c->auth_user, line + 5, strlen(line + 5) + 1);
        if (!take_line(&p, end, line, sizeof(line)) || strncmp(line, "auth_type ", 10) != 0 ||
            !auth_mechanism_known(line + 10)) {
            snprintf(err, errsize, "bad auth_type line");
            return false;
        }
        memcpy(c->auth_type, line + 10, strlen(line + 10) + 1);
    }
    if (!queue_request_decode_partial(p, (size_t)(end - p), &c->facts, &c->env, err, errsize))
        return false;
    if (!clean(c->facts.listener, false) || !envelope_ok(c, err, errsize)) {
        if (!clean(c->facts.listener, false))
            snprintf(err, errsize, "bad listener name");
        envelope_clear(&c->env);
        return false;
    }
    return true;
}

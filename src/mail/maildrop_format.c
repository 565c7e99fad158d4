/*
 * maildrop_format.c - the maildrop file: writer helpers and the strict
 * parser (see maildrop_format.h). Trusts nothing it parses: every length
 * is checked against the buffer and the named limits.
 */
#include "mail/maildrop_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool maildrop_addr_valid(const char *addr, bool allow_null, bool *utf8)
{
    char path[ADDR_PATH_MAX + 3], canon[ADDR_PATH_MAX + 1];
    struct mailbox mb;
    size_t n = strlen(addr), used = 0;

    *utf8 = false;
    if (n == 0)
        return allow_null;
    if (n > ADDR_PATH_MAX - 2)
        return false;
    path[0] = '<';
    memcpy(path + 1, addr, n);
    path[n + 1] = '>';
    path[n + 2] = '\0';
    if (address_parse_path(path, n + 2, true, &mb, &used) != ADDR_OK || used != n + 2 ||
        mb.is_null || mb.is_bare_postmaster || mb.domain[0] == '\0')
        return false;
    /* One spelling only: the canonical form (what the writer writes). */
    mailbox_format_canonical(&mb, canon, sizeof(canon));
    if (strcmp(canon, addr) != 0)
        return false;
    *utf8 = mb.has_utf8;
    return true;
}

size_t maildrop_head_format(const struct maildrop_head *h, char *out, size_t outsize)
{
    size_t used = 0;
    bool utf8;
    int n;

    if (h->rcpt_count == 0 || h->rcpt_count > MAILDROP_RCPTS_MAX ||
        !maildrop_addr_valid(h->from, true, &utf8))
        return 0;
    n = snprintf(out, outsize, MAILDROP_MAGIC "\nfrom %s\nbody %s\nsize %" PRIu64 "\n",
                 h->from, h->eight_bit ? "8bitmime" : "7bit", h->size);
    if (n < 0 || (size_t)n >= outsize)
        return 0;
    used = (size_t)n;
    for (size_t i = 0; i < h->rcpt_count; i++) {
        if (!maildrop_addr_valid(h->rcpts[i], false, &utf8))
            return 0;
        n = snprintf(out + used, outsize - used, "rcpt %s\n", h->rcpts[i]);
        if (n < 0 || (size_t)n >= outsize - used)
            return 0;
        used += (size_t)n;
    }
    if (used + 1 >= outsize)
        return 0;
    out[used++] = '\n';
    out[used] = '\0';
    return used;
}

/* --- parser --- */

struct cursor {
    const char *p, *end;
    char *err;
    size_t errsize;
};

static bool fail(struct cursor *c, const char *why)
{
    snprintf(c->err, c->errsize, "%s", why);
    return false;
}

/* The next line "KEY VALUE\n" (KEY given); value copied into out. */
static bool take_line(struct cursor *c, const char *key, char *out, size_t outsize)
{
    size_t klen = strlen(key);
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    size_t vlen;

    if (nl == NULL)
        return fail(c, "truncated head");
    if ((size_t)(nl - c->p) < klen + 1 || memcmp(c->p, key, klen) != 0 || c->p[klen] != ' ')
        return fail(c, "unexpected line in head");
    vlen = (size_t)(nl - c->p) - klen - 1;
    if (vlen >= outsize)
        return fail(c, "value too long");
    memcpy(out, c->p + klen + 1, vlen);
    out[vlen] = '\0';
    if (memchr(out, '\0', vlen) != NULL)
        return fail(c, "NUL in head");
    c->p = nl + 1;
    return true;
}

static bool parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 19)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static bool parse_fixed(struct cursor *c, struct maildrop_head *h)
{
    char line[ADDR_PATH_MAX + 1];
    bool utf8;
    const size_t mlen = sizeof(MAILDROP_MAGIC) - 1;

    if ((size_t)(c->end - c->p) < mlen + 1 || memcmp(c->p, MAILDROP_MAGIC "\n", mlen + 1) != 0)
        return fail(c, "not a sealpost maildrop file (magic)");
    c->p += mlen + 1;
    if (!take_line(c, "from", h->from, sizeof(h->from)))
        return false;
    if (!maildrop_addr_valid(h->from, true, &utf8))
        return fail(c, "invalid sender address");
    h->smtputf8 = utf8;
    if (!take_line(c, "body", line, sizeof(line)))
        return false;
    if (strcmp(line, "7bit") != 0 && strcmp(line, "8bitmime") != 0)
        return fail(c, "invalid body type");
    h->eight_bit = line[0] == '8';
    if (!take_line(c, "size", line, sizeof(line)))
        return false;
    if (!parse_size(line, &h->size))
        return fail(c, "invalid size");
    return true;
}

size_t maildrop_head_parse(const char *data, size_t len, struct maildrop_head *h, char *err,
                           size_t errsize)
{
    struct cursor c = { data, data + len, err, errsize };
    bool utf8;

    h->rcpt_count = 0;
    h->smtputf8 = false;
    if (!parse_fixed(&c, h))
        return 0;
    while (c.p < c.end && *c.p != '\n') {
        if (h->rcpt_count == MAILDROP_RCPTS_MAX)
            { fail(&c, "too many recipients"); return 0; }
        if (!take_line(&c, "rcpt", h->rcpts[h->rcpt_count], sizeof(h->rcpts[0])))
            return 0;
        if (!maildrop_addr_valid(h->rcpts[h->rcpt_count], false, &utf8))
            { fail(&c, "invalid recipient address"); return 0; }
        h->smtputf8 |= utf8;
        h->rcpt_count++;
    }
    if (c.p >= c.end)
        { fail(&c, "truncated head"); return 0; }
    if (h->rcpt_count == 0)
        { fail(&c, "no recipients"); return 0; }
    return (size_t)(c.p + 1 - data);
}

/* --- message bytes --- */

void maildrop_body_begin(struct maildrop_body_check *c, size_t max_line)
{
    memset(c, 0, sizeof(*c));
    c->max_line = max_line;
}

bool maildrop_body_feed(struct maildrop_body_check *c, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len && c->bad == NULL; i++) {
        unsigned char ch = p[i];

        if (c->prev_cr && ch != '\n')
            c->bad = "CR without LF";
        else if (ch == '\n' && !c->prev_cr)
            c->bad = "LF without CR";
        else if (ch == '\n')
            c->line_len = 0;
        else if (ch != '\r' && ++c->line_len > c->max_line)
            c->bad = "line too long";
        c->prev_cr = ch == '\r';
        c->eight_bit |= ch >= 0x80;
    }
    c->total += len;
    return c->bad == NULL;
}

bool maildrop_body_end(struct maildrop_body_check *c)
{
    if (c->bad == NULL && (c->prev_cr || c->line_len != 0))
        c->bad = "last line without CRLF";
    return c->bad == NULL;
}

size_t maildrop_canonical(const char *in, size_t len, bool dot_ends, char *out)
{
    size_t o = 0, start = 0;

    for (size_t i = 0; i <= len; i++) {
        size_t end = i;

        if (i < len && in[i] != '\n' && in[i] != '\r')
            continue;
        if (i == len && start == len)
            break;
        if (i < len && in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            i++;
        if (dot_ends && end - start == 1 && in[start] == '.')
            break;
        memcpy(out + o, in + start, end - start);
        o += end - start;
        out[o++] = '\r';
        out[o++] = '\n';
        start = i + 1;
    }
    return o;
}

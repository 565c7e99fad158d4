/*
 * alias_expand.c - an envelope's aliases replaced by their targets (see
 * alias_expand.h). Repeats are found with an open-addressing hash set of
 * the (ASCII lower-cased) addresses already in the new envelope.
 */
#include "mail/alias_expand.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/ascii.h"
#include "util/xalloc.h"

/* Indices (+1) into the new envelope's recipients; 0 = free. Grows to
 * stay at most half full. */
struct addr_set {
    size_t *slots;
    size_t mask;
};

static uint64_t addr_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)ascii_lower((unsigned char)*s)) * 1099511628211ULL;
    return h;
}

/* The slot holding s, or the free slot where it belongs. */
static size_t *set_slot(const struct addr_set *set, const struct envelope *env, const char *s)
{
    size_t i = (size_t)addr_hash(s) & set->mask;

    while (set->slots[i] != 0 && strcasecmp(env->rcpts[set->slots[i] - 1].addr, s) != 0)
        i = (i + 1) & set->mask;
    return &set->slots[i];
}

static void set_init(struct addr_set *set, size_t cap)
{
    set->slots = xcalloc(cap, sizeof(*set->slots));
    set->mask = cap - 1;
}

/* Room for one more: double and rehash when half full. */
static void set_reserve(struct addr_set *set, const struct envelope *env)
{
    struct addr_set bigger;

    if (2 * (env->rcpt_count + 1) <= set->mask + 1)
        return;
    set_init(&bigger, 2 * (set->mask + 1));
    for (size_t i = 0; i < env->rcpt_count; i++)
        *set_slot(&bigger, env, env->rcpts[i].addr) = i + 1;
    free(set->slots);
    *set = bigger;
}

void alias_orcpt(const char *addr, char *out, size_t outsize)
{
    static const char hex[] = "0123456789ABCDEF";
    int n = snprintf(out, outsize, "rfc822;");
    size_t o = n > 0 ? (size_t)n : outsize;

    for (const unsigned char *p = (const unsigned char *)addr; *p && o < outsize; p++) {
        if (*p >= 0x80 || o + 4 > outsize) {
            o = outsize;
        } else if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
            out[o++] = '+';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    if (o >= outsize) {
        if (outsize)
            out[0] = '\0';
        return;
    }
    out[o] = '\0';
}

/* Add addr unless the envelope has it; false when it is full. */
static bool add(struct envelope *out, struct addr_set *set, const char *addr,
                unsigned notify, const char *orcpt)
{
    size_t *slot = set_slot(set, out, addr);

    if (*slot != 0)
        return true;                    /* a repeat */
    if (out->rcpt_count >= ENVELOPE_MAX_RCPTS)
        return false;
    envelope_add_rcpt(out, addr, notify, orcpt);
    *slot = out->rcpt_count;
    set_reserve(set, out);
    return true;
}

static const char *expand_error(enum expand_result r)
{
    switch (r) {
    case EXPAND_LOOP:       return "alias loop";
    case EXPAND_TOO_DEEP:   return "alias nesting too deep";
    case EXPAND_TOO_MANY:   return "alias expands to too many recipients";
    case EXPAND_UNKNOWN:    return "alias target unknown";
    case EXPAND_OK:         break;
    }
    return "?";
}

static bool expand_one(const struct recipient_policy *p, size_t max_per_rcpt,
                       const struct envelope_rcpt *r, struct envelope *out,
                       struct addr_set *set, char *why, size_t whysize)
{
    struct recipient_expansion ex = { .max = max_per_rcpt };
    enum expand_result res = recipient_expand(p, r->addr, &ex);
    char orcpt[DSN_ORCPT_MAX + 1];
    bool ok = true;

    if (res != EXPAND_OK) {
        snprintf(why, whysize, "%s: %s", r->addr, expand_error(res));
        recipient_expansion_clear(&ex);
        return false;
    }
    if (r->orcpt[0])
        snprintf(orcpt, sizeof(orcpt), "%s", r->orcpt);
    else
        alias_orcpt(r->addr, orcpt, sizeof(orcpt));
    for (size_t i = 0; i < ex.count && ok; i++) {
        bool self = !ex.aliased || strcasecmp(ex.addrs[i], r->addr) == 0;
        ok = add(out, set, ex.addrs[i], r->notify, self ? r->orcpt : orcpt);
    }
    recipient_expansion_clear(&ex);
    if (!ok)
        snprintf(why, whysize, "more than %d recipients after alias expansion",
                 ENVELOPE_MAX_RCPTS);
    return ok;
}

bool alias_expand_envelope(const struct recipient_policy *p, size_t max_per_rcpt,
                           const struct envelope *in, struct envelope *out,
                           char *why, size_t whysize)
{
    struct addr_set set;
    bool ok = true;

    set_init(&set, 64);
    *out = *in;
    out->rcpts = NULL;
    out->rcpt_count = out->rcpt_alloc = out->rcpt_bytes = 0;
    for (size_t i = 0; i < in->rcpt_count && ok; i++)
        ok = expand_one(p, max_per_rcpt, &in->rcpts[i], out, &set, why, whysize);
    free(set.slots);
    if (!ok)
        envelope_clear(out);
    return ok;
}

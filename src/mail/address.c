/*
 * address.c - RFC 5321 4.1.2 path parser, with the RFC 6531 (SMTPUTF8)
 * extensions to atext, qtextSMTP and sub-domain.
 *
 * Trusts nothing: the input is raw bytes from the network, counted by
 * length (NUL is just another invalid octet). Parsing happens in two
 * steps: a scan that only reads the input and records where the local
 * part and domain are, then, once the grammar and every limit have been
 * checked, a copy into the fixed-size fields of struct mailbox. Nothing
 * is written before its length is known to fit.
 *
 * Never accepted anywhere in a path: NUL, CR, LF, other C0 controls,
 * DEL, C1 controls (U+0080..U+009F) and ill-formed UTF-8.
 *
 * Verdict precedence: ADDR_ERR_SYNTAX, then ADDR_ERR_TOO_LONG, then
 * ADDR_ERR_UTF8 (non-ASCII in an otherwise valid path when allow_utf8 is
 * false).
 */
#include "mail/address.h"
#include "util/ascii.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Read-only cursor over the untrusted input. */
struct cursor {
    const unsigned char *p;
    size_t len;
    size_t pos;
    bool utf8;              /* consumed a non-ASCII character */
};

/* Where the parts of a syntactically valid path are, as offsets. */
struct path_scan {
    bool is_null;
    bool is_postmaster;
    bool literal;
    bool quoted;
    bool utf8_mailbox;      /* non-ASCII in local part or domain */
    bool utf8_any;          /* non-ASCII anywhere, source route included */
    size_t local_off, local_len;
    size_t domain_off, domain_len;
    size_t end;             /* bytes up to and including '>' */
};

static const char POSTMASTER[] = "postmaster";

/* ---- character classes (ASCII only, locale-independent) ---- */

static bool is_let_dig(int c)
{
    return ascii_alnum((unsigned char)c);
}

/* RFC 5322 3.2.3 atext, ASCII part. */
static bool is_atext(int c)
{
    return is_let_dig(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 qtextSMTP, ASCII part: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(int c)
{
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* RFC 5321 dcontent: %d33-90 / %d94-126. */
static bool is_dcontent(int c)
{
    return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* ---- UTF-8 ---- */

/*
 * Length of the well-formed non-ASCII UTF-8 sequence at p (RFC 3629,
 * Unicode table 3-7), or 0 if there is none. Rejects overlongs,
 * surrogates, code points above U+10FFFF and truncated sequences.
 */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n, i;

    if (avail == 0)
        return 0;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xE0)
        lo = 0xA0;              /* overlong */
    else if (p[0] == 0xED)
        hi = 0x9F;              /* surrogates */
    else if (p[0] == 0xF0)
        lo = 0x90;              /* overlong */
    else if (p[0] == 0xF4)
        hi = 0x8F;              /* above U+10FFFF */
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---- cursor primitives ---- */

static int peek(const struct cursor *c)
{
    return c->pos < c->len ? c->p[c->pos] : -1;
}

static bool take_char(struct cursor *c, int ch)
{
    if (peek(c) != ch)
        return false;
    c->pos++;
    return true;
}

/*
 * Consume one well-formed UTF8-non-ascii character that is not a C1
 * control. Returns false (consuming nothing) otherwise.
 */
static bool take_utf8(struct cursor *c)
{
    const unsigned char *p = c->p + c->pos;
    size_t n;

    if (peek(c) < 0x80)
        return false;
    n = utf8_seq_len(p, c->len - c->pos);
    if (n == 0 || (p[0] == 0xC2 && p[1] < 0xA0))
        return false;
    c->pos += n;
    c->utf8 = true;
    return true;
}

/* ---- local part ---- */

/* Atom = 1*atext (atext =/ UTF8-non-ascii, RFC 6531). */
static bool parse_atom(struct cursor *c)
{
    size_t start = c->pos;

    for (;;) {
        if (is_atext(peek(c)))
            c->pos++;
        else if (!take_utf8(c))
            break;
    }
    return c->pos > start;
}

/* Dot-string = Atom *("." Atom) */
static bool parse_dot_string(struct cursor *c)
{
    if (!parse_atom(c))
        return false;
    while (take_char(c, '.'))
        if (!parse_atom(c))
            return false;
    return true;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE */
static bool parse_quoted_string(struct cursor *c)
{
    int ch;

    if (!take_char(c, '"'))
        return false;
    for (;;) {
        ch = peek(c);
        if (ch == '"') {
            c->pos++;
            return true;
        }
        if (ch == '\\') {
            c->pos++;
            ch = peek(c);
            if (ch < 32 || ch > 126)        /* quoted-pairSMTP */
                return false;
            c->pos++;
        } else if (is_qtext(ch)) {
            c->pos++;
        } else if (!take_utf8(c)) {
            return false;                   /* end, control or bad UTF-8 */
        }
    }
}

/* ---- domain ---- */

/*
 * sub-domain = Let-dig [Ldh-str]; a U-label character (RFC 6531) counts
 * as a letter. No leading or trailing hyphen.
 */
static bool parse_sub_domain(struct cursor *c)
{
    bool last_hyphen = false;

    if (is_let_dig(peek(c)))
        c->pos++;
    else if (!take_utf8(c))
        return false;
    for (;;) {
        int ch = peek(c);

        if (is_let_dig(ch) || ch == '-') {
            last_hyphen = (ch == '-');
            c->pos++;
        } else if (take_utf8(c)) {
            last_hyphen = false;
        } else {
            break;
        }
    }
    return !last_hyphen;
}

/* Domain = sub-domain *("." sub-domain) */
static bool parse_domain(struct cursor *c)
{
    if (!parse_sub_domain(c))
        return false;
    while (take_char(c, '.'))
        if (!parse_sub_domain(c))
            return false;
    return true;
}

/* Snum 3("." Snum), Snum = 1*3DIGIT with value 0..255. */
static bool valid_ipv4(const unsigned char *s, size_t len)
{
    size_t i = 0;
    int part;

    for (part = 0; part < 4; part++) {
        unsigned value = 0, digits = 0;

        if (part > 0 && (i >= len || s[i++] != '.'))
            return false;
        while (i < len && ascii_digit((unsigned char)s[i]) && digits < 3) {
            value = value * 10 + (unsigned)(s[i++] - '0');
            digits++;
        }
        if (digits == 0 || value > 255)
            return false;
    }
    return i == len;
}

/* "IPv6:" IPv6-addr, checked with inet_pton. */
static bool valid_ipv6(const unsigned char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr addr;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &addr) == 1;
}

/* Standardized-tag ":" 1*dcontent, tag = Ldh-str. */
static bool valid_general_literal(const unsigned char *s, size_t len)
{
    const unsigned char *colon = memchr(s, ':', len);
    size_t tag_len, i;

    if (colon == NULL)
        return false;
    tag_len = (size_t)(colon - s);
    if (tag_len == 0 || !is_let_dig(s[tag_len - 1]))
        return false;
    for (i = 0; i < tag_len; i++)
        if (!is_let_dig(s[i]) && s[i] != '-')
            return false;
    return tag_len + 1 < len;   /* 1*dcontent, already class-checked */
}

static bool has_prefix_ci(const unsigned char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix), i;

    if (len < n)
        return false;
    for (i = 0; i < n; i++)
        if (ascii_lower(s[i]) != ascii_lower((unsigned char)prefix[i]))
            return false;
    return true;
}

/* address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]" */
static bool parse_address_literal(struct cursor *c)
{
    const unsigned char *content;
    size_t start, len;

    if (!take_char(c, '['))
        return false;
    start = c->pos;
    while (is_dcontent(peek(c)))
        c->pos++;
    if (!take_char(c, ']'))
        return false;
    content = c->p + start;
    len = c->pos - 1 - start;
    if (has_prefix_ci(content, len, "IPv6:"))
        return valid_ipv6(content + 5, len - 5);
    if (memchr(content, ':', len) != NULL)
        return valid_general_literal(content, len);
    return valid_ipv4(content, len);
}

/* ---- path ---- */

/* A-d-l ":" where A-d-l = At-domain *( "," At-domain ) */
static bool parse_source_route(struct cursor *c)
{
    do {
        if (!take_char(c, '@') || !parse_domain(c))
            return false;
    } while (take_char(c, ','));
    return take_char(c, ':');
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) */
static bool parse_mailbox(struct cursor *c, struct path_scan *ps)
{
    bool ok;

    ps->local_off = c->pos;
    ps->quoted = (peek(c) == '"');
    ok = ps->quoted ? parse_quoted_string(c) : parse_dot_string(c);
    if (!ok)
        return false;
    ps->local_len = c->pos - ps->local_off;
    if (!take_char(c, '@'))
        return false;
    ps->domain_off = c->pos;
    ps->literal = (peek(c) == '[');
    ok = ps->literal ? parse_address_literal(c) : parse_domain(c);
    ps->domain_len = c->pos - ps->domain_off;
    return ok;
}

/* "<" + "postmaster" (any case) + ">" */
static bool looks_like_bare_postmaster(const unsigned char *s, size_t len)
{
    size_t n = sizeof(POSTMASTER) - 1;

    return len >= n + 2 && has_prefix_ci(s + 1, len - 1, POSTMASTER) &&
           s[n + 1] == '>';
}

/* Grammar check only; fills ps with offsets. */
static bool scan_path(const unsigned char *s, size_t len, struct path_scan *ps)
{
    struct cursor c = { .p = s, .len = len, .pos = 0, .utf8 = false };

    if (!take_char(&c, '<'))
        return false;
    if (take_char(&c, '>')) {
        ps->is_null = true;
    } else if (looks_like_bare_postmaster(s, len)) {
        ps->is_postmaster = true;
        ps->local_off = 1;
        ps->local_len = sizeof(POSTMASTER) - 1;
        c.pos = ps->local_len + 2;
    } else {
        if (peek(&c) == '@' && !parse_source_route(&c))
            return false;
        ps->utf8_any = c.utf8;
        c.utf8 = false;
        if (!parse_mailbox(&c, ps) || !take_char(&c, '>'))
            return false;
        ps->utf8_mailbox = c.utf8;
        ps->utf8_any = ps->utf8_any || c.utf8;
    }
    ps->end = c.pos;
    return true;
}

/* Copy the decoded content of a quoted local part; out has room. */
static void unquote(const char *q, size_t qlen, char *out)
{
    size_t i, n = 0;

    for (i = 1; i + 1 < qlen; i++) {
        if (q[i] == '\\')
            i++;
        out[n++] = q[i];
    }
    out[n] = '\0';
}

/* Fill out from a scan whose lengths have been checked. */
static void fill_mailbox(const char *s, const struct path_scan *ps,
                         struct mailbox *out)
{
    out->is_null = ps->is_null;
    out->is_bare_postmaster = ps->is_postmaster;
    out->has_utf8 = ps->utf8_mailbox;
    out->domain_is_literal = ps->literal;
    memcpy(out->local, s + ps->local_off, ps->local_len);
    out->local[ps->local_len] = '\0';
    memcpy(out->domain, s + ps->domain_off, ps->domain_len);
    out->domain[ps->domain_len] = '\0';
    if (ps->quoted) {
        unquote(out->local, ps->local_len, out->local_unquoted);
    } else {
        memcpy(out->local_unquoted, out->local, ps->local_len + 1);
    }
}

enum addr_status address_parse_path(const char *s, size_t len, bool allow_utf8,
                                    struct mailbox *out, size_t *consumed)
{
    struct path_scan ps;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    memset(&ps, 0, sizeof(ps));
    if (s == NULL || !scan_path((const unsigned char *)s, len, &ps))
        return ADDR_ERR_SYNTAX;
    if (ps.local_len > ADDR_LOCAL_MAX || ps.domain_len > ADDR_DOMAIN_MAX ||
        ps.end > ADDR_PATH_MAX)
        return ADDR_ERR_TOO_LONG;
    if (ps.utf8_any && !allow_utf8)
        return ADDR_ERR_UTF8;
    fill_mailbox(s, &ps, out);
    *consumed = ps.end;
    return ADDR_OK;
}

/* The decoded local part is a Dot-string (atoms of atext or UTF-8,
 * single dots between them): then it needs no quoting. */
static bool is_dot_string(const char *s, size_t len)
{
    struct cursor c = { .p = (const unsigned char *)s, .len = len, .pos = 0, .utf8 = false };

    return len > 0 && parse_dot_string(&c) && c.pos == len;
}

/* The canonical spelling of a decoded local part into out: the
 * Dot-string itself, else a Quoted-string that escapes only '"' and '\\'
 * (the two octets qtextSMTP excludes). For a parsed mailbox it is never
 * longer than the wire form; false if it does not fit all the same. */
static bool canonical_local(const char *unq, char *out, size_t outsize)
{
    size_t len = strlen(unq), o = 0;

    if (is_dot_string(unq, len)) {
        if (len >= outsize)
            return false;
        memcpy(out, unq, len + 1);
        return true;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (o + 4 > outsize)            /* escape, octet, quote, NUL */
            return false;
        if (unq[i] == '"' || unq[i] == '\\')
            out[o++] = '\\';
        out[o++] = unq[i];
    }
    if (o + 2 > outsize)
        return false;
    out[o++] = '"';
    out[o] = '\0';
    return true;
}

void mailbox_format_canonical(const struct mailbox *mb, char *out, size_t outsize)
{
    char local[ADDR_LOCAL_MAX + 1];

    if (out == NULL || outsize == 0)
        return;
    if (mb->is_null) {
        out[0] = '\0';
        return;
    }
    if (!canonical_local(mb->local_unquoted, local, sizeof(local))) {
        mailbox_format(mb, out, outsize);   /* not from address_parse_path */
        return;
    }
    if (mb->domain[0] == '\0')
        snprintf(out, outsize, "%s", local);
    else
        snprintf(out, outsize, "%s@%s", local, mb->domain);
}

void mailbox_format(const struct mailbox *mb, char *out, size_t outsize)
{
    if (out == NULL || outsize == 0)
        return;
    if (mb->is_null)
        out[0] = '\0';
    else if (mb->domain[0] == '\0')
        snprintf(out, outsize, "%s", mb->local);
    else
        snprintf(out, outsize, "%s@%s", mb->local, mb->domain);
}

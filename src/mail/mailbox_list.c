/*
 * mailbox_list.c - RFC 5322 address lists (see mailbox_list.h).
 *
 * A tokenizer (words, quoted strings, domain literals, specials; blanks
 * and comments skipped) under a small recursive-descent parser:
 *
 *   list    = [element] *("," [element])
 *   element = word "@" domain                      bare addr-spec
 *           / word                                 local part alone (a flag)
 *           / *word "<" [route ":"] addr-spec ">"  name-addr
 *           / 1*word ":" [members] ";"             group (not nested)
 *
 * Trusts nothing in the text; every copy is bounded by its buffer.
 */
#include "mail/mailbox_list.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"

enum tok_kind { TOK_END, TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_SPECIAL, TOK_ERROR };

struct token {
    enum tok_kind kind;
    const char *p;          /* the token's octets (quoted: with the quotes) */
    size_t len;
    char special;           /* TOK_SPECIAL: one of < > @ , : ; */
    const char *error;      /* TOK_ERROR */
};

struct parser {
    const char *text;
    size_t len, pos;
    mailbox_list_cb each;
    void *arg;
    int count;
    bool stopped;
    bool bare_local;        /* MAILBOX_BARE_LOCAL */
    const char *error;
};

/* atext of RFC 5322 3.2.3, '.' (dot-atoms, obs-phrase) and UTF-8 octets
 * (RFC 6532 3.2). */
static bool is_atext(unsigned char c)
{
    return ascii_alnum(c) || c >= 0x80 || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", c));
}

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip a comment starting at text[pos] == '('; false if unterminated,
 * too deep or holding a control character. */
static bool skip_comment(struct parser *ps)
{
    unsigned depth = 0;

    while (ps->pos < ps->len) {
        unsigned char c = (unsigned char)ps->text[ps->pos++];

        if (c == '\\' && ps->pos < ps->len)
            c = (unsigned char)ps->text[ps->pos++];     /* quoted-pair: any octet */
        else if (c == '(' && ++depth > MAILBOX_COMMENT_DEPTH)
            return false;
        else if (c == ')' && --depth == 0)
            return true;
        if ((c < 0x20 && !is_blank(c)) || c == 0x7f)
            return false;
    }
    return false;
}

/* A quoted string or a domain literal ending at close; false if
 * unterminated or holding a control character. */
static bool skip_delimited(struct parser *ps, char close)
{
    ps->pos++;                  /* the opening '"' or '[' */
    while (ps->pos < ps->len) {
        unsigned char c = (unsigned char)ps->text[ps->pos++];

        if (c == '\\' && ps->pos < ps->len)
            c = (unsigned char)ps->text[ps->pos++];
        else if (c == (unsigned char)close)
            return true;
        else if (close == ']' && c == '[')
            return false;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return false;
}

static struct token next_token(struct parser *ps)
{
    struct token t = { TOK_END, NULL, 0, 0, NULL };
    size_t start;

    for (;;) {
        while (ps->pos < ps->len && is_blank((unsigned char)ps->text[ps->pos]))
            ps->pos++;
        if (ps->pos >= ps->len || ps->text[ps->pos] != '(')
            break;
        if (!skip_comment(ps)) {
            t.kind = TOK_ERROR;
            t.error = "unterminated or malformed comment";
            return t;
        }
    }
    if (ps->pos >= ps->len)
        return t;
    start = ps->pos;
    t.p = ps->text + start;
    switch (ps->text[start]) {
    case '"':
    case '[':
        t.kind = ps->text[start] == '"' ? TOK_QUOTED : TOK_LITERAL;
        if (!skip_delimited(ps, ps->text[start] == '"' ? '"' : ']')) {
            t.kind = TOK_ERROR;
            t.error = "unterminated or malformed quoted string or literal";
        }
        break;
    case '<': case '>': case '@': case ',': case ':': case ';':
        t.kind = TOK_SPECIAL;
        t.special = ps->text[ps->pos++];
        break;
    default:
        while (ps->pos < ps->len && is_atext((unsigned char)ps->text[ps->pos]))
            ps->pos++;
        t.kind = TOK_ATOM;
        if (ps->pos == start) {
            t.kind = TOK_ERROR;
            t.error = "unexpected character";
        }
        break;
    }
    t.len = ps->pos - start;
    return t;
}

static struct token peek_token(struct parser *ps)
{
    size_t pos = ps->pos;
    struct token t = next_token(ps);

    ps->pos = pos;
    return t;
}

static bool is_special(const struct token *t, char c)
{
    return t->kind == TOK_SPECIAL && t->special == c;
}

static bool is_word(const struct token *t)
{
    return t->kind == TOK_ATOM || t->kind == TOK_QUOTED;
}

static bool fail(struct parser *ps, const char *why)
{
    if (ps->error == NULL)
        ps->error = why;
    return false;
}

/* A dot-atom: atext runs separated by single dots. */
static bool dot_atom(const char *p, size_t n)
{
    if (n == 0 || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_atext((unsigned char)p[i]) || (p[i] == '.' && p[i + 1] == '.'))
            return false;
    }
    return true;
}

/* The local part of t into out (see mailbox_list.h); false if too long
 * or holding a tab (the one control a quoted string may hold). */
static bool local_part(const struct token *t, char *out, size_t size)
{
    char content[ADDR_PATH_MAX + 1] = "";
    size_t n = 0, o = 0;

    if (t->kind == TOK_ATOM) {
        if (t->len >= size)
            return false;
        memcpy(out, t->p, t->len);
        out[t->len] = '\0';
        return true;
    }
    for (size_t i = 1; i + 1 < t->len; i++) {      /* unescape the quoted string */
        if (t->p[i] == '\\')
            i++;
        if (n >= sizeof(content) - 1 || t->p[i] == '\t')
            return false;       /* too long, or a tab in an address */
        content[n++] = t->p[i];
    }
    if (dot_atom(content, n)) {
        if (n >= size)
            return false;
        memcpy(out, content, n);
        out[n] = '\0';
        return true;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (o + 4 > size)
            return false;
        if (content[i] == '"' || content[i] == '\\')
            out[o++] = '\\';
        out[o++] = content[i];
    }
    if (o + 2 > size)
        return false;
    out[o++] = '"';
    out[o] = '\0';
    return true;
}

/* word "@" domain, the word already read as local. */
static bool addr_spec(struct parser *ps, const struct token *local)
{
    char addr[ADDR_PATH_MAX + 1];
    struct token at = next_token(ps), dom = next_token(ps);
    size_t n;

    if (!is_special(&at, '@'))
        return fail(ps, "an address without '@'");
    if (dom.kind != TOK_ATOM && dom.kind != TOK_LITERAL)
        return fail(ps, "no domain after '@'");
    if ((dom.kind == TOK_ATOM && !dot_atom(dom.p, dom.len)) ||
        (dom.kind == TOK_LITERAL && memchr(dom.p, '\t', dom.len) != NULL))
        return fail(ps, "malformed domain");
    if (!local_part(local, addr, sizeof(addr)))
        return fail(ps, "address too long");
    n = strlen(addr);
    if (n + 1 + dom.len > ADDR_PATH_MAX)
        return fail(ps, "address too long");
    addr[n] = '@';
    memcpy(addr + n + 1, dom.p, dom.len);
    addr[n + 1 + dom.len] = '\0';
    ps->count++;
    if (ps->each && !ps->each(ps->arg, addr)) {
        ps->stopped = true;
        return false;
    }
    return true;
}

/* A lone word as a whole element, when the caller allows it: the local
 * part alone, as "local" without '@'. */
static bool bare_local(struct parser *ps, const struct token *local)
{
    char addr[ADDR_PATH_MAX + 1];

    if (!local_part(local, addr, sizeof(addr)))
        return fail(ps, "address too long");
    ps->count++;
    if (ps->each && !ps->each(ps->arg, addr)) {
        ps->stopped = true;
        return false;
    }
    return true;
}

/* After '<': [route ":"] addr-spec ">". */
static bool angle_addr(struct parser *ps)
{
    struct token t = next_token(ps);

    if (is_special(&t, '@')) {          /* obs-route: skip to its ':' */
        while (t.kind != TOK_END && t.kind != TOK_ERROR && !is_special(&t, ':') &&
               !is_special(&t, '>'))
            t = next_token(ps);
        if (!is_special(&t, ':'))
            return fail(ps, "malformed source route");
        t = next_token(ps);
    }
    if (!is_word(&t))
        return fail(ps, t.kind == TOK_ERROR ? t.error : "no address in <>");
    if (!addr_spec(ps, &t))
        return false;
    t = next_token(ps);
    return is_special(&t, '>') || fail(ps, "no '>' after the address");
}

static bool group(struct parser *ps);

/* One mailbox or (when groups are allowed) group. */
static bool element(struct parser *ps, bool in_group)
{
    unsigned words = 0;

    for (;;) {
        struct token t = next_token(ps);

        if (t.kind == TOK_ERROR)
            return fail(ps, t.error);
        if (is_word(&t)) {
            struct token la = peek_token(ps);

            if (words == 0 && is_special(&la, '@'))
                return addr_spec(ps, &t);
            if (words == 0 && ps->bare_local &&
                (la.kind == TOK_END || is_special(&la, ',') || (in_group && is_special(&la, ';'))))
                return bare_local(ps, &t);
            words++;
            continue;
        }
        if (is_special(&t, '<'))
            return angle_addr(ps);
        if (is_special(&t, ':') && words > 0 && !in_group)
            return group(ps);
        return fail(ps, words ? "a display name without an <address>" : "expected an address");
    }
}

/* Elements separated by ',' (empty ones allowed) up to the end of the
 * text (top level) or the ';' that closes a group. */
static bool element_list(struct parser *ps, bool in_group)
{
    for (;;) {
        struct token t = peek_token(ps);

        if (t.kind == TOK_ERROR)
            return fail(ps, t.error);
        if (t.kind == TOK_END)
            return !in_group || fail(ps, "a group without ';'");
        next_token(ps);
        if (is_special(&t, ';') && in_group)
            return true;
        if (is_special(&t, ','))
            continue;
        ps->pos = (size_t)(t.p - ps->text);     /* the element starts with t */
        if (!element(ps, in_group))
            return false;
        t = next_token(ps);
        if (is_special(&t, ','))
            continue;
        if (in_group ? is_special(&t, ';') : t.kind == TOK_END)
            return true;
        return fail(ps, t.kind == TOK_ERROR ? t.error
                        : in_group          ? "expected ',' or ';' in a group"
                                            : "expected ',' between addresses");
    }
}

static bool group(struct parser *ps)
{
    return element_list(ps, true);
}

int mailbox_list_parse(const char *text, size_t len, mailbox_list_cb each, void *arg,
                       char *err, size_t errsize)
{
    return mailbox_list_parse_flags(text, len, 0, each, arg, err, errsize);
}

int mailbox_list_parse_flags(const char *text, size_t len, unsigned flags, mailbox_list_cb each,
                             void *arg, char *err, size_t errsize)
{
    struct parser ps = { text, len, 0, each, arg, 0, false, (flags & MAILBOX_BARE_LOCAL) != 0,
                         NULL };

    if (element_list(&ps, false))
        return ps.count;
    if (ps.stopped)
        return -2;
    snprintf(err, errsize, "%s", ps.error ? ps.error : "syntax error");
    return -1;
}

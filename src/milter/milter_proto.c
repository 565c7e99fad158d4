/*
 * milter_proto.c - encoders for the milter commands an MTA sends and the
 * strict decoder for the replies (see milter_proto.h for the rules).
 * Trusts: its callers for what they encode; nothing in a reply.
 */
#include "milter/milter_proto.h"

#include <stdio.h>
#include <string.h>

#include "mail/address.h"

/* ---- encoding ---------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void start(struct milter_packet *p, char cmd)
{
    p->buf[4] = (unsigned char)cmd;
    p->len = 5;
}

static bool add(struct milter_packet *p, const void *data, size_t len)
{
    if (len > sizeof(p->buf) - p->len)
        return false;
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return true;
}

static bool add_str(struct milter_packet *p, const char *s)
{
    return add(p, s, strlen(s) + 1);
}

static void finish(struct milter_packet *p)
{
    put32(p->buf, (uint32_t)(p->len - 4));
}

void milter_encode_optneg(struct milter_packet *p, uint32_t version, uint32_t actions,
                          uint32_t protocol)
{
    start(p, SMFIC_OPTNEG);
    put32(p->buf + 5, version);
    put32(p->buf + 9, actions);
    put32(p->buf + 13, protocol);
    p->len = 17;
    finish(p);
}

void milter_encode_empty(struct milter_packet *p, char cmd)
{
    start(p, cmd);
    finish(p);
}

bool milter_encode_macro(struct milter_packet *p, char cmd, const char *const *names,
                         const char *const *values, size_t n)
{
    unsigned char c = (unsigned char)cmd;

    start(p, SMFIC_MACRO);
    if (!add(p, &c, 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!add_str(p, names[i]) || !add_str(p, values[i]))
            return false;
    finish(p);
    return true;
}

bool milter_encode_connect(struct milter_packet *p, const char *hostname, char family,
                           uint16_t port, const char *addr)
{
    unsigned char f = (unsigned char)family;
    unsigned char pb[2] = { (unsigned char)(port >> 8), (unsigned char)port };

    start(p, SMFIC_CONNECT);
    if (!add_str(p, hostname) || !add(p, &f, 1))
        return false;
    if (family != 'U' && (!add(p, pb, 2) || !add_str(p, addr)))
        return false;
    finish(p);
    return true;
}

bool milter_encode_helo(struct milter_packet *p, const char *helo)
{
    start(p, SMFIC_HELO);
    if (!add_str(p, helo))
        return false;
    finish(p);
    return true;
}

bool milter_encode_addr(struct milter_packet *p, char cmd, const char *addr,
                        const char *const *args, size_t nargs)
{
    start(p, cmd);
    if (!add(p, "<", 1) || !add(p, addr, strlen(addr)) || !add(p, ">", 2))
        return false;
    for (size_t i = 0; i < nargs; i++)
        if (!add_str(p, args[i]))
            return false;
    finish(p);
    return true;
}

bool milter_encode_header(struct milter_packet *p, const char *name, const char *value,
                          size_t value_len)
{
    static const unsigned char nul = 0;

    if (memchr(value, 0, value_len))
        return false;
    start(p, SMFIC_HEADER);
    if (!add_str(p, name) || !add(p, value, value_len) || !add(p, &nul, 1))
        return false;
    finish(p);
    return true;
}

bool milter_encode_body(struct milter_packet *p, const void *data, size_t len)
{
    start(p, SMFIC_BODY);
    if (!add(p, data, len))
        return false;
    finish(p);
    return true;
}

/* ---- decoding ---------------------------------------------------------- */

bool milter_packet_length(const unsigned char word[4], uint32_t *len,
                          char *err, size_t errsize)
{
    *len = get32(word);
    if (*len < 1 || *len > MILTER_PACKET_MAX) {
        snprintf(err, errsize, "bad packet length %lu (1..%u)", (unsigned long)*len,
                 (unsigned)MILTER_PACKET_MAX);
        return false;
    }
    return true;
}

/* A cursor over the data of one packet. */
struct cur {
    const unsigned char *p;
    size_t left;
};

/* The next NUL-terminated string; false if the packet ends first. */
static bool take_str(struct cur *c, const char **s, size_t *len)
{
    const unsigned char *nul = c->left ? memchr(c->p, 0, c->left) : NULL;

    if (!nul)
        return false;
    *s = (const char *)c->p;
    *len = (size_t)(nul - c->p);
    c->left -= *len + 1;
    c->p = nul + 1;
    return true;
}

static bool take32(struct cur *c, uint32_t *v)
{
    if (c->left < 4)
        return false;
    *v = get32(c->p);
    c->p += 4;
    c->left -= 4;
    return true;
}

static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool field_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > MILTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e || s[i] == ':')
            return false;
    return true;
}

/* Header value: CR/LF only as "\n" or "\r\n" followed by SP/HTAB. */
static const char *field_value_problem(const char *s, size_t len)
{
    if (len > MILTER_VALUE_MAX)
        return "header value too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\r') {
            if (i + 1 >= len || s[i + 1] != '\n')
                return "bare CR in a header value";
            continue;
        }
        if (ch == '\n') {
            size_t j = i + 1;

            if (j >= len || (s[j] != ' ' && s[j] != '\t'))
                return "line break in a header value that is not folding";
            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j >= len || s[j] == '\r' || s[j] == '\n')
                return "a folded line of only white space in a header value";
            continue;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return "control character in a header value";
    }
    return NULL;
}

static bool fail(char *err, size_t errsize, char cmd, const char *why)
{
    if ((unsigned char)cmd >= 0x21 && (unsigned char)cmd <= 0x7e)
        snprintf(err, errsize, "malformed milter reply '%c': %s", cmd, why);
    else
        snprintf(err, errsize, "milter reply 0x%02x: %s", (unsigned char)cmd, why);
    return false;
}

static bool decode_optneg(struct cur *c, struct milter_reply *r, char *err, size_t errsize)
{
    if (!take32(c, &r->version) || !take32(c, &r->actions) || !take32(c, &r->protocol))
        return fail(err, errsize, r->cmd, "shorter than 12 octets");
    while (c->left > 0) {
        uint32_t stage;
        const char *list;
        size_t len;

        if (!take32(c, &stage) || !take_str(c, &list, &len))
            return fail(err, errsize, r->cmd, "truncated macro list");
        if (stage >= MILTER_STAGES)
            return fail(err, errsize, r->cmd, "macro list for an unknown stage");
        if (len > MILTER_SYMLIST_MAX || !printable(list, len))
            return fail(err, errsize, r->cmd, "macro list too long or not printable");
        if (r->symlist[stage])
            return fail(err, errsize, r->cmd, "two macro lists for one stage");
        r->symlist[stage] = list;
    }
    return true;
}

/* A header edit: [index] name value. */
static bool decode_header(struct cur *c, struct milter_reply *r, char *err, size_t errsize)
{
    size_t nlen;
    const char *why;

    if (r->cmd != SMFIR_ADDHEADER && !take32(c, &r->index))
        return fail(err, errsize, r->cmd, "no index");
    if (!take_str(c, &r->name, &nlen) || !take_str(c, &r->value, &r->value_len))
        return fail(err, errsize, r->cmd, "name or value not NUL-terminated");
    if (c->left)
        return fail(err, errsize, r->cmd, "data after the value");
    if (!field_name_ok(r->name, nlen))
        return fail(err, errsize, r->cmd, "header name empty, too long or not RFC 5322");
    if ((why = field_value_problem(r->value, r->value_len)))
        return fail(err, errsize, r->cmd, why);
    return true;
}

/* An envelope edit: address [args]. */
static bool decode_envelope(struct cur *c, struct milter_reply *r, char *err, size_t errsize)
{
    size_t len, alen = 0;
    const char *args = NULL;

    if (!take_str(c, &r->value, &len))
        return fail(err, errsize, r->cmd, "address not NUL-terminated");
    if ((r->cmd == SMFIR_ADDRCPT_PAR || r->cmd == SMFIR_CHGFROM) && c->left > 0 &&
        !take_str(c, &args, &alen))
        return fail(err, errsize, r->cmd, "ESMTP args not NUL-terminated");
    if (c->left)
        return fail(err, errsize, r->cmd, "data after the address");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)r->value[i] < 0x20 || r->value[i] == 0x7f)
            return fail(err, errsize, r->cmd, "control character in the address");
    if (len >= 2 && r->value[0] == '<' && r->value[len - 1] == '>') {
        r->value++;                 /* the caller copies value_len octets */
        len -= 2;
    }
    if (len > ADDR_PATH_MAX)
        return fail(err, errsize, r->cmd, "address too long");
    if (len == 0 && r->cmd != SMFIR_CHGFROM)
        return fail(err, errsize, r->cmd, "empty address");
    if (alen > MILTER_ARGS_MAX || !printable(args ? args : "", alen))
        return fail(err, errsize, r->cmd, "ESMTP args too long or not printable");
    r->value_len = len;
    r->args = alen ? args : NULL;
    return true;
}

static bool decode_quarantine(struct cur *c, struct milter_reply *r, char *err,
                              size_t errsize)
{
    if (!take_str(c, &r->value, &r->value_len) || c->left)
        return fail(err, errsize, r->cmd, "reason not one NUL-terminated string");
    if (r->value_len > MILTER_REPLY_MAX || !printable(r->value, r->value_len))
        return fail(err, errsize, r->cmd, "reason too long or not printable");
    return true;
}

/* ---- SMFIR_REPLYCODE ---------------------------------------------------- */

static bool isdig(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of an RFC 3463 code "c.sss.ddd" at s (class cls), or 0. */
static size_t enhanced_len(const char *s, size_t len, char cls)
{
    size_t i = 0;

    if (len < 5 || s[0] != cls || s[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t n = 0;

        while (i < len && isdig(s[i]) && n < 4) {
            i++;
            n++;
        }
        if (n == 0 || n > 3)
            return 0;
        if (part == 0 && (i >= len || s[i++] != '.'))
            return 0;
    }
    if (i < len && s[i] != ' ')
        return 0;
    return i;
}

struct fold {
    char *out;
    size_t len, size;
};

static void fold_add(struct fold *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n && f->len + 1 < f->size; i++)
        f->out[f->len++] = s[i];
    f->out[f->len] = 0;
}

/* Append a line's text with the Sendmail '%' rule applied. */
static void fold_text(struct fold *f, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (f->len > 0 && f->out[f->len - 1] != ' ')
        fold_add(f, " ", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 1 < n && s[i + 1] == '%') {
                fold_add(f, "%", 1);
                i++;
            }
            continue;
        }
        fold_add(f, s + i, 1);
    }
}

/* Check one line of the reply; sets *text to the text after the codes. */
static const char *reply_line(const char *s, size_t n, bool last, const char *code,
                              char ench[16], const char **text, size_t *tlen)
{
    size_t e;
    char cls = n > 0 ? s[0] : 0;

    if (n > MILTER_SMTP_LINE_MAX)
        return "reply line too long";
    if (!printable(s, n))
        return "reply not printable ASCII";
    if (n < 3 || (s[0] != '4' && s[0] != '5') || !isdig(s[1]) || !isdig(s[2]))
        return "reply code not 4xx or 5xx";
    if (s[1] > '5')     /* RFC 5321 4.2.1; the queue refuses it too */
        return "reply code's second digit not 0-5";
    if (code[0] && memcmp(s, code, 3) != 0)
        return "different reply codes on the lines of one reply";
    if (n > 3 && s[3] != (last ? ' ' : '-'))
        return last ? "last reply line does not have CODE SP" : "reply line lacks CODE-";
    if (n == 3 && !last)
        return "reply line lacks CODE-";
    s += n > 3 ? 4 : 3;
    n -= n > 3 ? 4 : 3;
    if (n > 1 && isdig(s[0]) && s[1] == '.') {
        if ((e = enhanced_len(s, n, cls)) == 0)
            return "enhanced status code malformed or of another class";
        if (!ench[0]) {
            memcpy(ench, s, e);
            ench[e] = 0;
        }
        s += e;
        n -= e;
    }
    while (n > 0 && *s == ' ') {
        s++;
        n--;
    }
    *text = s;
    *tlen = n;
    return NULL;
}

static bool decode_replycode(struct cur *c, struct milter_reply *r, char *err,
                             size_t errsize)
{
    const char *s, *why, *text;
    size_t len, tlen;
    char code[4] = "", ench[16] = "";
    struct fold f = { r->reply, 0, sizeof(r->reply) };
    char body[MILTER_SMTP_LINE_MAX + 1];
    struct fold t = { body, 0, sizeof(body) };

    if (!take_str(c, &s, &len) || c->left)
        return fail(err, errsize, r->cmd, "reply not one NUL-terminated string");
    while (len > 0 || !code[0]) {
        const char *crlf = NULL;
        size_t n = len;

        for (size_t i = 0; i + 1 < len; i++)
            if (s[i] == '\r' && s[i + 1] == '\n') {
                crlf = s + i;
                break;
            }
        if (crlf)
            n = (size_t)(crlf - s);
        if ((why = reply_line(s, n, crlf == NULL, code, ench, &text, &tlen)))
            return fail(err, errsize, r->cmd, why);
        memcpy(code, s, 3);
        fold_text(&t, text, tlen);
        s += n + (crlf ? 2 : 0);
        len -= n + (crlf ? 2 : 0);
        if (!crlf)
            break;
    }
    fold_add(&f, code, 3);
    fold_add(&f, " ", 1);
    fold_add(&f, ench[0] ? ench : code[0] == '5' ? "5.7.1" : "4.7.1", ench[0] ? strlen(ench) : 5);
    fold_add(&f, " ", 1);
    if (t.len == 0)
        fold_text(&t, code[0] == '5' ? "Command rejected" : "Service unavailable - try again later",
                  code[0] == '5' ? 16 : 37);
    fold_add(&f, body, t.len);
    if (f.len > MILTER_SMTP_LINE_MAX)
        r->reply[MILTER_SMTP_LINE_MAX] = 0;
    return true;
}

/* ---- the decoder -------------------------------------------------------- */

bool milter_reply_decode(const unsigned char *pkt, size_t len, struct milter_reply *r,
                         char *err, size_t errsize)
{
    struct cur c;

    memset(r, 0, sizeof(*r));
    if (len < 1 || len > MILTER_PACKET_MAX)
        return fail(err, errsize, 0, "empty or overlong packet");
    r->cmd = (char)pkt[0];
    c.p = pkt + 1;
    c.left = len - 1;
    switch (r->cmd) {
    case SMFIR_ACCEPT: case SMFIR_CONTINUE: case SMFIR_DISCARD: case SMFIR_REJECT:
    case SMFIR_TEMPFAIL: case SMFIR_PROGRESS: case SMFIR_SKIP:
        if (c.left)
            return fail(err, errsize, r->cmd, "data after a reply that has none");
        return true;
    case SMFIR_OPTNEG:
        return decode_optneg(&c, r, err, errsize);
    case SMFIR_ADDHEADER: case SMFIR_INSHEADER: case SMFIR_CHGHEADER:
        return decode_header(&c, r, err, errsize);
    case SMFIR_ADDRCPT: case SMFIR_ADDRCPT_PAR: case SMFIR_DELRCPT: case SMFIR_CHGFROM:
        return decode_envelope(&c, r, err, errsize);
    case SMFIR_QUARANTINE:
        return decode_quarantine(&c, r, err, errsize);
    case SMFIR_REPLBODY:
        r->body = c.p;
        r->body_len = c.left;
        return true;
    case SMFIR_REPLYCODE:
        return decode_replycode(&c, r, err, errsize);
    default:
        return fail(err, errsize, r->cmd, "unknown reply");
    }
}

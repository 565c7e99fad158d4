/*
 * command.c - SMTP command line parser: verb split, MAIL/RCPT arguments
 * and their ESMTP parameters (SIZE, BODY, SMTPUTF8, REQUIRETLS, RET,
 * ENVID, NOTIFY, ORCPT), BDAT arguments and the HELO/EHLO identity.
 *
 * Trusts nothing: every input is one raw command line (without CRLF)
 * from the network, counted by length; NUL and other control octets are
 * ordinary invalid bytes. Only syntax is checked here; whether a command
 * or parameter is acceptable right now is the session's business, apart
 * from parameters of extensions that are not advertised (param_features),
 * which are reported as unknown. Output goes only into the caller's
 * fixed-size structures, after the length has been checked.
 */
#include "smtpd/command.h"
#include "util/ascii.h"

#include <string.h>

#define HELO_MAX       255     /* octets of a HELO/EHLO identity */
#define SIZE_DIGITS    20      /* SIZE value, enough for UINT64_MAX */
#define BDAT_DIGITS    19      /* always fits in uint64_t */

/* ---- character helpers (ASCII, locale-independent) ---- */

/* Case-insensitive: does s[0..len) equal the literal word? */
static bool span_ieq(const char *s, size_t len, const char *word)
{
    size_t i;

    if (strlen(word) != len)
        return false;
    for (i = 0; i < len; i++)
        if (ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)word[i]))
            return false;
    return true;
}

/* Case-insensitive: does s[0..len) start with prefix? */
static bool span_iprefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return len >= n && span_ieq(s, n, prefix);
}

static size_t skip_sp(const char *s, size_t len, size_t pos)
{
    while (pos < len && s[pos] == ' ')
        pos++;
    return pos;
}

/*
 * Length of one well-formed non-ASCII UTF-8 character at p that is not a
 * C1 control, or 0.
 */
static size_t utf8_char_len(const char *p, size_t avail)
{
    unsigned char lead = (unsigned char)p[0];
    size_t n;

    if (lead >= 0xF0)
        n = 4;
    else if (lead >= 0xE0)
        n = 3;
    else if (lead >= 0xC0)
        n = 2;
    else
        return 0;
    if (n > avail || !utf8_valid(p, n))
        return 0;
    if (lead == 0xC2 && (unsigned char)p[1] < 0xA0)
        return 0;
    return n;
}

/* ---- verb ---- */

static const struct {
    const char *name;
    enum smtp_verb verb;
} verb_table[] = {
    { "HELO", VERB_HELO }, { "EHLO", VERB_EHLO }, { "MAIL", VERB_MAIL },
    { "RCPT", VERB_RCPT }, { "DATA", VERB_DATA }, { "BDAT", VERB_BDAT },
    { "RSET", VERB_RSET }, { "NOOP", VERB_NOOP }, { "QUIT", VERB_QUIT },
    { "VRFY", VERB_VRFY }, { "EXPN", VERB_EXPN }, { "HELP", VERB_HELP },
    { "STARTTLS", VERB_STARTTLS }, { "AUTH", VERB_AUTH },
};

static enum smtp_verb lookup_verb(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(verb_table) / sizeof(verb_table[0]); i++)
        if (span_ieq(s, len, verb_table[i].name))
            return verb_table[i].verb;
    return VERB_UNKNOWN;
}

bool command_split(const char *line, size_t len, struct smtp_command *cmd)
{
    size_t n = 0;

    cmd->verb = VERB_UNKNOWN;
    cmd->args = line;
    cmd->args_len = 0;
    if (line == NULL || len == 0 || !ascii_alpha((unsigned char)(unsigned char)line[0]))
        return false;
    while (n < len && ascii_alpha((unsigned char)(unsigned char)line[n]))
        n++;
    if (n == len || line[n] == ' ') {
        cmd->verb = lookup_verb(line, n);
        if (n < len)
            n++;                    /* the one separating SP */
    }
    cmd->args = line + n;
    cmd->args_len = len - n;
    return true;
}

/* ---- ESMTP parameters ---- */

/* One "keyword[=value]" token. */
struct param {
    const char *key;
    size_t key_len;
    const char *val;        /* NULL when there is no '=' */
    size_t val_len;
};

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool valid_keyword(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || !(ascii_alpha((unsigned char)(unsigned char)s[0]) || ascii_digit((unsigned char)s[0])))
        return false;
    for (i = 1; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!ascii_alpha((unsigned char)c) && !ascii_digit((unsigned char)c) && c != '-')
            return false;
    }
    return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), =/ UTF8-non-ascii with SMTPUTF8. */
static bool valid_value(const char *s, size_t len, bool utf8)
{
    size_t i = 0, n;

    if (len == 0)
        return false;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 33 && c <= 126 && c != '=') {
            i++;
            continue;
        }
        n = (utf8 && c >= 0x80) ? utf8_char_len(s + i, len - i) : 0;
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Split the token s[0..len) (no SP inside) into key and value. */
static void split_param(const char *s, size_t len, struct param *p)
{
    const char *eq = memchr(s, '=', len);

    p->key = s;
    p->key_len = eq ? (size_t)(eq - s) : len;
    p->val = eq ? eq + 1 : NULL;
    p->val_len = eq ? len - p->key_len - 1 : 0;
}

/*
 * Take the next parameter from s[*pos..len), skipping SPs first.
 * Returns false at the end of the line; *st reports a syntax error.
 */
static bool next_param(const char *s, size_t len, size_t *pos, bool utf8,
                       struct param *p, enum param_status *st)
{
    size_t start = skip_sp(s, len, *pos), end = start;

    *st = PARAM_OK;
    if (start == len)
        return false;
    while (end < len && s[end] != ' ')
        end++;
    *pos = end;
    split_param(s + start, end - start, p);
    if (!valid_keyword(p->key, p->key_len) ||
        (p->val != NULL && !valid_value(p->val, p->val_len, utf8)))
        *st = PARAM_ERR_SYNTAX;
    return true;
}

/* RFC 3461 4: xtext = *( xchar / hexchar ), hexchar uppercase. */
static bool valid_xtext(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '+') {
            if (len - i < 3)
                return false;
            for (size_t k = 1; k <= 2; k++) {
                unsigned char h = (unsigned char)s[i + k];

                if (!ascii_digit((unsigned char)h) && !(h >= 'A' && h <= 'F'))
                    return false;
            }
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return false;
        }
    }
    return true;
}

/* Copy a checked value into a NUL-terminated buffer of size cap + 1. */
static void copy_value(char *dst, const struct param *p)
{
    memcpy(dst, p->val, p->val_len);
    dst[p->val_len] = '\0';
}

enum feature_gate { GATE_NONE, GATE_DSN, GATE_REQUIRETLS, GATE_AUTH };

static bool gate_open(enum feature_gate gate, const struct param_features *feat)
{
    switch (gate) {
    case GATE_DSN:
        return feat != NULL && feat->dsn;
    case GATE_REQUIRETLS:
        return feat != NULL && feat->requiretls;
    case GATE_AUTH:
        return feat != NULL && feat->auth;
    case GATE_NONE:
    default:
        return true;
    }
}

/* ---- MAIL parameters ---- */

static enum param_status mail_size(const struct param *p, struct mail_args *a)
{
    uint64_t v = 0;
    size_t i;

    if (p->val == NULL || p->val_len > SIZE_DIGITS)
        return PARAM_ERR_VALUE;
    for (i = 0; i < p->val_len; i++) {
        unsigned d;

        if (!ascii_digit((unsigned char)p->val[i]))
            return PARAM_ERR_VALUE;
        d = (unsigned)(p->val[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PARAM_ERR_VALUE;
        v = v * 10 + d;
    }
    a->has_size = true;
    a->size = v;
    return PARAM_OK;
}

static enum param_status mail_body(const struct param *p, struct mail_args *a)
{
    if (p->val != NULL && span_ieq(p->val, p->val_len, "7BIT"))
        a->body = BODY_7BIT;
    else if (p->val != NULL && span_ieq(p->val, p->val_len, "8BITMIME"))
        a->body = BODY_8BITMIME;
    else
        return PARAM_ERR_VALUE;     /* BINARYMIME is not advertised */
    return PARAM_OK;
}

static enum param_status mail_smtputf8(const struct param *p, struct mail_args *a)
{
    if (p->val != NULL)
        return PARAM_ERR_VALUE;
    a->smtputf8 = true;
    return PARAM_OK;
}

static enum param_status mail_requiretls(const struct param *p, struct mail_args *a)
{
    if (p->val != NULL)
        return PARAM_ERR_VALUE;
    a->requiretls = true;
    return PARAM_OK;
}

static enum param_status mail_ret(const struct param *p, struct mail_args *a)
{
    if (p->val != NULL && span_ieq(p->val, p->val_len, "FULL"))
        a->ret = DSN_RET_FULL;
    else if (p->val != NULL && span_ieq(p->val, p->val_len, "HDRS"))
        a->ret = DSN_RET_HDRS;
    else
        return PARAM_ERR_VALUE;
    return PARAM_OK;
}

static enum param_status mail_envid(const struct param *p, struct mail_args *a)
{
    if (p->val == NULL || p->val_len > DSN_ENVID_MAX ||
        !valid_xtext(p->val, p->val_len))
        return PARAM_ERR_VALUE;
    copy_value(a->envid, p);
    return PARAM_OK;
}

/* RFC 4954 5: AUTH=<> or AUTH=xtext-mailbox. Accepted and not used: the
 * sender identity of a submission comes from the session's own AUTH. */
static enum param_status mail_auth(const struct param *p, struct mail_args *a)
{
    (void)a;
    if (p->val == NULL || p->val_len == 0 || p->val_len > ADDR_PATH_MAX * 3 ||
        !(span_ieq(p->val, p->val_len, "<>") || valid_xtext(p->val, p->val_len)))
        return PARAM_ERR_VALUE;
    return PARAM_OK;
}

static const struct {
    const char *name;
    enum feature_gate gate;
    enum param_status (*fn)(const struct param *, struct mail_args *);
} mail_params[] = {
    { "SIZE", GATE_NONE, mail_size },
    { "BODY", GATE_NONE, mail_body },
    { "SMTPUTF8", GATE_NONE, mail_smtputf8 },
    { "REQUIRETLS", GATE_REQUIRETLS, mail_requiretls },
    { "RET", GATE_DSN, mail_ret },
    { "ENVID", GATE_DSN, mail_envid },
    { "AUTH", GATE_AUTH, mail_auth },
};

#define N_MAIL_PARAMS (sizeof(mail_params) / sizeof(mail_params[0]))

static enum param_status mail_param(const struct param *p,
                                    const struct param_features *feat,
                                    unsigned *seen, struct mail_args *a)
{
    size_t i;

    for (i = 0; i < N_MAIL_PARAMS; i++) {
        if (!span_ieq(p->key, p->key_len, mail_params[i].name))
            continue;
        if (!gate_open(mail_params[i].gate, feat))
            return PARAM_ERR_UNKNOWN;
        if (*seen & (1u << i))
            return PARAM_ERR_DUPLICATE;
        *seen |= 1u << i;
        return mail_params[i].fn(p, a);
    }
    return PARAM_ERR_UNKNOWN;
}

/* Is there an SMTPUTF8 keyword among the parameters? (Values unchecked.) */
static bool mentions_smtputf8(const char *s, size_t len)
{
    struct param p;
    enum param_status st;
    size_t pos = 0;

    while (next_param(s, len, &pos, false, &p, &st))
        if (span_ieq(p.key, p.key_len, "SMTPUTF8"))
            return true;
    return false;
}

static enum param_status parse_mail_params(const char *s, size_t len,
                                           const struct param_features *feat,
                                           struct mail_args *a)
{
    bool utf8 = mentions_smtputf8(s, len);
    unsigned seen = 0;
    size_t pos = 0;
    struct param p;
    enum param_status st;

    while (next_param(s, len, &pos, utf8, &p, &st)) {
        if (st == PARAM_OK)
            st = mail_param(&p, feat, &seen, a);
        if (st != PARAM_OK)
            return st;
    }
    return PARAM_OK;
}

/* ---- RCPT parameters ---- */

static bool notify_word(const char *s, size_t len, unsigned *bit)
{
    if (span_ieq(s, len, "NEVER"))
        *bit = DSN_NOTIFY_NEVER;
    else if (span_ieq(s, len, "SUCCESS"))
        *bit = DSN_NOTIFY_SUCCESS;
    else if (span_ieq(s, len, "FAILURE"))
        *bit = DSN_NOTIFY_FAILURE;
    else if (span_ieq(s, len, "DELAY"))
        *bit = DSN_NOTIFY_DELAY;
    else
        return false;
    return true;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
static enum param_status rcpt_notify(const struct param *p, struct rcpt_args *a)
{
    unsigned bits = 0, bit;
    size_t i = 0, j;

    if (p->val == NULL)
        return PARAM_ERR_VALUE;
    for (;;) {
        for (j = i; j < p->val_len && p->val[j] != ','; j++)
            ;
        if (!notify_word(p->val + i, j - i, &bit) || (bits & bit))
            return PARAM_ERR_VALUE;
        bits |= bit;
        if (j == p->val_len)
            break;
        i = j + 1;
    }
    if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
        return PARAM_ERR_VALUE;
    a->notify = bits;
    return PARAM_OK;
}

/* addr-type: RFC 5322 atext, at least one. */
static bool valid_addr_type(const char *s, size_t len)
{
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!ascii_alpha((unsigned char)c) && !ascii_digit((unsigned char)c) && strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
            return false;
    }
    return true;
}

/* ORCPT = addr-type ";" xtext (the address must not be empty). */
static enum param_status rcpt_orcpt(const struct param *p, struct rcpt_args *a)
{
    const char *semi;
    size_t type_len;

    if (p->val == NULL || p->val_len > DSN_ORCPT_MAX)
        return PARAM_ERR_VALUE;
    semi = memchr(p->val, ';', p->val_len);
    if (semi == NULL)
        return PARAM_ERR_VALUE;
    type_len = (size_t)(semi - p->val);
    if (!valid_addr_type(p->val, type_len) || type_len + 1 == p->val_len ||
        !valid_xtext(semi + 1, p->val_len - type_len - 1))
        return PARAM_ERR_VALUE;
    copy_value(a->orcpt, p);
    return PARAM_OK;
}

static const struct {
    const char *name;
    enum feature_gate gate;
    enum param_status (*fn)(const struct param *, struct rcpt_args *);
} rcpt_params[] = {
    { "NOTIFY", GATE_DSN, rcpt_notify },
    { "ORCPT", GATE_DSN, rcpt_orcpt },
};

#define N_RCPT_PARAMS (sizeof(rcpt_params) / sizeof(rcpt_params[0]))

static enum param_status rcpt_param(const struct param *p,
                                    const struct param_features *feat,
                                    unsigned *seen, struct rcpt_args *a)
{
    size_t i;

    for (i = 0; i < N_RCPT_PARAMS; i++) {
        if (!span_ieq(p->key, p->key_len, rcpt_params[i].name))
            continue;
        if (!gate_open(rcpt_params[i].gate, feat))
            return PARAM_ERR_UNKNOWN;
        if (*seen & (1u << i))
            return PARAM_ERR_DUPLICATE;
        *seen |= 1u << i;
        return rcpt_params[i].fn(p, a);
    }
    return PARAM_ERR_UNKNOWN;
}

static enum param_status parse_rcpt_params(const char *s, size_t len, bool utf8,
                                           const struct param_features *feat,
                                           struct rcpt_args *a)
{
    unsigned seen = 0;
    size_t pos = 0;
    struct param p;
    enum param_status st;

    while (next_param(s, len, &pos, utf8, &p, &st)) {
        if (st == PARAM_OK)
            st = rcpt_param(&p, feat, &seen, a);
        if (st != PARAM_OK)
            return st;
    }
    return PARAM_OK;
}

/* ---- MAIL / RCPT ---- */

/* Where the path sits in the argument string. */
struct head {
    size_t path_off;        /* offset of '<' */
    size_t rest;            /* just after '>': SP or end of line */
};

/*
 * Check "FROM:"/"TO:", skip SPs, parse the path into mb with the given
 * UTF-8 permission.
 */
static enum param_status parse_head(const char *args, size_t len,
                                    const char *prefix, bool utf8,
                                    struct mailbox *mb, struct head *h)
{
    enum addr_status ast;
    size_t consumed;

    if (args == NULL || !span_iprefix(args, len, prefix))
        return PARAM_ERR_SYNTAX;
    h->path_off = skip_sp(args, len, strlen(prefix));
    if (h->path_off == len)
        return PARAM_ERR_SYNTAX;
    ast = address_parse_path(args + h->path_off, len - h->path_off, utf8, mb,
                             &consumed);
    if (ast == ADDR_ERR_UTF8)
        return PARAM_ERR_ADDRESS_UTF8;
    if (ast != ADDR_OK)
        return PARAM_ERR_ADDRESS;
    h->rest = h->path_off + consumed;
    if (h->rest < len && args[h->rest] != ' ')
        return PARAM_ERR_SYNTAX;
    return PARAM_OK;
}

static bool has_non_ascii(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

enum param_status command_parse_mail(const char *args, size_t len,
                                     const struct param_features *feat,
                                     struct mail_args *out)
{
    enum param_status st;
    struct head h;

    memset(out, 0, sizeof(*out));
    /*
     * The path is parsed with UTF-8 allowed: whether it was allowed is
     * only known once the parameters have been read. A path that parsed
     * with UTF-8 allowed fails without it exactly when it holds an octet
     * >= 0x80 (address_parse_path checks UTF-8 last).
     */
    st = parse_head(args, len, "FROM:", true, &out->from, &h);
    if (st != PARAM_OK)
        return st;
    if (out->from.is_bare_postmaster)
        return PARAM_ERR_ADDRESS;       /* Reverse-path = Path / "<>" */
    st = parse_mail_params(args + h.rest, len - h.rest, feat, out);
    if (st != PARAM_OK)
        return st;
    if (!out->smtputf8 && has_non_ascii(args + h.path_off, h.rest - h.path_off))
        return PARAM_ERR_ADDRESS_UTF8;
    return PARAM_OK;
}

enum param_status command_parse_rcpt(const char *args, size_t len, bool utf8_ok,
                                     const struct param_features *feat,
                                     struct rcpt_args *out)
{
    enum param_status st;
    struct head h;

    memset(out, 0, sizeof(*out));
    st = parse_head(args, len, "TO:", utf8_ok, &out->to, &h);
    if (st != PARAM_OK)
        return st;
    if (out->to.is_null)
        return PARAM_ERR_ADDRESS;       /* Forward-path has no "<>" */
    return parse_rcpt_params(args + h.rest, len - h.rest, utf8_ok, feat, out);
}

/* ---- BDAT ---- */

bool command_parse_bdat(const char *args, size_t len, uint64_t *size, bool *last)
{
    uint64_t v = 0;
    size_t i = 0;

    *size = 0;
    *last = false;
    if (args == NULL)
        return false;
    while (i < len && ascii_digit((unsigned char)args[i])) {
        if (i == BDAT_DIGITS)
            return false;
        v = v * 10 + (uint64_t)(args[i] - '0');
        i++;
    }
    if (i == 0)
        return false;
    if (i < len) {
        if (args[i] != ' ' || !span_ieq(args + i + 1, len - i - 1, "LAST"))
            return false;
        *last = true;
    }
    *size = v;
    return true;
}

/* ---- HELO / EHLO ---- */

/* Length of "[" 1*dcontent-ish "]" at s, or 0 if unterminated/invalid. */
static size_t helo_literal_len(const char *s, size_t len)
{
    size_t i = 1;

    while (i < len && s[i] != ']') {
        unsigned char c = (unsigned char)s[i];

        if (c < 33 || c > 126 || c == '[' || c == '\\')
            return 0;
        i++;
    }
    if (i == len || i == 1)
        return 0;
    return i + 1;
}

/* Length of a domain-ish identity at s (up to SP or end), or 0. */
static size_t helo_domain_len(const char *s, size_t len)
{
    size_t i = 0, n;

    while (i < len && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i];

        if (ascii_alpha((unsigned char)c) || ascii_digit((unsigned char)c) || c == '-' || c == '_' || c == '.') {
            i++;
            continue;
        }
        n = c >= 0x80 ? utf8_char_len(s + i, len - i) : 0;
        if (n == 0)
            return 0;
        i += n;
    }
    return i;
}

bool command_parse_helo(const char *args, size_t len, char *out, size_t outsize)
{
    size_t n;

    if (out != NULL && outsize > 0)
        out[0] = '\0';
    if (args == NULL || out == NULL || len == 0)
        return false;
    n = args[0] == '[' ? helo_literal_len(args, len) : helo_domain_len(args, len);
    if (n == 0 || n > HELO_MAX || n >= outsize)
        return false;
    if (n < len && args[n] != ' ')
        return false;               /* e.g. "[1.2.3.4]x" */
    memcpy(out, args, n);
    out[n] = '\0';
    return true;
}

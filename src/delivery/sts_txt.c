/*
 * sts_txt.c - parse the "_mta-sts" TXT record (RFC 8461 3.1) and the
 * "_smtp._tls" TLS-RPT TXT record (RFC 8460 3) into fixed structs. The
 * rules and the choices where the RFCs leave room are in sts_txt.h.
 *
 * Trusts: nothing. A TXT record is data from the network: its length is
 * checked first, every byte after the version is checked (NUL included),
 * the field walk never leaves txt[0..len), and an id or URI is copied
 * only after its length is checked against the buffer it goes into.
 * Must never: keep an id that is not 1-32 letters and digits, or a URI
 * holding anything but printable ASCII without space, ',', '!' or ';'.
 */
#include "delivery/sts_txt.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"

#define STR2(x) #x
#define STR(x)  STR2(x)

#define NAME_MAX_LEN 32     /* sts-ext-name / tlsrpt-ext-name: 1 + 31 */

struct field {
    const char *name;
    size_t nlen;
    const char *val;        /* without the whitespace before the next ';' */
    size_t vlen;
};

typedef const char *(*field_fn)(const struct field *f, void *ctx);

static bool name_char(unsigned char c)
{
    return ascii_alpha(c) || ascii_digit(c) || c == '_' || c == '-' || c == '.';
}

static bool equals(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* ASCII case-insensitive s[0..len) == lit (lit lower-case). */
static bool iequals(const char *s, size_t len, const char *lit)
{
    if (len != strlen(lit))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (ascii_lower((unsigned char)s[i]) != lit[i])
            return false;
    }
    return true;
}

/* txt begins with version followed by ';', WSP or its end. */
static bool has_version(const char *txt, size_t len, const char *version)
{
    size_t n = strlen(version);

    if (txt == NULL || len < n || memcmp(txt, version, n) != 0)
        return false;
    return len == n || txt[n] == ';' || ascii_wsp((unsigned char)txt[n]);
}

static const char *check_bytes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            return "NUL byte in record";
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "control character in record";
        if (c > 0x7f)
            return "non-ASCII octet in record";
    }
    return NULL;
}

/* sts-ext-value / tlsrpt-ext-value: 1*(%x21-3A / %x3C / %x3E-7E) */
static bool ext_value_ok(const char *v, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
            return false;
    }
    return true;
}

/*
 * The fields after the version, which ends at s[pos]: *WSP ";" *WSP
 * field, repeated, with an optional trailing separator. Calls fn on each
 * field; returns NULL or the first reason the record is invalid.
 */
static const char *walk_fields(const char *s, size_t len, size_t pos, field_fn fn, void *ctx)
{
    for (;;) {
        size_t p = pos, k, v, end;
        struct field f;

        while (p < len && ascii_wsp((unsigned char)s[p]))
            p++;
        if (p == len)
            return p == pos ? NULL : "space at the end without ';'";
        if (s[p] != ';')
            return "expected ';' between fields";
        p++;
        while (p < len && ascii_wsp((unsigned char)s[p]))
            p++;
        if (p == len)
            return NULL;                    /* trailing separator */

        k = p;
        if (!ascii_alpha((unsigned char)s[k]) && !ascii_digit((unsigned char)s[k]))
            return "expected a field name";
        while (k < len && name_char((unsigned char)s[k]))
            k++;
        if (k == len || s[k] != '=')
            return "expected name=value";
        if (k - p > NAME_MAX_LEN)
            return "field name longer than " STR(NAME_MAX_LEN) " characters";
        v = k + 1;
        const char *semi = memchr(s + v, ';', len - v);
        end = semi != NULL ? (size_t)(semi - s) : len;
        while (end > v && ascii_wsp((unsigned char)s[end - 1]))
            end--;
        if (end == v)
            return "empty value";
        f.name = s + p;
        f.nlen = k - p;
        f.val = s + v;
        f.vlen = end - v;
        const char *why = fn(&f, ctx);
        if (why != NULL)
            return why;
        pos = end;
    }
}

/* ---- _mta-sts ---- */

struct sts_ctx {
    struct sts_txt *out;
    bool have_id;
};

static const char *sts_field(const struct field *f, void *vctx)
{
    struct sts_ctx *ctx = vctx;

    if (!equals(f->name, f->nlen, "id"))
        return ext_value_ok(f->val, f->vlen) ? NULL : "invalid value in an unknown field";
    if (ctx->have_id)
        return NULL;                        /* repeated: the first counts */
    ctx->have_id = true;
    if (f->vlen > STS_TXT_ID_MAX)
        return "id longer than " STR(STS_TXT_ID_MAX) " characters";
    for (size_t i = 0; i < f->vlen; i++)
        if (!ascii_alpha((unsigned char)f->val[i]) && !ascii_digit((unsigned char)f->val[i]))
            return "id is not letters and digits";
    memcpy(ctx->out->id, f->val, f->vlen);
    ctx->out->id[f->vlen] = '\0';
    return NULL;
}

static enum sts_txt_result sts_fail(struct sts_txt *out, enum sts_txt_result r, const char *why)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->error, sizeof(out->error), "%s", why);
    return r;
}

enum sts_txt_result sts_txt_parse(const char *txt, size_t len, struct sts_txt *out)
{
    static const char version[] = "v=STSv1";
    struct sts_ctx ctx = { out, false };
    const char *why;

    memset(out, 0, sizeof(*out));
    if (!has_version(txt, len, version))
        return sts_fail(out, STS_TXT_OTHER, "not an MTA-STS record (no v=STSv1)");
    if (len > STS_TXT_RECORD_MAX)
        return sts_fail(out, STS_TXT_INVALID,
                        "record longer than " STR(STS_TXT_RECORD_MAX) " octets");
    if ((why = check_bytes(txt, len)) != NULL ||
        (why = walk_fields(txt, len, sizeof(version) - 1, sts_field, &ctx)) != NULL)
        return sts_fail(out, STS_TXT_INVALID, why);
    if (!ctx.have_id)
        return sts_fail(out, STS_TXT_INVALID, "no id field");
    return STS_TXT_OK;
}

/* ---- _smtp._tls ---- */

/* RFC 3986 unreserved, gen-delims and sub-delims, less ',', '!', ';'. */
static bool uri_char(unsigned char c)
{
    if (ascii_alpha(c) || ascii_digit(c))
        return true;
    switch (c) {
    case '-': case '.': case '_': case '~':
    case ':': case '/': case '?': case '#': case '[': case ']': case '@':
    case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case '=':
        return true;
    default:
        return false;
    }
}

/* u[0..n) is scheme ":" and URI characters; *scheme_len is set. */
static const char *uri_syntax(const char *u, size_t n, size_t *scheme_len)
{
    size_t i = 1;

    if (n == 0 || !ascii_alpha((unsigned char)u[0]))
        return "rua URI without a scheme";
    while (i < n && (ascii_alpha((unsigned char)u[i]) || ascii_digit((unsigned char)u[i]) ||
                     u[i] == '+' || u[i] == '-' || u[i] == '.'))
        i++;
    if (i == n || u[i] != ':')
        return "rua URI without a scheme";
    *scheme_len = i;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == '%') {
            if (n - i < 3 || !ascii_hex((unsigned char)u[i + 1]) || !ascii_hex((unsigned char)u[i + 2]))
                return "bad %-escape in a rua URI";
            i += 2;
        } else if (!uri_char(c)) {
            return "character not allowed in a rua URI";
        }
    }
    return NULL;
}

/* The scheme of a URI reports can go to, or 0. */
static int report_scheme(const char *u, size_t n, size_t scheme_len)
{
    const char *rest = u + scheme_len + 1;
    size_t m = n - scheme_len - 1, end = 0;

    if (iequals(u, scheme_len, "mailto")) {
        while (end < m && rest[end] != '?')
            end++;                          /* the address, before any header */
        const char *at = memchr(rest, '@', end);
        if (at == NULL || at == rest || at == rest + end - 1)
            return 0;
        return TLSRPT_MAILTO;
    }
    if (iequals(u, scheme_len, "https")) {
        if (m < 3 || rest[0] != '/' || rest[1] != '/')
            return 0;
        if (rest[2] == '/' || rest[2] == '?' || rest[2] == '#')
            return 0;                       /* no host */
        return TLSRPT_HTTPS;
    }
    return 0;
}

static const char *take_uri(const char *u, size_t n, struct tlsrpt_txt *out)
{
    size_t scheme_len = 0;
    const char *why = uri_syntax(u, n, &scheme_len);
    int scheme;

    if (why != NULL)
        return why;
    scheme = report_scheme(u, n, scheme_len);
    if (scheme == 0 || n > TLSRPT_URI_MAX || out->rua_count >= TLSRPT_RUA_MAX) {
        out->rua_ignored++;
        return NULL;
    }
    struct tlsrpt_uri *dst = &out->rua[out->rua_count++];
    dst->scheme = (enum tlsrpt_scheme)scheme;
    memcpy(dst->uri, u, n);
    dst->uri[n] = '\0';
    return NULL;
}

/* tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri); v[0..n) has no trailing WSP. */
static const char *parse_rua(const char *v, size_t n, struct tlsrpt_txt *out)
{
    size_t p = 0;

    for (;;) {
        size_t start = p;
        while (p < n && v[p] != ',' && !ascii_wsp((unsigned char)v[p]))
            p++;
        if (p == start)
            return "empty URI in rua";
        const char *why = take_uri(v + start, p - start, out);
        if (why != NULL)
            return why;
        while (p < n && ascii_wsp((unsigned char)v[p]))
            p++;
        if (p == n)
            return NULL;
        if (v[p] != ',')
            return "expected ',' between rua URIs";
        p++;
        while (p < n && ascii_wsp((unsigned char)v[p]))
            p++;
    }
}

struct tlsrpt_ctx {
    struct tlsrpt_txt *out;
    bool have_rua;
};

static const char *tlsrpt_field(const struct field *f, void *vctx)
{
    struct tlsrpt_ctx *ctx = vctx;

    if (!equals(f->name, f->nlen, "rua"))
        return ext_value_ok(f->val, f->vlen) ? NULL : "invalid value in an unknown field";
    if (ctx->have_rua)
        return NULL;                        /* repeated: the first counts */
    ctx->have_rua = true;
    return parse_rua(f->val, f->vlen, ctx->out);
}

static enum sts_txt_result tlsrpt_fail(struct tlsrpt_txt *out, enum sts_txt_result r,
                                       const char *why)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->error, sizeof(out->error), "%s", why);
    return r;
}

enum sts_txt_result tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_txt *out)
{
    static const char version[] = "v=TLSRPTv1";
    struct tlsrpt_ctx ctx = { out, false };
    const char *why;

    memset(out, 0, sizeof(*out));
    if (!has_version(txt, len, version))
        return tlsrpt_fail(out, STS_TXT_OTHER, "not a TLS-RPT record (no v=TLSRPTv1)");
    if (len > STS_TXT_RECORD_MAX)
        return tlsrpt_fail(out, STS_TXT_INVALID,
                           "record longer than " STR(STS_TXT_RECORD_MAX) " octets");
    if ((why = check_bytes(txt, len)) != NULL ||
        (why = walk_fields(txt, len, sizeof(version) - 1, tlsrpt_field, &ctx)) != NULL)
        return tlsrpt_fail(out, STS_TXT_INVALID, why);
    if (!ctx.have_rua)
        return tlsrpt_fail(out, STS_TXT_INVALID, "no rua field");
    if (out->rua_count == 0)
        return tlsrpt_fail(out, STS_TXT_INVALID, "no mailto: or https: URI in rua");
    return STS_TXT_OK;
}

/*
 * tlsrpt_codec.c - check, encode and decode TLS-RPT session records
 * (see tlsrpt_codec.h): the IPC form between the delivery process and
 * the queue, and the line form of the queue's store.
 *
 * Both decoders end in tlsrpt_record_check(), so a record that reaches
 * the store or a report passed the same checks whichever way it came.
 */
#include "mail/tlsrpt_codec.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"

struct record_wire {
    uint32_t policy_type;
    uint32_t result;
    uint32_t policy_string_count;
    uint32_t mx_pattern_count;
    uint32_t rua_count;
    char domain[TLSRPT_NAME_MAX + 1];
    char mx_host[TLSRPT_NAME_MAX + 1];
    char ip[TLSRPT_IP_MAX + 1];
    char sending_ip[TLSRPT_IP_MAX + 1];
    char reason[TLSRPT_REASON_MAX + 1];
    char policy_strings[TLSRPT_POLICY_STRINGS][TLSRPT_POLICY_STRING_MAX + 1];
    char mx_patterns[TLSRPT_MX_PATTERNS][TLSRPT_NAME_MAX + 1];
    char rua[TLSRPT_RUA_COUNT][TLSRPT_URI_LEN + 1];
};

static const char *const result_names[TLSRPT_RESULT_COUNT] = {
    [TLSRPT_SUCCESS] = "success",
    [TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
    [TLSRPT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
    [TLSRPT_CERTIFICATE_EXPIRED] = "certificate-expired",
    [TLSRPT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
    [TLSRPT_VALIDATION_FAILURE] = "validation-failure",
    [TLSRPT_TLSA_INVALID] = "tlsa-invalid",
    [TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
    [TLSRPT_DANE_REQUIRED] = "dane-required",
    [TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
    [TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
    [TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

static void set_err(char *err, size_t errsize, const char *what)
{
    if (errsize)
        snprintf(err, errsize, "%s", what);
}

const char *tlsrpt_policy_name(enum tlsrpt_policy_type t)
{
    switch (t) {
    case TLSRPT_POLICY_TLSA:
        return "tlsa";
    case TLSRPT_POLICY_STS:
        return "sts";
    case TLSRPT_POLICY_NONE:
        return "no-policy-found";
    }
    return NULL;
}

const char *tlsrpt_result_name(enum tlsrpt_result r)
{
    return (unsigned)r < TLSRPT_RESULT_COUNT ? result_names[r] : NULL;
}

static int lookup(const char *s, size_t len, bool policy)
{
    for (int i = 0; i < (policy ? 4 : TLSRPT_RESULT_COUNT); i++) {
        const char *n = policy ? tlsrpt_policy_name((enum tlsrpt_policy_type)i)
                               : result_names[i];
        if (n && strlen(n) == len && memcmp(n, s, len) == 0)
            return i;
    }
    return -1;
}

bool tlsrpt_name_ok(const char *s)
{
    size_t label = 0, len = strlen(s);

    if (len == 0 || len > 253)
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!(ascii_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '_') ||
            ++label > 63)
            return false;
    }
    return label > 0;
}

/* "" or IP text: hex digits, '.', ':' only. */
static bool ip_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!ascii_hex((unsigned char)*p) && *p != '.' && *p != ':')
            return false;
    return true;
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

/* An MX pattern: a name, or "*." then a name (RFC 8461 4.1). */
static bool pattern_ok(const char *s)
{
    return tlsrpt_name_ok(s[0] == '*' && s[1] == '.' ? s + 2 : s);
}

bool tlsrpt_result_has_mx(enum tlsrpt_result r)
{
    return r != TLSRPT_STS_POLICY_FETCH_ERROR && r != TLSRPT_STS_POLICY_INVALID &&
           r != TLSRPT_STS_WEBPKI_INVALID;
}

bool tlsrpt_record_check(struct tlsrpt_record *r, char *err, size_t errsize)
{
    if (tlsrpt_policy_name(r->policy_type) == NULL || tlsrpt_result_name(r->result) == NULL ||
        r->policy_string_count > TLSRPT_POLICY_STRINGS ||
        r->mx_pattern_count > TLSRPT_MX_PATTERNS || r->rua_count > TLSRPT_RUA_COUNT) {
        set_err(err, errsize, "type, result or count out of range");
        return false;
    }
    if (!terminated(r->domain, sizeof(r->domain)) || !tlsrpt_name_ok(r->domain) ||
        !terminated(r->mx_host, sizeof(r->mx_host)) ||
        (tlsrpt_result_has_mx(r->result) || r->mx_host[0] != '\0'
             ? !tlsrpt_name_ok(r->mx_host) : false)) {
        set_err(err, errsize, "bad policy domain or MX host");
        return false;
    }
    if (!terminated(r->ip, sizeof(r->ip)) || !ip_ok(r->ip) ||
        !terminated(r->sending_ip, sizeof(r->sending_ip)) || !ip_ok(r->sending_ip) ||
        !terminated(r->reason, sizeof(r->reason))) {
        set_err(err, errsize, "bad address or reason");
        return false;
    }
    for (size_t i = 0; i < r->policy_string_count; i++) {
        if (!terminated(r->policy_strings[i], sizeof(r->policy_strings[i])) ||
            r->policy_strings[i][0] == '\0') {
            set_err(err, errsize, "unterminated or empty policy string");
            return false;
        }
        clean(r->policy_strings[i]);
    }
    for (size_t i = 0; i < r->mx_pattern_count; i++) {
        if (!terminated(r->mx_patterns[i], sizeof(r->mx_patterns[i])) ||
            !pattern_ok(r->mx_patterns[i])) {
            set_err(err, errsize, "bad MX pattern");
            return false;
        }
    }
    for (size_t i = 0; i < r->rua_count; i++) {
        if (!terminated(r->rua[i], sizeof(r->rua[i])) || r->rua[i][0] == '\0') {
            set_err(err, errsize, "unterminated or empty rua URI");
            return false;
        }
        clean(r->rua[i]);
    }
    clean(r->reason);
    return true;
}

#define COPY(dst, src) memcpy((dst), (src), sizeof(dst))

size_t tlsrpt_record_encode(const struct tlsrpt_record *r, void *out, size_t outsize)
{
    static struct record_wire w;        /* 12 KiB: not on the stack */

    if (outsize < sizeof(w))
        return 0;
    memset(&w, 0, sizeof(w));
    w.policy_type = (uint32_t)r->policy_type;
    w.result = (uint32_t)r->result;
    w.policy_string_count = (uint32_t)r->policy_string_count;
    w.mx_pattern_count = (uint32_t)r->mx_pattern_count;
    w.rua_count = (uint32_t)r->rua_count;
    COPY(w.domain, r->domain);
    COPY(w.mx_host, r->mx_host);
    COPY(w.ip, r->ip);
    COPY(w.sending_ip, r->sending_ip);
    COPY(w.reason, r->reason);
    COPY(w.policy_strings, r->policy_strings);
    COPY(w.mx_patterns, r->mx_patterns);
    COPY(w.rua, r->rua);
    memcpy(out, &w, sizeof(w));
    return sizeof(w);
}

bool tlsrpt_record_decode(const void *payload, size_t len, struct tlsrpt_record *out,
                          char *err, size_t errsize)
{
    static struct record_wire w;

    if (len != sizeof(w)) {
        set_err(err, errsize, "record of the wrong size");
        return false;
    }
    memcpy(&w, payload, sizeof(w));
    memset(out, 0, sizeof(*out));
    if (w.policy_type > 0xff || w.result > 0xff || w.policy_string_count > 0xff ||
        w.mx_pattern_count > 0xff || w.rua_count > 0xff) {
        set_err(err, errsize, "type, result or count out of range");
        return false;
    }
    out->policy_type = (enum tlsrpt_policy_type)w.policy_type;
    out->result = (enum tlsrpt_result)w.result;
    out->policy_string_count = w.policy_string_count;
    out->mx_pattern_count = w.mx_pattern_count;
    out->rua_count = w.rua_count;
    COPY(out->domain, w.domain);
    COPY(out->mx_host, w.mx_host);
    COPY(out->ip, w.ip);
    COPY(out->sending_ip, w.sending_ip);
    COPY(out->reason, w.reason);
    COPY(out->policy_strings, w.policy_strings);
    COPY(out->mx_patterns, w.mx_patterns);
    COPY(out->rua, w.rua);
    return tlsrpt_record_check(out, err, errsize);
}

/* --- the stored line --- */

struct line_out {
    char *p;
    size_t left;
    bool full;
};

static void put_char(struct line_out *o, char c)
{
    if (o->left < 2) {
        o->full = true;
        return;
    }
    *o->p++ = c;
    o->left--;
}

static void put_enc(struct line_out *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x21 || c > 0x7e || c == '%' || c == ',' || c == '-') {
            put_char(o, '%');
            put_char(o, hex[c >> 4]);
            put_char(o, hex[c & 15]);
        } else {
            put_char(o, (char)c);
        }
    }
}

static void put_field(struct line_out *o, const char *s, bool last)
{
    if (s[0] == '\0')
        put_char(o, '-');
    else
        put_enc(o, s);
    put_char(o, last ? '\n' : ' ');
}

static void put_list(struct line_out *o, const char *base, size_t stride, size_t n, bool last)
{
    size_t written = 0;

    for (size_t i = 0; i < n; i++) {
        const char *s = base + i * stride;

        if (s[0] == '\0')
            continue;
        if (written++)
            put_char(o, ',');
        put_enc(o, s);
    }
    if (written == 0)
        put_char(o, '-');
    put_char(o, last ? '\n' : ' ');
}

size_t tlsrpt_line_format(const struct tlsrpt_record *r, char *out, size_t outsize)
{
    struct line_out o = { out, outsize, false };
    const char *result = tlsrpt_result_name(r->result);
    const char *policy = tlsrpt_policy_name(r->policy_type);

    if (result == NULL || policy == NULL || outsize == 0)
        return 0;
    put_field(&o, result, false);
    put_field(&o, policy, false);
    put_field(&o, r->mx_host, false);
    put_field(&o, r->ip, false);
    put_field(&o, r->sending_ip, false);
    put_field(&o, r->reason, false);
    put_list(&o, r->policy_strings[0], sizeof(r->policy_strings[0]), r->policy_string_count,
             false);
    put_list(&o, r->mx_patterns[0], sizeof(r->mx_patterns[0]), r->mx_pattern_count, false);
    put_list(&o, r->rua[0], sizeof(r->rua[0]), r->rua_count, true);
    if (o.full)
        return 0;
    *o.p = '\0';
    return (size_t)(o.p - out);
}

/* Decode s[0..len) (one item, no ',' in it) into out; false if malformed
 * or too long. "-" alone is the empty string. */
static bool decode_item(const char *s, size_t len, char *out, size_t outsize)
{
    size_t n = 0;

    if (len == 1 && s[0] == '-') {
        out[0] = '\0';
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi = i + 2 < len ? ascii_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? ascii_hex_value((unsigned char)s[i + 2]) : -1;

            if (lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e || c == '-' ||
                   c == ',') {
            return false;       /* the encoder writes these as %XX */
        }
        if (c == '\0' || n + 1 >= outsize)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return len > 0;
}

static bool decode_list(const char *s, size_t len, char *base, size_t stride, size_t max,
                        size_t *count)
{
    size_t start = 0;

    *count = 0;
    if (len == 1 && s[0] == '-')
        return true;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (*count >= max || i == start ||
            !decode_item(s + start, i - start, base + *count * stride, stride) ||
            base[*count * stride] == '\0')
            return false;
        (*count)++;
        start = i + 1;
    }
    return true;
}

#define LINE_FIELDS 9

bool tlsrpt_line_parse(const char *line, size_t len, const char *domain,
                       struct tlsrpt_record *out, char *err, size_t errsize)
{
    const char *f[LINE_FIELDS];
    size_t flen[LINE_FIELDS], nf = 0, start = 0;
    char name[40];
    int v;
    bool ok;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i <= len && nf < LINE_FIELDS; i++) {
        if (i < len && line[i] != ' ')
            continue;
        f[nf] = line + start;
        flen[nf++] = i - start;
        start = i + 1;
    }
    if (nf != LINE_FIELDS || start != len + 1) {
        set_err(err, errsize, "not nine fields");
        return false;
    }
    ok = decode_item(f[0], flen[0], name, sizeof(name)) &&
         (v = lookup(name, strlen(name), false)) >= 0;
    out->result = ok ? (enum tlsrpt_result)v : TLSRPT_SUCCESS;
    ok = ok && decode_item(f[1], flen[1], name, sizeof(name)) &&
         (v = lookup(name, strlen(name), true)) > 0;
    out->policy_type = ok ? (enum tlsrpt_policy_type)v : TLSRPT_POLICY_NONE;
    ok = ok && decode_item(f[2], flen[2], out->mx_host, sizeof(out->mx_host)) &&
         decode_item(f[3], flen[3], out->ip, sizeof(out->ip)) &&
         decode_item(f[4], flen[4], out->sending_ip, sizeof(out->sending_ip)) &&
         decode_item(f[5], flen[5], out->reason, sizeof(out->reason)) &&
         decode_list(f[6], flen[6], out->policy_strings[0], sizeof(out->policy_strings[0]),
                     TLSRPT_POLICY_STRINGS, &out->policy_string_count) &&
         decode_list(f[7], flen[7], out->mx_patterns[0], sizeof(out->mx_patterns[0]),
                     TLSRPT_MX_PATTERNS, &out->mx_pattern_count) &&
         decode_list(f[8], flen[8], out->rua[0], sizeof(out->rua[0]), TLSRPT_RUA_COUNT,
                     &out->rua_count);
    if (!ok || strlen(domain) >= sizeof(out->domain)) {
        set_err(err, errsize, "malformed field");
        return false;
    }
    memcpy(out->domain, domain, strlen(domain) + 1);
    return tlsrpt_record_check(out, err, errsize);
}

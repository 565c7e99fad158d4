/*
 * sts_policy.c - parse an MTA-STS policy body (RFC 8461 3.2) into a
 * fixed struct, and match MX host names against its mx patterns (4.1).
 * The rules and the choices where the RFC leaves room are in
 * sts_policy.h.
 *
 * Trusts: nothing. The body comes from a web server on the internet: its
 * length is checked before anything is read, every line is scanned
 * within the body's bounds, each kept value is checked against the
 * grammar and copied only into a buffer it is known to fit.
 * Must never: keep a pattern that is not a plain lower-case LDH name
 * (with at most a leading "*."), or read past body[len).
 */
#include "mail/sts_policy.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"

#define STR2(x) #x
#define STR(x)  STR2(x)

#define KEY_MAX 32      /* sts-policy-ext-name: 1 + 31 characters */

/* s[0..len) is an RFC 5321 Domain: labels of 1-63 letters, digits and
 * '-', not starting or ending with '-', no trailing dot, 253 at most. */
static bool ldh_name_ok(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (ascii_alpha(c) || ascii_digit(c) || c == '-') {
            if (label == 0 && c == '-')
                return false;
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label != 0 && s[len - 1] != '-';
}

static bool equals(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static bool fail(struct sts_policy *out, size_t line, const char *why)
{
    memset(out, 0, sizeof(*out));
    if (line > 0)
        snprintf(out->error, sizeof(out->error), "line %zu: %s", line, why);
    else
        snprintf(out->error, sizeof(out->error), "%s", why);
    return false;
}

struct seen {
    bool version, mode, max_age;
};

static const char *set_max_age(struct sts_policy *out, const char *v, size_t n)
{
    uint64_t age = 0;

    if (n > 10)
        return "max_age has more than 10 digits";
    for (size_t i = 0; i < n; i++) {
        if (!ascii_digit((unsigned char)v[i]))
            return "max_age is not a number";
        age = age * 10 + (uint64_t)(v[i] - '0');
    }
    if (age > STS_MAX_AGE_MAX)
        return "max_age over " STR(STS_MAX_AGE_MAX);
    out->max_age = (uint32_t)age;
    return NULL;
}

static const char *add_mx(struct sts_policy *out, const char *v, size_t n)
{
    char pat[STS_MX_PATTERN_MAX + 1];
    size_t skip;

    if (n > 0 && v[n - 1] == '.')
        n--;                                /* lenient: one trailing dot */
    if (n > STS_MX_PATTERN_MAX)
        return "mx pattern longer than " STR(STS_MX_PATTERN_MAX) " octets";
    skip = (n >= 2 && v[0] == '*' && v[1] == '.') ? 2 : 0;
    if (!ldh_name_ok(v + skip, n - skip))
        return "invalid mx pattern";
    for (size_t i = 0; i < n; i++)
        pat[i] = ascii_lower((unsigned char)v[i]);
    pat[n] = '\0';
    for (size_t i = 0; i < out->mx_count; i++)
        if (strcmp(out->mx[i], pat) == 0)
            return NULL;                    /* repeated: kept once */
    if (out->mx_count >= STS_POLICY_MX_MAX)
        return "more than " STR(STS_POLICY_MX_MAX) " mx patterns";
    memcpy(out->mx[out->mx_count++], pat, n + 1);
    return NULL;
}

/* One line without its terminator. Returns NULL or the reason it is bad. */
static const char *parse_line(const char *s, size_t n, struct seen *seen,
                              struct sts_policy *out)
{
    size_t k = 0, v;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return c == '\r' ? "CR not followed by LF" : "control character";
    }
    while (n > 0 && ascii_wsp((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return NULL;                        /* lenient: blank line */

    if (!ascii_alpha((unsigned char)s[0]) && !ascii_digit((unsigned char)s[0]))
        return "expected \"key: value\"";
    while (k < n && (ascii_alpha((unsigned char)s[k]) || ascii_digit((unsigned char)s[k]) ||
                     s[k] == '_' || s[k] == '-' || s[k] == '.'))
        k++;
    if (k >= n || s[k] != ':')
        return "expected \"key: value\"";
    if (k > KEY_MAX)
        return "key longer than " STR(KEY_MAX) " characters";
    v = k + 1;
    while (v < n && ascii_wsp((unsigned char)s[v]))
        v++;
    if (v == n)
        return "empty value";
    const char *val = s + v;
    size_t vlen = n - v;

    if (equals(s, k, "mx"))
        return add_mx(out, val, vlen);
    if (equals(s, k, "version")) {
        if (seen->version)
            return NULL;
        seen->version = true;
        return equals(val, vlen, "STSv1") ? NULL : "version is not STSv1";
    }
    if (equals(s, k, "mode")) {
        if (seen->mode)
            return NULL;
        seen->mode = true;
        if (equals(val, vlen, "enforce"))
            out->mode = STS_MODE_ENFORCE;
        else if (equals(val, vlen, "testing"))
            out->mode = STS_MODE_TESTING;
        else if (equals(val, vlen, "none"))
            out->mode = STS_MODE_NONE;
        else
            return "mode is not enforce, testing or none";
        return NULL;
    }
    if (equals(s, k, "max_age")) {
        if (seen->max_age)
            return NULL;
        seen->max_age = true;
        return set_max_age(out, val, vlen);
    }
    return NULL;                            /* unknown key: ignored */
}

bool sts_policy_parse(const char *body, size_t len, struct sts_policy *out)
{
    struct seen seen = { false, false, false };
    size_t pos = 0, line = 0;

    memset(out, 0, sizeof(*out));
    if (len > STS_POLICY_BODY_MAX)
        return fail(out, 0, "policy longer than " STR(STS_POLICY_BODY_MAX) " octets");
    if (body == NULL && len > 0)
        return fail(out, 0, "no policy body");
    while (pos < len) {
        const char *lf = memchr(body + pos, '\n', len - pos);
        size_t end = lf != NULL ? (size_t)(lf - body) : len;
        size_t next = lf != NULL ? end + 1 : len;

        line++;
        if (lf != NULL && end > pos && body[end - 1] == '\r')
            end--;                          /* CRLF */
        const char *why = parse_line(body + pos, end - pos, &seen, out);
        if (why != NULL)
            return fail(out, line, why);
        pos = next;
    }
    if (!seen.version)
        return fail(out, 0, "no version field");
    if (!seen.mode)
        return fail(out, 0, "no mode field");
    if (!seen.max_age)
        return fail(out, 0, "no max_age field");
    if (out->mode != STS_MODE_NONE && out->mx_count == 0)
        return fail(out, 0, "no mx field (required unless mode is none)");
    return true;
}

bool sts_mx_matches(const struct sts_policy *policy, const char *hostname)
{
    char host[STS_MX_PATTERN_MAX + 1];
    size_t n, count;
    const char *parent;

    if (policy == NULL || hostname == NULL)
        return false;
    n = strnlen(hostname, STS_MX_PATTERN_MAX + 2);
    if (n > 0 && hostname[n - 1] == '.')
        n--;
    if (!ldh_name_ok(hostname, n))
        return false;                       /* also: n > 253 */
    for (size_t i = 0; i < n; i++)
        host[i] = ascii_lower((unsigned char)hostname[i]);
    host[n] = '\0';
    parent = memchr(host, '.', n);
    if (parent != NULL)
        parent++;

    count = policy->mx_count < STS_POLICY_MX_MAX ? policy->mx_count : STS_POLICY_MX_MAX;
    for (size_t i = 0; i < count; i++) {
        const char *m = policy->mx[i];
        size_t mlen = strnlen(m, sizeof(policy->mx[i]));
        if (mlen == sizeof(policy->mx[i]))
            continue;                       /* not NUL-terminated: not ours */
        if (mlen > 2 && m[0] == '*' && m[1] == '.') {
            if (parent != NULL && strcmp(m + 2, parent) == 0)
                return true;                /* exactly one label more */
        } else if (strcmp(m, host) == 0) {
            return true;
        }
    }
    return false;
}

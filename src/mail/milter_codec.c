/*
 * milter_codec.c - job and result between the queue and the milter role
 * (see milter_codec.h). Lines "key value\n"; a decoder refuses anything
 * it does not know, any value out of bounds and any control byte.
 *
 * Trusts nothing it decodes.
 */
#include "mail/milter_codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/errbuf.h"

#define LINE_MAX_OCTETS (MILTER_CODEC_REPLY_MAX + 32)

struct writer {
    char *out;
    size_t size, len;
    bool ok;
};

static void put(struct writer *w, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!w->ok)
        return;
    va_start(ap, fmt);
    n = vsnprintf(w->out + w->len, w->size - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->size - w->len)
        w->ok = false;
    else
        w->len += (size_t)n;
}

/* Printable ASCII (and, for addresses, UTF-8 octets), no blanks at the ends. */
static bool clean_value(const char *v, bool allow_8bit)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !allow_8bit))
            return false;
    }
    return true;
}

bool milter_reply_valid(const char *s, bool temp)
{
    size_t len = strlen(s);
    const char *text = s + 3;

    if (len < 3 || len > MILTER_CODEC_REPLY_MAX || !clean_value(s, false))
        return false;
    if (s[0] != (temp ? '4' : '5') || s[1] < '0' || s[1] > '5' || s[2] < '0' || s[2] > '9')
        return false;
    if (*text != '\0' && *text != ' ')
        return false;
    /* an enhanced code, when the text starts with one, is of the same class */
    if (text[0] == ' ' && ascii_digit((unsigned char)text[1]) && text[2] == '.') {
        if (text[1] != s[0])
            return false;
    }
    return true;
}

size_t milter_job_encode(const struct milter_job_msg *m, char *out, size_t outsize)
{
    struct writer w = { out, outsize, 0, true };

    put(&w, "job %" PRIu64 "\n", m->job_id);
    put(&w, "listener %s\n", m->listener);
    if (m->auth_user[0]) {
        put(&w, "auth %s\n", m->auth_user);
        put(&w, "auth_type %s\n", m->auth_type);
    }
    put(&w, "tls %s\n", m->tls ? "yes" : "no");
    return w.ok ? w.len : 0;
}

/* Next line of [*p, end) into line (NUL-terminated, without "\n");
 * false at the end or on a line that is too long or has no "\n". */
static bool next_line(const char **p, const char *end, char *line, size_t size,
                      bool *bad)
{
    const char *nl;
    size_t len;

    *bad = false;
    if (*p >= end)
        return false;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    len = nl ? (size_t)(nl - *p) : 0;
    if (nl == NULL || len >= size || memchr(*p, '\0', len)) {
        *bad = true;
        return false;
    }
    memcpy(line, *p, len);
    line[len] = '\0';
    *p = nl + 1;
    return true;
}

static bool parse_id(const char *v, uint64_t *out)
{
    char *end;

    if (!ascii_digit((unsigned char)v[0]) || strlen(v) > 20)
        return false;
    *out = strtoull(v, &end, 10);
    return *end == '\0';
}

/* Copy v into out (size octets with the NUL) when it fits and is clean. */
static bool take(const char *v, char *out, size_t size, bool allow_8bit)
{
    size_t len = strlen(v);

    if (len >= size || !clean_value(v, allow_8bit))
        return false;
    memcpy(out, v, len + 1);
    return true;
}

bool milter_job_decode(const void *payload, size_t len, struct milter_job_msg *m,
                       char *err, size_t errsize)
{
    const char *p = payload, *end = p + len;
    char line[LINE_MAX_OCTETS];
    bool bad, have_job = false, have_tls = false;

    memset(m, 0, sizeof(*m));
    while (next_line(&p, end, line, sizeof(line), &bad)) {
        char *v = strchr(line, ' ');

        if (v == NULL)
            return errbuf_fail(err, errsize, "line without a value");
        *v++ = '\0';
        if (strcmp(line, "job") == 0 && !have_job)
            have_job = parse_id(v, &m->job_id);
        else if (strcmp(line, "listener") == 0 && !m->listener[0]) {
            if (!take(v, m->listener, sizeof(m->listener), false) || !m->listener[0])
                return errbuf_fail(err, errsize, "bad listener");
        } else if (strcmp(line, "auth") == 0 && !m->auth_user[0]) {
            if (!take(v, m->auth_user, sizeof(m->auth_user), true) || !m->auth_user[0])
                return errbuf_fail(err, errsize, "bad auth user");
        } else if (strcmp(line, "auth_type") == 0 && !m->auth_type[0]) {
            if (!auth_mechanism_known(v))
                return errbuf_fail(err, errsize, "bad auth type");
            snprintf(m->auth_type, sizeof(m->auth_type), "%s", v);
        } else if (strcmp(line, "tls") == 0 && !have_tls) {
            if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
                return errbuf_fail(err, errsize, "bad tls");
            m->tls = v[0] == 'y';
            have_tls = true;
        } else
            return errbuf_fail(err, errsize, "unknown or repeated key '%.32s'", line);
    }
    if (bad)
        return errbuf_fail(err, errsize, "malformed line");
    if (!have_job || !m->listener[0] || !have_tls)
        return errbuf_fail(err, errsize, "job, listener or tls missing");
    if (!m->auth_user[0] != !m->auth_type[0])
        return errbuf_fail(err, errsize, "auth and auth_type go together");
    return true;
}

static const char *const verdicts[] = { "accept", "reject", "tempfail", "discard" };

size_t milter_result_encode(const struct milter_result_msg *m, char *out, size_t outsize)
{
    struct writer w = { out, outsize, 0, true };

    put(&w, "job %" PRIu64 "\n", m->job_id);
    put(&w, "verdict %s\n", verdicts[m->verdict]);
    if (m->reply[0])
        put(&w, "reply %s\n", m->reply);
    if (m->milter[0])
        put(&w, "milter %s\n", m->milter);
    if (m->quarantine)
        put(&w, "quarantine %s\n", m->reason);
    if (m->content)
        put(&w, "content yes\n");
    if (m->change_from)
        put(&w, "from %s\n", m->from);
    for (size_t i = 0; i < m->add_count; i++)
        put(&w, "add %s\n", m->add[i]);
    for (size_t i = 0; i < m->delete_count; i++)
        put(&w, "delete %s\n", m->del[i]);
    return w.ok ? w.len : 0;
}

/* A [milter NAME]: letters, digits, '-' and '_' (safe in a log line). */
static bool name_valid(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!ascii_alnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    return true;
}

/* One result line; false on anything wrong. */
static bool result_line(struct milter_result_msg *m, const char *key, const char *v,
                        unsigned *seen)
{
    enum { JOB = 1, VERDICT = 2, REPLY = 4, MILTER = 8, QUAR = 16, CONTENT = 32, FROM = 64 };
    unsigned bit = strcmp(key, "job") == 0 ? JOB : strcmp(key, "verdict") == 0 ? VERDICT
                 : strcmp(key, "reply") == 0 ? REPLY : strcmp(key, "milter") == 0 ? MILTER
                 : strcmp(key, "quarantine") == 0 ? QUAR : strcmp(key, "content") == 0
                 ? CONTENT : strcmp(key, "from") == 0 ? FROM : 0;

    if (bit & *seen)
        return false;               /* a key given twice */
    *seen |= bit;
    switch (bit) {
    case JOB:     return parse_id(v, &m->job_id);
    case REPLY:   return take(v, m->reply, sizeof(m->reply), false);
    case MILTER:  return take(v, m->milter, sizeof(m->milter), false) && name_valid(m->milter);
    case QUAR:    m->quarantine = true;
                  return take(v, m->reason, sizeof(m->reason), false);
    case CONTENT: m->content = true;
                  return strcmp(v, "yes") == 0;
    case FROM:    m->change_from = true;
                  return take(v, m->from, sizeof(m->from), true);
    case VERDICT:
        for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
            if (strcmp(v, verdicts[i]) == 0) {
                m->verdict = (enum milter_result_verdict)i;
                return true;
            }
        }
        return false;
    default:
        break;
    }
    if (strcmp(key, "add") == 0 && m->add_count + m->delete_count < MILTER_CODEC_RCPT_EDITS)
        return v[0] && take(v, m->add[m->add_count++], ADDR_PATH_MAX + 1, true);
    if (strcmp(key, "delete") == 0 &&
        m->add_count + m->delete_count < MILTER_CODEC_RCPT_EDITS)
        return v[0] && take(v, m->del[m->delete_count++], ADDR_PATH_MAX + 1, true);
    return false;
}

bool milter_result_decode(const void *payload, size_t len, struct milter_result_msg *m,
                          char *err, size_t errsize)
{
    const char *p = payload, *end = p + len;
    char line[LINE_MAX_OCTETS];
    unsigned seen = 0;
    bool bad;

    memset(m, 0, sizeof(*m));
    while (next_line(&p, end, line, sizeof(line), &bad)) {
        char *v = strchr(line, ' ');

        if (v == NULL)
            return errbuf_fail(err, errsize, "line without a value");
        *v++ = '\0';
        if (!result_line(m, line, v, &seen))
            return errbuf_fail(err, errsize, "bad, unknown or repeated '%.32s' line", line);
    }
    if (bad)
        return errbuf_fail(err, errsize, "malformed line");
    if ((seen & 3) != 3)
        return errbuf_fail(err, errsize, "job or verdict missing");
    if (m->verdict == MILTER_RESULT_REJECT || m->verdict == MILTER_RESULT_TEMPFAIL) {
        if (!milter_reply_valid(m->reply, m->verdict == MILTER_RESULT_TEMPFAIL))
            return errbuf_fail(err, errsize, "reply does not fit the verdict");
    } else if (m->reply[0]) {
        return errbuf_fail(err, errsize, "reply with an accepting verdict");
    }
    return true;
}

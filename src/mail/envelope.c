/*
 * envelope.c - serialize and parse the queue envelope (see envelope.h).
 * The parser is strict: unknown keys, overlong lines and a missing
 * terminator are errors. The format is line-oriented text so that an
 * operator can read a spool file with `less`.
 */
#include "mail/envelope.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define ENVELOPE_LINE_MAX 1024

/* A queue id: QUEUE_ID_LEN upper-case hex digits (queue.c makes them). */
bool queue_id_valid(const char *name)
{
    if (strlen(name) != QUEUE_ID_LEN)
        return false;
    for (size_t i = 0; i < QUEUE_ID_LEN; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

void envelope_init(struct envelope *env)
{
    memset(env, 0, sizeof(*env));
}

void envelope_clear(struct envelope *env)
{
    free(env->rcpts);
    envelope_init(env);
}

/* Length of the "rcpt" line serialize writes for these values. */
static size_t rcpt_line_len(const char *addr, unsigned notify, const char *orcpt)
{
    int n = snprintf(NULL, 0, "rcpt %u %s %s\n", notify, orcpt && orcpt[0] ? orcpt : "-", addr);

    return n > 0 ? (size_t)n : 0;
}

void envelope_add_rcpt(struct envelope *env, const char *addr,
                       unsigned notify, const char *orcpt)
{
    struct envelope_rcpt *r;

    if (env->rcpt_count == env->rcpt_alloc) {
        env->rcpt_alloc = env->rcpt_alloc ? env->rcpt_alloc * 2 : 4;
        env->rcpts = xrealloc(env->rcpts, env->rcpt_alloc * sizeof(*r));
    }
    r = &env->rcpts[env->rcpt_count++];
    memset(r, 0, sizeof(*r));
    snprintf(r->addr, sizeof(r->addr), "%s", addr);
    r->notify = notify;
    snprintf(r->orcpt, sizeof(r->orcpt), "%s", orcpt ? orcpt : "");
    env->rcpt_bytes += rcpt_line_len(r->addr, r->notify, r->orcpt);
}

static const char *body_name(enum body_type b)
{
    return b == BODY_8BITMIME ? "8bitmime" : b == BODY_7BIT ? "7bit" : "unspecified";
}

static const char *ret_name(enum dsn_ret r)
{
    return r == DSN_RET_FULL ? "full" : r == DSN_RET_HDRS ? "hdrs" : "unspecified";
}

struct out {
    char *buf;
    size_t len, cap;
};

static void out_add(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_add(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->buf == NULL) {               /* counting only */
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        o->len += n > 0 ? (size_t)n : 0;
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n;
        o->buf = xrealloc(o->buf, o->cap);
    }
}

/* Everything serialize writes before the recipients. */
static void serialize_head(struct out *o, const struct envelope *env)
{
    out_add(o, "%s\n", ENVELOPE_MAGIC);
    if (env->id[0])                     /* none yet: a milter check (envelope_read_partial) */
        out_add(o, "id %s\n", env->id);
    out_add(o, "arrival %" PRId64 "\n", (int64_t)env->arrival);
    out_add(o, "client %s\n", env->client);
    out_add(o, "helo %s\n", env->helo);
    out_add(o, "from %s\n", env->from);
    out_add(o, "body %s\n", body_name(env->body));
    out_add(o, "smtputf8 %d\n", env->smtputf8 ? 1 : 0);
    out_add(o, "requiretls %d\n", env->requiretls ? 1 : 0);
    out_add(o, "ret %s\n", ret_name(env->ret));
    out_add(o, "envid %s\n", env->envid);
    if (env->dsn_content_withheld)
        out_add(o, "dsn_content none\n");
}

size_t envelope_wire_len(const struct envelope *env, const char *addr, unsigned notify,
                         const char *orcpt)
{
    struct out o = { NULL, 0, 0 };      /* counts only */

    serialize_head(&o, env);
    if (env->id[0] == '\0')
        o.len += sizeof("id \n") - 1 + QUEUE_ID_LEN;  /* the queue's id, once it has one */
    return o.len + env->rcpt_bytes + (addr ? rcpt_line_len(addr, notify, orcpt) : 0) + 1;
}

char *envelope_serialize(const struct envelope *env, size_t *len)
{
    struct out o = { xmalloc(512), 0, 512 };

    serialize_head(&o, env);
    for (size_t i = 0; i < env->rcpt_count; i++) {
        const struct envelope_rcpt *r = &env->rcpts[i];
        out_add(&o, "rcpt %u %s %s\n", r->notify, r->orcpt[0] ? r->orcpt : "-", r->addr);
    }
    out_add(&o, "\n");
    *len = o.len;
    return o.buf;
}

/* Read one '\n'-terminated line without the '\n'. */
static bool read_line(FILE *fp, char *line, size_t size, char *err, size_t errsize)
{
    size_t n;

    if (fgets(line, (int)size, fp) == NULL) {
        snprintf(err, errsize, "truncated envelope");
        return false;
    }
    n = strlen(line);
    if (n == 0 || line[n - 1] != '\n') {
        snprintf(err, errsize, "envelope line too long or unterminated");
        return false;
    }
    line[n - 1] = '\0';
    return true;
}

static bool parse_rcpt(struct envelope *env, const char *v)
{
    char *end;
    unsigned long notify = strtoul(v, &end, 10);
    const char *orcpt, *addr;
    size_t orcpt_len;
    char orcpt_buf[DSN_ORCPT_MAX + 1];

    if (end == v || *end != ' ' || notify > 15)
        return false;
    orcpt = end + 1;
    addr = strchr(orcpt, ' ');
    if (addr == NULL || env->rcpt_count >= ENVELOPE_MAX_RCPTS)
        return false;
    orcpt_len = (size_t)(addr - orcpt);
    if (orcpt_len >= sizeof(orcpt_buf))
        return false;
    memcpy(orcpt_buf, orcpt, orcpt_len);
    orcpt_buf[orcpt_len] = '\0';
    addr++;
    if (strlen(addr) > ADDR_PATH_MAX)
        return false;
    envelope_add_rcpt(env, addr, (unsigned)notify,
                      strcmp(orcpt_buf, "-") == 0 ? "" : orcpt_buf);
    return true;
}

static bool copy_value(char *dst, size_t size, const char *v)
{
    return (size_t)snprintf(dst, size, "%s", v) < size;
}

static bool parse_field(struct envelope *env, const char *key, const char *v)
{
    if (strcmp(key, "id") == 0)
        return strlen(v) == QUEUE_ID_LEN && copy_value(env->id, sizeof(env->id), v);
    if (strcmp(key, "arrival") == 0) {
        char *end;
        long long t = strtoll(v, &end, 10);
        env->arrival = (time_t)t;
        return end != v && *end == '\0';
    }
    if (strcmp(key, "client") == 0)
        return copy_value(env->client, sizeof(env->client), v);
    if (strcmp(key, "helo") == 0)
        return copy_value(env->helo, sizeof(env->helo), v);
    if (strcmp(key, "from") == 0)
        return copy_value(env->from, sizeof(env->from), v);
    if (strcmp(key, "body") == 0) {
        env->body = strcmp(v, "8bitmime") == 0 ? BODY_8BITMIME
                  : strcmp(v, "7bit") == 0 ? BODY_7BIT : BODY_UNSPECIFIED;
        return true;
    }
    if (strcmp(key, "smtputf8") == 0) {
        env->smtputf8 = strcmp(v, "1") == 0;
        return true;
    }
    if (strcmp(key, "requiretls") == 0) {
        env->requiretls = strcmp(v, "1") == 0;
        return true;
    }
    if (strcmp(key, "ret") == 0) {
        env->ret = strcmp(v, "full") == 0 ? DSN_RET_FULL
                 : strcmp(v, "hdrs") == 0 ? DSN_RET_HDRS : DSN_RET_UNSPECIFIED;
        return true;
    }
    if (strcmp(key, "envid") == 0)
        return copy_value(env->envid, sizeof(env->envid), v);
    if (strcmp(key, "dsn_content") == 0) {
        env->dsn_content_withheld = strcmp(v, "none") == 0;
        return env->dsn_content_withheld || strcmp(v, "full") == 0;
    }
    if (strcmp(key, "rcpt") == 0)
        return parse_rcpt(env, v);
    return false;
}

/* The fields up to the empty line; complete: an id and recipients are
 * required (a spool file), else optional (envelope_read_partial). */
static bool read_fields(FILE *fp, struct envelope *env, bool complete, char *err,
                        size_t errsize)
{
    char line[ENVELOPE_LINE_MAX];

    envelope_init(env);
    if (!read_line(fp, line, sizeof(line), err, errsize))
        return false;
    if (strcmp(line, ENVELOPE_MAGIC) != 0) {
        snprintf(err, errsize, "not a sealpost spool file");
        return false;
    }
    for (;;) {
        char *space;

        if (!read_line(fp, line, sizeof(line), err, errsize))
            goto fail;
        if (line[0] == '\0')
            break;
        space = strchr(line, ' ');
        if (space == NULL) {
            snprintf(err, errsize, "malformed envelope line");
            goto fail;
        }
        *space = '\0';
        if (!parse_field(env, line, space + 1)) {
            snprintf(err, errsize, "bad envelope field '%s'", line);
            goto fail;
        }
    }
    if (complete && (env->id[0] == '\0' || env->rcpt_count == 0)) {
        snprintf(err, errsize, "envelope lacks id or recipients");
        goto fail;
    }
    return true;
fail:
    envelope_clear(env);
    return false;
}

bool envelope_read(FILE *fp, struct envelope *env, long *body_offset,
                   char *err, size_t errsize)
{
    if (!read_fields(fp, env, true, err, errsize))
        return false;
    *body_offset = ftell(fp);
    return true;
}

bool envelope_read_partial(FILE *fp, struct envelope *env, char *err, size_t errsize)
{
    return read_fields(fp, env, false, err, errsize);
}

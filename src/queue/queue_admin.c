/*
 * queue_admin.c - the commands of `sealpost queue`, carried out on the
 * scheduler's thread (see queue_admin.h).
 *
 * Output is for people and grep: one line per message for list, stable
 * "key=value" fields, addresses in <>, every byte a terminal could take
 * for a control sequence (below 0x20, 0x7f, and in header text also
 * 0x80 and up) shown as "?" or "\xHH". docs/OPERATIONS.md documents it.
 *
 * Trusts: the spool (queue_load checks it) and a parsed command.
 */
#include "queue/queue_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

/* Recipients `list` names on a message's line; the rest are counted. */
#define LIST_RCPTS_SHOWN 3

enum msg_status { MSG_ACTIVE, MSG_DEFERRED, MSG_HELD };

static const char *const status_names[] = { "active", "deferred", "held" };

/* "3d04h", "2h05m", "5m12s", "42s". */
static const char *duration(char *out, size_t size, long long secs)
{
    if (secs < 0)
        secs = 0;
    if (secs >= 86400)
        snprintf(out, size, "%lldd%02lldh", secs / 86400, secs % 86400 / 3600);
    else if (secs >= 3600)
        snprintf(out, size, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
    else if (secs >= 60)
        snprintf(out, size, "%lldm%02llds", secs / 60, secs % 60);
    else
        snprintf(out, size, "%llds", secs);
    return out;
}

static const char *utc(char *out, size_t size, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "%lld", t);
    return out;
}

/* An address for the output: control bytes as '?'. */
static const char *printable(char *out, size_t size, const char *s)
{
    size_t n = 0;

    for (; *s && n + 1 < size; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
    return out;
}

/* Held, active (in delivery or due now) or deferred; *next the earliest
 * retry of a pending recipient (0: none). */
static enum msg_status msg_status(const struct scheduler *s, const struct queued_message *m,
                                  time_t now, long long *next)
{
    bool due = false;

    *next = 0;
    for (size_t i = 0; i < m->env.rcpt_count; i++) {
        if (m->state[i].status != RCPT_PENDING)
            continue;
        if (m->state[i].next_attempt <= now)
            due = true;
        else if (*next == 0 || m->state[i].next_attempt < *next)
            *next = m->state[i].next_attempt;
    }
    if (m->held)
        return MSG_HELD;
    if (due || scheduler_in_delivery(s, m->env.id))
        return MSG_ACTIVE;
    return MSG_DEFERRED;
}

static void list_one(const struct scheduler *s, const struct queued_message *m, time_t now,
                     struct evbuffer *out, size_t *counts)
{
    char age[32], next[32], from[ADDR_PATH_MAX + 1], addr[ADDR_PATH_MAX + 1];
    long long next_at;
    enum msg_status st = msg_status(s, m, now, &next_at);
    size_t pending = 0, shown = 0;

    counts[st]++;
    if (st == MSG_HELD || next_at == 0 || st == MSG_ACTIVE)
        snprintf(next, sizeof(next), "%s", st == MSG_ACTIVE ? "now" : "-");
    else
        duration(next, sizeof(next), next_at - now);
    evbuffer_add_printf(out, "%s status=%s size=%llu age=%s next=%s from=<%s>", m->env.id,
                        status_names[st], (unsigned long long)m->body_size,
                        duration(age, sizeof(age), (long long)(now - m->env.arrival)), next,
                        printable(from, sizeof(from), m->env.from));
    for (size_t i = 0; i < m->env.rcpt_count; i++)
        pending += m->state[i].status == RCPT_PENDING;
    evbuffer_add_printf(out, " rcpts=%zu/%zu to=", pending, m->env.rcpt_count);
    for (size_t i = 0; i < m->env.rcpt_count && shown < LIST_RCPTS_SHOWN; i++) {
        if (m->state[i].status != RCPT_PENDING)
            continue;
        evbuffer_add_printf(out, "%s<%s>", shown ? "," : "",
                            printable(addr, sizeof(addr), m->env.rcpts[i].addr));
        shown++;
    }
    evbuffer_add_printf(out, "%s\n", pending > shown ? ",..." : "");
}

/* The message's header section, each line indented by two spaces. */
static void show_headers(const struct queued_message *m, struct evbuffer *out)
{
    size_t max = m->body_size < QUEUE_SHOW_HEADERS_MAX ? (size_t)m->body_size
                                                         : QUEUE_SHOW_HEADERS_MAX;
    char *buf = xmalloc(max + 1);
    ssize_t got = pread(m->fd, buf, max, m->body_offset);
    size_t len = got > 0 ? (size_t)got : 0;
    bool bol = true;

    evbuffer_add_printf(out, "headers:\n");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];

        if (bol && (c == '\r' || c == '\n'))
            break;          /* the empty line: the body starts */
        if (bol)
            evbuffer_add(out, "  ", 2);
        bol = c == '\n';
        if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f))
            evbuffer_add(out, &buf[i], 1);
        else if (c != '\r')
            evbuffer_add_printf(out, "\\x%02X", c);
    }
    if (!bol)
        evbuffer_add_printf(out, "\n");
    if (len == QUEUE_SHOW_HEADERS_MAX)
        evbuffer_add_printf(out, "  (cut at %d octets)\n", QUEUE_SHOW_HEADERS_MAX);
    free(buf);
}

static void show_rcpt(const struct queued_message *m, size_t i, time_t now,
                      struct evbuffer *out)
{
    static const char *const names[] = { "pending", "delivered", "failed" };
    const struct rcpt_state *st = &m->state[i];
    char addr[ADDR_PATH_MAX + 1], when[32], in[32];

    evbuffer_add_printf(out, "rcpt: <%s> status=%s attempts=%u",
                        printable(addr, sizeof(addr), m->env.rcpts[i].addr),
                        names[st->status], st->attempts);
    if (st->status == RCPT_PENDING && st->next_attempt > now)
        evbuffer_add_printf(out, " next=%s (in %s)", utc(when, sizeof(when), st->next_attempt),
                            duration(in, sizeof(in), st->next_attempt - now));
    evbuffer_add_printf(out, "\n");
    if (st->status != RCPT_DELIVERED && m->last_error && m->last_error[i])
        evbuffer_add_printf(out, "  last error: %s\n", m->last_error[i]);
}

static void cmd_show(const struct scheduler *s, const struct queued_message *m,
                     struct evbuffer *out)
{
    static const char *const bodies[] = { "unspecified", "7bit", "8bitmime" };
    static const char *const rets[] = { "unspecified", "full", "hdrs" };
    time_t now = time(NULL);
    long long next;
    enum msg_status st = msg_status(s, m, now, &next);
    char when[32], age[32], from[ADDR_PATH_MAX + 1], helo[300], envid[DSN_ENVID_MAX + 1];
    unsigned body = (unsigned)m->env.body, ret = (unsigned)m->env.ret;

    evbuffer_add_printf(out, "ok\nid: %s\nstatus: %s%s\n", m->env.id, status_names[st],
                        scheduler_in_delivery(s, m->env.id) ? " (in delivery now)" : "");
    evbuffer_add_printf(out, "arrival: %s (age %s)\nsize: %llu\n",
                        utc(when, sizeof(when), (long long)m->env.arrival),
                        duration(age, sizeof(age), (long long)(now - m->env.arrival)),
                        (unsigned long long)m->body_size);
    evbuffer_add_printf(out, "client: %s helo=%s\nfrom: <%s>\n", m->env.client,
                        printable(helo, sizeof(helo), m->env.helo),
                        printable(from, sizeof(from), m->env.from));
    evbuffer_add_printf(out, "options: body=%s smtputf8=%d requiretls=%d ret=%s envid=%s "
                        "warned=%d\n", body < 3 ? bodies[body] : "?", m->env.smtputf8,
                        m->env.requiretls, ret < 3 ? rets[ret] : "?",
                        m->env.envid[0] ? printable(envid, sizeof(envid), m->env.envid) : "-",
                        m->warned);
    for (size_t i = 0; i < m->env.rcpt_count; i++)
        show_rcpt(m, i, now, out);
    show_headers(m, out);
    evbuffer_add_printf(out, ".\n");
}

static void admin_log(const struct queue_cmd *cmd, long uid, const char *result,
                      const char *detail)
{
    log_info("event=queue_admin action=%s id=%s uid=%ld result=%s%s", queue_cmd_name(cmd->verb),
             cmd->id[0] ? cmd->id : "all", uid, result, detail);
}

/* Refused: logged when the command would have changed something. */
static void refuse(const struct queue_cmd *cmd, long uid, struct evbuffer *out,
                   const char *reason)
{
    char detail[300];

    if (queue_cmd_mutates(cmd->verb)) {
        snprintf(detail, sizeof(detail), " reason=\"%s\"", reason);
        admin_log(cmd, uid, "refused", detail);
    }
    evbuffer_add_printf(out, "fail %s\n.\n", reason);
}

static void done(const struct queue_cmd *cmd, long uid, struct evbuffer *out, const char *text,
                 const char *detail)
{
    admin_log(cmd, uid, "ok", detail);
    evbuffer_add_printf(out, "ok\n%s\n.\n", text);
}

static void cmd_delete(struct scheduler *s, struct queue *q, const struct queue_cmd *cmd,
                       long uid, const struct queued_message *m, struct evbuffer *out)
{
    char text[64], detail[ADDR_PATH_MAX * 4 + 64], from[ADDR_PATH_MAX * 4 + 8];
    char angle[ADDR_PATH_MAX + 3];

    if (scheduler_in_delivery(s, cmd->id)) {
        refuse(cmd, uid, out, "in delivery now, try again in a moment");
        return;
    }
    queue_remove(q, cmd->id);
    scheduler_forget(s, cmd->id);
    snprintf(angle, sizeof(angle), "<%s>", m->env.from);
    snprintf(detail, sizeof(detail), " from=%s rcpts=%zu size=%llu",
             log_value(from, sizeof(from), angle), m->env.rcpt_count,
             (unsigned long long)m->body_size);
    snprintf(text, sizeof(text), "%s: deleted", cmd->id);
    done(cmd, uid, out, text, detail);
}

static void cmd_hold(struct scheduler *s, struct queue *q, const struct queue_cmd *cmd,
                     long uid, const struct queued_message *m, struct evbuffer *out)
{
    char text[128];
    bool busy = scheduler_in_delivery(s, cmd->id);

    if (m->held) {
        snprintf(text, sizeof(text), "%s: already on hold", cmd->id);
        done(cmd, uid, out, text, " already=1");
        return;
    }
    if (!queue_record_hold(q, cmd->id, true)) {
        refuse(cmd, uid, out, errno == ENOENT ? "no such message" : "cannot write its state");
        return;
    }
    scheduler_set_held(s, cmd->id);
    snprintf(text, sizeof(text), "%s: on hold%s", cmd->id,
             busy ? " (the attempt in progress ends first)" : "");
    done(cmd, uid, out, text, busy ? " in_delivery=1" : "");
}

static void cmd_release(struct scheduler *s, struct queue *q, const struct queue_cmd *cmd,
                        long uid, const struct queued_message *m, struct evbuffer *out)
{
    char text[128];

    if (!m->held) {
        snprintf(text, sizeof(text), "%s: not on hold", cmd->id);
        done(cmd, uid, out, text, " already=1");
        return;
    }
    if (!queue_record_hold(q, cmd->id, false)) {
        refuse(cmd, uid, out, "cannot write its state");
        return;
    }
    scheduler_retry_now(s, cmd->id);
    snprintf(text, sizeof(text), "%s: released, attempted now", cmd->id);
    done(cmd, uid, out, text, "");
}

static void cmd_flush_one(struct scheduler *s, const struct queue_cmd *cmd, long uid,
                          const struct queued_message *m, struct evbuffer *out)
{
    char text[128];

    if (m->held) {
        refuse(cmd, uid, out, "on hold: release it instead");
        return;
    }
    scheduler_retry_now(s, cmd->id);
    snprintf(text, sizeof(text), "%s: %s", cmd->id,
             scheduler_in_delivery(s, cmd->id) ? "in delivery now, attempted again after it"
                                              : "attempted now");
    done(cmd, uid, out, text, "");
}

/* --- commands over the whole queue, a step at a time --- */

struct queue_admin_walk {
    struct scheduler *s;
    struct queue *q;
    struct queue_cmd cmd;
    long uid;
    char (*ids)[QUEUE_ID_LEN + 1];  /* the spool's messages when the command came */
    size_t n, next;
    size_t counts[3];               /* list: by status */
    unsigned long long bytes;
    size_t flushed, held;           /* flush */
};

static void walk_one(struct queue_admin_walk *w, const struct queued_message *m, time_t now,
                     struct evbuffer *out)
{
    if (w->cmd.verb == QUEUE_CMD_LIST) {
        w->bytes += m->body_size;
        list_one(w->s, m, now, out, w->counts);
    } else if (m->held) {
        w->held++;
    } else {
        scheduler_retry_now(w->s, m->env.id);
        w->flushed++;
    }
}

static void walk_end(struct queue_admin_walk *w, struct evbuffer *out)
{
    char text[128], detail[64];

    if (w->cmd.verb == QUEUE_CMD_LIST) {
        evbuffer_add_printf(out, "messages=%zu active=%zu deferred=%zu held=%zu bytes=%llu\n.\n",
                            w->counts[MSG_ACTIVE] + w->counts[MSG_DEFERRED] + w->counts[MSG_HELD],
                            w->counts[MSG_ACTIVE], w->counts[MSG_DEFERRED], w->counts[MSG_HELD],
                            w->bytes);
        return;
    }
    snprintf(text, sizeof(text), "%zu messages to be attempted now, %zu held left alone",
             w->flushed, w->held);
    snprintf(detail, sizeof(detail), " messages=%zu held=%zu", w->flushed, w->held);
    done(&w->cmd, w->uid, out, text, detail);
}

bool queue_admin_step(struct queue_admin_walk *w, struct evbuffer *out)
{
    time_t now = time(NULL);

    for (size_t k = 0; k < QUEUE_ADMIN_STEP && w->next < w->n; k++) {
        const char *id = w->ids[w->next++];
        struct queued_message m;
        char err[256];

        if (!queue_load(w->q, id, &m, err, sizeof(err))) {
            /* gone meanwhile (delivered, deleted): not listed */
            if (w->cmd.verb == QUEUE_CMD_LIST &&
                strcmp(err, "open: No such file or directory") != 0)
                evbuffer_add_printf(out, "%s status=unreadable error=\"%s\"\n", id, err);
            continue;
        }
        walk_one(w, &m, now, out);
        queue_unload(&m);
    }
    if (w->next < w->n)
        return false;
    walk_end(w, out);
    return true;
}

void queue_admin_walk_free(struct queue_admin_walk *w)
{
    if (w) {
        free(w->ids);
        free(w);
    }
}

static struct queue_admin_walk *walk_start(struct scheduler *s, struct queue *q,
                                           const struct queue_cmd *cmd, long uid,
                                           struct evbuffer *out)
{
    struct queue_admin_walk *w = xcalloc(1, sizeof(*w));

    w->s = s;
    w->q = q;
    w->cmd = *cmd;
    w->uid = uid;
    w->ids = queue_list_ids(q, &w->n);
    if (cmd->verb == QUEUE_CMD_LIST)
        evbuffer_add_printf(out, "ok\n");
    return w;
}

struct queue_admin_walk *queue_admin_run(struct scheduler *s, struct queue *q,
                                         const struct queue_cmd *cmd, long uid,
                                         struct evbuffer *out)
{
    struct queued_message m;
    char err[256], reason[320];

    if (cmd->verb == QUEUE_CMD_LIST || (cmd->verb == QUEUE_CMD_FLUSH && cmd->id[0] == '\0'))
        return walk_start(s, q, cmd, uid, out);
    if (!queue_load(q, cmd->id, &m, err, sizeof(err))) {
        if (strcmp(err, "open: No such file or directory") == 0)
            snprintf(reason, sizeof(reason), "no such message: %s", cmd->id);
        else
            snprintf(reason, sizeof(reason), "%s: cannot read: %s", cmd->id, err);
        refuse(cmd, uid, out, reason);
        return NULL;
    }
    switch (cmd->verb) {
    case QUEUE_CMD_SHOW:    cmd_show(s, &m, out); break;
    case QUEUE_CMD_DELETE:  cmd_delete(s, q, cmd, uid, &m, out); break;
    case QUEUE_CMD_HOLD:    cmd_hold(s, q, cmd, uid, &m, out); break;
    case QUEUE_CMD_RELEASE: cmd_release(s, q, cmd, uid, &m, out); break;
    default:                cmd_flush_one(s, cmd, uid, &m, out); break;
    }
    queue_unload(&m);
    return NULL;
}

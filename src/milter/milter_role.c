/*
 * milter_role.c - the milter role (see milter_role.h).
 *
 * The master starts it as [server] delivery_user, chrooted into the
 * folder of the unix: milter sockets (config_finish allows one folder),
 * or into the spool's empty folder when every milter listens on TCP;
 * Landlock denies every file access and seccomp allows the delivery
 * process's calls plus AF_UNIX sockets and memfd_create.
 *
 * The queue sends a job (mail/milter_codec.h) for each message of a
 * listener with milters, with a read-only descriptor of the spool file.
 * The milters to ask come from this process's own config (the job only
 * names the listener), in the listener's order. Each milter hears the
 * message as the milters before it left it: after a milter that changed
 * headers or the body, the next one reads the rewritten message (a
 * memfd). The first reject, tempfail or discard ends the round; a milter
 * that cannot be reached, times out or breaks the protocol gets its
 * default_action. The result goes back with the final message, sealed,
 * when it changed; the queue checks both before it writes the spool.
 *
 * Jobs run one at a time inside the event callback (blocking I/O with a
 * timeout per step, milter_conv.h); the queue sends without blocking and
 * gives up on a job after MILTER_GATE_DEADLINE seconds.
 *
 * Trusts: the master's descriptors and config; the job only as far as
 * milter_job_decode and envelope_read check it; nothing from a milter.
 */
#define _GNU_SOURCE 1              /* memfd_create */
#include "milter/milter_role.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/envelope.h"
#include "mail/milter_check.h"
#include "mail/milter_codec.h"
#include "milter/milter_apply.h"
#include "milter/milter_conv.h"
#include "milter/milter_types.h"
#include "sandbox/role_jobs.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/xalloc.h"

struct milter_role {
    const struct config *cfg;
    bool chrooted;                  /* into the unix sockets' folder (or the empty one) */
    struct role_jobs *jobs;
    char buf[IPC_MAX_PAYLOAD];
};

/* The message a milter reads: the spool file (after its envelope) or
 * the memfd the last changing milter left. */
struct current_msg {
    int fd;
    off_t offset;
    size_t size;
    bool owned;                     /* a memfd of ours */
    unsigned hidden;                /* fields at the top the milters are not shown */
};

/* The milter's socket; a unix: path as seen from inside the chroot
 * (the folder of every unix: milter socket is its root). */
static bool to_target(const struct milter_config *mc, bool chrooted, struct milter_target *t)
{
    char err[300];
    const char *base;

    if (!milter_target_parse(mc->socket, t, err, sizeof(err)))
        return false;
    if (t->is_unix && chrooted && (base = strrchr(t->path, '/')) != NULL)
        memmove(t->path, base, strlen(base) + 1);
    return true;
}

/* A milter could not be asked: its default_action, into res. true: go on
 * with the next milter (accept). */
static bool by_default(const struct milter_config *mc, const char *err,
                       struct milter_result_msg *res, const char *id)
{
    char q[600];

    log_warn("event=milter_unavailable id=%s stage=%s milter=%s reason=%s action=%s", id,
             milter_check_stage_name(mc->stage), mc->name,
             log_quote(q, sizeof(q), err, strlen(err)),
             mc->default_action == MILTER_ACTION_ACCEPT ? "accept"
             : mc->default_action == MILTER_ACTION_REJECT ? "reject" : "tempfail");
    if (mc->default_action == MILTER_ACTION_ACCEPT)
        return true;
    res->verdict = mc->default_action == MILTER_ACTION_REJECT ? MILTER_RESULT_REJECT
                                                              : MILTER_RESULT_TEMPFAIL;
    snprintf(res->reply, sizeof(res->reply), "%s",
             mc->default_action == MILTER_ACTION_REJECT
                 ? "550 5.7.1 Content filter unavailable, message refused"
                 : "451 4.3.5 Content filter unavailable - try again later");
    snprintf(res->milter, sizeof(res->milter), "%s", mc->name);
    return false;
}

/* The milter's sender and recipient changes, into res (take_edits
 * checked their number and length). */
static void put_envelope_edits(const struct milter_outcome *o, struct milter_result_msg *res)
{
    for (size_t i = 0; i < o->edit_count; i++) {
        const struct milter_edit *e = &o->edits[i];

        if (e->kind == MILTER_EDIT_CHANGE_FROM) {
            res->change_from = true;
            snprintf(res->from, sizeof(res->from), "%s", e->value);
        } else if (e->kind == MILTER_EDIT_ADD_RCPT) {
            snprintf(res->add[res->add_count++], ADDR_PATH_MAX + 1, "%s", e->value);
        } else if (e->kind == MILTER_EDIT_DELETE_RCPT) {
            snprintf(res->del[res->delete_count++], ADDR_PATH_MAX + 1, "%s", e->value);
        }
    }
}

/* Recipient and sender changes go to the queue; header and body
 * changes make a new message (cur). false: the milter's changes cannot
 * be applied (treated like a broken milter); res and cur are then as
 * they were, so a default_action of accept keeps none of its changes
 * (res gets the envelope changes only once the rewrite worked). */
static bool take_edits(const struct milter_outcome *o, struct current_msg *cur,
                       unsigned hidden, struct milter_result_msg *res, uint64_t max_size,
                       char *err, size_t errsize)
{
    bool rewrite = o->body_replaced;
    size_t rcpt_edits = res->add_count + res->delete_count;

    for (size_t i = 0; i < o->edit_count; i++) {
        const struct milter_edit *e = &o->edits[i];

        switch (e->kind) {
        case MILTER_EDIT_ADD_HEADER:
        case MILTER_EDIT_INSERT_HEADER:
        case MILTER_EDIT_CHANGE_HEADER:
            rewrite = true;
            break;
        case MILTER_EDIT_CHANGE_FROM:
            break;
        case MILTER_EDIT_ADD_RCPT:
        case MILTER_EDIT_DELETE_RCPT:
            if (rcpt_edits++ >= MILTER_CODEC_RCPT_EDITS || strlen(e->value) > ADDR_PATH_MAX) {
                snprintf(err, errsize, "too many or too long recipient changes");
                return false;
            }
            break;
        }
    }
    if (!rewrite) {
        put_envelope_edits(o, res);
        return true;
    }
    int out = memfd_create("milter-message", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t out_size = 0;

    if (out < 0) {
        snprintf(err, errsize, "memfd_create: %s", strerror(errno));
        return false;
    }
    if (!milter_apply(cur->fd, cur->offset, cur->size, o, hidden, out, (size_t)max_size,
                      &out_size, err, errsize)) {
        close(out);
        return false;
    }
    if (cur->owned)
        close(cur->fd);
    /* A field inserted above our hidden Received: (index 0) makes it the
     * second field: the milters after this one then see it too, rather
     * than miss the new field (hidden_fields counts from the top). */
    for (size_t i = 0; i < o->edit_count; i++)
        if (o->edits[i].kind == MILTER_EDIT_INSERT_HEADER && o->edits[i].index == 0)
            hidden = 0;
    *cur = (struct current_msg){ out, 0, out_size, true, hidden };
    put_envelope_edits(o, res);
    return true;
}

/* A reject, tempfail or discard ends the round: into res, true. */
static bool decided(const struct milter_outcome *o, const char *milter,
                    struct milter_result_msg *res)
{
    if (o->verdict != MILTER_REJECT && o->verdict != MILTER_TEMPFAIL &&
        o->verdict != MILTER_DISCARD)
        return false;
    res->verdict = o->verdict == MILTER_REJECT ? MILTER_RESULT_REJECT
                 : o->verdict == MILTER_TEMPFAIL ? MILTER_RESULT_TEMPFAIL
                                                 : MILTER_RESULT_DISCARD;
    if (o->verdict != MILTER_DISCARD)
        snprintf(res->reply, sizeof(res->reply), "%s", o->reply);
    snprintf(res->milter, sizeof(res->milter), "%s", milter);
    return true;
}

/* Ask every milter of the listener about the message; res filled. */
static void run_milters(struct milter_role *mr, const struct milter_job_msg *job,
                        const struct envelope *env, struct current_msg *cur,
                        struct milter_result_msg *res)
{
    size_t n;
    char *const *names = config_milters_for(mr->cfg, job->listener, &n);
    char client_name[80];
    static struct milter_outcome o;

    /* mail from sealpost sendmail has no client: milters hear it from
     * localhost [127.0.0.1], as Postfix's non_smtpd_milters do (OpenDKIM
     * then signs it: 127.0.0.1 is one of its InternalHosts) */
    bool local = env->client[0] == '\0';
    const char *client_addr = local ? "127.0.0.1" : env->client;

    snprintf(client_name, sizeof(client_name), local ? "localhost" : "[%s]", env->client);
    for (size_t i = 0; i < n; i++) {
        const struct milter_config *mc = config_find_milter(mr->cfg, names[i]);
        struct milter_target t;
        char err[300] = "";
        struct milter_facts f = {
            .hostname = mr->cfg->hostname, .queue_id = env->id, .client_addr = client_addr,
            .client_name = client_name, .helo = env->helo, .auth_user = job->auth_user,
            /* the queue keeps the user, not the mechanism (PLAIN or LOGIN,
             * both a password); OpenDKIM only asks whether there was one */
            .auth_type = job->auth_type,
            .tls_version = job->tls ? "TLS" : "", .tls_cipher = "", .env = env,
            .hidden_fields = cur->hidden,   /* our own Received:, as Postfix and Sendmail */
            .msg_fd = cur->fd, .msg_offset = cur->offset, .msg_size = cur->size,
            .body_max = (size_t)mr->cfg->max_message_size,
        };

        if (mc == NULL || mc->stage != MILTER_AT_DATA || !to_target(mc, mr->chrooted, &t))
            continue;               /* asked earlier (a check); config_finish checked */
        milter_outcome_init(&o);
        if (!milter_converse(mc->name, &t, &f, mc->timeout, &o, err, sizeof(err)) ||
            (o.verdict <= MILTER_ACCEPT &&
             !take_edits(&o, cur, f.hidden_fields, res, mr->cfg->max_message_size, err,
                         sizeof(err)))) {
            milter_outcome_clear(&o);
            if (by_default(mc, err, res, env->id))
                continue;
            return;
        }
        if (o.quarantine && !res->quarantine) {
            res->quarantine = true;
            snprintf(res->reason, sizeof(res->reason), "%s", o.reason);
        }
        if (decided(&o, mc->name, res)) {
            milter_outcome_clear(&o);
            return;
        }
        milter_outcome_clear(&o);
    }
}

/* The spool file's envelope; cur set to its message. */
static bool read_spool(int fd, struct envelope *env, struct current_msg *cur, char *err,
                       size_t errsize)
{
    FILE *fp = fdopen(dup(fd), "r");
    struct stat st;
    long body_offset;
    bool ok;

    if (fp == NULL) {
        snprintf(err, errsize, "fdopen: %s", strerror(errno));
        return false;
    }
    ok = envelope_read(fp, env, &body_offset, err, errsize);
    fclose(fp);
    if (ok && (fstat(fd, &st) < 0 || st.st_size < body_offset)) {
        snprintf(err, errsize, "bad spool file size");
        ok = false;
    }
    if (ok)
        *cur = (struct current_msg){ fd, body_offset, (size_t)(st.st_size - body_offset),
                                     false, 1 };
    return ok;
}

static void send_result(struct milter_role *mr, struct milter_result_msg *res,
                        struct current_msg *cur)
{
    size_t len;
    int pass = -1;

    res->content = cur->owned && res->verdict == MILTER_RESULT_ACCEPT;
    if (res->content) {
        if (fcntl(cur->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
                                            F_SEAL_SEAL) < 0) {
            res->verdict = MILTER_RESULT_TEMPFAIL;
            res->content = false;
            snprintf(res->reply, sizeof(res->reply), "451 4.3.0 Error: cannot seal the "
                     "rewritten message");
        } else {
            pass = cur->fd;
        }
    }
    len = milter_result_encode(res, mr->buf, sizeof(mr->buf));
    if (len == 0)
        fatal("event=milter_result_too_large");     /* bounded by construction */
    if (!ipc_send(ROLE_FD_CHANNEL, IPC_MILTER_RESULT, mr->buf, len, pass)) {
        char why[160];

        snprintf(why, sizeof(why), "queue channel broken: %s", strerror(errno));
        role_jobs_stop(mr->jobs, why);
    }
}

static void take_job(void *arg, size_t len, int fd)
{
    struct milter_role *mr = arg;
    static struct milter_result_msg res;    /* large: not on the stack */
    struct milter_job_msg job;
    struct envelope env;
    struct current_msg cur = { -1, 0, 0, false, 1 };
    char err[256];

    if (fd < 0 || !milter_job_decode(mr->buf, len, &job, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"%s\"",
              fd < 0 ? "job without a message file" : err);
    memset(&res, 0, sizeof(res));
    res.job_id = job.job_id;
    envelope_init(&env);
    if (!read_spool(fd, &env, &cur, err, sizeof(err))) {
        log_error("event=milter_job_failed reason=\"%s\"", err);
        res.verdict = MILTER_RESULT_TEMPFAIL;
        snprintf(res.reply, sizeof(res.reply), "451 4.3.0 Error: cannot read the message");
    } else {
        run_milters(mr, &job, &env, &cur, &res);
    }
    send_result(mr, &res, &cur);
    if (cur.owned)
        close(cur.fd);
    close(fd);
    envelope_clear(&env);
}

/* A check (milter_check.h): the listener's milters of that stage, each
 * in a conversation up to that SMTP command; the first reject, tempfail
 * or discard answers it. Edits cannot come before EOM; a quarantine
 * asked for this early is not kept (the message does not exist yet). */
static void run_check(struct milter_role *mr, const struct milter_check *chk,
                      struct milter_result_msg *res)
{
    size_t n;
    char *const *names = config_milters_for(mr->cfg, chk->facts.listener, &n);
    static const enum milter_upto upto[] = {
        [MILTER_AT_CONNECT] = MILTER_UPTO_CONNECT, [MILTER_AT_MAIL] = MILTER_UPTO_MAIL,
        [MILTER_AT_RCPT] = MILTER_UPTO_RCPT,
    };
    char client_name[80];
    static struct milter_outcome o;

    snprintf(client_name, sizeof(client_name), "[%s]", chk->env.client);
    for (size_t i = 0; i < n; i++) {
        const struct milter_config *mc = config_find_milter(mr->cfg, names[i]);
        struct milter_target t;
        char err[300] = "";
        struct milter_facts f = {
            .upto = upto[chk->stage], .hostname = mr->cfg->hostname, .queue_id = "",
            .client_addr = chk->env.client, .client_port = chk->client_port,
            .client_name = client_name, .helo = chk->env.helo, .auth_user = chk->auth_user,
            .auth_type = chk->auth_type,
            .tls_version = chk->facts.tls ? "TLS" : "", .tls_cipher = "", .env = &chk->env,
            .msg_fd = -1,
        };

        if (mc == NULL || mc->stage != chk->stage || !to_target(mc, mr->chrooted, &t))
            continue;
        milter_outcome_init(&o);
        if (!milter_converse(mc->name, &t, &f, mc->timeout, &o, err, sizeof(err))) {
            milter_outcome_clear(&o);
            if (by_default(mc, err, res, "-"))
                continue;
            return;
        }
        if (decided(&o, mc->name, res)) {
            milter_outcome_clear(&o);
            return;
        }
        milter_outcome_clear(&o);
    }
}

static void take_check(void *arg, size_t len, int fd)
{
    struct milter_role *mr = arg;
    static struct milter_result_msg res;
    static struct milter_check chk;
    struct current_msg none = { -1, 0, 0, false, 0 };
    char err[256];

    if (fd >= 0 || !milter_check_decode(mr->buf, len, &chk, err, sizeof(err)))
        fatal("event=ipc_garbage peer=queue reason=\"check: %s\"",
              fd >= 0 ? "a descriptor came along" : err);
    memset(&res, 0, sizeof(res));
    res.job_id = chk.id;
    run_check(mr, &chk, &res);
    send_result(mr, &res, &none);
    envelope_clear(&chk.env);
}

static void milter_prepare(struct role_ctx *ctx)
{
    struct milter_role *mr = xcalloc(1, sizeof(*mr));

    mr->cfg = ctx->cfg;
    mr->chrooted = ctx->plan.chroot_dir != NULL;
    ctx->state = mr;
}

static void milter_start(struct role_ctx *ctx)
{
    struct milter_role *mr = ctx->state;
    char dir[LMTP_TARGET_MAX];

    mr->jobs = role_jobs_start(ctx->base, "milter", IPC_MILTER_JOB, mr->buf, sizeof(mr->buf),
                               take_job, mr);
    role_jobs_also(mr->jobs, IPC_MILTER_CHECK, take_check);
    config_milter_socket_dir(mr->cfg, dir, sizeof(dir));
    log_info("event=milter_ready milters=%zu socket_dir=\"%s\" chrooted=%s",
             mr->cfg->milter_count, dir[0] ? dir : "none",
             ctx->plan.chroot_dir ? "yes" : "no");
}

static void milter_cleanup(struct role_ctx *ctx)
{
    struct milter_role *mr = ctx->state;

    close(ROLE_FD_CHANNEL);
    role_jobs_free(mr->jobs);
    free(mr);
    ctx->state = NULL;
}

const struct role_ops role_milter_ops = {
    .name = "milter",
    .sandbox = SANDBOX_MILTER,
    .prepare = milter_prepare,
    .start = milter_start,
    .cleanup = milter_cleanup,
};

/*
 * pickup_milters.c - mail from `sealpost sendmail` through the milters
 * of [queue] sendmail_milters (Postfix's non_smtpd_milters): so that
 * OpenDKIM signs what cron and web applications send, as it signs
 * authenticated submission.
 *
 * A file's message is written into the spool as usual, then handed to
 * the milter gate instead of being committed; the file stays in the
 * maildrop (and is skipped by later rounds) until the verdict:
 *  - commit: the message (as the milters changed it) is committed, then
 *    the file is removed, as without milters;
 *  - discard: nothing is kept, the file is removed (logged);
 *  - refuse 5xx: the sender gets a DSN with the milter's reply, the file
 *    is removed;
 *  - refuse 4xx (a tempfail, or the milters unavailable with
 *    default_action = tempfail): the file stays and is tried again after
 *    PICKUP_MILTER_RETRY seconds.
 * Refused recipients (no such mailbox) get their DSN only once the file
 * is done with, so a retried file never reports them twice. At most
 * PICKUP_MILTER_PENDING files are with the milters at once.
 *
 * Trusts: the gate's verdict (milter_gate.c checked what the milters
 * said); the maildrop file as pickup.c does (read again, checked again).
 */
#include "queue/pickup_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/bounce.h"
#include "queue/milter_gate.h"
#include "util/log.h"
#include "util/xalloc.h"

#define PICKUP_MILTER_PENDING 100   /* files with the milters at once */
#define PICKUP_MILTER_RETRY 60      /* seconds before a tempfailed file is tried again */

struct pickup_pending {
    char name[256];                 /* the maildrop entry */
    char logname[300];
    uid_t uid;
    dev_t dev;
    ino_t ino;
    int fd;                         /* the file while with the milters, else -1 */
    char id[QUEUE_ID_LEN + 1];      /* its message in the spool */
    time_t retry_at;                /* after a tempfail: not before; 0 while asked */
    struct pickup_pending *next;
};

static void drop(struct pickup *p, struct pickup_pending *pd)
{
    struct pickup_pending **pp = &p->pending;

    while (*pp != pd)
        pp = &(*pp)->next;
    *pp = pd->next;
    p->pending_count--;
    if (pd->fd >= 0)
        close(pd->fd);
    free(pd);
}

bool pickup_milters_busy(struct pickup *p, const struct stat *st)
{
    time_t now = time(NULL);

    for (struct pickup_pending *pd = p->pending, *next; pd; pd = next) {
        next = pd->next;
        if (pd->retry_at && pd->retry_at <= now) {
            drop(p, pd);            /* waited long enough: a round takes it again */
            continue;
        }
        if (pd->dev == st->st_dev && pd->ino == st->st_ino)
            return true;
    }
    return false;
}

bool pickup_milters_full(const struct pickup *p)
{
    return p->pending_count >= PICKUP_MILTER_PENDING;
}

/* The file is done with: the DSN for its refused recipients (read from
 * the file again), then it goes. */
static void finish_file(struct pickup *p, struct pickup_pending *pd, const char *id)
{
    struct entry e = { .name = pd->name, .uid = pd->uid };
    bool keep[MAILDROP_RCPTS_MAX];
    const char *refused[MAILDROP_RCPTS_MAX];
    char why[300];
    size_t hlen;

    memcpy(e.logname, pd->logname, sizeof(e.logname));
    if (fstat(pd->fd, &e.lst) == 0 && (hlen = pickup_read_head(p, pd->fd, &e.lst, why,
                                                                sizeof(why))) > 0) {
        if (pickup_check_rcpts(p, keep, refused) > 0)
            pickup_bounce_refused(p, &e, pd->fd, hlen, keep, refused);
        if (id[0] != '-')
            pickup_log_pickup(p, &e, id);
    }
    pickup_remove_taken(p, &e, id);
}

/* A DSN for every recipient with the milter's reply: a 5xx at the end of
 * the data is what an SMTP client would have been told. */
static void bounce_all(struct pickup *p, struct pickup_pending *pd, const char *reply)
{
    struct stat st;
    char why[300], new_id[QUEUE_ID_LEN + 1] = "", err[256] = "", status[16] = "5.7.1";
    struct queued_message m = { .fd = pd->fd };
    struct bounce_rcpt *br;
    size_t hlen;

    if (fstat(pd->fd, &st) < 0 || (hlen = pickup_read_head(p, pd->fd, &st, why,
                                                          sizeof(why))) == 0)
        return;
    if (sscanf(reply, "%*3d %15[0-9.]", status) != 1 || status[0] != '5')
        snprintf(status, sizeof(status), "5.7.1");
    m.body_offset = (long)hlen;
    m.body_size = p->head->size;
    envelope_init(&m.env);
    snprintf(m.env.id, sizeof(m.env.id), "%s", "maildrop");
    snprintf(m.env.from, sizeof(m.env.from), "%s", p->head->from);
    for (size_t i = 0; i < p->head->rcpt_count; i++)
        envelope_add_rcpt(&m.env, p->head->rcpts[i], 0, NULL);
    m.state = xcalloc(m.env.rcpt_count, sizeof(*m.state));
    br = xcalloc(m.env.rcpt_count, sizeof(*br));
    for (size_t i = 0; i < m.env.rcpt_count; i++)
        br[i] = (struct bounce_rcpt){ i, BOUNCE_FAILED, status, NULL, reply, time(NULL) };
    if (!bounce_queue(p->q, p->cfg, &m, br, m.env.rcpt_count, new_id, err, sizeof(err)))
        log_info("event=pickup_no_bounce uid=%u file=%s reason=\"%s\"", (unsigned)pd->uid,
                 pd->logname, err);
    free(br);
    free(m.state);
    envelope_clear(&m.env);
}

static struct pickup_pending *find(struct pickup *p, const char *id)
{
    for (struct pickup_pending *pd = p->pending; pd; pd = pd->next)
        if (pd->retry_at == 0 && strcmp(pd->id, id) == 0)
            return pd;
    return NULL;
}

static void verdict(struct queue_msg *msg, const char *id, int outcome, const char *reply,
                    void *arg)
{
    struct pickup *p = arg;
    struct pickup_pending *pd = find(p, id);
    char q[4 * 600];

    if (pd == NULL) {               /* cannot happen: every job is ours */
        log_error("event=pickup_milters_lost id=%s", id);
        if (msg)
            queue_msg_abort(msg);
        return;
    }
    if (outcome == MILTER_GATE_COMMIT) {
        if (queue_msg_commit_now(msg))
            finish_file(p, pd, id);     /* else commit_failed is logged: tried again */
        drop(p, pd);
        return;
    }
    log_quote(q, sizeof(q), reply, strlen(reply));
    if (outcome == MILTER_GATE_DISCARD) {
        log_info("event=pickup_discarded id=%s uid=%u file=%s", id, (unsigned)pd->uid,
                 pd->logname);
        finish_file(p, pd, "-");
    } else if (reply[0] == '5') {
        log_info("event=pickup_refused id=%s uid=%u file=%s reply=%s", id, (unsigned)pd->uid,
                 pd->logname, q);
        bounce_all(p, pd, reply);
        finish_file(p, pd, "-");
    } else {
        log_info("event=pickup_deferred id=%s uid=%u file=%s reply=%s retry=%ds", id,
                 (unsigned)pd->uid, pd->logname, q, PICKUP_MILTER_RETRY);
        close(pd->fd);
        pd->fd = -1;
        pd->retry_at = time(NULL) + PICKUP_MILTER_RETRY;
        return;                     /* stays in the list until then */
    }
    drop(p, pd);
}

bool pickup_milters_ask(struct pickup *p, struct entry *e, int fd, size_t hlen,
                        struct queue_msg *msg)
{
    struct pickup_pending *pd;
    char why[300] = "";
    enum copy_result r = COPY_OK;

    if (!pickup_write_received(p, msg, e->uid) ||
        (r = pickup_copy_message(p, fd, hlen, msg, why, sizeof(why))) != COPY_OK) {
        queue_msg_abort(msg);
        close(fd);
        if (r == COPY_BAD_FILE) {
            pickup_reject(p, e, why);
            return true;
        }
        log_error("event=pickup_failed file=%s uid=%u error=\"spool: %s\"", e->logname,
                  (unsigned)e->uid, why[0] ? why : strerror(errno));
        return false;
    }
    pd = xcalloc(1, sizeof(*pd));
    snprintf(pd->name, sizeof(pd->name), "%s", e->name);
    memcpy(pd->logname, e->logname, sizeof(pd->logname));
    pd->uid = e->uid;
    pd->dev = e->lst.st_dev;
    pd->ino = e->lst.st_ino;
    pd->fd = fd;
    snprintf(pd->id, sizeof(pd->id), "%s", queue_msg_id(msg));
    pd->next = p->pending;
    p->pending = pd;
    p->pending_count++;
    log_info("event=pickup_milters id=%s uid=%u file=%s", pd->id, (unsigned)e->uid,
             e->logname);
    /* no {auth_authen}: a local user did not log in to SMTP (Postfix
     * sends none for non-SMTP mail either) */
    queue_server_ask_milters(p->qs, msg);           /* may answer at once */
    return true;
}

void pickup_milters_start(struct pickup *p)
{
    queue_server_on_pickup(p->qs, verdict, p);
}

void pickup_milters_free(struct pickup *p)
{
    queue_server_on_pickup(p->qs, NULL, NULL);  /* what the gate still has: aborted */
    while (p->pending)
        drop(p, p->pending);
}

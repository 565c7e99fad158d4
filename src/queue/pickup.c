/*
 * pickup.c - local submission: maildrop files into the queue (see
 * pickup.h, docs/SPOOL.md "maildrop/").
 *
 * Trusts: fstat's st_uid for who sent a file (a user can chown a file to
 * no one else; a hard link to another's file has two links and is
 * refused), /etc/passwd for that uid's
 * name (only a name of safe characters is used). Nothing a file says is
 * believed beyond what maildrop_head_parse and the message check accept,
 * and every file is bounded before it is read.
 */
#define _GNU_SOURCE 1
#include "queue/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/alias_expand.h"
#include "mail/envelope.h"
#include "mail/maildrop_format.h"
#include "mail/received.h"
#include "mail/recipient.h"
#include "queue/bounce.h"
#include "queue/pickup_internal.h"
#include "util/log.h"
#include "util/xalloc.h"

#define COPY_CHUNK  65536



/* The uid's login name from /etc/passwd when it is made of safe
 * characters, else "". fgetpwent reads the file only (no NSS, no
 * sockets: the queue's seccomp filter has none). */
void pickup_user_name(uid_t uid, char *out, size_t outsize)
{
    FILE *fp = fopen("/etc/passwd", "re");
    struct passwd *pw;

    out[0] = '\0';
    if (fp == NULL)
        return;
    while ((pw = fgetpwent(fp)) != NULL) {
        if (pw->pw_uid != uid)
            continue;
        if (strlen(pw->pw_name) < outsize && strlen(pw->pw_name) <= 32 &&
            strspn(pw->pw_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789._-") == strlen(pw->pw_name))
            snprintf(out, outsize, "%s", pw->pw_name);
        break;
    }
    fclose(fp);
}

static bool is_ignored(const struct pickup *p, const struct stat *st)
{
    for (size_t i = 0; i < IGNORED_MAX; i++)
        if (p->ignored[i].ino == st->st_ino && p->ignored[i].dev == st->st_dev &&
            p->ignored[i].ctime.tv_sec == st->st_ctim.tv_sec &&
            p->ignored[i].ctime.tv_nsec == st->st_ctim.tv_nsec)
            return true;
    return false;
}

/* Leave this entry alone until the next start (it could not be moved). */
static void ignore(struct pickup *p, const struct stat *st)
{
    p->ignored[p->next_ignored].dev = st->st_dev;
    p->ignored[p->next_ignored].ino = st->st_ino;
    p->ignored[p->next_ignored].ctime = st->st_ctim;
    p->next_ignored = (p->next_ignored + 1) % IGNORED_MAX;
}

/* Out of the maildrop, into maildrop-rejected/ under "TIME.NAME". */
void pickup_reject(struct pickup *p, const struct entry *e, const char *reason)
{
    char target[300], logtarget[700];

    snprintf(target, sizeof(target), "%lld.%.200s", (long long)time(NULL), e->name);
    if (renameat2(p->dirfd, e->name, p->rejfd, target, RENAME_NOREPLACE) == 0 ||
        (errno == EINVAL && renameat(p->dirfd, e->name, p->rejfd, target) == 0)) {
        log_warn("event=pickup_rejected file=%s uid=%u reason=\"%s\" moved_to=%s/%s",
                 e->logname, (unsigned)e->uid, reason, MAILDROP_REJECTED_DIR,
                 log_value(logtarget, sizeof(logtarget), target));
        return;
    }
    log_error("event=pickup_rejected file=%s uid=%u reason=\"%s\" moved_to=none "
              "error=\"%s\" (left in place, ignored until restart)",
              e->logname, (unsigned)e->uid, reason, strerror(errno));
    ignore(p, &e->lst);
}

static bool read_at(int fd, char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return true;
}

/* Open e's file and check what it is; -1 (already rejected or gone)
 * when it is not a message file. */
static int open_checked(struct pickup *p, struct entry *e, struct stat *st)
{
    uint64_t limit = p->cfg->max_message_size + MAILDROP_HEAD_MAX;
    int fd = openat(p->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    char why[160];

    if (fd < 0) {
        if (errno == ENOENT)
            return -1;
        snprintf(why, sizeof(why), "%s", errno == ELOOP ? "a symbolic link" : strerror(errno));
        pickup_reject(p, e, why);
        return -1;
    }
    if (fstat(fd, st) < 0) {
        snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
    } else if (!S_ISREG(st->st_mode)) {
        snprintf(why, sizeof(why), "not a regular file");
    } else if (st->st_nlink != 1) {
        snprintf(why, sizeof(why), "%ju links: a hard link", (uintmax_t)st->st_nlink);
    } else if ((uint64_t)st->st_size > limit) {
        snprintf(why, sizeof(why), "too large: %jd octets (at most %" PRIu64 ")",
                 (intmax_t)st->st_size, limit);
    } else {
        e->uid = st->st_uid;
        return fd;
    }
    e->uid = st->st_uid;
    close(fd);
    pickup_reject(p, e, why);
    return -1;
}

/* The head, checked against the file and the config; its length or 0. */
size_t pickup_read_head(struct pickup *p, int fd, const struct stat *st, char *why,
                        size_t whysize)
{
    size_t n = (size_t)st->st_size < MAILDROP_HEAD_MAX ? (size_t)st->st_size : MAILDROP_HEAD_MAX;
    size_t hlen;

    if (!read_at(fd, p->buf, n, 0)) {
        snprintf(why, whysize, "read error or truncated");
        return 0;
    }
    hlen = maildrop_head_parse(p->buf, n, p->head, why, whysize);
    if (hlen == 0)
        return 0;
    if (p->head->size != (uint64_t)st->st_size - hlen) {
        snprintf(why, whysize, "size %" PRIu64 " but %jd octets follow the head",
                 p->head->size, (intmax_t)(st->st_size - (off_t)hlen));
        return 0;
    }
    if (p->head->size > p->cfg->max_message_size ||
        p->head->rcpt_count > p->cfg->max_recipients) {
        snprintf(why, whysize, "over [server] max_message_size or max_recipients");
        return 0;
    }
    return hlen;
}

/* The trace header: who (by uid, as the kernel says) submitted it. */
bool pickup_write_received(struct pickup *p, struct queue_msg *msg, uid_t uid)
{
    char user[40], name[48] = "", date[64], line[600];
    int n;

    pickup_user_name(uid, user, sizeof(user));
    if (user[0])
        snprintf(name, sizeof(name), " (%s)", user);
    rfc5322_date(time(NULL), date, sizeof(date));
    n = snprintf(line, sizeof(line),
                 "Received: by %s (sealpost sendmail, from userid %u%s)\r\n\tid %s; %s\r\n",
                 p->cfg->hostname, (unsigned)uid, name, queue_msg_id(msg), date);
    return n > 0 && (size_t)n < sizeof(line) && queue_msg_write(msg, line, (size_t)n);
}



/* Copy and check the message after the head; why says what failed. */
enum copy_result pickup_copy_message(struct pickup *p, int fd, size_t hlen, struct queue_msg *msg,
                         char *why, size_t whysize)
{
    struct maildrop_body_check check;
    uint64_t left = p->head->size;
    off_t off = (off_t)hlen;

    maildrop_body_begin(&check, p->cfg->max_text_line_length - 2);
    while (left > 0) {
        size_t n = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;

        if (!read_at(fd, p->buf, n, off)) {
            snprintf(why, whysize, "read error or truncated");
            return COPY_BAD_FILE;
        }
        if (!maildrop_body_feed(&check, p->buf, n))
            break;
        if (!queue_msg_write(msg, p->buf, n)) {
            snprintf(why, whysize, "spool write: %s", strerror(queue_msg_error(msg)));
            return COPY_SPOOL_FAULT;
        }
        left -= n;
        off += (off_t)n;
    }
    if (!maildrop_body_end(&check)) {
        snprintf(why, whysize, "message: %s", check.bad);
        return COPY_BAD_FILE;
    }
    if (check.eight_bit && !p->head->eight_bit) {
        snprintf(why, whysize, "message: 8-bit octets in a 7bit message");
        return COPY_BAD_FILE;
    }
    return COPY_OK;
}

/* The envelope of the maildrop file's recipients for which keep[i] is
 * `keep` (all of them when keep is NULL). */
static void head_envelope(const struct pickup *p, const bool *keep, bool which,
                          struct envelope *env)
{
    const struct maildrop_head *h = p->head;

    envelope_init(env);
    env->arrival = time(NULL);
    snprintf(env->helo, sizeof(env->helo), "%s", p->cfg->hostname);
    snprintf(env->from, sizeof(env->from), "%s", h->from);
    env->body = h->eight_bit ? BODY_8BITMIME : BODY_7BIT;
    env->smtputf8 = h->smtputf8;
    for (size_t i = 0; i < h->rcpt_count; i++)
        if (keep == NULL || keep[i] == which)
            envelope_add_rcpt(env, h->rcpts[i], 0, NULL);
}

/*
 * The recipients as the policy sees them, as for RCPT over SMTP: a local
 * address that no mailbox, alias or catch-all takes, or an alias chain
 * that loops or runs too deep, is refused (refused[i] its DSN status,
 * keep[i] false); the others are kept. Returns how many were refused.
 */
size_t pickup_check_rcpts(const struct pickup *p, bool *keep, const char **refused)
{
    const struct recipient_policy *pol = queue_server_recipients(p->qs);
    size_t n = 0;

    for (size_t i = 0; i < p->head->rcpt_count; i++) {
        struct recipient_expansion x = { .max = p->cfg->max_alias_recipients };
        enum expand_result r = recipient_expand(pol, p->head->rcpts[i], &x);

        recipient_expansion_clear(&x);
        refused[i] = r == EXPAND_UNKNOWN                      ? "5.1.1"
                     : r == EXPAND_LOOP || r == EXPAND_TOO_DEEP ? "5.4.6"
                     : r == EXPAND_TOO_MANY                   ? "5.5.3" : NULL;
        keep[i] = refused[i] == NULL;
        n += !keep[i];
    }
    return n;
}

static const char *refusal_text(const char *status)
{
    return strcmp(status, "5.1.1") == 0   ? "no such mailbox here"
           : strcmp(status, "5.4.6") == 0 ? "routing loop detected (aliases)"
                                          : "alias expands to too many recipients";
}

/* A DSN to the sender for the refused recipients, made from the maildrop
 * file itself (fd, its message at hlen), as the scheduler makes one for
 * a failed delivery. Logged either way; the file goes. */
void pickup_bounce_refused(struct pickup *p, const struct entry *e, int fd, size_t hlen,
                           const bool *keep, const char **refused)
{
    struct queued_message m = { .fd = fd, .body_offset = (long)hlen,
                                .body_size = p->head->size };
    struct bounce_rcpt br[MAILDROP_RCPTS_MAX];
    char new_id[QUEUE_ID_LEN + 1] = "", err[256] = "", q[ADDR_PATH_MAX * 4 + 8];
    size_t n = 0;

    head_envelope(p, keep, false, &m.env);
    snprintf(m.env.id, sizeof(m.env.id), "%s", "maildrop");
    m.state = xcalloc(m.env.rcpt_count, sizeof(*m.state));
    for (size_t i = 0; i < p->head->rcpt_count; i++) {
        if (keep[i])
            continue;
        log_info("event=pickup_refused uid=%u rcpt=%s dsn=%s reason=\"%s\" file=%s",
                 (unsigned)e->uid, log_value(q, sizeof(q), p->head->rcpts[i]), refused[i],
                 refusal_text(refused[i]), e->logname);
        br[n] = (struct bounce_rcpt){ n, BOUNCE_FAILED, refused[i], NULL,
                                      refusal_text(refused[i]), time(NULL) };
        n++;
    }
    if (!bounce_queue(p->q, p->cfg, &m, br, n, new_id, err, sizeof(err)))
        log_info("event=pickup_no_bounce uid=%u file=%s reason=\"%s\"", (unsigned)e->uid,
                 e->logname, err);
    free(m.state);
    envelope_clear(&m.env);
}

enum new_result { NEW_OK, NEW_NOBODY, NEW_REFUSED, NEW_SPOOL_FAILED };

/* The message of the kept recipients, its aliases expanded by the queue
 * as for SMTP (mail/alias_expand.h), into *msg; NEW_NOBODY when no
 * recipient was kept, NEW_REFUSED (why) when the expansion fails. */
static enum new_result new_message(struct pickup *p, const bool *keep, struct queue_msg **msg,
                                   char *why, size_t whysize)
{
    struct envelope env, expanded;
    bool ok;

    *msg = NULL;
    head_envelope(p, keep, true, &env);
    if (env.rcpt_count == 0) {
        envelope_clear(&env);
        return NEW_NOBODY;
    }
    ok = alias_expand_envelope(queue_server_recipients(p->qs), p->cfg->max_alias_recipients,
                               &env, &expanded, why, whysize);
    envelope_clear(&env);
    if (!ok)
        return NEW_REFUSED;
    *msg = queue_msg_new(p->q, &expanded);
    envelope_clear(&expanded);
    return *msg ? NEW_OK : NEW_SPOOL_FAILED;
}

void pickup_log_pickup(const struct pickup *p, const struct entry *e, const char *id)
{
    char user[40], from[ADDR_PATH_MAX * 4 + 8], first[ADDR_PATH_MAX * 4 + 8];

    pickup_user_name(e->uid, user, sizeof(user));
    log_info("event=pickup id=%s uid=%u user=%s sender=%s rcpts=%zu rcpt=%s size=%" PRIu64
             " file=%s", id, (unsigned)e->uid, user[0] ? user : "-",
             p->head->from[0] ? log_value(from, sizeof(from), p->head->from) : "<>",
             p->head->rcpt_count, log_value(first, sizeof(first), p->head->rcpts[0]),
             p->head->size, e->logname);
}

/* One file into the queue. false: the spool failed (stop this round;
 * the file stays for the next). */
/* The file is done with (queued, or bounced): remove it. */
void pickup_remove_taken(struct pickup *p, struct entry *e, const char *id)
{
    if (unlinkat(p->dirfd, e->name, 0) < 0) {
        log_error("event=pickup_unlink_failed id=%s file=%s error=\"%s\" (queued; the file "
                  "is ignored now, and queued again after a restart unless removed)", id,
                  e->logname, strerror(errno));
        ignore(p, &e->lst);
    }
}

/* The message into the spool, durably, its id into id: 1. 0: the file
 * was bad (moved aside), -1: the spool failed (logged; the file stays). */
static int queue_copy(struct pickup *p, struct entry *e, int fd, size_t hlen,
                      struct queue_msg *msg, char *id)
{
    char why[300] = "";
    enum copy_result r = COPY_OK;

    if (!pickup_write_received(p, msg, e->uid) ||
        (r = pickup_copy_message(p, fd, hlen, msg, why, sizeof(why))) != COPY_OK) {
        queue_msg_abort(msg);
        if (r == COPY_BAD_FILE) {
            pickup_reject(p, e, why);
            return 0;
        }
        log_error("event=pickup_failed file=%s uid=%u error=\"spool: %s\"", e->logname,
                  (unsigned)e->uid, why[0] ? why : strerror(errno));
        return -1;
    }
    snprintf(id, QUEUE_ID_LEN + 1, "%s", queue_msg_id(msg));
    return queue_msg_commit_now(msg) ? 1 : -1;  /* commit_failed is logged; the file stays */
}

/* One file into the queue. false: the spool failed (stop this round;
 * the file stays for the next). Recipients the policy refuses get a DSN
 * (as a 550 at RCPT would have told an SMTP client). */
static bool take(struct pickup *p, struct entry *e)
{
    struct stat st;
    struct queue_msg *msg;
    bool keep[MAILDROP_RCPTS_MAX];
    const char *refused[MAILDROP_RCPTS_MAX];
    char why[300] = "", id[QUEUE_ID_LEN + 1] = "";
    size_t hlen, nrefused;
    int copied, fd = open_checked(p, e, &st);

    if (fd < 0)
        return true;
    hlen = pickup_read_head(p, fd, &st, why, sizeof(why));
    if (hlen == 0) {
        close(fd);
        pickup_reject(p, e, why);
        return true;
    }
    nrefused = pickup_check_rcpts(p, keep, refused);
    switch (new_message(p, keep, &msg, why, sizeof(why))) {
    case NEW_SPOOL_FAILED:
        close(fd);
        log_error("event=pickup_failed file=%s uid=%u error=\"spool: %s\"", e->logname,
                  (unsigned)e->uid, strerror(errno));
        return false;
    case NEW_REFUSED:
        close(fd);
        pickup_reject(p, e, why);
        return true;
    case NEW_OK:
        if (queue_server_sendmail_milters(p->qs))
            return pickup_milters_ask(p, e, fd, hlen, msg);   /* finished later */
        copied = queue_copy(p, e, fd, hlen, msg, id);
        if (copied <= 0) {
            close(fd);
            return copied == 0;         /* moved aside; or the spool failed: stop */
        }
        break;
    case NEW_NOBODY:
        break;
    }
    if (nrefused > 0)
        pickup_bounce_refused(p, e, fd, hlen, keep, refused);
    close(fd);
    pickup_remove_taken(p, e, id[0] ? id : "-");
    if (id[0])
        pickup_log_pickup(p, e, id);
    return true;
}

/* A ".tmp." file its writer never finished (killed, crashed). */
static void check_stale(struct pickup *p, struct entry *e)
{
    if (e->lst.st_mtime + PICKUP_STALE_SECONDS < time(NULL) && !is_ignored(p, &e->lst)) {
        e->uid = e->lst.st_uid;
        pickup_reject(p, e, "unfinished temporary file, abandoned");
    }
}

static bool budget_spent(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000 >=
           PICKUP_ROUND_BUDGET_MS;
}

/* One round: from where the last one stopped, at most PICKUP_BATCH
 * files taken, PICKUP_SCAN_MAX entries looked at and PICKUP_ROUND_BUDGET_MS
 * spent, so a folder full of junk or a flood of files costs bounded work
 * per second and cannot starve the files behind it; at the end of the
 * folder, back to its start for the next round. */
static void pickup_round(evutil_socket_t fd, short what, void *arg)
{
    struct pickup *p = arg;
    struct dirent *de;
    unsigned taken = 0, seen = 0;
    struct timespec start;

    (void)fd;
    (void)what;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (taken < PICKUP_BATCH && seen++ < PICKUP_SCAN_MAX && !budget_spent(&start)) {
        struct entry e = { 0 };

        errno = 0;
        de = readdir(p->dir);
        if (de == NULL) {
            if (errno != 0)
                log_error("event=pickup_failed error=\"readdir %s: %s\"", MAILDROP_DIR,
                          strerror(errno));
            rewinddir(p->dir);
            return;
        }
        e.name = de->d_name;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            fstatat(p->dirfd, de->d_name, &e.lst, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        e.uid = e.lst.st_uid;
        log_value(e.logname, sizeof(e.logname), de->d_name);
        if (de->d_name[0] == '.') {
            check_stale(p, &e);
            continue;
        }
        if (is_ignored(p, &e.lst) || pickup_milters_busy(p, &e.lst))
            continue;
        if (pickup_milters_full(p))
            return;
        taken++;
        if (!take(p, &e))
            return;
    }
}

/* spool/name, made when missing, ours, and set to mode; -1 with errno. */
static int open_dir(const char *spool, const char *name, mode_t mode)
{
    char path[4200];
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", spool, name);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && st.st_uid != geteuid())
        errno = EPERM;              /* not ours: someone else's folder */
    else if (fstat(fd, &st) == 0 && fchmod(fd, mode) == 0)
        return fd;
    close(fd);
    return -1;
}

/* The spool 0711 and the maildrop 1733 (docs/SECURITY.md): set here, by
 * their owner, at every start (the master cannot: no CAP_FOWNER, and the
 * unit's UMask would mask its mkdir modes). */
static int open_maildrop(const char *spool)
{
    if (chmod(spool, 0711) < 0)
        return -1;
    return open_dir(spool, MAILDROP_DIR, 01733);
}

struct pickup *pickup_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct queue_server *qs)
{
    struct pickup *p = xcalloc(1, sizeof(*p));
    struct timeval tv = { PICKUP_INTERVAL_MS / 1000, (PICKUP_INTERVAL_MS % 1000) * 1000 };

    p->cfg = cfg;
    p->q = q;
    p->qs = qs;
    p->dirfd = open_maildrop(cfg->spool);
    p->rejfd = p->dirfd < 0 ? -1 : open_dir(cfg->spool, MAILDROP_REJECTED_DIR, 0700);
    if (p->rejfd < 0) {
        log_error("event=pickup_disabled error=\"%s/%s: %s\" (local submission with "
                  "sealpost sendmail waits in the maildrop)", cfg->spool,
                  p->dirfd < 0 ? MAILDROP_DIR : MAILDROP_REJECTED_DIR, strerror(errno));
        if (p->dirfd >= 0)
            close(p->dirfd);
        free(p);
        return NULL;
    }
    p->dir = fdopendir(dup(p->dirfd));
    if (p->dir == NULL) {
        log_error("event=pickup_disabled error=\"opendir %s: %s\"", MAILDROP_DIR,
                  strerror(errno));
        close(p->dirfd);
        close(p->rejfd);
        free(p);
        return NULL;
    }
    p->head = xmalloc(sizeof(*p->head));
    p->buf = xmalloc(MAILDROP_HEAD_MAX > COPY_CHUNK ? MAILDROP_HEAD_MAX : COPY_CHUNK);
    pickup_milters_start(p);
    p->timer = event_new(base, -1, EV_PERSIST, pickup_round, p);
    event_add(p->timer, &tv);
    event_active(p->timer, EV_TIMEOUT, 0);  /* a first round now */
    return p;
}

void pickup_free(struct pickup *p)
{
    if (p == NULL)
        return;
    pickup_milters_free(p);
    event_free(p->timer);
    closedir(p->dir);
    close(p->dirfd);
    close(p->rejfd);
    free(p->head);
    free(p->buf);
    free(p);
}

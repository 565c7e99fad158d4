/*
 * milter_conv.c - one milter conversation about one message (see
 * milter_conv.h): the connection, the events, and what the replies mean.
 * The form of each packet is milter_proto.c's.
 *
 * Trusts: the facts (from the queue); nothing the milter sends (every
 * reply passes milter_reply_decode, and here only the replies that fit
 * the step and the negotiated actions are taken).
 */
#include "milter/milter_conv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "milter/milter_proto.h"
#include "util/fileio.h"

/* The longest field name we send (RFC 5322 line limit). */
#define FIELD_NAME_SEND_MAX 998

static struct milter_packet pkt;                /* 64 KiB */
static unsigned char rbuf[MILTER_PACKET_MAX];   /* one reply */
static struct milter_reply rep;

enum step { STEP_NEXT, STEP_FINAL, STEP_ERROR };

struct conv {
    const char *name;
    const struct milter_facts *f;
    int fd;
    unsigned timeout;
    uint32_t version, actions, protocol;
    bool has_symlist[MILTER_STAGES];
    char symlist[MILTER_STAGES][MILTER_SYMLIST_MAX + 1];
    char skip;                          /* event kind skipped after SMFIR_SKIP */
    struct milter_outcome *out;
    size_t first_edit;                  /* out->edit_count on entry */
    bool mail_sent;                     /* a message was begun: ABORT it if not done */
    bool eom_sent;                      /* no ABORT needed after EOM */
    unsigned hidden;                    /* header fields not shown so far */
    /* This milter's answer, into out only when the conversation worked. */
    enum milter_verdict verdict;
    char reply[MILTER_REPLY_MAX + 1];
    bool quarantine;
    char reason[MILTER_REPLY_MAX + 1];
    bool body_replaced, body_locked;
    char *body;
    size_t body_len, body_cap, body_max;
    char *err;
    size_t errsize;
};

__attribute__((format(printf, 2, 3)))
static bool cfail(struct conv *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errsize, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- I/O ----------------------------------------------------------------- */

static bool send_packet(struct conv *c)
{
    const unsigned char *p = pkt.buf;
    size_t len = pkt.len;

    while (len > 0) {
        ssize_t n;

        if (!fd_wait(c->fd, POLLOUT, c->timeout))
            return cfail(c, "sending to the milter: %s", strerror(errno));
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return cfail(c, "sending to the milter: %s", n < 0 ? strerror(errno) : "closed");
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool recv_all(struct conv *c, unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n;

        if (!fd_wait(c->fd, POLLIN, c->timeout)) {
            if (errno == ETIMEDOUT) {
                snprintf(c->err, c->errsize, "the milter did not answer within %us",
                         c->timeout);
                return false;
            }
            return cfail(c, "reading from the milter: %s", strerror(errno));
        }
        n = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return cfail(c, "%s", n == 0 ? "the milter closed the connection"
                                         : "reading from the milter failed");
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* One reply, decoded into rep. */
static bool read_reply(struct conv *c)
{
    unsigned char word[4];
    uint32_t len;

    if (!recv_all(c, word, 4))
        return false;
    if (!milter_packet_length(word, &len, c->err, c->errsize))
        return false;
    if (!recv_all(c, rbuf, len))
        return false;
    return milter_reply_decode(rbuf, len, &rep, c->err, c->errsize);
}

/* A unix connection; connect() waits at most timeout seconds when the
 * milter's listen queue is full (Linux applies SO_SNDTIMEO to it). */
static int open_unix(const char *path, unsigned timeout, char *err, size_t errsize)
{
    struct sockaddr_un un;
    struct timeval tv = { .tv_sec = (time_t)timeout, .tv_usec = 0 };
    int fd;

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(un.sun_path)) {
        snprintf(err, errsize, "milter socket path too long");
        return -1;
    }
    memcpy(un.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
        snprintf(err, errsize, "cannot connect to the milter at %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A TCP connection that takes at most timeout seconds to open. */
static int open_inet(const struct milter_target *t, unsigned timeout, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, soerr = 0;
    socklen_t el = sizeof(soerr);

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, t->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(t->port);
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, t->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(t->port);
        sl = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errsize, "milter host %s is not an IP address", t->host);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    /* Each event is two packets (its macros, then itself) before the
     * reply is read: without this the second waits for the milter's
     * delayed ACK, 40 ms a step on Linux. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        if (!fd_wait(fd, POLLOUT, timeout))
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0 || soerr != 0) {
            errno = soerr ? soerr : errno;
            goto fail;
        }
    }
    return fd;
fail:
    snprintf(err, errsize, "cannot connect to the milter at %s port %u: %s", t->host,
             (unsigned)t->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* ---- macros -------------------------------------------------------------- */

struct macros {
    char port[8];
    char underscore[512];
    const char *rcpt;                   /* {rcpt_addr} of the current RCPT */
};

/* The value of a macro we know, or NULL. name with or without braces. */
static const char *macro_value(const struct conv *c, const struct macros *m,
                               const char *name, size_t len)
{
    static const char *const names[] = {
        "j", "daemon_name", "v", "_", "client_addr", "client_name", "client_port",
        "tls_version", "cipher", "auth_authen", "i", "mail_addr", "rcpt_addr",
        "auth_type",
    };
    const struct milter_facts *f = c->f;
    const char *values[] = {
        /* {daemon_name} is the host name, as Postfix's default
         * milter_macro_daemon_name ($myhostname): rspamd takes it for its
         * Authentication-Results authserv-id */
        f->hostname, f->hostname, MILTER_DAEMON_NAME, m->underscore,
        f->client_addr, f->client_name, m->port, f->tls_version, f->tls_cipher,
        f->auth_user, f->queue_id, f->env->from, m->rcpt, f->auth_type,
    };

    if (len >= 2 && name[0] == '{' && name[len - 1] == '}') {
        name++;
        len -= 2;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return values[i];
    return NULL;
}

/* Send the macros of a stage (before its event, whether or not the event
 * itself is sent, as Postfix does). */
static bool send_macros(struct conv *c, const struct macros *m, enum milter_stage st,
                        char cmd)
{
    static const char *const defaults[MILTER_STAGES] = {
        "j {daemon_name} v _ {client_addr} {client_name} {client_port}",
        "{tls_version} {cipher}", "i {auth_type} {auth_authen} {mail_addr}", "i {rcpt_addr}",
        "i", "i", "i",
    };
    const char *list = c->has_symlist[st] ? c->symlist[st] : defaults[st];
    const char *names[32], *values[32];
    char namebuf[32][64];
    size_t n = 0;

    while (*list && n < 32) {
        size_t len = strcspn(list, " ,");
        const char *v = len ? macro_value(c, m, list, len) : NULL;

        if (v && *v && len < sizeof(namebuf[0])) {
            memcpy(namebuf[n], list, len);
            namebuf[n][len] = 0;
            names[n] = namebuf[n];
            values[n++] = v;
        }
        list += len + (list[len] != 0);
    }
    if (n == 0)
        return true;
    if (!milter_encode_macro(&pkt, cmd, names, values, n))
        return cfail(c, "macros of step '%c' too long", cmd);
    return send_packet(c);
}

/* ---- replies ------------------------------------------------------------- */

static enum step final(struct conv *c, enum milter_verdict v, const char *reply)
{
    c->verdict = v;
    snprintf(c->reply, sizeof(c->reply), "%s", reply);
    return STEP_FINAL;
}

static bool take_body(struct conv *c)
{
    if (c->body_locked)
        return cfail(c, "%s", "SMFIR_REPLBODY chunks interrupted by other replies");
    if (rep.body_len > c->body_max - c->body_len)
        return cfail(c, "%s", "replacement body larger than the message size limit");
    if (c->body_len + rep.body_len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 65536;
        char *nb;

        while (cap < c->body_len + rep.body_len)
            cap *= 2;
        if (!(nb = realloc(c->body, cap)))
            return cfail(c, "%s", "out of memory for the replacement body");
        c->body = nb;
        c->body_cap = cap;
    }
    if (rep.body_len)
        memcpy(c->body + c->body_len, rep.body, rep.body_len);
    c->body_len += rep.body_len;
    c->body_replaced = true;
    return true;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static bool take_edit(struct conv *c)
{
    static const struct { char cmd; uint32_t flag; enum milter_edit_kind kind; } map[] = {
        { SMFIR_ADDHEADER, SMFIF_ADDHDRS, MILTER_EDIT_ADD_HEADER },
        { SMFIR_INSHEADER, SMFIF_ADDHDRS, MILTER_EDIT_INSERT_HEADER },
        { SMFIR_CHGHEADER, SMFIF_CHGHDRS, MILTER_EDIT_CHANGE_HEADER },
        { SMFIR_ADDRCPT, SMFIF_ADDRCPT, MILTER_EDIT_ADD_RCPT },
        { SMFIR_ADDRCPT_PAR, SMFIF_ADDRCPT_PAR, MILTER_EDIT_ADD_RCPT },
        { SMFIR_DELRCPT, SMFIF_DELRCPT, MILTER_EDIT_DELETE_RCPT },
        { SMFIR_CHGFROM, SMFIF_CHGFROM, MILTER_EDIT_CHANGE_FROM },
    };
    struct milter_edit *e;
    size_t i = 0;

    while (map[i].cmd != rep.cmd)
        i++;
    if (!(c->actions & map[i].flag))
        return cfail(c, "the milter sent '%c' without announcing it in OPTNEG", rep.cmd);
    if (c->out->edit_count >= MILTER_EDITS_MAX)
        return cfail(c, "more than %d edits", MILTER_EDITS_MAX);
    e = &c->out->edits[c->out->edit_count];
    memset(e, 0, sizeof(*e));
    e->kind = map[i].kind;
    /* Sendmail and Postfix read CHGHEADER index 0 as 1 (the first). */
    e->index = rep.cmd == SMFIR_CHGHEADER && rep.index == 0 ? 1 : rep.index;
    if (rep.name)
        snprintf(e->name, sizeof(e->name), "%s", rep.name);
    e->value = dup_n(rep.value, rep.value_len);
    e->args = rep.args ? dup_n(rep.args, strlen(rep.args)) : NULL;
    if (!e->value || (rep.args && !e->args)) {
        free(e->value);
        free(e->args);
        return cfail(c, "%s", "out of memory for an edit");
    }
    c->out->edit_count++;
    return true;
}

/* What one reply to event cmd means. */
static enum step on_reply(struct conv *c, char cmd, bool *more)
{
    bool eom = cmd == SMFIC_BODYEOB;

    *more = false;
    if (c->body_replaced && rep.cmd != SMFIR_REPLBODY)
        c->body_locked = true;
    switch (rep.cmd) {
    case SMFIR_CONTINUE:
        return STEP_NEXT;
    case SMFIR_SKIP:
        if (eom)
            break;
        c->skip = cmd;
        return STEP_NEXT;
    case SMFIR_ACCEPT:
        return final(c, MILTER_ACCEPT, "");
    case SMFIR_REJECT:
        return final(c, MILTER_REJECT, "550 5.7.1 Command rejected");
    case SMFIR_TEMPFAIL:
        return final(c, MILTER_TEMPFAIL, "451 4.7.1 Service unavailable - try again later");
    case SMFIR_REPLYCODE:
        return final(c, rep.reply[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL, rep.reply);
    case SMFIR_DISCARD:
        if (cmd == SMFIC_CONNECT || cmd == SMFIC_HELO)
            break;
        return final(c, MILTER_DISCARD, "");
    case SMFIR_PROGRESS:
        *more = true;
        return STEP_NEXT;
    case SMFIR_QUARANTINE:
        if (!(c->actions & SMFIF_QUARANTINE))
            break;
        c->quarantine = true;
        snprintf(c->reason, sizeof(c->reason), "%.*s", (int)rep.value_len, rep.value);
        *more = true;
        return STEP_NEXT;
    case SMFIR_REPLBODY:
        if (!eom)
            break;
        if (!(c->actions & SMFIF_CHGBODY))
            break;
        *more = true;
        return take_body(c) ? STEP_NEXT : STEP_ERROR;
    case SMFIR_ADDHEADER: case SMFIR_INSHEADER: case SMFIR_CHGHEADER:
    case SMFIR_ADDRCPT: case SMFIR_ADDRCPT_PAR: case SMFIR_DELRCPT: case SMFIR_CHGFROM:
        if (!eom)
            break;
        *more = true;
        return take_edit(c) ? STEP_NEXT : STEP_ERROR;
    default:
        break;
    }
    snprintf(c->err, c->errsize, "unexpected milter reply '%c' to '%c'", rep.cmd, cmd);
    return STEP_ERROR;
}

/*
 * Send the event in pkt (kind cmd) unless the milter asked not to see it
 * (no_flag) or skipped its kind, then wait for its replies unless it said
 * it will not answer (nr_flag).
 */
static enum step event(struct conv *c, char cmd, uint32_t no_flag, uint32_t nr_flag)
{
    unsigned progress = 0;
    bool more = true;
    enum step s = STEP_NEXT;

    if ((c->protocol & no_flag) || (c->skip && c->skip == cmd))
        return STEP_NEXT;
    if (c->skip != cmd)
        c->skip = 0;
    if (!send_packet(c))
        return STEP_ERROR;
    if (c->protocol & nr_flag)
        return STEP_NEXT;
    while (more && s == STEP_NEXT) {
        if (!read_reply(c))
            return STEP_ERROR;
        if (rep.cmd == SMFIR_PROGRESS && ++progress > MILTER_PROGRESS_MAX) {
            snprintf(c->err, c->errsize, "more than %d progress replies",
                     MILTER_PROGRESS_MAX);
            return STEP_ERROR;
        }
        s = on_reply(c, cmd, &more);
    }
    return s;
}

/* ---- the steps ------------------------------------------------------------ */

static bool negotiate(struct conv *c)
{
    milter_encode_optneg(&pkt, MILTER_PROTO_VERSION, MILTER_ACTIONS_OFFERED,
                         MILTER_PROTOCOL_OFFERED);
    if (!send_packet(c) || !read_reply(c))
        return false;
    if (rep.cmd != SMFIR_OPTNEG)
        return cfail(c, "the milter answered OPTNEG with '%c'", rep.cmd);
    if (rep.version < 2 || rep.version > MILTER_PROTO_VERSION) {
        snprintf(c->err, c->errsize, "the milter speaks protocol version %lu, not 2 to %d",
                 (unsigned long)rep.version, MILTER_PROTO_VERSION);
        return false;
    }
    if ((rep.actions & ~MILTER_ACTIONS_OFFERED) != 0) {
        snprintf(c->err, c->errsize, "the milter asks for actions 0x%lx we did not offer",
                 (unsigned long)(rep.actions & ~MILTER_ACTIONS_OFFERED));
        return false;
    }
    c->version = rep.version;
    c->actions = rep.actions;
    c->protocol = rep.protocol & MILTER_PROTOCOL_OFFERED;
    if (c->version < 4)                 /* no SMFIC_DATA before version 4 */
        c->protocol |= SMFIP_NODATA;
    for (int i = 0; i < MILTER_STAGES; i++)
        if (rep.symlist[i]) {
            c->has_symlist[i] = true;
            snprintf(c->symlist[i], sizeof(c->symlist[i]), "%s", rep.symlist[i]);
        }
    return true;
}

/* ESMTP args of MAIL as the envelope has them. */
static size_t mail_args(const struct envelope *env, char bufs[4][DSN_ENVID_MAX + 8],
                        const char *args[4])
{
    size_t n = 0;

    if (env->body != BODY_UNSPECIFIED)
        args[n++] = env->body == BODY_8BITMIME ? "BODY=8BITMIME" : "BODY=7BIT";
    if (env->smtputf8)
        args[n++] = "SMTPUTF8";
    if (env->ret != DSN_RET_UNSPECIFIED)
        args[n++] = env->ret == DSN_RET_FULL ? "RET=FULL" : "RET=HDRS";
    if (env->envid[0]) {
        snprintf(bufs[3], sizeof(bufs[3]), "ENVID=%s", env->envid);
        args[n++] = bufs[3];
    }
    return n;
}

static size_t rcpt_args(const struct envelope_rcpt *r, char notify[48],
                        char orcpt[DSN_ORCPT_MAX + 8], const char *args[2])
{
    size_t n = 0;

    if (r->notify) {
        if (r->notify & DSN_NOTIFY_NEVER)
            snprintf(notify, 48, "NOTIFY=NEVER");
        else
            snprintf(notify, 48, "NOTIFY=%s%s%s%s%s",
                     r->notify & DSN_NOTIFY_SUCCESS ? "SUCCESS" : "",
                     (r->notify & DSN_NOTIFY_SUCCESS) && (r->notify & 12u) ? "," : "",
                     r->notify & DSN_NOTIFY_FAILURE ? "FAILURE" : "",
                     (r->notify & DSN_NOTIFY_FAILURE) && (r->notify & DSN_NOTIFY_DELAY) ? "," : "",
                     r->notify & DSN_NOTIFY_DELAY ? "DELAY" : "");
        args[n++] = notify;
    }
    if (r->orcpt[0]) {
        snprintf(orcpt, DSN_ORCPT_MAX + 8, "ORCPT=%s", r->orcpt);
        args[n++] = orcpt;
    }
    return n;
}

static enum step envelope_steps(struct conv *c, struct macros *m)
{
    const struct milter_facts *f = c->f;
    struct in6_addr a6;
    char family = 'U';
    char bufs[4][DSN_ENVID_MAX + 8], notify[48], orcpt[DSN_ORCPT_MAX + 8];
    const char *args[4];
    size_t n;
    enum step s;

    if (inet_pton(AF_INET, f->client_addr, &a6) == 1)
        family = '4';
    else if (inet_pton(AF_INET6, f->client_addr, &a6) == 1)
        family = '6';
    if (!send_macros(c, m, MILTER_STAGE_CONNECT, SMFIC_CONNECT) ||
        !milter_encode_connect(&pkt, f->client_name, family, f->client_port, f->client_addr))
        return STEP_ERROR;
    if ((s = event(c, SMFIC_CONNECT, SMFIP_NOCONNECT, SMFIP_NR_CONN)) != STEP_NEXT ||
        f->upto == MILTER_UPTO_CONNECT)
        return s == STEP_NEXT ? STEP_FINAL : s;
    if (!send_macros(c, m, MILTER_STAGE_HELO, SMFIC_HELO) || !milter_encode_helo(&pkt, f->helo))
        return STEP_ERROR;
    if ((s = event(c, SMFIC_HELO, SMFIP_NOHELO, SMFIP_NR_HELO)) != STEP_NEXT)
        return s;
    n = mail_args(f->env, bufs, args);
    if (!send_macros(c, m, MILTER_STAGE_MAIL, SMFIC_MAIL) ||
        !milter_encode_addr(&pkt, SMFIC_MAIL, f->env->from, args, n))
        return STEP_ERROR;
    c->mail_sent = true;
    if ((s = event(c, SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL)) != STEP_NEXT ||
        f->upto == MILTER_UPTO_MAIL)
        return s == STEP_NEXT ? STEP_FINAL : s;
    for (size_t i = 0; i < f->env->rcpt_count; i++) {
        const struct envelope_rcpt *r = &f->env->rcpts[i];

        m->rcpt = r->addr;
        n = rcpt_args(r, notify, orcpt, args);
        if (!send_macros(c, m, MILTER_STAGE_RCPT, SMFIC_RCPT) ||
            !milter_encode_addr(&pkt, SMFIC_RCPT, r->addr, args, n))
            return STEP_ERROR;
        if ((s = event(c, SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT)) != STEP_NEXT)
            return s;
    }
    m->rcpt = "";
    if (f->upto == MILTER_UPTO_RCPT)
        return STEP_FINAL;
    if (!send_macros(c, m, MILTER_STAGE_DATA, SMFIC_DATA))
        return STEP_ERROR;
    milter_encode_empty(&pkt, SMFIC_DATA);
    return event(c, SMFIC_DATA, SMFIP_NODATA, SMFIP_NR_DATA);
}

/* ---- the message ------------------------------------------------------- */

/* Lines of the message, read with pread. */
struct reader {
    int fd;
    off_t pos, end;                     /* next file octet to read, end of message */
    size_t start, len;                  /* unread buffered octets: buf[start..len) */
    off_t line_off;                     /* file offset of the last line returned */
    unsigned char buf[MILTER_SEND_DATA_MAX];
};

static struct reader rd;

/* The next line (with its line end) or a piece of an overlong one:
 * 1 line, 0 end of message, -1 read error. */
static int next_line(struct reader *r, const unsigned char **line, size_t *n)
{
    unsigned char *lf;

    for (;;) {
        lf = r->len > r->start ? memchr(r->buf + r->start, '\n', r->len - r->start) : NULL;
        if (lf || r->pos >= r->end || (r->start == 0 && r->len == sizeof(r->buf)))
            break;
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
        size_t want = sizeof(r->buf) - r->len;
        if ((off_t)want > r->end - r->pos)
            want = (size_t)(r->end - r->pos);
        ssize_t got = pread(r->fd, r->buf + r->len, want, r->pos);
        if (got <= 0)
            return -1;
        r->len += (size_t)got;
        r->pos += got;
    }
    if (r->start == r->len)
        return 0;
    *line = r->buf + r->start;
    *n = lf ? (size_t)(lf - (r->buf + r->start)) + 1 : r->len - r->start;
    r->line_off = r->pos - (off_t)(r->len - r->start);
    r->start += *n;
    return 1;
}

/* The header field being gathered. */
struct field {
    bool active;
    size_t name_len, value_len;
    char name[FIELD_NAME_SEND_MAX + 1];
    char value[MILTER_SEND_DATA_MAX];
};

static struct field fld;

static void field_append(struct field *fl, const unsigned char *s, size_t n)
{
    size_t room = MILTER_SEND_DATA_MAX - 2 - fl->name_len - fl->value_len;

    if (n > room)
        n = room;
    memcpy(fl->value + fl->value_len, s, n);
    fl->value_len += n;
}

static enum step field_flush(struct conv *c)
{
    if (!fld.active)
        return STEP_NEXT;
    fld.active = false;
    if (c->hidden < c->f->hidden_fields) {     /* not shown (our Received:) */
        c->hidden++;
        return STEP_NEXT;
    }
    if (!milter_encode_header(&pkt, fld.name, fld.value, fld.value_len))
        return cfail(c, "%s", "a header field holds a NUL octet"), STEP_ERROR;
    return event(c, SMFIC_HEADER, SMFIP_NOHDRS, SMFIP_NR_HDR);
}

/* "Name:" at the start of a line: the name's length, else 0. */
static size_t field_start(const unsigned char *s, size_t n, size_t *colon)
{
    size_t i = 0, end;

    while (i < n && s[i] > 0x20 && s[i] < 0x7f && s[i] != ':')
        i++;
    end = i;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (end == 0 || end > FIELD_NAME_SEND_MAX || i >= n || s[i] != ':')
        return 0;
    *colon = i;
    return end;
}

/* One header line (line end removed); *body set when it ends the header. */
static enum step header_line(struct conv *c, const unsigned char *s, size_t n, bool *body)
{
    size_t nl, colon;
    enum step st;

    if (n == 0) {
        *body = true;
        return field_flush(c);
    }
    if ((s[0] == ' ' || s[0] == '\t') && fld.active) {
        field_append(&fld, (const unsigned char *)"\n", 1);
        field_append(&fld, s, n);
        return STEP_NEXT;
    }
    if ((st = field_flush(c)) != STEP_NEXT)
        return st;
    if ((nl = field_start(s, n, &colon)) == 0) {
        *body = true;                   /* not a header line: the body starts here */
        return STEP_NEXT;
    }
    memcpy(fld.name, s, nl);
    fld.name[nl] = 0;
    fld.name_len = nl;
    fld.value_len = 0;
    fld.active = true;
    colon++;
    if (colon < n && s[colon] == ' ')
        colon++;
    field_append(&fld, s + colon, n - colon);
    return STEP_NEXT;
}

/* HEADER events; *body_off = where the body starts. */
static enum step header_steps(struct conv *c, off_t *body_off)
{
    const unsigned char *line;
    size_t n;
    bool body = false, partial = false;
    int got = 0;
    enum step s = STEP_NEXT;

    memset(&fld, 0, sizeof(fld));
    while (s == STEP_NEXT && !body && (got = next_line(&rd, &line, &n)) == 1) {
        bool complete = line[n - 1] == '\n';
        size_t len = n - (complete ? 1 : 0);

        if (complete && len > 0 && line[len - 1] == '\r')
            len--;
        if (partial && fld.active)      /* the rest of an overlong line */
            field_append(&fld, line, len);
        else if ((s = header_line(c, line, len, &body)) == STEP_NEXT && body && len > 0)
            *body_off = rd.line_off;    /* a non-header line starts the body */
        partial = !complete;
        if (body && len == 0)
            *body_off = rd.line_off + (off_t)n;
    }
    if (s != STEP_NEXT)
        return s;
    if (!body) {
        if (got < 0)
            return cfail(c, "reading the message: %s", strerror(errno)), STEP_ERROR;
        *body_off = rd.end;
        s = field_flush(c);
    }
    return s;
}

static enum step body_steps(struct conv *c, off_t off)
{
    enum step s;

    while (off < rd.end) {
        size_t want = MILTER_SEND_DATA_MAX;
        ssize_t got;

        if ((off_t)want > rd.end - off)
            want = (size_t)(rd.end - off);
        got = pread(rd.fd, rd.buf, want, off);
        if (got <= 0)
            return cfail(c, "reading the message: %s", got < 0 ? strerror(errno) : "short"),
                   STEP_ERROR;
        off += got;
        if (!milter_encode_body(&pkt, rd.buf, (size_t)got))
            return STEP_ERROR;
        if ((s = event(c, SMFIC_BODY, SMFIP_NOBODY, SMFIP_NR_BODY)) != STEP_NEXT)
            return s;
        if (c->skip == SMFIC_BODY)
            break;
    }
    return STEP_NEXT;
}

static enum step message_steps(struct conv *c, struct macros *m)
{
    off_t body_off = 0;
    enum step s;

    memset(&rd, 0, sizeof(rd));
    rd.fd = c->f->msg_fd;
    rd.pos = c->f->msg_offset;
    rd.end = c->f->msg_offset + (off_t)c->f->msg_size;
    if ((s = header_steps(c, &body_off)) != STEP_NEXT)
        return s;
    if (!send_macros(c, m, MILTER_STAGE_EOH, SMFIC_EOH))
        return STEP_ERROR;
    milter_encode_empty(&pkt, SMFIC_EOH);
    if ((s = event(c, SMFIC_EOH, SMFIP_NOEOH, SMFIP_NR_EOH)) != STEP_NEXT)
        return s;
    if ((s = body_steps(c, body_off)) != STEP_NEXT)
        return s;
    if (!send_macros(c, m, MILTER_STAGE_EOM, SMFIC_BODYEOB))
        return STEP_ERROR;
    milter_encode_empty(&pkt, SMFIC_BODYEOB);
    c->eom_sent = true;
    s = event(c, SMFIC_BODYEOB, 0, 0);
    if (s == STEP_NEXT)
        s = STEP_FINAL;                 /* EOM answered: CONTINUE (or SKIP refused) */
    return s;
}

/* ---- the conversation ------------------------------------------------- */

static void forget_edits(struct milter_outcome *out, size_t from)
{
    for (size_t i = from; i < out->edit_count; i++) {
        free(out->edits[i].value);
        free(out->edits[i].args);
    }
    out->edit_count = from;
}

/* Hand this milter's answer to out. */
static void commit(struct conv *c, const char *milter_name)
{
    struct milter_outcome *out = c->out;

    if (c->body_replaced) {
        free(out->body);
        out->body = c->body;
        out->body_len = c->body_len;
        out->body_replaced = true;
        c->body = NULL;
    }
    if (c->quarantine && !out->quarantine) {
        out->quarantine = true;
        snprintf(out->reason, sizeof(out->reason), "%s", c->reason);
    }
    if (c->verdict != MILTER_CONTINUE &&
        (out->verdict == MILTER_CONTINUE || out->verdict == MILTER_ACCEPT)) {
        out->verdict = c->verdict;
        snprintf(out->reply, sizeof(out->reply), "%s", c->reply);
        snprintf(out->milter, sizeof(out->milter), "%s", milter_name);
    }
}

bool milter_converse(const char *milter_name, const struct milter_target *t,
                     const struct milter_facts *f, unsigned timeout_seconds,
                     struct milter_outcome *out, char *err, size_t errsize)
{
    static struct conv conv;
    struct conv *c = &conv;
    struct macros m;
    enum step s = STEP_ERROR;

    memset(c, 0, sizeof(*c));
    c->name = milter_name;
    c->f = f;
    c->timeout = timeout_seconds ? timeout_seconds : 1;
    c->out = out;
    c->first_edit = out->edit_count;
    c->body_max = f->body_max ? f->body_max : MILTER_BODY_MAX_DEFAULT;
    c->err = err;
    c->errsize = errsize;
    memset(&m, 0, sizeof(m));
    snprintf(m.port, sizeof(m.port), "%u", (unsigned)f->client_port);
    if (f->client_port == 0)
        m.port[0] = 0;
    snprintf(m.underscore, sizeof(m.underscore), "%s [%s]", f->client_name, f->client_addr);
    m.rcpt = "";
    c->fd = t->is_unix ? open_unix(t->path, c->timeout, err, errsize)
                       : open_inet(t, c->timeout, err, errsize);
    if (c->fd < 0)
        return false;
    if (negotiate(c) && (s = envelope_steps(c, &m)) == STEP_NEXT)
        s = message_steps(c, &m);
    if (s == STEP_FINAL) {
        /* The milter is done with the message: ABORT when it decided
         * before EOM, then QUIT. Failures here change nothing. */
        char quiet[8];
        char *e = c->err;

        c->err = quiet;
        c->errsize = sizeof(quiet);
        if (c->mail_sent && !c->eom_sent) {
            milter_encode_empty(&pkt, SMFIC_ABORT);
            (void)send_packet(c);
        }
        milter_encode_empty(&pkt, SMFIC_QUIT);
        (void)send_packet(c);
        c->err = e;
        c->errsize = errsize;
        commit(c, milter_name);
    } else {
        forget_edits(out, c->first_edit);
    }
    free(c->body);
    close(c->fd);
    return s == STEP_FINAL;
}

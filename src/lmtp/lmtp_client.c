/*
 * lmtp_client.c - LMTP transactions (RFC 2033) over cached connections
 * (see lmtp_client.h).
 *
 * A transaction: RSET on a reused connection, MAIL FROM (SIZE= and
 * BODY=8BITMIME / SMTPUTF8 when the server offers them), one RCPT TO
 * per recipient, DATA with dot-stuffing, then one reply per accepted
 * recipient, in RCPT order (RFC 2033 4.2). 2xx is delivered, 5xx failed
 * (bounced by the queue), anything else deferred. A timeout, a closed
 * connection or a reply the parser refuses defers every recipient that
 * has no reply yet and closes the connection.
 *
 * Trusts: nothing the server sends (every reply is bounded by
 * smtp_reply_parse; the read buffer is fixed).
 */
#include "lmtp/lmtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "delivery/smtp_reply.h"
#include "mail/remote_codec.h"
#include "util/fileio.h"
#include "util/log.h"

#define LMTP_CHUNK 16384

struct lmtp_conn {
    bool used;
    struct lmtp_target target;
    int fd;
    time_t last_used;
    bool fresh;                     /* no transaction yet: no RSET needed */
    struct smtp_caps caps;
    size_t rlen;
    char rbuf[SMTP_REPLY_LINE_MAX * 2];
};

static struct lmtp_conn conns[LMTP_CONN_MAX];
static struct smtp_reply reply;     /* 50 KiB: not on the stack */

void lmtp_target_name(const struct lmtp_target *t, char *out, size_t size)
{
    if (t->unix_socket)
        snprintf(out, size, "lmtp:unix:%s", t->path);
    else if (strchr(t->host, ':'))
        snprintf(out, size, "lmtp:[IPv6:%s]:%u", t->host, t->port);
    else
        snprintf(out, size, "lmtp:[%s]:%u", t->host, t->port);
}

static void conn_close(struct lmtp_conn *c)
{
    if (c->used && c->fd >= 0)
        close(c->fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

void lmtp_close_idle(time_t now, bool force)
{
    for (size_t i = 0; i < LMTP_CONN_MAX; i++)
        if (conns[i].used && (force || now - conns[i].last_used >= LMTP_IDLE_SECONDS))
            conn_close(&conns[i]);
}

static bool send_all(struct lmtp_conn *c, const char *buf, size_t len, unsigned timeout)
{
    while (len > 0) {
        ssize_t n;

        if (!fd_wait(c->fd, POLLOUT, timeout))
            return false;
        n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* One complete reply into `reply`; false with why on a timeout, EOF or a
 * reply the parser refuses. */
static bool read_reply(struct lmtp_conn *c, unsigned timeout, char *why, size_t whysize)
{
    smtp_reply_init(&reply);
    for (;;) {
        size_t used = 0;
        enum smtp_reply_status st = smtp_reply_parse(&reply, c->rbuf, c->rlen, &used);
        ssize_t n;

        if (used) {
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
        }
        if (st == REPLY_DONE)
            return true;
        if (st == REPLY_CONTINUE)
            continue;
        if (st != REPLY_NEED_MORE || c->rlen == sizeof(c->rbuf)) {
            snprintf(why, whysize, "bad reply from the LMTP server: %s",
                     smtp_reply_status_text(st == REPLY_NEED_MORE ? REPLY_ERR_TOO_LONG : st));
            return false;
        }
        if (!fd_wait(c->fd, POLLIN, timeout)) {
            snprintf(why, whysize, "LMTP server did not answer within %us", timeout);
            return false;
        }
        n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            snprintf(why, whysize, "LMTP server closed the connection");
            return false;
        }
        c->rlen += (size_t)n;
    }
}

/* A command and its reply; false with why when the connection broke. */
static bool command(struct lmtp_conn *c, const char *line, size_t len, unsigned timeout,
                    char *why, size_t whysize)
{
    if (!send_all(c, line, len, timeout)) {
        snprintf(why, whysize, "sending to the LMTP server: %s", strerror(errno));
        return false;
    }
    return read_reply(c, timeout, why, whysize);
}

static int open_socket(const struct lmtp_target *t, bool chrooted, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd;

    memset(&ss, 0, sizeof(ss));
    if (t->unix_socket) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        const char *path = chrooted ? strrchr(t->path, '/') : t->path;

        un->sun_family = AF_UNIX;
        size_t len = strlen(path);

        if (len >= sizeof(un->sun_path)) {  /* config_parse_deliver refuses these */
            snprintf(err, errsize, "socket path too long");
            return -1;
        }
        memcpy(un->sun_path, path, len + 1);
        sl = sizeof(*un);
    } else if (inet_pton(AF_INET, t->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)t->port);
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, t->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)t->port);
        sl = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errsize, "%s is not an IP address", t->host);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errsize, "cannot connect to the LMTP server: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* The message goes out in several writes before the reply is read:
     * without this the last one waits for the server's delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    return fd;
}

static struct lmtp_conn *find_cached(const struct lmtp_target *t)
{
    for (size_t i = 0; i < LMTP_CONN_MAX; i++)
        if (conns[i].used && memcmp(&conns[i].target, t, sizeof(*t)) == 0)
            return &conns[i];
    return NULL;
}

/* A free slot, or the least recently used one, closed. */
static struct lmtp_conn *free_slot(void)
{
    struct lmtp_conn *oldest = &conns[0];

    for (size_t i = 0; i < LMTP_CONN_MAX; i++) {
        if (!conns[i].used)
            return &conns[i];
        if (conns[i].last_used < oldest->last_used)
            oldest = &conns[i];
    }
    conn_close(oldest);
    return oldest;
}

/* Greeting and LHLO on a new connection. */
static bool greet(struct lmtp_conn *c, const char *hostname, unsigned timeout, char *err,
                  size_t errsize)
{
    char line[300], text[600];
    int n;

    if (!read_reply(c, timeout, err, errsize))
        return false;
    if (reply.code != 220)
        goto refused;
    n = snprintf(line, sizeof(line), "LHLO %s\r\n", hostname);
    if (!command(c, line, (size_t)n, timeout, err, errsize))
        return false;
    if (reply.code != 250)
        goto refused;
    smtp_caps_parse(&c->caps, &reply);
    return true;
refused:
    smtp_reply_format(&reply, text, sizeof(text));
    snprintf(err, errsize, "LMTP server refused the session: %s", text);
    return false;
}

/* An idle connection has nothing to read: bytes (replies nobody asked
 * for, which would shift every reply after them) or an EOF mean it is
 * not reused. */
static bool quiet(const struct lmtp_conn *c)
{
    struct pollfd p = { c->fd, POLLIN, 0 };

    return c->rlen == 0 && poll(&p, 1, 0) == 0;
}

struct lmtp_conn *lmtp_connect(const struct lmtp_target *t, bool chrooted, const char *hostname,
                               unsigned timeout, char *err, size_t errsize)
{
    struct lmtp_conn *c = find_cached(t);
    char why[256];

    if (c && quiet(c) && command(c, "RSET\r\n", 6, timeout, why, sizeof(why)) &&
        reply.code == 250)
        return c;
    if (c)
        conn_close(c);                  /* the server closed it meanwhile: a new one */
    c = free_slot();
    c->fd = open_socket(t, chrooted, err, errsize);
    if (c->fd < 0) {
        conn_close(c);
        return NULL;
    }
    c->used = true;
    c->target = *t;
    c->last_used = time(NULL);
    if (!greet(c, hostname, timeout, err, errsize)) {
        conn_close(c);
        return NULL;
    }
    return c;
}

/* r from the current reply: 2xx delivered, 5xx failed, else deferred. */
static void take_reply(struct smtp_result *r)
{
    memset(r, 0, sizeof(*r));
    r->code = reply.code;
    r->outcome = reply.code / 100 == 2 ? SMTP_DELIVERED
               : reply.code / 100 == 5 ? SMTP_FAILED : SMTP_DEFERRED;
    snprintf(r->dsn, sizeof(r->dsn), "%s", reply.code / 100 == 3 ? "4.5.0" : reply.dsn);
    smtp_reply_format(&reply, r->text, sizeof(r->text));
    if (reply.code / 100 == 3)
        r->code = 0;                    /* 3xx where it makes no sense: deferred */
}

static void defer(struct smtp_result *r, const char *why)
{
    memset(r, 0, sizeof(*r));
    r->outcome = SMTP_DEFERRED;
    snprintf(r->dsn, sizeof(r->dsn), "4.4.2");
    snprintf(r->text, sizeof(r->text), "%s", why);
}

static bool send_body(struct lmtp_conn *c, const struct lmtp_tx *tx, char *why,
                      size_t whysize)
{
    static char chunk[LMTP_CHUNK], stuffed[2 * LMTP_CHUNK];
    struct dot_stuffer ds;
    uint64_t done = 0;
    char end[DOT_STUFF_END_MAX];

    dot_stuff_init(&ds);
    while (done < tx->body_size) {
        size_t want = tx->body_size - done < LMTP_CHUNK ? (size_t)(tx->body_size - done)
                                                       : LMTP_CHUNK;
        ssize_t n = pread(tx->fd, chunk, want, tx->body_offset + (off_t)done);

        if (n <= 0) {
            snprintf(why, whysize, "reading the queued message: %s",
                     n < 0 ? strerror(errno) : "file is shorter than recorded");
            return false;
        }
        if (!send_all(c, stuffed, dot_stuff(&ds, chunk, (size_t)n, stuffed), tx->timeout)) {
            snprintf(why, whysize, "sending to the LMTP server: %s", strerror(errno));
            return false;
        }
        done += (uint64_t)n;
    }
    if (!send_all(c, end, dot_stuff_end(&ds, end), tx->timeout)) {
        snprintf(why, whysize, "sending to the LMTP server: %s", strerror(errno));
        return false;
    }
    return true;
}

/* MAIL FROM with the parameters the server offers; false: broken. */
static bool mail_from(struct lmtp_conn *c, const struct lmtp_tx *tx, char *why, size_t whysize)
{
    char line[ADDR_PATH_MAX + 128];
    int n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", tx->env->from);

    if (c->caps.size)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " SIZE=%llu",
                      (unsigned long long)tx->body_size);
    if (tx->env->body == BODY_8BITMIME && c->caps.eightbitmime)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " BODY=8BITMIME");
    if (tx->env->smtputf8 && c->caps.smtputf8)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " SMTPUTF8");
    n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
    return command(c, line, (size_t)n, tx->timeout, why, whysize);
}

/* RCPT TO each; accepted[] lists those that got 2xx. false: broken. */
static bool rcpt_to(struct lmtp_conn *c, const struct lmtp_tx *tx, struct smtp_result *res,
                    size_t *accepted, size_t *na, char *why, size_t whysize)
{
    for (size_t i = 0; i < tx->rcpt_count; i++) {
        char line[ADDR_PATH_MAX + 32];
        int n = snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", tx->rcpts[i]);

        if (!command(c, line, (size_t)n, tx->timeout, why, whysize))
            return false;
        if (reply.code / 100 == 2) {
            accepted[(*na)++] = i;
            res[i].code = -1;           /* waiting for its reply after DATA */
        } else {
            take_reply(&res[i]);
        }
    }
    return true;
}

/* The transaction up to the replies after DATA; false: broken. */
static bool run(struct lmtp_conn *c, const struct lmtp_tx *tx, struct smtp_result *res,
                char *why, size_t whysize)
{
    size_t accepted[REMOTE_JOB_MAX_RCPTS], na = 0;

    if (!mail_from(c, tx, why, whysize))
        return false;
    if (reply.code / 100 != 2) {
        for (size_t i = 0; i < tx->rcpt_count; i++)
            take_reply(&res[i]);
        return true;
    }
    if (!rcpt_to(c, tx, res, accepted, &na, why, whysize))
        return false;
    if (na == 0)
        return true;
    if (!command(c, "DATA\r\n", 6, tx->timeout, why, whysize))
        return false;
    if (reply.code != 354) {
        for (size_t k = 0; k < na; k++)
            take_reply(&res[accepted[k]]);
        return true;
    }
    if (!send_body(c, tx, why, whysize))
        return false;
    for (size_t k = 0; k < na; k++) {  /* RFC 2033 4.2: one per accepted RCPT */
        if (!read_reply(c, tx->timeout, why, whysize))
            return false;
        take_reply(&res[accepted[k]]);
    }
    return true;
}

void lmtp_transaction(struct lmtp_conn *c, const struct lmtp_tx *tx,
                      struct smtp_result *results)
{
    char why[300] = "";

    for (size_t i = 0; i < tx->rcpt_count; i++)
        results[i].code = -1;
    c->last_used = time(NULL);
    if (run(c, tx, results, why, sizeof(why))) {
        c->last_used = time(NULL);
        return;
    }
    log_info("event=lmtp_connection_lost reason=\"%s\"", why);
    for (size_t i = 0; i < tx->rcpt_count; i++)
        if (results[i].code == -1)
            defer(&results[i], why);
    conn_close(c);
}

/*
 * bounce.c - build and queue a delivery status notification: an RFC 6522
 * multipart/report with a human-readable part, an RFC 3464
 * message/delivery-status part and the returned message (RFC 3461 RET),
 * sent from the null reverse-path to the original envelope sender.
 *
 * The report is streamed into a new spool message with queue_msg_write.
 * The original is read back from its spool fd with pread: in fixed-size
 * chunks for RET=FULL, or at most BOUNCE_HEADERS_MAX octets of header
 * section otherwise; it is never held in memory whole.
 *
 * Trusts: the queued message and its envelope (addresses, ENVID and ORCPT
 * were validated when received and hold no CR/LF) and the spool. Does
 * not trust the caller's per-recipient texts (remote replies, host names,
 * status codes): they are reduced to printable ASCII, bounded and folded
 * before they go into the report.
 * Must never: report to the null reverse-path (a bounce of a bounce),
 * report a recipient whose NOTIFY forbids it, return any part of an
 * original whose envelope withholds it (dsn_content none), or return
 * success for a report that is not committed to the spool.
 */
#include "queue/bounce.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include "mail/received.h"
#include "util/ascii.h"
#include "util/errbuf.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BOUNCE_HEADERS_MAX (64 * 1024)  /* text/rfc822-headers cap, octets */
#define BOUNCE_DIAG_MAX    900          /* one diagnostic text, octets */
#define BOUNCE_HOST_MAX    255          /* one Remote-MTA name, octets */
#define BOUNCE_COPY_CHUNK  (16 * 1024)  /* RET=FULL copy unit */
#define BOUNCE_LINE_MAX    2048         /* one formatted output line */
#define BOUNCE_FOLD_WIDTH  76
#define BOUNCE_ACTIONS     4
#define RAND_MSGID         8            /* random octets in Message-ID */
#define RAND_BOUNDARY      16           /* random octets in the boundary */

/* Output into the new spool message; remembers the first failure. */
struct dsn_out {
    struct queue_msg *msg;
    const char *what;                   /* NULL while all is well */
    int error;
};

/* Everything decided before the first byte is written. */
struct dsn {
    const struct config *cfg;
    const struct queued_message *m;
    const struct bounce_rcpt **rcpts;   /* the recipients to report */
    size_t count;
    bool has_action[BOUNCE_ACTIONS];
    bool full;                          /* whole message, else header section */
    bool withheld;                      /* none of the original (envelope flag) */
    bool global;                        /* original is SMTPUTF8 (RFC 6532) */
    bool eightbit;                      /* some part may hold 8-bit octets */
    bool utf8_text;                     /* a reported address is UTF-8 */
    char *headers;                      /* header section when !full */
    size_t headers_len;
    unsigned char rnd[RAND_MSGID + RAND_BOUNDARY];
    char id[QUEUE_ID_LEN + 1];          /* of the report */
    char boundary[80];
};

/* --- output --- */

static void out_error(struct dsn_out *o, const char *what, int error)
{
    if (o->what != NULL)
        return;
    o->what = what;
    o->error = error ? error : EIO;
}

static void out_bytes(struct dsn_out *o, const void *p, size_t n)
{
    if (o->what == NULL && n > 0 && !queue_msg_write(o->msg, p, n))
        out_error(o, "spool write", queue_msg_error(o->msg));
}

static void out_str(struct dsn_out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

static void out_fmt(struct dsn_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One formatted piece; never silently truncated. */
static void out_fmt(struct dsn_out *o, const char *fmt, ...)
{
    char line[BOUNCE_LINE_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        out_error(o, "format", EOVERFLOW);
        return;
    }
    out_bytes(o, line, (size_t)n);
}

/*
 * Write head, then the space-separated words of text; a word that would
 * pass the fold width starts a new line with indent (for a header field
 * indent is " ", which makes the break an RFC 5322 fold). Ends the line.
 */
static void out_folded(struct dsn_out *o, const char *head, const char *text,
                       const char *indent)
{
    size_t col = strlen(head), indent_len = strlen(indent);

    out_str(o, head);
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");

        if (n > 0 && col + 1 + n > BOUNCE_FOLD_WIDTH && col > indent_len) {
            out_fmt(o, "\r\n%s", indent);
            col = indent_len;
        } else if (n > 0) {
            out_str(o, " ");
            col++;
        }
        out_bytes(o, p, n);
        col += n;
        p += n;
        p += strspn(p, " ");
    }
    out_str(o, "\r\n");
}

/* --- sanitising untrusted texts --- */

/*
 * Copy at most max octets of in to out as printable ASCII: runs of
 * white space and CR/LF become one space, other controls and each
 * non-ASCII character become '?'. No leading or trailing space.
 */
static void sanitise(const char *in, size_t max, char *out, size_t outsize)
{
    size_t n = 0;
    bool space = true, in_utf8 = false;

    if (max >= outsize)
        max = outsize - 1;
    for (const unsigned char *p = (const unsigned char *)in; *p && n < max; p++) {
        unsigned char c = *p;

        if (in_utf8 && c >= 0x80 && c < 0xC0)
            continue;                   /* rest of a '?' already written */
        in_utf8 = c >= 0x80;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (!space)
                out[n++] = ' ';
            space = true;
            continue;
        }
        out[n++] = c > 0x20 && c < 0x7F ? (char)c : '?';
        space = false;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static bool has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

/* An RFC 3463 status code: class "." subject "." detail. */
static bool valid_status(const char *s)
{
    size_t n;

    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    s += 2;
    for (int part = 0; part < 2; part++) {
        n = strspn(s, "0123456789");
        if (n < 1 || n > 3)
            return false;
        s += n;
        if (part == 0 && *s++ != '.')
            return false;
    }
    return *s == '\0';
}

static const char *status_of(const struct bounce_rcpt *r)
{
    static const char *const fallback[BOUNCE_ACTIONS] = {
        [BOUNCE_FAILED] = "5.0.0", [BOUNCE_DELAYED] = "4.0.0",
        [BOUNCE_RELAYED] = "2.0.0", [BOUNCE_DELIVERED] = "2.0.0",
    };

    return valid_status(r->status) ? r->status : fallback[r->action];
}

static const char *action_name(enum bounce_action a)
{
    static const char *const names[BOUNCE_ACTIONS] = {
        [BOUNCE_FAILED] = "failed", [BOUNCE_DELAYED] = "delayed",
        [BOUNCE_RELAYED] = "relayed", [BOUNCE_DELIVERED] = "delivered",
    };

    return names[a];
}

static int hexval(char c)
{
    if (ascii_digit((unsigned char)c))
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode RFC 3461 xtext ("+HH" escapes). false when it is malformed or
 * decodes to anything but printable ASCII; the caller then shows it as
 * given (xtext itself is printable ASCII).
 */
static bool xtext_decode(const char *in, char *out, size_t outsize)
{
    size_t n = 0;

    for (const char *p = in; *p; p++) {
        int c = (unsigned char)*p;

        if (c == '+') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

            if (lo < 0)
                return false;
            c = hi * 16 + lo;
            p += 2;
        }
        if (c < 0x20 || c > 0x7E || n + 1 >= outsize)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return true;
}

/* One code point from s[0..n) (n > 0); U+FFFD and one octet if malformed. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    static const uint32_t min[4] = { 0, 0x80, 0x800, 0x10000 };
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xF0 && s[0] < 0xF5 ? 4
               : s[0] >= 0xE0 && s[0] < 0xF0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    uint32_t cp;

    *used = 1;
    if (len == 0 || len > n)
        return 0xFFFD;
    cp = len == 1 ? s[0] : (uint32_t)(s[0] & (0x7F >> len));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min[len - 1] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0xFFFD;
    *used = len;
    return cp;
}

/* RFC 6533 utf-8-addr-xtext: QCHARs as they are, all else "\x{HEX}". */
static void utf8_addr_xtext(const char *addr, char *out, size_t outsize)
{
    const unsigned char *s = (const unsigned char *)addr;
    size_t len = strlen(addr), n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < len;) {
        size_t used;
        uint32_t cp = utf8_next(s + i, len - i, &used);
        bool qchar = cp > 0x20 && cp < 0x7F && cp != '+' && cp != '=' && cp != '\\';
        int w = qchar ? snprintf(out + n, outsize - n, "%c", (char)cp)
                      : snprintf(out + n, outsize - n, "\\x{%02X}", (unsigned)cp);

        if (w < 0 || (size_t)w >= outsize - n) {
            out[n] = '\0';              /* cannot happen with the caller's size */
            return;
        }
        n += (size_t)w;
        i += used;
    }
}

/* --- choosing what to report --- */

/* RFC 3461 4.1: unset NOTIFY means FAILURE,DELAY. */
static bool notify_allows(unsigned notify, enum bounce_action a)
{
    if (notify == 0)
        notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
    if (notify & DSN_NOTIFY_NEVER)
        return false;
    if (a == BOUNCE_FAILED)
        return (notify & DSN_NOTIFY_FAILURE) != 0;
    if (a == BOUNCE_DELAYED)
        return (notify & DSN_NOTIFY_DELAY) != 0;
    return (notify & DSN_NOTIFY_SUCCESS) != 0;
}

static bool select_rcpts(struct dsn *d, const struct bounce_rcpt *rcpts, size_t count,
                         char *err, size_t errsize)
{
    d->rcpts = xcalloc(count ? count : 1, sizeof(*d->rcpts));
    for (size_t i = 0; i < count; i++) {
        const struct bounce_rcpt *r = &rcpts[i];

        if (r->index >= d->m->env.rcpt_count)
            return errbuf_fail(err, errsize, "recipient index %zu out of range", r->index);
        if ((unsigned)r->action >= BOUNCE_ACTIONS)
            return errbuf_fail(err, errsize, "bad action for recipient %zu", r->index);
        if (!notify_allows(d->m->env.rcpts[r->index].notify, r->action))
            continue;
        d->rcpts[d->count++] = r;
        d->has_action[r->action] = true;
        if (has_8bit(d->m->env.rcpts[r->index].addr, strlen(d->m->env.rcpts[r->index].addr)))
            d->utf8_text = true;
    }
    if (d->count == 0)
        return errbuf_fail(err, errsize, "nothing to report");
    return true;
}

/* --- reading the original --- */

static bool pread_full(int fd, char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;            /* spool file shorter than its size */
            return false;
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return true;
}

/* Length of the header section in buf[0..n): up to and including the
 * line end before the first empty line; if none is seen, whole lines
 * only (all of it when it is the whole message). */
static size_t header_section_len(const char *buf, size_t n, bool whole)
{
    size_t last_line_end = 0;

    if (n > 0 && (buf[0] == '\n' || (n > 1 && buf[0] == '\r' && buf[1] == '\n')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n')
            continue;
        last_line_end = i + 1;
        if (i + 1 < n && buf[i + 1] == '\n')
            return i + 1;
        if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 1;
    }
    return whole ? n : last_line_end;
}

static bool load_headers(struct dsn *d, char *err, size_t errsize)
{
    const struct queued_message *m = d->m;
    size_t n = m->body_size < BOUNCE_HEADERS_MAX ? (size_t)m->body_size : BOUNCE_HEADERS_MAX;

    d->headers = xmalloc(n ? n : 1);
    if (!pread_full(m->fd, d->headers, n, (off_t)m->body_offset))
        return errbuf_fail(err, errsize, "read original %s: %s", m->env.id, strerror(errno));
    d->headers_len = header_section_len(d->headers, n, n == m->body_size);
    return true;
}

/* --- preparing --- */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool get_random(unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(buf, n, 0);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        buf += got;
        n -= (size_t)got;
    }
    return true;
}

static bool dsn_prepare(struct dsn *d, const struct bounce_rcpt *rcpts, size_t count,
                        char *err, size_t errsize)
{
    const struct envelope *env = &d->m->env;

    if (!select_rcpts(d, rcpts, count, err, errsize))
        return false;
    if (!get_random(d->rnd, sizeof(d->rnd)))
        return errbuf_fail(err, errsize, "getrandom: %s", strerror(errno));
    /* RFC 3461 4.3: RET=FULL is about failure reports. RFC 8689 5: a
     * REQUIRETLS message is reported as if RET=HDRS (headers only). */
    d->withheld = env->dsn_content_withheld;
    d->full = !d->withheld && env->ret == DSN_RET_FULL && d->has_action[BOUNCE_FAILED] &&
              !env->requiretls;
    d->global = env->smtputf8;
    if (!d->full && !d->withheld && !load_headers(d, err, errsize))
        return false;
    d->eightbit = env->smtputf8 || d->utf8_text || has_8bit(env->from, strlen(env->from)) ||
                  (d->full ? env->body == BODY_8BITMIME
                           : has_8bit(d->headers, d->headers_len));
    return true;
}

static void make_envelope(const struct dsn *d, struct envelope *env)
{
    const struct envelope *orig = &d->m->env;

    envelope_init(env);
    env->arrival = time(NULL);
    snprintf(env->helo, sizeof(env->helo), "%s", d->cfg->hostname);
    env->from[0] = '\0';                /* null reverse-path */
    env->body = d->eightbit ? BODY_8BITMIME : BODY_7BIT;
    env->smtputf8 = has_8bit(orig->from, strlen(orig->from));
    env->requiretls = orig->requiretls; /* RFC 8689 5 */
    env->ret = DSN_RET_UNSPECIFIED;
    envelope_add_rcpt(env, orig->from, 0, NULL);
}

/* --- the top-level header --- */

static const char *subject_of(const struct dsn *d)
{
    if (d->has_action[BOUNCE_FAILED])
        return "Undelivered Mail Returned to Sender";
    if (d->has_action[BOUNCE_DELAYED])
        return "Delayed Mail (still being retried)";
    return "Successful Mail Delivery Report";
}

static void write_top_header(const struct dsn *d, struct dsn_out *o)
{
    const char *host = d->cfg->hostname;
    char date[64], rnd[2 * RAND_MSGID + 1];

    rfc5322_date(time(NULL), date, sizeof(date));
    hex_encode(d->rnd, RAND_MSGID, rnd);
    out_fmt(o, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", host);
    out_fmt(o, "To: <%s>\r\n", d->m->env.from);
    out_fmt(o, "Subject: %s\r\n", subject_of(d));
    out_fmt(o, "Date: %s\r\n", date);
    out_fmt(o, "Message-ID: <%s.%s@%s>\r\n", d->id, rnd, host);
    out_str(o, "Auto-Submitted: auto-replied\r\n");
    out_str(o, "MIME-Version: 1.0\r\n");
    out_fmt(o, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
               "\tboundary=\"%s\"\r\n", d->boundary);
    if (d->eightbit)
        out_str(o, "Content-Transfer-Encoding: 8bit\r\n");
    out_str(o, "\r\nThis is a MIME-encapsulated message.\r\n");
}

/* Delimiter line and part header; the CRLF before "--" ends the previous
 * part (RFC 2046 5.1.1). */
static void start_part(const struct dsn *d, struct dsn_out *o, const char *description,
                       const char *type, bool eightbit)
{
    out_fmt(o, "\r\n--%s\r\n", d->boundary);
    out_fmt(o, "Content-Description: %s\r\n", description);
    out_fmt(o, "Content-Type: %s\r\n", type);
    if (eightbit)
        out_str(o, "Content-Transfer-Encoding: 8bit\r\n");
    out_str(o, "\r\n");
}

/* --- part 1: for people --- */

static const char *intro_of(enum bounce_action a)
{
    static const char *const intro[BOUNCE_ACTIONS] = {
        [BOUNCE_FAILED] =
            "I'm sorry to have to inform you that your message could not be\r\n"
            "delivered to one or more recipients. The mail system gave up on:\r\n",
        [BOUNCE_DELAYED] =
            "Your message has not yet been delivered to the recipients below.\r\n"
            "The mail system will keep trying; you need not send it again.\r\n",
        [BOUNCE_RELAYED] =
            "Your message was passed on to the recipients below, whose mail\r\n"
            "systems may not report its delivery:\r\n",
        [BOUNCE_DELIVERED] =
            "Your message was delivered to the recipients below:\r\n",
    };

    return intro[a];
}

static void write_human_rcpt(struct dsn_out *o, const struct envelope_rcpt *er,
                             const struct bounce_rcpt *r)
{
    char diag[BOUNCE_DIAG_MAX + 1], host[BOUNCE_HOST_MAX + 1];

    out_fmt(o, "\r\n  <%s>\r\n", er->addr);
    sanitise(r->remote_mta ? r->remote_mta : "", BOUNCE_HOST_MAX, host, sizeof(host));
    if (host[0])
        out_fmt(o, "    Remote host: %s\r\n", host);
    sanitise(r->diagnostic ? r->diagnostic : "", BOUNCE_DIAG_MAX, diag, sizeof(diag));
    if (diag[0])
        out_folded(o, "   ", diag, "    ");
}

static void write_human_part(const struct dsn *d, struct dsn_out *o)
{
    static const enum bounce_action order[BOUNCE_ACTIONS] = {
        BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_RELAYED, BOUNCE_DELIVERED,
    };

    start_part(d, o, "Notification", d->utf8_text ? "text/plain; charset=utf-8"
                                                  : "text/plain; charset=us-ascii",
               d->utf8_text);
    out_fmt(o, "This is the mail system at host %s.\r\n", d->cfg->hostname);
    for (size_t k = 0; k < BOUNCE_ACTIONS; k++) {
        enum bounce_action a = order[k];

        if (!d->has_action[a])
            continue;
        out_fmt(o, "\r\n%s", intro_of(a));
        for (size_t i = 0; i < d->count; i++)
            if (d->rcpts[i]->action == a)
                write_human_rcpt(o, &d->m->env.rcpts[d->rcpts[i]->index], d->rcpts[i]);
    }
    if (d->withheld)
        out_str(o, "\r\nThe message was received without TLS by a server that requires\r\n"
                   "TLS for this sender, so no part of it is returned here.\r\n");
    out_fmt(o, "\r\nFor help, forward this report to your postmaster.\r\n");
}

/* --- part 2: message/delivery-status --- */

static void write_per_message(const struct dsn *d, struct dsn_out *o)
{
    const struct envelope *env = &d->m->env;
    char date[64], envid[DSN_ENVID_MAX + 1];

    out_fmt(o, "Reporting-MTA: dns; %s\r\n", d->cfg->hostname);
    out_fmt(o, "X-Sealpost-Queue-ID: %s\r\n", env->id);
    if (env->envid[0] && !d->withheld)
        out_fmt(o, "Original-Envelope-Id: %s\r\n",
                xtext_decode(env->envid, envid, sizeof(envid)) ? envid : env->envid);
    rfc5322_date(env->arrival, date, sizeof(date));
    out_fmt(o, "Arrival-Date: %s\r\n", date);
}

/* Original-Recipient: "type;value" with the value xtext-decoded (RFC
 * 3461 6.3); absent without ORCPT. */
static void write_orcpt(struct dsn_out *o, const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');
    char value[DSN_ORCPT_MAX + 1];

    if (orcpt[0] == '\0' || semi == NULL)
        return;
    if (xtext_decode(semi + 1, value, sizeof(value)))
        out_fmt(o, "Original-Recipient: %.*s;%s\r\n", (int)(semi - orcpt), orcpt, value);
    else
        out_fmt(o, "Original-Recipient: %s\r\n", orcpt);
}

static void write_final_rcpt(struct dsn_out *o, const char *addr)
{
    char xtext[ADDR_PATH_MAX * 6 + 1];

    if (!has_8bit(addr, strlen(addr))) {
        out_fmt(o, "Final-Recipient: rfc822; %s\r\n", addr);
        return;
    }
    utf8_addr_xtext(addr, xtext, sizeof(xtext));
    out_fmt(o, "Final-Recipient: utf-8; %s\r\n", xtext);
}

static void write_rcpt_block(const struct dsn *d, struct dsn_out *o,
                             const struct bounce_rcpt *r)
{
    const struct envelope_rcpt *er = &d->m->env.rcpts[r->index];
    char diag[BOUNCE_DIAG_MAX + 1], host[BOUNCE_HOST_MAX + 1], date[64];

    out_str(o, "\r\n");
    if (!d->withheld)
        write_orcpt(o, er->orcpt);
    write_final_rcpt(o, er->addr);
    out_fmt(o, "Action: %s\r\n", action_name(r->action));
    out_fmt(o, "Status: %s\r\n", status_of(r));
    sanitise(r->remote_mta ? r->remote_mta : "", BOUNCE_HOST_MAX, host, sizeof(host));
    if (host[0])
        out_fmt(o, "Remote-MTA: dns; %s\r\n", host);
    sanitise(r->diagnostic ? r->diagnostic : "", BOUNCE_DIAG_MAX, diag, sizeof(diag));
    if (diag[0])
        out_folded(o, host[0] ? "Diagnostic-Code: smtp;" : "Diagnostic-Code: X-Sealpost;",
                   diag, " ");
    if (r->last_attempt != 0) {
        rfc5322_date(r->last_attempt, date, sizeof(date));
        out_fmt(o, "Last-Attempt-Date: %s\r\n", date);
    }
}

static void write_status_part(const struct dsn *d, struct dsn_out *o)
{
    start_part(d, o, "Delivery report", "message/delivery-status", false);
    write_per_message(d, o);
    for (size_t i = 0; i < d->count; i++)
        write_rcpt_block(d, o, d->rcpts[i]);
}

/* --- part 3: the original --- */

static void copy_original(const struct dsn *d, struct dsn_out *o)
{
    const struct queued_message *m = d->m;
    char buf[BOUNCE_COPY_CHUNK];
    uint64_t done = 0;
    char last = '\n';

    while (o->what == NULL && done < m->body_size) {
        uint64_t left = m->body_size - done;
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

        if (!pread_full(m->fd, buf, n, (off_t)m->body_offset + (off_t)done)) {
            out_error(o, "read original", errno);
            return;
        }
        out_bytes(o, buf, n);
        last = buf[n - 1];
        done += n;
    }
    if (last != '\n')
        out_str(o, "\r\n");
}

static void write_original_part(const struct dsn *d, struct dsn_out *o)
{
    if (d->full) {
        start_part(d, o, "Returned message",
                   d->global ? "message/global" : "message/rfc822", d->eightbit);
        copy_original(d, o);
        return;
    }
    start_part(d, o, "Returned message header",
               d->global ? "message/global-headers" : "text/rfc822-headers", d->eightbit);
    out_bytes(o, d->headers, d->headers_len);
    if (d->headers_len > 0 && d->headers[d->headers_len - 1] != '\n')
        out_str(o, "\r\n");
}

static void write_dsn(const struct dsn *d, struct dsn_out *o)
{
    write_top_header(d, o);
    write_human_part(d, o);
    write_status_part(d, o);
    if (!d->withheld)
        write_original_part(d, o);
    out_fmt(o, "\r\n--%s--\r\n", d->boundary);
}

/* --- queueing --- */

static bool commit(struct queue_msg *msg, const char *id, char *err, size_t errsize)
{
    if (!queue_msg_commit_now(msg))
        return errbuf_fail(err, errsize, "commit of %s failed", id);
    return true;
}

static bool write_and_commit(struct dsn *d, struct queue_msg *msg, char *err, size_t errsize)
{
    struct dsn_out o = { msg, NULL, 0 };
    char rnd[2 * RAND_BOUNDARY + 1];

    memcpy(d->id, queue_msg_id(msg), sizeof(d->id));
    hex_encode(d->rnd + RAND_MSGID, RAND_BOUNDARY, rnd);
    snprintf(d->boundary, sizeof(d->boundary), "=_sealpost_%s_%s", d->id, rnd);
    write_dsn(d, &o);
    if (o.what != NULL) {
        queue_msg_abort(msg);
        return errbuf_fail(err, errsize, "%s: %s", o.what, strerror(o.error));
    }
    return commit(msg, d->id, err, errsize);
}

static bounce_expand_fn expander;
static void *expander_arg;

void bounce_set_expander(bounce_expand_fn fn, void *arg)
{
    expander = fn;
    expander_arg = arg;
}

/* The sender may be a local alias (info@ -> alice): the DSN goes where
 * mail to it goes. */
static void expand_recipients(struct envelope *env, const char *orig_id)
{
    struct envelope out;
    char why[ADDR_PATH_MAX + 128], q[4 * sizeof(why) + 8];

    if (expander == NULL)
        return;
    if (expander(expander_arg, env, &out, why, sizeof(why))) {
        envelope_clear(env);
        *env = out;
        return;
    }
    log_warn("event=bounce_alias_failed orig_id=%s reason=%s action=as_addressed", orig_id,
             log_quote(q, sizeof(q), why, strlen(why)));
}

bool bounce_queue(struct queue *q, const struct config *cfg, const struct queued_message *m,
                  const struct bounce_rcpt *rcpts, size_t count, char *new_id,
                  char *err, size_t errsize)
{
    struct dsn d = { .cfg = cfg, .m = m };
    struct envelope env;
    struct queue_msg *msg = NULL;
    bool ok;

    if (m->env.from[0] == '\0')
        return errbuf_fail(err, errsize, "null sender: no bounce");
    ok = dsn_prepare(&d, rcpts, count, err, errsize);
    if (ok) {
        make_envelope(&d, &env);
        expand_recipients(&env, m->env.id);
        msg = queue_msg_new(q, &env);
        if (msg == NULL)
            ok = errbuf_fail(err, errsize, "spool: %s", strerror(errno));
        envelope_clear(&env);
    }
    ok = ok && write_and_commit(&d, msg, err, errsize);
    if (ok) {
        memcpy(new_id, d.id, QUEUE_ID_LEN + 1);
        log_info("event=bounce_queued id=%s orig_id=%s rcpts=%zu", d.id, m->env.id, d.count);
    }
    free(d.rcpts);
    free(d.headers);
    return ok;
}

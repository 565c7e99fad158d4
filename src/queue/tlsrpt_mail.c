/*
 * tlsrpt_mail.c - the daily TLS-RPT report messages (see tlsrpt_mail.h).
 *
 * Message (RFC 8460 5.3):
 *   From: [tlsrpt] from          To: the mailto: addresses
 *   Subject: Report Domain: D Submitter: S Report-ID: <ID>   (folded)
 *   TLS-Report-Domain: D         TLS-Report-Submitter: S
 *   Content-Type: multipart/report; report-type="tlsrpt"
 *     text/plain                     a line for people
 *     application/tlsrpt+gzip        the JSON, gzip, base64, named
 *                                    "S!D!BEGIN!END.json.gz" (epoch seconds)
 * The envelope sender is the From address; reports are Auto-Submitted.
 */
#define _GNU_SOURCE 1
#include "queue/tlsrpt_mail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "mail/address.h"
#include "mail/received.h"
#include "queue/tlsrpt_store.h"
#include "util/fileio.h"
#include "util/ascii.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DAY_SECONDS 86400

struct day_state {
    const char *spool;
    char day[TLSRPT_DAY_LEN + 1];
    char dir[4200];
    char (*sent)[256];              /* sorted, for bsearch */
    size_t nsent;
};

void tlsrpt_meta(const struct config *cfg, struct tlsrpt_report_meta *meta, char *from,
                 size_t fromsize, char *contact, size_t contactsize)
{
    if (cfg->tlsrpt.from)
        snprintf(from, fromsize, "%s", cfg->tlsrpt.from);
    else
        snprintf(from, fromsize, "postmaster@%s", cfg->hostname);
    snprintf(contact, contactsize, "%s", cfg->tlsrpt.contact ? cfg->tlsrpt.contact : from);
    meta->organization = cfg->tlsrpt.organization[0] ? cfg->tlsrpt.organization
                                                      : cfg->hostname;
    meta->contact = contact;
    meta->submitter = cfg->hostname;
}

/* --- gzip and base64 --- */

static bool gzip_buf(const char *in, size_t len, struct tlsrpt_buf *out)
{
    z_stream zs;
    uLong bound;
    bool ok;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return false;
    bound = deflateBound(&zs, (uLong)len) + 32;
    out->data = xmalloc(bound);
    out->alloc = bound;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
    out->len = zs.total_out;
    deflateEnd(&zs);
    return ok;
}

/* RFC 2045 6.8, lines of 76 characters, CRLF. */
static void base64_lines(struct tlsrpt_buf *b, const unsigned char *in, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];
    size_t col = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        quad[0] = tab[(v >> 18) & 63];
        quad[1] = tab[(v >> 12) & 63];
        quad[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < len ? tab[v & 63] : '=';
        tlsrpt_buf_put(b, quad, 4);
        if ((col += 4) >= 76) {
            tlsrpt_buf_puts(b, "\r\n");
            col = 0;
        }
    }
    if (col)
        tlsrpt_buf_puts(b, "\r\n");
}

/* --- recipients --- */

/* One address of a mailto: URI, checked as an SMTP path. */
static bool take_address(const char *s, size_t len, char *out, size_t outsize)
{
    char path[ADDR_PATH_MAX + 3];
    struct mailbox mb;
    size_t used;

    if (len == 0 || len > ADDR_PATH_MAX - 2)
        return false;
    snprintf(path, sizeof(path), "<%.*s>", (int)len, s);
    if (address_parse_path(path, strlen(path), false, &mb, &used) != ADDR_OK ||
        used != strlen(path) || mb.is_null || mb.is_bare_postmaster)
        return false;
    mailbox_format(&mb, out, outsize);
    return true;
}

/* The addresses of the mailto: URIs of rua (RFC 6068: %-decoded, ','
 * separates addresses, '?' starts header fields, which are ignored). */
static size_t mailto_rcpts(const struct tlsrpt_report_info *info,
                           char rcpts[][ADDR_PATH_MAX + 1], size_t max)
{
    size_t n = 0;

    for (size_t u = 0; u < info->rua_count; u++) {
        const char *uri = info->rua[u];
        char dec[TLSRPT_URI_LEN + 1];
        size_t dl = 0, start = 0;

        if (strncasecmp(uri, "mailto:", 7) != 0)
            continue;
        for (const char *p = uri + 7; *p && *p != '?' && dl + 1 < sizeof(dec); p++) {
            int hi, lo;

            if (*p == '%' && (hi = ascii_hex_value((unsigned char)p[1])) >= 0 &&
                (lo = ascii_hex_value((unsigned char)p[2])) >= 0) {
                dec[dl++] = (char)(hi * 16 + lo);
                p += 2;
            } else {
                dec[dl++] = *p;
            }
        }
        dec[dl] = '\0';
        for (size_t i = 0; i <= dl && n < max; i++) {
            if (i < dl && dec[i] != ',')
                continue;
            if (take_address(dec + start, i - start, rcpts[n], sizeof(rcpts[0])))
                n++;
            start = i + 1;
        }
    }
    return n;
}

/* --- the message --- */

struct report_msg {
    const struct config *cfg;
    const char *day, *domain, *from;
    const struct tlsrpt_report_info *info;
    char rcpts[TLSRPT_MAIL_RCPTS][ADDR_PATH_MAX + 1];
    size_t nrcpts;
    struct tlsrpt_buf gz;
};

static void write_head(const struct report_msg *m, struct tlsrpt_buf *b, const char *boundary,
                       const char *msgid)
{
    char date[64], line[2600];

    rfc5322_date(time(NULL), date, sizeof(date));
    snprintf(line, sizeof(line), "From: %s\r\nDate: %s\r\nTo: ", m->from, date);
    tlsrpt_buf_puts(b, line);
    for (size_t i = 0; i < m->nrcpts; i++) {
        tlsrpt_buf_puts(b, i ? ",\r\n <" : "<");
        tlsrpt_buf_puts(b, m->rcpts[i]);
        tlsrpt_buf_puts(b, ">");
    }
    snprintf(line, sizeof(line),
             "\r\nSubject: Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>\r\n"
             "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n"
             "Message-ID: <%s>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
             "\tboundary=\"%s\"\r\n\r\nThis is a MIME-encapsulated message.\r\n",
             m->domain, m->cfg->hostname, m->info->report_id, m->domain, m->cfg->hostname,
             msgid, boundary);
    tlsrpt_buf_puts(b, line);
}

static void write_parts(const struct report_msg *m, struct tlsrpt_buf *b, const char *boundary)
{
    char line[1400];
    time_t begin = 0;

    tlsrpt_day_parse(m->day, &begin);
    snprintf(line, sizeof(line),
             "\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
             "This is an aggregate TLS report (RFC 8460) from %s\r\n"
             "for the policy domain %s, UTC day %s: %zu sessions.\r\n"
             "\r\n--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             "Content-Disposition: attachment;\r\n"
             "\tfilename=\"%s!%s!%lld!%lld.json.gz\"\r\n\r\n",
             boundary, m->cfg->hostname, m->domain, m->day, m->info->sessions, boundary,
             m->cfg->hostname, m->domain, (long long)begin,
             (long long)begin + DAY_SECONDS - 1);
    tlsrpt_buf_puts(b, line);
    base64_lines(b, (const unsigned char *)m->gz.data, m->gz.len);
    snprintf(line, sizeof(line), "\r\n--%s--\r\n", boundary);
    tlsrpt_buf_puts(b, line);
}

/* Queue the message text of m (synchronous commit, as bounce.c). */
static bool queue_report(struct queue *q, const struct report_msg *m, const struct tlsrpt_buf *t,
                         char *id, size_t idsize)
{
    struct envelope env;
    struct queue_msg *msg;
    envelope_init(&env);
    env.arrival = time(NULL);
    snprintf(env.helo, sizeof(env.helo), "%s", m->cfg->hostname);
    snprintf(env.from, sizeof(env.from), "%s", m->from);
    env.body = BODY_7BIT;
    for (size_t i = 0; i < m->nrcpts; i++)
        envelope_add_rcpt(&env, m->rcpts[i], 0, NULL);
    msg = queue_msg_new(q, &env);
    envelope_clear(&env);
    if (msg == NULL)
        return false;
    snprintf(id, idsize, "%s", queue_msg_id(msg));
    if (!queue_msg_write(msg, t->data, t->len)) {
        queue_msg_abort(msg);
        return false;
    }
    return queue_msg_commit_now(msg);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* Build and queue m's message; false on a spool error. */
static bool send_report(struct queue *q, struct report_msg *m)
{
    unsigned char rnd[12];
    char r[25], boundary[80], msgid[400], id[QUEUE_ID_LEN + 1] = "";
    struct tlsrpt_buf text = { 0 };
    bool ok;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return false;
    hex(rnd, sizeof(rnd), r);
    snprintf(boundary, sizeof(boundary), "=_sealpost_tlsrpt_%s", r);
    snprintf(msgid, sizeof(msgid), "tlsrpt.%s.%s@%s", m->day, r, m->cfg->hostname);
    write_head(m, &text, boundary, msgid);
    write_parts(m, &text, boundary);
    ok = queue_report(q, m, &text, id, sizeof(id));
    tlsrpt_buf_free(&text);
    if (ok)
        log_info("event=tlsrpt_report_queued id=%s day=%s domain=%s rcpts=%zu sessions=%zu",
                 id, m->day, m->domain, m->nrcpts, m->info->sessions);
    return ok;
}

/* --- days --- */

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The domains of the day's .sent file, sorted. */
static void load_sent(struct day_state *ds)
{
    char path[4400], *data = NULL, *line, *save = NULL;
    struct stat sb;
    size_t alloc = 0;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", ds->dir, TLSRPT_SENT_FILE);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < 64 * 1024 * 1024) {
        data = xcalloc(1, (size_t)sb.st_size + 1);
        if (read(fd, data, (size_t)sb.st_size) != sb.st_size)
            data[0] = '\0';
    }
    close(fd);
    for (line = data ? strtok_r(data, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!tlsrpt_name_ok(line) || strlen(line) >= 256)
            continue;
        if (ds->nsent == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            ds->sent = xrealloc(ds->sent, alloc * sizeof(*ds->sent));
        }
        snprintf(ds->sent[ds->nsent++], 256, "%s", line);
    }
    free(data);
    if (ds->nsent > 1)
        qsort(ds->sent, ds->nsent, sizeof(*ds->sent), by_name);
}

/* Append line to dir/file durably: the data, and the folder entry when
 * the file is new. */
static bool append_line(const char *dir, const char *file, const char *line)
{
    char path[4400];
    int fd, dfd;
    bool ok, created = false;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        created = true;
    }
    if (fd < 0)
        return false;
    ok = write_all(fd, line, strlen(line)) && fdatasync(fd) == 0;
    close(fd);
    if (ok && created) {
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = dfd >= 0 && fsync(dfd) == 0;
        if (dfd >= 0)
            close(dfd);
    }
    return ok;
}

/* One domain of a completed day: its report queued (or nothing to send),
 * then noted in .sent. false on a spool error: try again later. */
static bool report_domain(struct queue *q, const struct config *cfg, struct day_state *ds,
                          const char *domain)
{
    static struct report_msg m;
    static struct tlsrpt_report_info info;
    struct tlsrpt_report_meta meta;
    struct tlsrpt_buf json = { 0 };
    char from[ADDR_PATH_MAX + 1], contact[ADDR_PATH_MAX + 1], err[300], line[300];
    bool ok = true;

    tlsrpt_meta(cfg, &meta, from, sizeof(from), contact, sizeof(contact));
    memset(&m, 0, sizeof(m));
    if (tlsrpt_report_json(ds->spool, ds->day, domain, &meta, &json, &info, err,
                           sizeof(err))) {
        m.nrcpts = mailto_rcpts(&info, m.rcpts, TLSRPT_MAIL_RCPTS);
        m.cfg = cfg;
        m.day = ds->day;
        m.domain = domain;
        m.from = from;
        m.info = &info;
        if (m.nrcpts > 0)
            ok = gzip_buf(json.data, json.len, &m.gz) && send_report(q, &m);
        tlsrpt_buf_free(&m.gz);
    } else {
        log_warn("event=tlsrpt_report_failed day=%s domain=%s error=\"%s\"", ds->day, domain,
                 err);
    }
    tlsrpt_buf_free(&json);
    snprintf(line, sizeof(line), "%s\n", domain);
    return ok && append_line(ds->dir, TLSRPT_SENT_FILE, line);
}

/* Remove a reported day's folder (its files are ours, flat). */
static void remove_day(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int dfd;

    if (d == NULL)
        return;
    dfd = dirfd(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            (void)unlinkat(dfd, de->d_name, 0);
    closedir(d);
    if (unlinkat(AT_FDCWD, dir, AT_REMOVEDIR) == 0)     /* rmdir is not in the seccomp list */
        log_info("event=tlsrpt_day_removed path=%s", dir);
}

static void report_day(struct queue *q, const struct config *cfg, struct day_state *ds)
{
    char (*names)[256];
    size_t n = tlsrpt_report_domains(ds->spool, ds->day, &names), done = 0;

    load_sent(ds);
    for (size_t i = 0; i < n; i++) {
        if (ds->nsent && bsearch(names[i], ds->sent, ds->nsent, sizeof(*ds->sent), by_name))
            continue;
        if (!report_domain(q, cfg, ds, names[i])) {
            log_error("event=tlsrpt_day_incomplete day=%s error=\"%s\"", ds->day,
                      strerror(errno));
            free(names);
            return;
        }
        done++;
    }
    free(names);
    if (append_line(ds->dir, TLSRPT_DONE_FILE, "") )
        log_info("event=tlsrpt_day_reported day=%s domains=%zu new=%zu", ds->day, n, done);
}

void tlsrpt_mail_run(struct queue *q, const struct config *cfg, time_t now)
{
    char base[4096], today[TLSRPT_DAY_LEN + 1], done[4400];
    DIR *d;
    struct dirent *de;
    time_t start;
    size_t pending = 0;

    if (!cfg->tlsrpt.enabled)
        return;
    tlsrpt_day_name(now, today);
    snprintf(base, sizeof(base), "%s/%s", cfg->spool, TLSRPT_DIR);
    if ((d = opendir(base)) == NULL) {
        log_info("event=tlsrpt_check today=%s pending_days=0", today);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct day_state ds = { .spool = cfg->spool };

        if (!tlsrpt_day_parse(de->d_name, &start) || strcmp(de->d_name, today) >= 0)
            continue;
        memcpy(ds.day, de->d_name, TLSRPT_DAY_LEN);     /* checked: exactly that long */
        snprintf(ds.dir, sizeof(ds.dir), "%s/%s", base, ds.day);
        snprintf(done, sizeof(done), "%s/%s", ds.dir, TLSRPT_DONE_FILE);
        if (access(done, F_OK) == 0) {
            if (now - start > (time_t)(TLSRPT_KEEP_DAYS + 1) * DAY_SECONDS)
                remove_day(ds.dir);
            continue;
        }
        pending++;
        report_day(q, cfg, &ds);
        free(ds.sent);
    }
    closedir(d);
    log_info("event=tlsrpt_check today=%s pending_days=%zu", today, pending);
}

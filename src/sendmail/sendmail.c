/*
 * sendmail.c - `sealpost sendmail` (also the binary run as `sendmail`):
 * the Sendmail-compatible command local programs use to send mail.
 *
 * Reads the message on stdin, works out the envelope (recipients as
 * arguments and, with -t, from the header; sender from -f or the calling
 * user), and leaves one file in <spool>/maildrop/ for the queue process
 * to pick up (mail/maildrop_format.h, docs/SPOOL.md): written under a
 * dot name, fsync'ed, renamed to its final name, made durable, and only
 * then exit 0. It needs no running daemon and no privilege: the maildrop
 * is mode 1733 (anyone may create, no one but the queue user may list),
 * the file is 0604 (the queue user reads it as "other"; no one else can
 * name it: its 128-bit random name cannot be listed), the caller's uid is
 * what the file's owner says, and the queue records that, never anything
 * this program writes.
 *
 * Exit codes are sysexits.h's. Runs as the caller: trusts its own
 * arguments and the config file it reads, nothing else.
 */
#define _GNU_SOURCE 1
#include "sendmail/sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "mail/address.h"
#include "mail/header_fields.h"
#include "mail/mailbox_list.h"
#include "mail/maildrop_format.h"
#include "sendmail/sendmail_headers.h"
#include "util/fileio.h"
#include "util/xalloc.h"

#define FULLNAME_MAX 200

struct sendmail {
    const char *config_path;
    const char *sender;         /* -f / -r; NULL: the calling user */
    const char *fullname;       /* -F */
    bool extract;               /* -t */
    bool dot_ends;              /* not -i / -oi */
    struct config *cfg;
    char origin[256];           /* domain for bare names */
    char login[64];
    char gecos[FULLNAME_MAX + 1];
    struct maildrop_head *head;
    int rcpt_status;            /* EX_OK or the first problem's code */
    char bad_text[600];
    /* Buffers, kept here so that they are still reachable when die()
     * exits from deep inside (no leak reports under LeakSanitizer). */
    char *text, *raw, *canon, *msg, *headbuf;
    struct sendmail_headers hs;
};

/* Where a failure must clean up: the temporary file, if any. */
static int tmp_dirfd = -1;
static char tmp_name[64];

static void __attribute__((noreturn, format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
    va_list ap;

    if (tmp_name[0] && tmp_dirfd >= 0)
        unlinkat(tmp_dirfd, tmp_name, 0);
    fputs("sendmail: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void __attribute__((noreturn)) usage_error(const char *what)
{
    die(EX_USAGE, "%s\nusage: sendmail [-t] [-i] [-f sender] [-F fullname] [-C config] "
                  "[-bm] [-o option]... [recipient...]", what);
}

/* -b MODE: only -bm (the default) sends; -bi has nothing to rebuild. */
static void mode_option(const char *mode)
{
    if (strcmp(mode, "m") == 0)
        return;
    if (strcmp(mode, "i") == 0) {
        fputs("sendmail: sealpost has no aliases database: nothing to rebuild\n", stderr);
        exit(EX_OK);
    }
    if (strcmp(mode, "s") == 0)
        die(EX_USAGE, "-bs (SMTP on stdin) is not supported: use a submission listener");
    if (strcmp(mode, "p") == 0)
        die(EX_USAGE, "-bp (mailq) is not supported here: see `sealpost help`");
    die(EX_USAGE, "-b%s: unsupported mode (only -bm)", mode);
}

/* The options real programs pass; others that change nothing here are
 * accepted and ignored as Postfix does (-oem, -odi, -v, -B8BITMIME, ...). */
static int parse_options(struct sendmail *sm, int argc, char **argv)
{
    int opt;

    optind = 0;                 /* a fresh GNU getopt scan */
    opterr = 0;
    while ((opt = getopt(argc, argv, "B:b:C:c:F:f:h:iL:N:no:p:qr:R:tU:vV:X:")) != -1) {
        switch (opt) {
        case 'b': mode_option(optarg); break;
        case 'C': case 'c': sm->config_path = optarg; break;
        case 'F': sm->fullname = optarg; break;
        case 'f': case 'r': sm->sender = optarg; break;
        case 'i': sm->dot_ends = false; break;
        case 'o':
            if (strcmp(optarg, "i") == 0)
                sm->dot_ends = false;
            break;
        case 't': sm->extract = true; break;
        case 'q': usage_error("-q (queue run) is not supported: the queue runs by itself");
        case 'B': case 'h': case 'L': case 'N': case 'n': case 'p': case 'R': case 'U':
        case 'v': case 'V': case 'X':
            break;
        default: {
            char what[80];

            snprintf(what, sizeof(what), optopt ? "invalid option -%c" : "invalid option",
                     optopt);
            if (strchr("BbCcFfhLNoprRUVX", optopt) && optopt)
                snprintf(what, sizeof(what), "option -%c needs an argument", optopt);
            usage_error(what);
        }
        }
    }
    return optind;
}

/* --- config --- */

static void load_config(struct sendmail *sm)
{
    char real[PATH_MAX], err[1024];
    char *text = sm->text = xmalloc(CONFIG_FILE_MAX + 1);
    FILE *fp = fopen(sm->config_path, "re");
    size_t n;

    if (fp == NULL || realpath(sm->config_path, real) == NULL)
        die(EX_NOINPUT, "cannot read config %s: %s", sm->config_path, strerror(errno));
    n = fread(text, 1, CONFIG_FILE_MAX + 1, fp);
    if (ferror(fp) || n > CONFIG_FILE_MAX)
        die(EX_NOINPUT, "cannot read config %s: %s", sm->config_path,
            ferror(fp) ? strerror(errno) : "too large");
    fclose(fp);
    /* As a role does: the files the config names (keys, lists) are the
     * daemon's business and often unreadable for the caller. */
    sm->cfg = config_load_copy(text, n, real, NULL, err, sizeof(err));
    free(text);
    sm->text = NULL;
    if (sm->cfg == NULL)
        die(EX_CONFIG, "%s", err);
    snprintf(sm->origin, sizeof(sm->origin), "%s",
             sm->cfg->domain_count ? sm->cfg->domains[0].name : sm->cfg->hostname);
}

static void who_am_i(struct sendmail *sm)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw == NULL) {
        snprintf(sm->login, sizeof(sm->login), "uid%u", (unsigned)getuid());
        return;
    }
    snprintf(sm->login, sizeof(sm->login), "%s", pw->pw_name);
    if (pw->pw_gecos)
        snprintf(sm->gecos, sizeof(sm->gecos), "%.*s", (int)strcspn(pw->pw_gecos, ","),
                 pw->pw_gecos);
}

/* --- addresses --- */

/* text (maybe a bare name, maybe in <>) as a canonical address in out;
 * a bare name gets "@origin". false if it is not an address. */
static bool canonical_address(const struct sendmail *sm, const char *text, char *out,
                              size_t outsize)
{
    char path[ADDR_PATH_MAX + 300];
    struct mailbox mb;
    size_t n = strlen(text), used = 0;
    int len;

    if (n >= 2 && text[0] == '<' && text[n - 1] == '>') {
        text++;
        n -= 2;
    }
    len = snprintf(path, sizeof(path), "<%.*s%s%s>", (int)n, text,
                   memchr(text, '@', n) ? "" : "@", memchr(text, '@', n) ? "" : sm->origin);
    if (n == 0 || len < 0 || (size_t)len >= sizeof(path))
        return false;
    if (address_parse_path(path, (size_t)len, true, &mb, &used) != ADDR_OK ||
        used != (size_t)len || mb.is_null || mb.domain[0] == '\0')
        return false;
    mailbox_format_canonical(&mb, out, outsize);
    return true;
}

/* For each address of a list; false stops the list at the first error. */
static bool add_rcpt(void *arg, const char *text)
{
    struct sendmail *sm = arg;
    struct maildrop_head *h = sm->head;
    char addr[ADDR_PATH_MAX + 1];

    if (sm->rcpt_status != EX_OK)
        return false;
    if (!canonical_address(sm, text, addr, sizeof(addr))) {
        snprintf(sm->bad_text, sizeof(sm->bad_text), "bad recipient address: %.500s", text);
        sm->rcpt_status = EX_DATAERR;
        return false;
    }
    for (size_t i = 0; i < h->rcpt_count; i++)
        if (strcmp(h->rcpts[i], addr) == 0)
            return true;                /* once each, as Postfix does */
    if (h->rcpt_count >= MAILDROP_RCPTS_MAX || h->rcpt_count >= sm->cfg->max_recipients) {
        snprintf(sm->bad_text, sizeof(sm->bad_text),
                 "too many recipients (at most %u: [server] max_recipients, and %u)",
                 sm->cfg->max_recipients, MAILDROP_RCPTS_MAX);
        sm->rcpt_status = EX_DATAERR;
        return false;
    }
    memcpy(h->rcpts[h->rcpt_count++], addr, sizeof(addr));
    return true;
}

/* An address list (an argument, or a recipient field of -t) as RFC 5322
 * says (mail/mailbox_list.h), a lone name ("root") allowed. */
static void add_list(struct sendmail *sm, const char *text)
{
    char why[128];

    if (mailbox_list_parse_flags(text, strlen(text), MAILBOX_BARE_LOCAL, add_rcpt, sm, why,
                                 sizeof(why)) == -1 && sm->rcpt_status == EX_OK) {
        snprintf(sm->bad_text, sizeof(sm->bad_text), "bad address list (%s): %.400s", why,
                 text);
        sm->rcpt_status = EX_DATAERR;
    }
}

/* Arguments, then (-t) the header's recipient fields: the Resent- ones
 * when there are any (RFC 5322 3.6.6), else To, Cc, Bcc. Arguments are
 * added to the header's, as Postfix does. */
static void recipients(struct sendmail *sm, char **args, int nargs, const struct sendmail_headers *hs)
{
    for (int i = 0; i < nargs; i++)
        add_list(sm, args[i]);
    for (size_t i = 0; sm->extract && i < hs->field_count; i++)
        if (hs->fields[i].resent == hs->has_resent_rcpt)
            add_list(sm, hs->fields[i].value);
    if (sm->rcpt_status != EX_OK)
        die(sm->rcpt_status, "%s", sm->bad_text);
    if (sm->head->rcpt_count == 0)
        die(EX_DATAERR, "no recipients (give them as arguments, or use -t)");
}

static void envelope_sender(struct sendmail *sm)
{
    const char *s = sm->sender;
    char own[ADDR_PATH_MAX + 1];

    if (s != NULL && (s[0] == '\0' || strcmp(s, "<>") == 0)) {
        sm->head->from[0] = '\0';
        return;
    }
    if (s == NULL) {
        snprintf(own, sizeof(own), "%s", sm->login);
        s = own;
    }
    if (!canonical_address(sm, s, sm->head->from, sizeof(sm->head->from)))
        die(EX_DATAERR, "bad sender address: %.500s", s);
}

/* --- the message --- */

/* "From: "Full Name" <addr>" for a message without one: the name from
 * -F, else the passwd entry's; only printable ASCII names are used. */
static size_t from_header(const struct sendmail *sm, char *out, size_t outsize)
{
    const char *name = sm->fullname ? sm->fullname : sm->gecos;
    char quoted[2 * FULLNAME_MAX + 3], self[ADDR_PATH_MAX + 1];
    const char *addr = sm->head->from;
    size_t q = 0;
    int n;

    for (const char *p = name; *p && q < 2 * FULLNAME_MAX; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            q = 0;                      /* not plain ASCII: no display name */
            break;
        }
        if (*p == '"' || *p == '\\')
            quoted[q++] = '\\';
        quoted[q++] = *p;
    }
    quoted[q] = '\0';
    if (addr[0] == '\0') {              /* null sender: the caller's address */
        if (!canonical_address(sm, sm->login, self, sizeof(self)))
            return 0;
        addr = self;
    }
    n = q ? snprintf(out, outsize, "From: \"%s\" <%s>\r\n", quoted, addr)
          : snprintf(out, outsize, "From: <%s>\r\n", addr);
    return n < 0 || (size_t)n >= outsize ? 0 : (size_t)n;
}

/* The Date: and Message-ID: a message without them gets (RFC 6409 8.3,
 * as submission adds them: mail/header_fields.h), after the From: that
 * from_header may have put at out[0..len). The new length. */
static size_t missing_fields(const struct sendmail *sm, char *out, size_t len, size_t outsize)
{
    char unique[32];
    uint64_t nonce;
    time_t now = time(NULL);
    struct tm tm;

    if (!sm->hs.has_date)
        len += header_format_date(out + len, outsize - len, now);
    if (sm->hs.has_message_id)
        return len;
    if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        die(EX_OSERR, "getrandom: %s", strerror(errno));
    gmtime_r(&now, &tm);
    strftime(unique, sizeof(unique), "%Y%m%d%H%M%S", &tm);
    return len + header_format_message_id(out + len, outsize - len, unique, nonce,
                                          sm->cfg->hostname);
}

/* stdin into sm->raw, up to limit + 1 octets (one more says it was too
 * long). */
static size_t read_stdin(struct sendmail *sm, size_t limit)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = sm->raw = xmalloc(cap);

    for (;;) {
        ssize_t r;

        if (n == cap) {
            if (cap > limit)
                break;
            cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            buf = sm->raw = xrealloc(buf, cap);
        }
        r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die(EX_IOERR, "reading the message from stdin: %s", strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    return n;
}

/* The message as it goes into the file (sm->msg): canonical, Bcc
 * removed, From:, Date: and Message-ID: added when missing; checked as the
 * pickup will check it. */
static char *build_message(struct sendmail *sm, char **args, int nargs, size_t *outlen)
{
    uint64_t limit = sm->cfg->max_message_size;
    size_t raw_len = read_stdin(sm, (size_t)limit), canon_len, scanned_len, from_len = 0;
    /* From:, Date: and Message-ID: when missing (a hostname is at most 255) */
    char from[2 * FULLNAME_MAX + 1400];
    struct maildrop_body_check check;

    sm->canon = xmalloc(2 * raw_len + 2);
    canon_len = maildrop_canonical(sm->raw, raw_len, sm->dot_ends, sm->canon);
    free(sm->raw);
    sm->raw = NULL;
    if (canon_len > limit)
        die(EX_DATAERR, "message too large (more than %llu octets: [server] max_message_size)",
            (unsigned long long)limit);
    sm->msg = xmalloc(canon_len + sizeof(from));
    scanned_len = sendmail_headers_scan(sm->canon, canon_len, &sm->hs, sm->msg + sizeof(from));
    free(sm->canon);
    sm->canon = NULL;
    recipients(sm, args, nargs, &sm->hs);
    envelope_sender(sm);
    if (!sm->hs.has_from)
        from_len = from_header(sm, from, sizeof(from) - 2);    /* room for a CRLF */
    from_len = missing_fields(sm, from, from_len, sizeof(from) - 2);
    /* [From:][Date:][Message-ID:][header section][CRLF when the body had no empty line
     * before it (Postfix adds one too)][body] */
    memmove(sm->msg + from_len, sm->msg + sizeof(from), sm->hs.header_len);
    memcpy(sm->msg, from, from_len);
    *outlen = from_len + sm->hs.header_len;
    if (sm->hs.no_separator) {
        memcpy(sm->msg + *outlen, "\r\n", 2);
        *outlen += 2;
    }
    memmove(sm->msg + *outlen, sm->msg + sizeof(from) + sm->hs.header_len,
            scanned_len - sm->hs.header_len);
    *outlen += scanned_len - sm->hs.header_len;
    sendmail_headers_free(&sm->hs);
    if (*outlen > limit)
        die(EX_DATAERR, "message too large (more than %llu octets: [server] max_message_size)",
            (unsigned long long)limit);
    maildrop_body_begin(&check, sm->cfg->max_text_line_length - 2);
    if (!maildrop_body_feed(&check, sm->msg, *outlen) || !maildrop_body_end(&check))
        die(EX_DATAERR, "message refused: %s (lines may have at most %zu octets: "
            "[server] max_text_line_length)", check.bad, sm->cfg->max_text_line_length);
    sm->head->eight_bit = check.eight_bit;
    sm->head->size = *outlen;
    return sm->msg;
}

/* --- the maildrop file --- */

static void random_name(char *out, size_t outsize, const char *prefix)
{
    unsigned char rnd[16];
    size_t n;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        die(EX_OSERR, "getrandom: %s", strerror(errno));
    n = (size_t)snprintf(out, outsize, "%s", prefix);
    for (size_t i = 0; i < sizeof(rnd) && n + 3 <= outsize; i++)
        n += (size_t)snprintf(out + n, outsize - n, "%02x", rnd[i]);
}

static int store_error(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EIO || err == EINTR ? EX_TEMPFAIL
                                                                         : EX_CANTCREAT;
}

/* The final name, then the rename made durable: the folder's fsync when
 * we may open it (root, the queue user), else syncfs (an ordinary user
 * may not read the 1733 maildrop). */
static void publish(int dirfd, int fd, const char *dir)
{
    char final[64];
    int rc, dfd;

    for (int tries = 0;; tries++) {
        random_name(final, sizeof(final), "");
        rc = renameat2(dirfd, tmp_name, dirfd, final, RENAME_NOREPLACE);
        if (rc < 0 && errno == EINVAL)
            rc = renameat(dirfd, tmp_name, dirfd, final);
        if (rc == 0 || errno != EEXIST || tries > 5)
            break;
    }
    if (rc < 0)
        die(store_error(errno), "rename in %s: %s", dir, strerror(errno));
    tmp_name[0] = '\0';                 /* from here on the message is queued */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dfd >= 0 ? fsync(dfd) : syncfs(fd);
    if (rc < 0 || fsync(fd) < 0) {
        /* Not known to be durable: take it back rather than say yes. */
        int e = errno;

        if (unlinkat(dirfd, final, 0) == 0)
            die(EX_TEMPFAIL, "sync of %s: %s", dir, strerror(e));
        die(EX_SOFTWARE, "sync of %s failed (%s) and the message could not be taken back: "
            "it may be sent", dir, strerror(e));
    }
    if (dfd >= 0)
        close(dfd);
}

static void store(struct sendmail *sm, const char *msg, size_t len)
{
    char dir[PATH_MAX], *head = sm->headbuf = xmalloc(MAILDROP_HEAD_MAX + 1);
    size_t hlen = maildrop_head_format(sm->head, head, MAILDROP_HEAD_MAX + 1);
    sigset_t block;
    int fd;

    if (hlen == 0)
        die(EX_SOFTWARE, "cannot encode the envelope");
    snprintf(dir, sizeof(dir), "%s/maildrop", sm->cfg->spool);
    tmp_dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (tmp_dirfd < 0)
        die(errno == ENOENT ? EX_TEMPFAIL : EX_CANTCREAT,
            "cannot open %s: %s%s", dir, strerror(errno),
            errno == ENOENT ? " (sealpost creates it when it starts)" : "");
    /* A signal now would leave a half-made file behind: hold them. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    sigprocmask(SIG_BLOCK, &block, NULL);
    random_name(tmp_name, sizeof(tmp_name), ".tmp.");
    fd = openat(tmp_dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0604);
    if (fd < 0) {
        tmp_name[0] = '\0';
        die(store_error(errno), "cannot create a file in %s: %s", dir, strerror(errno));
    }
    if (fchmod(fd, 0604) < 0 || !write_all(fd, head, hlen) || !write_all(fd, msg, len) ||
        fsync(fd) < 0)
        die(store_error(errno), "writing into %s: %s", dir, strerror(errno));
    free(head);
    sm->headbuf = NULL;
    publish(tmp_dirfd, fd, dir);
    close(fd);                          /* synced: a close error changes nothing */
}

int sendmail_main(int argc, char **argv)
{
    /* Static: a global root, so what it holds is reachable at any exit. */
    static struct sendmail sm;
    char *msg;
    size_t len;
    int first;

    sm = (struct sendmail){ .config_path = SENDMAIL_DEFAULT_CONFIG, .dot_ends = true,
                            .rcpt_status = EX_OK };
    first = parse_options(&sm, argc, argv);
    load_config(&sm);
    who_am_i(&sm);
    sm.head = xcalloc(1, sizeof(*sm.head));
    msg = build_message(&sm, argv + first, argc - first, &len);
    store(&sm, msg, len);
    free(msg);
    free(sm.head);
    config_free(sm.cfg);
    return EX_OK;
}

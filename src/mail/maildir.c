/*
 * maildir.c - Maildir delivery (see maildir.h). A message is written to
 * tmp/, fsync'ed, renamed into new/, and new/ is fsync'ed before success
 * is reported; the queue forgets the recipient only after that.
 * Line ends stay CRLF exactly as received (docs/DELIVERY.md).
 */
#include "mail/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/recipient.h"
#include "mail/address.h"
#include "util/ascii.h"
#include "util/fileio.h"

#define COPY_BUF (64 * 1024)

bool maildir_encode_local(const char *local, char *out, size_t outsize)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; local[i]; i++) {
        unsigned char c = (unsigned char)local[i];
        bool keep = ascii_alnum(c) || c >= 0x80 || c == '_' || c == '+' || c == '-' ||
                    c == '=' || (c == '.' && i > 0);

        c = (unsigned char)ascii_lower(c);
        if (o + 4 > outsize)
            return false;
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o == 0 || o >= outsize)
        return false;
    out[o] = '\0';
    return true;
}

/* Substitute {domain} and {local} into the template. */
static bool expand_template(const char *tmpl, const char *domain, const char *local,
                            char *out, size_t outsize)
{
    size_t o = 0;

    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        size_t skip = 1, vlen;

        if (strncmp(p, "{domain}", 8) == 0) {
            val = domain;
            skip = 8;
        } else if (strncmp(p, "{local}", 7) == 0) {
            val = local;
            skip = 7;
        }
        vlen = val ? strlen(val) : 1;
        if (o + vlen + 1 > outsize)
            return false;
        memcpy(out + o, val ? val : p, vlen);
        o += vlen;
        p += skip;
    }
    out[o] = '\0';
    return true;
}

bool maildir_path_for(const struct config *cfg, const char *addr, char *out,
                      size_t outsize, char *err, size_t errsize)
{
    const struct domain_config *dc;

    return maildir_target_for(cfg, addr, out, outsize, &dc, err, errsize);
}

bool maildir_target_for(const struct config *cfg, const char *addr, char *out,
                        size_t outsize, const struct domain_config **dc_out, char *err,
                        size_t errsize)
{
    char path[ADDR_PATH_MAX + 3], domain[ADDR_DOMAIN_MAX + 1], local[ADDR_LOCAL_MAX * 3 + 1];
    struct mailbox mb;
    size_t used;
    const struct domain_config *dc;

    snprintf(path, sizeof(path), "<%s>", addr);
    if (address_parse_path(path, strlen(path), true, &mb, &used) != ADDR_OK || mb.is_null) {
        snprintf(err, errsize, "unparseable recipient address");
        return false;
    }
    if (strcasecmp(mb.local_unquoted, "postmaster") == 0 &&
        strcasecmp(addr, cfg->postmaster) != 0)
        return maildir_target_for(cfg, cfg->postmaster, out, outsize, dc_out, err, errsize);
    ascii_lower_copy(domain, sizeof(domain), mb.domain, strlen(mb.domain));
    dc = mb.domain_is_literal ? NULL : config_find_domain(cfg, domain);
    if (dc == NULL) {
        snprintf(err, errsize, "domain %s is not local", domain);
        return false;
    }
    if (dc->maildir == NULL) {          /* deliver = lmtp: not a Maildir domain */
        snprintf(err, errsize, "domain %s delivers over LMTP", domain);
        return false;
    }
    if (!maildir_encode_local(mb.local_unquoted, local, sizeof(local)) ||
        !expand_template(dc->maildir, dc->name, local, out, outsize)) {
        snprintf(err, errsize, "maildir path too long");
        return false;
    }
    *dc_out = dc;
    return true;
}

/* fsync the folder that holds path ("/" or "." when it has no other). */
static int sync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    int fd, rc;

    if (slash == path)
        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    else if (slash == NULL)
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    else {
        *slash = '\0';
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    }
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* mkdir that makes a new folder's name durable in its parent: a message
 * fsync'ed into new/ is only safe if the path to new/ survives a crash. */
static int mkdir_durable(char *path)
{
    if (mkdir(path, 0700) == 0)
        return sync_parent(path);
    return errno == EEXIST ? 0 : -1;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);

    if (len >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir_durable(tmp) < 0)
            return -1;
        *p = '/';
    }
    return mkdir_durable(tmp);
}

static bool make_maildir(const char *maildir, char *err, size_t errsize)
{
    static const char *subdirs[] = { "tmp", "new", "cur" };
    char path[4200];

    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", maildir, subdirs[i]);
        if (mkdir_p(path) < 0) {
            snprintf(err, errsize, "mkdir %s: %s", path, strerror(errno));
            return false;
        }
    }
    return true;
}

/* time.MusecPpidQn.host, with '/' and ':' in host encoded (Maildir convention). */
static void unique_name(const char *hostname, char *out, size_t size)
{
    static atomic_uint counter;
    struct timeval tv;
    char host[256];
    size_t h = 0;

    for (const char *p = hostname; *p && h + 5 < sizeof(host); p++) {
        if (*p == '/' || *p == ':') {
            h += (size_t)snprintf(host + h, sizeof(host) - h, "\\%03o", (unsigned char)*p);
        } else {
            host[h++] = *p;
        }
    }
    host[h] = '\0';
    gettimeofday(&tv, NULL);
    snprintf(out, size, "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
             (long)getpid(), atomic_fetch_add(&counter, 1), host);
}

static bool copy_body(int in, off_t offset, uint64_t size, int out)
{
    char buf[COPY_BUF];

    while (size > 0) {
        size_t want = size < sizeof(buf) ? (size_t)size : sizeof(buf);
        ssize_t n = pread(in, buf, want, offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;    /* spool file shorter than its envelope says */
            return false;
        }
        if (!write_all(out, buf, (size_t)n))
            return false;
        offset += n;
        size -= (uint64_t)n;
    }
    return true;
}

static bool sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok;

    if (fd < 0)
        return false;
    ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

bool maildir_deliver(const char *maildir, const char *hostname, const char *return_path,
                     const char *delivered_to, int msg_fd, off_t body_offset,
                     uint64_t body_size, char *err, size_t errsize)
{
    char name[512], tmp_path[4700], new_path[4700], new_dir[4200], head[1200];
    int fd, hlen;
    bool ok;

    if (!make_maildir(maildir, err, errsize))
        return false;
    unique_name(hostname, name, sizeof(name));
    snprintf(tmp_path, sizeof(tmp_path), "%s/tmp/%s", maildir, name);
    snprintf(new_path, sizeof(new_path), "%s/new/%s", maildir, name);
    snprintf(new_dir, sizeof(new_dir), "%s/new", maildir);
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsize, "open %s: %s", tmp_path, strerror(errno));
        return false;
    }
    hlen = snprintf(head, sizeof(head), "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
                    return_path, delivered_to);
    ok = hlen > 0 && (size_t)hlen < sizeof(head) && write_all(fd, head, (size_t)hlen) &&
         copy_body(msg_fd, body_offset, body_size, fd) && fsync(fd) == 0;
    if (close(fd) < 0)
        ok = false;
    if (ok && rename(tmp_path, new_path) < 0)
        ok = false;
    if (!ok) {
        snprintf(err, errsize, "write %s: %s", tmp_path, strerror(errno));
        unlink(tmp_path);
        return false;
    }
    if (!sync_dir(new_dir)) {
        /* The file is in new/ but maybe not durably: report failure; a
         * retry may deliver a duplicate, never lose the message. */
        snprintf(err, errsize, "fsync %s: %s", new_dir, strerror(errno));
        return false;
    }
    return true;
}

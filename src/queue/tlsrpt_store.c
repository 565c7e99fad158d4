/*
 * tlsrpt_store.c - append TLS-RPT records to the per-day, per-domain
 * files of the spool (see tlsrpt_store.h).
 *
 * The domain count of the current day is taken from the folder the
 * first time that day is written to (a restart keeps counting), then
 * kept in memory.
 */
#define _GNU_SOURCE 1
#include "queue/tlsrpt_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/ascii.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/xalloc.h"

struct tlsrpt_store {
    char *spool;
    unsigned max_domains;
    char day[TLSRPT_DAY_LEN + 1];       /* the day counted, "" before the first */
    unsigned domains;                   /* files in that day's folder */
    bool full_logged;                   /* the max_domains warning of that day */
    char full_domain[TLSRPT_NAME_MAX + 1];  /* the last file-limit warning's domain */
    char line[TLSRPT_LINE_MAX];
};

struct tlsrpt_store *tlsrpt_store_new(const char *spool, unsigned max_domains)
{
    struct tlsrpt_store *st = xcalloc(1, sizeof(*st));

    st->spool = xstrdup(spool);
    st->max_domains = max_domains;
    return st;
}

void tlsrpt_store_free(struct tlsrpt_store *st)
{
    if (st == NULL)
        return;
    free(st->spool);
    free(st);
}

void tlsrpt_day_name(time_t t, char *out)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, TLSRPT_DAY_LEN + 1, "%Y-%m-%d", &tm);
}

bool tlsrpt_day_parse(const char *s, time_t *start)
{
    struct tm tm;
    char again[TLSRPT_DAY_LEN + 1];

    if (strlen(s) != TLSRPT_DAY_LEN || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < TLSRPT_DAY_LEN; i++)
        if (i != 4 && i != 7 && !ascii_digit((unsigned char)s[i]))
            return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    if (tm.tm_year < 70)
        return false;
    *start = timegm(&tm);
    tlsrpt_day_name(*start, again);
    return strcmp(again, s) == 0;       /* no 2026-02-30 */
}

/* Domain files in dir (names that do not start with '.'). */
static unsigned count_domains(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static bool sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* Open the domain's file of the day for appending, creating it (and the
 * folder) within max_domains; -1 when full or on an error (logged). */
static int open_day_file(struct tlsrpt_store *st, const char *day, const char *domain)
{
    char dir[4096], path[4400], qd[TLSRPT_NAME_MAX * 4 + 8];
    int fd;

    snprintf(dir, sizeof(dir), "%s/%s/%s", st->spool, TLSRPT_DIR, day);
    snprintf(path, sizeof(path), "%s/%s", dir, domain);
    if (strcmp(st->day, day) != 0) {
        snprintf(st->day, sizeof(st->day), "%s", day);
        st->domains = count_domains(dir);
        st->full_logged = false;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
        goto opened;
    if (st->domains >= st->max_domains) {
        if (!st->full_logged)
            log_warn("event=tlsrpt_dropped day=%s domain=%s reason=\"max_domains (%u) "
                     "reached for this day\"", day, log_value(qd, sizeof(qd), domain),
                     st->max_domains);
        st->full_logged = true;
        return -1;
    }
    if (mkdir_parents(dir, 0700) < 0) {
        log_error("event=tlsrpt_store_failed path=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        char parent[4200];

        st->domains++;
        snprintf(parent, sizeof(parent), "%s/%s", st->spool, TLSRPT_DIR);
        if (!sync_dir(dir) || !sync_dir(parent))
            log_warn("event=tlsrpt_store_sync_failed path=%s error=\"%s\"", dir,
                     strerror(errno));
    }
opened:
    if (fd < 0)
        log_error("event=tlsrpt_store_failed path=%s error=\"%s\"", path, strerror(errno));
    return fd;
}

bool tlsrpt_store_append(struct tlsrpt_store *st, const struct tlsrpt_record *r, time_t now)
{
    char day[TLSRPT_DAY_LEN + 1], qd[TLSRPT_NAME_MAX * 4 + 8];
    size_t len = tlsrpt_line_format(r, st->line, sizeof(st->line));
    struct stat sb;
    bool ok;
    int fd;

    if (len == 0 || !tlsrpt_name_ok(r->domain))
        return false;               /* cannot happen for a checked record */
    tlsrpt_day_name(now, day);
    fd = open_day_file(st, day, r->domain);
    if (fd < 0)
        return false;
    if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size + len > TLSRPT_DOMAIN_DAY_MAX) {
        if (strcmp(st->full_domain, r->domain) != 0)
            log_warn("event=tlsrpt_dropped day=%s domain=%s reason=\"file limit reached\"",
                     day, log_value(qd, sizeof(qd), r->domain));
        snprintf(st->full_domain, sizeof(st->full_domain), "%s", r->domain);
        close(fd);
        return false;
    }
    ok = write_all(fd, st->line, len) && fdatasync(fd) == 0;
    if (!ok)
        log_error("event=tlsrpt_store_failed domain=%s error=\"%s\"",
                  log_value(qd, sizeof(qd), r->domain), strerror(errno));
    close(fd);
    return ok;
}

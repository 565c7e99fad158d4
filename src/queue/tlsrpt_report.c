/*
 * tlsrpt_report.c - aggregate one domain's day of TLS-RPT records and
 * write the RFC 8460 JSON report (see tlsrpt_report.h).
 *
 * Field names and shapes follow RFC 8460 section 4.4 (and its example,
 * with "mx-host" as an array as the erratum has it); "policy-string" and
 * "mx-host" are left out for no-policy-found, "sending-mta-ip",
 * "receiving-ip" and "failure-reason-code" when unknown.
 */
#include "queue/tlsrpt_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/tlsrpt_store.h"
#include "util/xalloc.h"

struct detail {
    enum tlsrpt_result result;
    char mx[TLSRPT_NAME_MAX + 1];
    char ip[TLSRPT_IP_MAX + 1];
    char sending_ip[TLSRPT_IP_MAX + 1];
    char reason[TLSRPT_REASON_MAX + 1];
    uint64_t count;
};

struct policy_agg {
    struct tlsrpt_record key;       /* type, policy strings, mx patterns */
    uint64_t ok, failed;
    size_t ndetails;
    struct detail details[TLSRPT_REPORT_DETAILS];
};

struct agg {
    size_t npolicies;
    struct policy_agg *policies[TLSRPT_REPORT_POLICIES];   /* allocated as found */
};

/* --- buffer and JSON --- */

void tlsrpt_buf_put(struct tlsrpt_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->alloc) {
        b->alloc = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->alloc);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tlsrpt_buf_puts(struct tlsrpt_buf *b, const char *s)
{
    tlsrpt_buf_put(b, s, strlen(s));
}

void tlsrpt_buf_free(struct tlsrpt_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void tlsrpt_json_string(struct tlsrpt_buf *b, const char *s)
{
    char esc[8];

    tlsrpt_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            tlsrpt_buf_put(b, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            tlsrpt_buf_put(b, esc, 6);
        } else {
            tlsrpt_buf_put(b, (const char *)&c, 1);
        }
    }
    tlsrpt_buf_put(b, "\"", 1);
}

static void json_key(struct tlsrpt_buf *b, const char *key, bool first)
{
    if (!first)
        tlsrpt_buf_put(b, ",", 1);
    tlsrpt_json_string(b, key);
    tlsrpt_buf_put(b, ":", 1);
}

static void json_kv(struct tlsrpt_buf *b, const char *key, const char *value, bool first)
{
    json_key(b, key, first);
    tlsrpt_json_string(b, value);
}

static void json_kn(struct tlsrpt_buf *b, const char *key, uint64_t n, bool first)
{
    char num[32];

    json_key(b, key, first);
    snprintf(num, sizeof(num), "%" PRIu64, n);
    tlsrpt_buf_puts(b, num);
}

static void json_array(struct tlsrpt_buf *b, const char *key, const char *base, size_t stride,
                       size_t n)
{
    json_key(b, key, false);
    tlsrpt_buf_put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            tlsrpt_buf_put(b, ",", 1);
        tlsrpt_json_string(b, base + i * stride);
    }
    tlsrpt_buf_put(b, "]", 1);
}

/* --- aggregation --- */

static bool same_policy(const struct tlsrpt_record *a, const struct tlsrpt_record *b)
{
    if (a->policy_type != b->policy_type || a->policy_string_count != b->policy_string_count ||
        a->mx_pattern_count != b->mx_pattern_count)
        return false;
    for (size_t i = 0; i < a->policy_string_count; i++)
        if (strcmp(a->policy_strings[i], b->policy_strings[i]) != 0)
            return false;
    for (size_t i = 0; i < a->mx_pattern_count; i++)
        if (strcmp(a->mx_patterns[i], b->mx_patterns[i]) != 0)
            return false;
    return true;
}

static void add_detail(struct policy_agg *p, const struct tlsrpt_record *r)
{
    struct detail *d;

    for (size_t i = 0; i < p->ndetails; i++) {
        d = &p->details[i];
        if (d->result == r->result && strcmp(d->mx, r->mx_host) == 0 &&
            strcmp(d->ip, r->ip) == 0 && strcmp(d->sending_ip, r->sending_ip) == 0 &&
            strcmp(d->reason, r->reason) == 0) {
            d->count++;
            return;
        }
    }
    if (p->ndetails >= TLSRPT_REPORT_DETAILS)
        return;                     /* counted in the summary only */
    d = &p->details[p->ndetails++];
    d->result = r->result;
    memcpy(d->mx, r->mx_host, sizeof(d->mx));
    memcpy(d->ip, r->ip, sizeof(d->ip));
    memcpy(d->sending_ip, r->sending_ip, sizeof(d->sending_ip));
    memcpy(d->reason, r->reason, sizeof(d->reason));
    d->count = 1;
}

static bool add_record(struct agg *a, const struct tlsrpt_record *r)
{
    struct policy_agg *p = NULL;

    for (size_t i = 0; i < a->npolicies && p == NULL; i++)
        if (same_policy(&a->policies[i]->key, r))
            p = a->policies[i];
    if (p == NULL) {
        if (a->npolicies >= TLSRPT_REPORT_POLICIES)
            return false;
        p = a->policies[a->npolicies++] = xcalloc(1, sizeof(*p));
        p->key = *r;
    }
    if (r->result == TLSRPT_SUCCESS) {
        p->ok++;
        return true;
    }
    p->failed++;
    add_detail(p, r);
    return true;
}

static void agg_free(struct agg *a)
{
    for (size_t i = 0; i < a->npolicies; i++)
        free(a->policies[i]);
    free(a);
}

/* Read the whole day file (bounded) into a NUL-terminated buffer. */
static char *read_day_file(const char *spool, const char *day, const char *domain,
                           size_t *len, char *err, size_t errsize)
{
    char path[4400];
    struct stat sb;
    char *data;
    ssize_t n;
    size_t got = 0;
    int fd;

    snprintf(path, sizeof(path), "%s/%s/%s/%s", spool, TLSRPT_DIR, day, domain);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size > TLSRPT_DOMAIN_DAY_MAX + (uint64_t)TLSRPT_LINE_MAX) {
        snprintf(err, errsize, "%s: %s", path, fd < 0 ? strerror(errno) : "not a regular "
                 "file of a sane size");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    data = xmalloc((size_t)sb.st_size + 1);
    while (got < (size_t)sb.st_size &&
           (n = read(fd, data + got, (size_t)sb.st_size - got)) > 0)
        got += (size_t)n;
    close(fd);
    data[got] = '\0';
    *len = got;
    return data;
}

static void aggregate(struct agg *a, const char *data, size_t len, const char *domain,
                      struct tlsrpt_report_info *info)
{
    static struct tlsrpt_record r;
    char err[128];
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (i - start > TLSRPT_LINE_MAX ||
            !tlsrpt_line_parse(data + start, i - start, domain, &r, err, sizeof(err))) {
            info->bad_lines++;
        } else {
            info->sessions++;
            if (!add_record(a, &r))
                info->skipped++;
            info->rua_count = r.rua_count;
            memcpy(info->rua, r.rua, sizeof(info->rua));
        }
        start = i + 1;
    }
    if (start < len)
        info->bad_lines++;          /* a torn last line (a crash mid-append) */
}

/* --- the document --- */

static void write_policy(struct tlsrpt_buf *b, const struct policy_agg *p, const char *domain)
{
    const struct tlsrpt_record *k = &p->key;

    tlsrpt_buf_puts(b, "{\"policy\":{");
    json_kv(b, "policy-type", tlsrpt_policy_name(k->policy_type), true);
    if (k->policy_type != TLSRPT_POLICY_NONE)
        json_array(b, "policy-string", k->policy_strings[0], sizeof(k->policy_strings[0]),
                   k->policy_string_count);
    json_kv(b, "policy-domain", domain, false);
    if (k->mx_pattern_count > 0)
        json_array(b, "mx-host", k->mx_patterns[0], sizeof(k->mx_patterns[0]),
                   k->mx_pattern_count);
    tlsrpt_buf_puts(b, "},\"summary\":{");
    json_kn(b, "total-successful-session-count", p->ok, true);
    json_kn(b, "total-failure-session-count", p->failed, false);
    tlsrpt_buf_puts(b, "}");
    if (p->ndetails > 0) {
        tlsrpt_buf_puts(b, ",\"failure-details\":[");
        for (size_t i = 0; i < p->ndetails; i++) {
            const struct detail *d = &p->details[i];

            tlsrpt_buf_puts(b, i ? ",{" : "{");
            json_kv(b, "result-type", tlsrpt_result_name(d->result), true);
            if (d->sending_ip[0])
                json_kv(b, "sending-mta-ip", d->sending_ip, false);
            if (d->mx[0])
                json_kv(b, "receiving-mx-hostname", d->mx, false);
            if (d->ip[0])
                json_kv(b, "receiving-ip", d->ip, false);
            json_kn(b, "failed-session-count", d->count, false);
            if (d->reason[0])
                json_kv(b, "failure-reason-code", d->reason, false);
            tlsrpt_buf_puts(b, "}");
        }
        tlsrpt_buf_puts(b, "]");
    }
    tlsrpt_buf_puts(b, "}");
}

static void write_report(struct tlsrpt_buf *b, const struct agg *a, const char *day,
                         const char *domain, const struct tlsrpt_report_meta *meta,
                         const char *report_id)
{
    char start[32], end[32];

    snprintf(start, sizeof(start), "%sT00:00:00Z", day);
    snprintf(end, sizeof(end), "%sT23:59:59Z", day);
    tlsrpt_buf_puts(b, "{");
    json_kv(b, "organization-name", meta->organization, true);
    json_key(b, "date-range", false);
    tlsrpt_buf_puts(b, "{");
    json_kv(b, "start-datetime", start, true);
    json_kv(b, "end-datetime", end, false);
    tlsrpt_buf_puts(b, "}");
    json_kv(b, "contact-info", meta->contact, false);
    json_kv(b, "report-id", report_id, false);
    json_key(b, "policies", false);
    tlsrpt_buf_puts(b, "[");
    for (size_t i = 0; i < a->npolicies; i++) {
        if (i)
            tlsrpt_buf_puts(b, ",");
        write_policy(b, a->policies[i], domain);
    }
    tlsrpt_buf_puts(b, "]}");
}

bool tlsrpt_report_json(const char *spool, const char *day, const char *domain,
                        const struct tlsrpt_report_meta *meta, struct tlsrpt_buf *out,
                        struct tlsrpt_report_info *info, char *err, size_t errsize)
{
    size_t len;
    char *data;
    bool ok;

    memset(info, 0, sizeof(*info));
    if (!tlsrpt_name_ok(domain)) {
        snprintf(err, errsize, "not a domain name");
        return false;
    }
    data = read_day_file(spool, day, domain, &len, err, errsize);
    if (data == NULL)
        return false;
    ok = tlsrpt_report_json_data(data, len, day, domain, meta, out, info, err, errsize);
    free(data);
    return ok;
}

bool tlsrpt_report_json_data(const char *data, size_t len, const char *day, const char *domain,
                             const struct tlsrpt_report_meta *meta, struct tlsrpt_buf *out,
                             struct tlsrpt_report_info *info, char *err, size_t errsize)
{
    struct agg *a;

    memset(info, 0, sizeof(*info));
    if (!tlsrpt_name_ok(domain)) {
        snprintf(err, errsize, "not a domain name");
        return false;
    }
    info->empty = len == 0;
    a = xcalloc(1, sizeof(*a));
    aggregate(a, data, len, domain, info);
    if (a->npolicies == 0) {
        snprintf(err, errsize, "no valid record (%zu bad lines)", info->bad_lines);
        agg_free(a);
        return false;
    }
    snprintf(info->report_id, sizeof(info->report_id), "%s.%s@%s", day, domain,
             meta->submitter);
    write_report(out, a, day, domain, meta, info->report_id);
    agg_free(a);
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

size_t tlsrpt_report_domains(const char *spool, const char *day, char (**names)[256])
{
    char dir[4200];
    DIR *d;
    struct dirent *de;
    size_t n = 0, alloc = 0;

    *names = NULL;
    snprintf(dir, sizeof(dir), "%s/%s/%s", spool, TLSRPT_DIR, day);
    if ((d = opendir(dir)) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL && n < TLSRPT_MAX_DOMAIN_LIST) {
        if (!tlsrpt_name_ok(de->d_name) || strlen(de->d_name) >= 256)
            continue;
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            *names = xrealloc(*names, alloc * sizeof(**names));
        }
        snprintf((*names)[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(*names, n, sizeof(**names), by_name);
    return n;
}

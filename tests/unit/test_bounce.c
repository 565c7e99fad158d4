/*
 * test_bounce.c - unit tests for queue/bounce.c: a real spool in a
 * mkdtemp() folder, a real queued original (queue_msg_new, write,
 * commit, queue_load), then bounce_queue and a look at the report it
 * queued: its envelope (null sender, one recipient = original sender),
 * the top-level header fields, the three MIME parts of the
 * multipart/report, the per-recipient delivery-status fields, RET=FULL
 * against RET=HDRS, ENVID/ORCPT, NOTIFY filtering, the null sender, and
 * the sanitising of hostile diagnostics.
 *
 * When SEALPOST_DSN_SAMPLE names a file, test_sample_for_python writes
 * one generated report there (tests/integration/test_bounce_format.py
 * parses it with Python's email package).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "queue/bounce.h"
#include "queue/queue.h"

#define HOST "mx.example.test"
#define SENDER "alice@sender.example"
#define ARRIVAL ((time_t)1795968693)        /* Sun, 29 Nov 2026 16:11:33 +0000 */
#define ARRIVAL_DATE "Sun, 29 Nov 2026 16:11:33 +0000"

#define ORIGINAL_HEADERS                                                  \
    "Received: from client.example ([192.0.2.7])\r\n"                     \
    "\tby mx.example.test (sealpost) with ESMTP id 0123456789ABCDEF;\r\n" \
    "\tSun, 29 Nov 2026 16:11:33 +0000\r\n"                               \
    "From: Alice <alice@sender.example>\r\n"                              \
    "To: bob@dest.example\r\n"                                            \
    "Subject: quarterly figures\r\n"                                      \
    "Message-ID: <orig-1@sender.example>\r\n"
#define ORIGINAL_BODY "Hello Bob,\r\n\r\nthe figures are attached.\r\n"
#define ORIGINAL ORIGINAL_HEADERS "\r\n" ORIGINAL_BODY

struct fixture {
    char dir[256];
    struct queue *q;
    struct config cfg;
    struct queued_message orig;
    struct queued_message dsn;
    char *text;                     /* the report's message bytes, NUL-terminated */
    size_t len;
    char boundary[128];
};

struct rcpt_spec {
    const char *addr;
    unsigned notify;
    const char *orcpt;
};

struct orig_spec {
    const char *from;
    enum body_type body;
    bool smtputf8;
    enum dsn_ret ret;
    const char *envid;
    const struct rcpt_spec *rcpts;
    size_t rcpt_count;
    const char *content;
    size_t content_len;             /* 0: strlen(content) */
    bool withheld;                  /* envelope dsn_content none */
};

static const struct rcpt_spec two_rcpts[] = {
    { "bob@dest.example", 0, NULL },
    { "carol@dest.example", 0, NULL },
};

/* --- spool plumbing --- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/sealpost-bounce-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->q = queue_open(f->dir, err, sizeof(err));
    assert_non_null(f->q);
    snprintf(f->cfg.hostname, sizeof(f->cfg.hostname), "%s", HOST);
    f->orig.fd = -1;
    f->dsn.fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    queue_unload(&f->orig);
    queue_unload(&f->dsn);
    queue_close(f->q);
    free(f->text);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void commit_cb(struct queue_msg *msg, bool ok, void *arg)
{
    (void)msg;
    *(bool *)arg = ok;
}

/* Queue an original per spec and load it into f->orig. */
static void make_original(struct fixture *f, const struct orig_spec *spec)
{
    struct envelope env;
    struct queue_msg *msg;
    const char *content = spec->content ? spec->content : ORIGINAL;
    size_t len = spec->content_len ? spec->content_len : strlen(content);
    char id[QUEUE_ID_LEN + 1], err[256];
    bool ok = false;

    envelope_init(&env);
    env.arrival = ARRIVAL;
    snprintf(env.client, sizeof(env.client), "192.0.2.7");
    snprintf(env.helo, sizeof(env.helo), "client.example");
    snprintf(env.from, sizeof(env.from), "%s", spec->from ? spec->from : SENDER);
    env.body = spec->body;
    env.smtputf8 = spec->smtputf8;
    env.ret = spec->ret;
    snprintf(env.envid, sizeof(env.envid), "%s", spec->envid ? spec->envid : "");
    env.dsn_content_withheld = spec->withheld;
    for (size_t i = 0; i < spec->rcpt_count; i++)
        envelope_add_rcpt(&env, spec->rcpts[i].addr, spec->rcpts[i].notify,
                          spec->rcpts[i].orcpt);
    msg = queue_msg_new(f->q, &env);
    assert_non_null(msg);
    memcpy(id, queue_msg_id(msg), sizeof(id));
    envelope_clear(&env);
    assert_true(queue_msg_write(msg, content, len));
    queue_msg_commit(msg, commit_cb, &ok);
    assert_true(ok);
    assert_true(queue_load(f->q, id, &f->orig, err, sizeof(err)));
}

static unsigned count_queued(const struct fixture *f)
{
    char path[300];
    DIR *d;
    struct dirent *de;
    unsigned n = 0;

    snprintf(path, sizeof(path), "%s/queue", f->dir);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Load the report with id and read its message bytes into f->text. */
static void load_dsn(struct fixture *f, const char *id)
{
    char err[256];
    ssize_t n;

    assert_true(queue_load(f->q, id, &f->dsn, err, sizeof(err)));
    f->len = (size_t)f->dsn.body_size;
    f->text = malloc(f->len + 1);
    assert_non_null(f->text);
    n = pread(f->dsn.fd, f->text, f->len, f->dsn.body_offset);
    assert_int_equal(n, (ssize_t)f->len);
    f->text[f->len] = '\0';
    assert_int_equal(strlen(f->text), f->len);
}

/* Bounce rcpts of f->orig; must succeed; loads the report. */
static void bounce_ok(struct fixture *f, const struct bounce_rcpt *r, size_t count)
{
    char id[QUEUE_ID_LEN + 1], err[256] = "";

    if (!bounce_queue(f->q, &f->cfg, &f->orig, r, count, id, err, sizeof(err)))
        fail_msg("bounce_queue: %s", err);
    assert_int_equal(strlen(id), QUEUE_ID_LEN);
    load_dsn(f, id);
}

/* Bounce must refuse with exactly this reason and queue nothing. */
static void bounce_refused(struct fixture *f, const struct bounce_rcpt *r, size_t count,
                           const char *reason)
{
    char id[QUEUE_ID_LEN + 1] = "", err[256] = "";
    unsigned before = count_queued(f);

    assert_false(bounce_queue(f->q, &f->cfg, &f->orig, r, count, id, err, sizeof(err)));
    assert_string_equal(err, reason);
    assert_int_equal(count_queued(f), before);
}

/* --- checks on the report text --- */

static bool contains(const struct fixture *f, const char *s)
{
    return strstr(f->text, s) != NULL;
}

static void assert_contains(const struct fixture *f, const char *s)
{
    if (!contains(f, s))
        fail_msg("report lacks \"%s\":\n%s", s, f->text);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);

    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* CRLF only, no line over 998 octets. */
static void check_lines(const struct fixture *f)
{
    size_t col = 0;

    assert_true(f->len >= 2);
    assert_memory_equal(f->text + f->len - 2, "\r\n", 2);
    for (size_t i = 0; i < f->len; i++) {
        if (f->text[i] == '\r') {
            assert_true(i + 1 < f->len && f->text[i + 1] == '\n');
        } else if (f->text[i] == '\n') {
            assert_true(i > 0 && f->text[i - 1] == '\r');
            col = 0;
            continue;
        }
        col++;
        assert_true(col <= 998 + 1);
    }
}

static void extract_boundary(struct fixture *f)
{
    const char *p = strstr(f->text, "boundary=\"");
    const char *end;

    assert_non_null(p);
    p += strlen("boundary=\"");
    end = strchr(p, '"');
    assert_non_null(end);
    assert_true(end > p && (size_t)(end - p) < sizeof(f->boundary) && end - p <= 70);
    memcpy(f->boundary, p, (size_t)(end - p));
    f->boundary[end - p] = '\0';
    assert_non_null(strstr(f->boundary, f->dsn.env.id));
}

/* Part n (0-based): its header and content up to the next delimiter. */
static char *part(const struct fixture *f, int n)
{
    char delim[160];
    const char *p = f->text, *end;
    size_t dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", f->boundary);
    char *out;

    for (int i = 0; i <= n; i++) {
        p = strstr(p, delim);
        assert_non_null(p);
        p += dlen;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
    end = strstr(p, delim);
    assert_non_null(end);
    out = strndup(p, (size_t)(end - p));
    assert_non_null(out);
    return out;
}

static void assert_part_has(const struct fixture *f, int n, const char *s)
{
    char *p = part(f, n);

    if (strstr(p, s) == NULL)
        fail_msg("part %d lacks \"%s\":\n%s", n, s, p);
    free(p);
}

static void assert_part_lacks(const struct fixture *f, int n, const char *s)
{
    char *p = part(f, n);

    if (strstr(p, s) != NULL)
        fail_msg("part %d has \"%s\":\n%s", n, s, p);
    free(p);
}

/* Envelope, header fields, MIME structure: what every report has; parts
 * is 3, or 2 when the original is withheld. */
static void check_report_parts(struct fixture *f, const char *subject, size_t parts)
{
    char line[512], delim[160];
    const char *body;

    assert_string_equal(f->dsn.env.from, "");
    assert_int_equal(f->dsn.env.rcpt_count, 1);
    assert_string_equal(f->dsn.env.rcpts[0].addr, f->orig.env.from);
    assert_int_equal(f->dsn.env.rcpts[0].notify, 0);
    assert_string_equal(f->dsn.env.helo, HOST);
    check_lines(f);
    assert_contains(f, "From: MAILER-DAEMON@" HOST " (Mail Delivery System)\r\n");
    snprintf(line, sizeof(line), "\r\nTo: <%s>\r\n", f->orig.env.from);
    assert_contains(f, line);
    snprintf(line, sizeof(line), "\r\nSubject: %s\r\n", subject);
    assert_contains(f, line);
    assert_contains(f, "\r\nDate: ");
    assert_contains(f, "\r\nMessage-ID: <");
    assert_contains(f, "@" HOST ">\r\n");
    assert_contains(f, "\r\nAuto-Submitted: auto-replied\r\n");
    assert_contains(f, "\r\nMIME-Version: 1.0\r\n");
    assert_contains(f, "\r\nContent-Type: multipart/report; report-type=delivery-status;");
    extract_boundary(f);
    body = strstr(f->text, "\r\n\r\n");
    assert_non_null(body);
    snprintf(delim, sizeof(delim), "\r\n--%s\r\n", f->boundary);
    assert_int_equal(count_of(body, delim), parts);
    snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", f->boundary);
    assert_int_equal(count_of(body, delim), 1);
    assert_true(strstr(f->text, delim) + strlen(delim) == f->text + f->len);
    assert_part_has(f, 0, "Content-Type: text/plain; charset=");
    assert_part_has(f, 0, "This is the mail system at host " HOST ".");
    assert_part_has(f, 1, "Content-Type: message/delivery-status\r\n");
    assert_part_has(f, 1, "\r\n\r\nReporting-MTA: dns; " HOST "\r\n");
    assert_part_has(f, 1, "Arrival-Date: " ARRIVAL_DATE "\r\n");
}

static void check_report(struct fixture *f, const char *subject)
{
    check_report_parts(f, subject, 3);
}

/* The per-recipient block for addr holds want. */
static void assert_block_has(const struct fixture *f, const char *addr, const char *want)
{
    char *p = part(f, 1), key[400], *block, *end;

    snprintf(key, sizeof(key), "Final-Recipient: rfc822; %s\r\n", addr);
    block = strstr(p, key);
    if (block == NULL)
        fail_msg("no block for %s:\n%s", addr, p);
    while (block > p + 3 && !(block[-1] == '\n' && block[-2] == '\r' && block[-3] == '\n'))
        block--;
    end = strstr(block, "\r\n\r\n");
    if (end)
        end[2] = '\0';
    if (strstr(block, want) == NULL)
        fail_msg("block for %s lacks \"%s\":\n%s", addr, want, block);
    free(p);
}

/* --- the tests --- */

static void test_failed_hdrs(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 2, .body = BODY_7BIT };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", "mx.dest.example",
          "550 5.1.1 <bob@dest.example>: Recipient address rejected: User unknown",
          ARRIVAL + 60 },
        { 1, BOUNCE_FAILED, "5.2.2", NULL, "mailbox full", 0 },
    };

    make_original(f, &spec);
    bounce_ok(f, r, 2);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_int_equal(f->dsn.env.body, BODY_7BIT);
    assert_false(f->dsn.env.smtputf8);
    assert_part_has(f, 0, "could not be\r\ndelivered to one or more recipients");
    assert_part_has(f, 0, "<bob@dest.example>");
    assert_part_has(f, 0, "Remote host: mx.dest.example");
    assert_part_has(f, 0, "Recipient address rejected");
    assert_part_has(f, 0, "<carol@dest.example>");
    assert_part_has(f, 0, "mailbox full");
    assert_block_has(f, "bob@dest.example", "Action: failed\r\n");
    assert_block_has(f, "bob@dest.example", "Status: 5.1.1\r\n");
    assert_block_has(f, "bob@dest.example", "Remote-MTA: dns; mx.dest.example\r\n");
    assert_block_has(f, "bob@dest.example", "Diagnostic-Code: smtp; 550 5.1.1");
    assert_block_has(f, "bob@dest.example", "Last-Attempt-Date: Sun, 29 Nov 2026 16:12:33 +0000");
    assert_block_has(f, "carol@dest.example", "Status: 5.2.2\r\n");
    assert_block_has(f, "carol@dest.example", "Diagnostic-Code: X-Sealpost; mailbox full\r\n");
    assert_part_lacks(f, 1, "Original-Envelope-Id");
    assert_part_lacks(f, 1, "Original-Recipient");
    assert_part_lacks(f, 1, "Remote-MTA: dns; \r\n");
    /* RET unspecified: the header section only */
    assert_part_has(f, 2, "Content-Type: text/rfc822-headers\r\n");
    assert_part_has(f, 2, "\r\n\r\n" ORIGINAL_HEADERS);
    assert_part_lacks(f, 2, "figures are attached");
}

static void test_ret_hdrs_explicit(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1, .ret = DSN_RET_HDRS,
                              .body = BODY_8BITMIME,
                              .content = ORIGINAL_HEADERS "\r\nGr\xc3\xbc\xc3\x9f" "e\r\n" };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 };

    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    /* the 8-bit body is not returned, so the report is 7bit */
    assert_int_equal(f->dsn.env.body, BODY_7BIT);
    assert_false(contains(f, "Content-Transfer-Encoding: 8bit"));
    assert_part_has(f, 2, "Content-Type: text/rfc822-headers\r\n");
    assert_part_has(f, 2, "Subject: quarterly figures\r\n");
    assert_part_lacks(f, 2, "Gr\xc3\xbc");
    assert_part_lacks(f, 1, "Diagnostic-Code");
}

static void test_ret_full(void **state)
{
    struct fixture *f = *state;
    const char *content = ORIGINAL_HEADERS "\r\nGr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen\r\n";
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1, .ret = DSN_RET_FULL,
                              .body = BODY_8BITMIME, .content = content };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.1.1", "mx.dest.example", "550 no", 0 };
    char want[1024];

    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_int_equal(f->dsn.env.body, BODY_8BITMIME);
    assert_contains(f, "\r\nContent-Transfer-Encoding: 8bit\r\n");
    assert_part_has(f, 2, "Content-Type: message/rfc822\r\n");
    assert_part_has(f, 2, "Content-Transfer-Encoding: 8bit\r\n");
    snprintf(want, sizeof(want), "\r\n\r\n%s", content);
    assert_part_has(f, 2, want);
}

/* A message larger than any buffer comes back whole, byte for byte. */
static void test_ret_full_large(void **state)
{
    struct fixture *f = *state;
    size_t lines = 20000, len;
    char *content = malloc(strlen(ORIGINAL_HEADERS) + 2 + lines * 40 + 1), *p, *got;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1, .ret = DSN_RET_FULL };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.3.4", NULL, "message too big", 0 };

    assert_non_null(content);
    p = content + snprintf(content, 4096, "%s\r\n", ORIGINAL_HEADERS);
    for (size_t i = 0; i < lines; i++)
        p += snprintf(p, 41, "line %08zu of the returned message.\r\n", i);
    len = (size_t)(p - content);
    spec.content = content;
    spec.content_len = len;
    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    got = part(f, 2);
    p = strstr(got, "\r\n\r\n");
    assert_non_null(p);
    assert_int_equal(strlen(p + 4), len);
    assert_memory_equal(p + 4, content, len);
    free(got);
    free(content);
}

/* RET=FULL is for failures; a delay report returns the header only. */
static void test_ret_full_delay_sends_headers(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1, .ret = DSN_RET_FULL };
    struct bounce_rcpt r = { 0, BOUNCE_DELAYED, "4.4.1", "mx.dest.example",
                             "connection timed out", ARRIVAL + 3600 };

    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Delayed Mail (still being retried)");
    assert_block_has(f, "bob@dest.example", "Action: delayed\r\n");
    assert_block_has(f, "bob@dest.example", "Status: 4.4.1\r\n");
    assert_part_has(f, 0, "will keep trying");
    assert_part_has(f, 2, "Content-Type: text/rfc822-headers\r\n");
    assert_part_lacks(f, 2, "figures are attached");
}

/* The header section is cut at 64 KiB, on a line end. */
static void test_huge_header_capped(void **state)
{
    struct fixture *f = *state;
    size_t lines = 3000, len;
    char *content = malloc(lines * 40 + 100), *p, *got;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1 };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.0.0", NULL, NULL, 0 };

    assert_non_null(content);
    p = content;
    for (size_t i = 0; i < lines; i++)
        p += snprintf(p, 41, "X-Filler-%06zu: %-20s\r\n", i, "padding");
    p += snprintf(p, 100, "\r\nbody\r\n");
    len = (size_t)(p - content);
    assert_true(len > 64 * 1024);
    spec.content = content;
    spec.content_len = len;
    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    got = part(f, 2);
    p = strstr(got, "\r\n\r\n") + 4;
    assert_true(strlen(p) <= 64 * 1024);
    assert_true(strlen(p) > 60 * 1024);
    assert_memory_equal(p, content, strlen(p));
    assert_memory_equal(p + strlen(p) - 2, "\r\n", 2);
    assert_null(strstr(p, "body"));
    free(got);
    free(content);
}

static void test_envid_orcpt(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = {
        { "bob@dest.example", DSN_NOTIFY_FAILURE, "rfc822;bob+2Bold@dest.example" },
        { "carol@dest.example", DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, NULL },
    };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 2, .envid = "QQ+2B314159" };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
        { 1, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
    };
    char *p;

    make_original(f, &spec);
    bounce_ok(f, r, 2);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_part_has(f, 1, "Original-Envelope-Id: QQ+314159\r\n");
    assert_block_has(f, "bob@dest.example", "Original-Recipient: rfc822;bob+old@dest.example\r\n");
    p = part(f, 1);
    assert_int_equal(count_of(p, "Original-Recipient:"), 1);
    free(p);
}

static void test_notify_never(void **state)
{
    struct fixture *f = *state;
    /* NEVER with anything else cannot come from the parser; NEVER wins */
    static const struct rcpt_spec rcpts[] = {
        { "bob@dest.example", DSN_NOTIFY_NEVER, NULL },
        { "carol@dest.example", DSN_NOTIFY_NEVER | DSN_NOTIFY_FAILURE, NULL },
    };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 2 };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", NULL, "no", 0 },
        { 1, BOUNCE_FAILED, "5.1.1", NULL, "no", 0 },
    };

    make_original(f, &spec);
    bounce_refused(f, r, 2, "nothing to report");
}

static void test_notify_success_only(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = { { "bob@dest.example", DSN_NOTIFY_SUCCESS, NULL } };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 1 };
    struct bounce_rcpt fail_r = { 0, BOUNCE_FAILED, "5.1.1", NULL, "no", 0 };
    struct bounce_rcpt delay_r = { 0, BOUNCE_DELAYED, "4.4.1", NULL, "later", 0 };
    struct bounce_rcpt ok_r = { 0, BOUNCE_DELIVERED, "2.0.0", NULL, NULL, 0 };

    make_original(f, &spec);
    bounce_refused(f, &fail_r, 1, "nothing to report");
    bounce_refused(f, &delay_r, 1, "nothing to report");
    bounce_ok(f, &ok_r, 1);
    check_report(f, "Successful Mail Delivery Report");
    assert_block_has(f, "bob@dest.example", "Action: delivered\r\n");
    assert_block_has(f, "bob@dest.example", "Status: 2.0.0\r\n");
}

/* Unset NOTIFY means FAILURE,DELAY: no success reports. */
static void test_notify_default(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 2 };
    struct bounce_rcpt relayed = { 0, BOUNCE_RELAYED, "2.0.0", "mx.dest.example", NULL, 0 };
    struct bounce_rcpt delayed = { 1, BOUNCE_DELAYED, NULL, NULL, NULL, 0 };

    make_original(f, &spec);
    bounce_refused(f, &relayed, 1, "nothing to report");
    bounce_ok(f, &delayed, 1);
    check_report(f, "Delayed Mail (still being retried)");
    assert_block_has(f, "carol@dest.example", "Status: 4.0.0\r\n");
}

/* Only the recipients whose NOTIFY asks for it are in the report. */
static void test_notify_mixed(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = {
        { "bob@dest.example", DSN_NOTIFY_NEVER, NULL },
        { "carol@dest.example", DSN_NOTIFY_FAILURE, NULL },
        { "dave@dest.example", DSN_NOTIFY_DELAY, NULL },
        { "erin@dest.example", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, NULL },
    };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 4 };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
        { 1, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
        { 2, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
        { 3, BOUNCE_RELAYED, "2.0.0", "mx.dest.example", "250 ok", 0 },
    };

    make_original(f, &spec);
    bounce_ok(f, r, 4);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_part_lacks(f, 1, "bob@dest.example");
    assert_part_lacks(f, 1, "dave@dest.example");
    assert_block_has(f, "carol@dest.example", "Action: failed\r\n");
    assert_block_has(f, "erin@dest.example", "Action: relayed\r\n");
    assert_part_has(f, 0, "passed on to the recipients below");
    assert_part_lacks(f, 0, "bob@dest.example");
}

static void test_null_sender(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .from = "", .rcpts = two_rcpts, .rcpt_count = 1 };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.1.1", NULL, "no", 0 };

    make_original(f, &spec);
    bounce_refused(f, &r, 1, "null sender: no bounce");
}

static void test_nothing_given(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1 };

    make_original(f, &spec);
    bounce_refused(f, NULL, 0, "nothing to report");
}

static void test_bad_index(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 2 };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
        { 2, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 },
    };

    make_original(f, &spec);
    bounce_refused(f, r, 2, "recipient index 2 out of range");
}

/* A remote reply with CR/LF, controls, UTF-8 and 3000 octets. */
static void test_hostile_diagnostic(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1 };
    char diag[4096], unfolded[4096], *p2, *field, *end;
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.1.1\r\nX-Evil: 1", "mx.dest.example\r\nX-Evil: 2",
                             diag, 0 };
    size_t n;

    n = (size_t)snprintf(diag, sizeof(diag),
                         "550-5.1.1 first line\r\n550 5.1.1 second\r\nX-Evil: 3\r\n\r\n"
                         "Bcc: victim@x \x01\x1b[31m caf\xc3\xa9 \xff\t\ttabs ");
    while (n < 3000)
        n += (size_t)snprintf(diag + n, sizeof(diag) - n, "word%zu ", n);
    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_false(contains(f, "\r\nX-Evil"));
    assert_false(contains(f, "\r\nBcc:"));
    assert_false(contains(f, "\x1b"));
    assert_false(contains(f, "\xc3"));
    assert_block_has(f, "bob@dest.example", "Status: 5.0.0\r\n");
    assert_block_has(f, "bob@dest.example", "Remote-MTA: dns; mx.dest.example X-Evil: 2\r\n");
    p2 = part(f, 1);
    field = strstr(p2, "Diagnostic-Code: smtp; 550-5.1.1 first line");
    assert_non_null(field);
    /* folded: each continuation starts with a space; unfolded value bounded */
    end = field;
    n = 0;
    for (;;) {
        char *eol = strstr(end, "\r\n");

        assert_non_null(eol);
        assert_true(eol - end <= 78);
        memcpy(unfolded + n, end, (size_t)(eol - end));
        n += (size_t)(eol - end);
        end = eol + 2;
        if (*end != ' ')
            break;
    }
    unfolded[n] = '\0';
    assert_true(n <= strlen("Diagnostic-Code: smtp; ") + 900);
    assert_true(n > 800);
    assert_non_null(strstr(unfolded, "Diagnostic-Code: smtp; 550-5.1.1 first line 550 5.1.1 second"
                                     " X-Evil: 3 Bcc: victim@x ??[31m caf? ? tabs word"));
    for (const char *c = unfolded; *c; c++)
        assert_true(*c >= 0x20 && *c < 0x7F);
    free(p2);
}

static void test_utf8_sender_and_rcpt(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = {
        { "j\xc3\xb6rg+x@d\xc3\xa9st.example", 0, "utf-8;j\\x{F6}rg@d\\x{E9}st.example" },
    };
    struct orig_spec spec = { .from = "b\xc3\xa9" "a@sender.example", .smtputf8 = true,
                              .body = BODY_8BITMIME, .rcpts = rcpts, .rcpt_count = 1,
                              .content = "Subject: caf\xc3\xa9\r\n\r\nhi\r\n" };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0 };

    make_original(f, &spec);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_true(f->dsn.env.smtputf8);
    assert_int_equal(f->dsn.env.body, BODY_8BITMIME);
    assert_part_has(f, 0, "Content-Type: text/plain; charset=utf-8\r\n");
    assert_part_has(f, 1, "Final-Recipient: utf-8; j\\x{F6}rg\\x{2B}x@d\\x{E9}st.example\r\n");
    assert_part_has(f, 1, "Original-Recipient: utf-8;j\\x{F6}rg@d\\x{E9}st.example\r\n");
    assert_part_has(f, 2, "Content-Type: message/global-headers\r\n");
    assert_part_has(f, 2, "Subject: caf\xc3\xa9\r\n");
}

/* One report with a failed and a delayed recipient, RET=FULL, ENVID,
 * written to $SEALPOST_DSN_SAMPLE for the Python format check. */
static void test_sample_for_python(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = {
        { "bob@dest.example", 0, "rfc822;bob@dest.example" },
        { "carol@dest.example", 0, NULL },
    };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 2, .ret = DSN_RET_FULL,
                              .envid = "sample-envid-1" };
    struct bounce_rcpt r[] = {
        { 0, BOUNCE_FAILED, "5.1.1", "mx.dest.example",
          "550 5.1.1 <bob@dest.example>: Recipient address rejected: User unknown in "
          "virtual mailbox table; please check the address and try again later", ARRIVAL + 5 },
        { 1, BOUNCE_DELAYED, "4.4.1", "mx2.dest.example", "connect timed out", ARRIVAL + 9 },
    };
    const char *path = getenv("SEALPOST_DSN_SAMPLE");
    FILE *fp;

    make_original(f, &spec);
    bounce_ok(f, r, 2);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_part_has(f, 2, "Content-Type: message/rfc822\r\n");
    if (path == NULL || path[0] == '\0')
        return;
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f->text, 1, f->len, fp), f->len);
    assert_int_equal(fclose(fp), 0);
}

/* An original received in cleartext on a require_tls listener: no part
 * of it in any report, RET=FULL, ENVID and ORCPT notwithstanding. */
static void test_withheld_content(void **state)
{
    struct fixture *f = *state;
    static const struct rcpt_spec rcpts[] = {
        { "postmaster@dest.example", DSN_NOTIFY_FAILURE, "rfc822;secret-orcpt@dest.example" },
    };
    struct orig_spec spec = { .rcpts = rcpts, .rcpt_count = 1, .ret = DSN_RET_FULL,
                              .envid = "secret-envid", .withheld = true };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.2.2", NULL, "mailbox full", 0 };

    make_original(f, &spec);
    /* the flag survives the spool */
    assert_true(f->orig.env.dsn_content_withheld);
    bounce_ok(f, &r, 1);
    check_report_parts(f, "Undelivered Mail Returned to Sender", 2);
    assert_block_has(f, "postmaster@dest.example", "Status: 5.2.2\r\n");
    assert_part_has(f, 0, "no part of it is returned");
    assert_false(contains(f, "quarterly figures"));
    assert_false(contains(f, "figures are attached"));
    assert_false(contains(f, "orig-1@sender.example"));
    assert_false(contains(f, "secret"));
    assert_false(contains(f, "Original-Recipient"));
    assert_false(contains(f, "Original-Envelope-Id"));
    assert_false(contains(f, "rfc822-headers"));
    assert_false(contains(f, "message/rfc822"));
    assert_false(f->dsn.env.dsn_content_withheld);
}

/* Without the flag (every spool written before it existed) the same
 * original is returned as before. */
static void test_not_withheld_by_default(void **state)
{
    struct fixture *f = *state;
    struct orig_spec spec = { .rcpts = two_rcpts, .rcpt_count = 1, .ret = DSN_RET_FULL };
    struct bounce_rcpt r = { 0, BOUNCE_FAILED, "5.2.2", NULL, "mailbox full", 0 };

    make_original(f, &spec);
    assert_false(f->orig.env.dsn_content_withheld);
    bounce_ok(f, &r, 1);
    check_report(f, "Undelivered Mail Returned to Sender");
    assert_part_has(f, 2, "figures are attached");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_failed_hdrs),
        T(test_ret_hdrs_explicit),
        T(test_ret_full),
        T(test_ret_full_large),
        T(test_ret_full_delay_sends_headers),
        T(test_huge_header_capped),
        T(test_envid_orcpt),
        T(test_notify_never),
        T(test_notify_success_only),
        T(test_notify_default),
        T(test_notify_mixed),
        T(test_null_sender),
        T(test_nothing_given),
        T(test_bad_index),
        T(test_hostile_diagnostic),
        T(test_utf8_sender_and_rcpt),
        T(test_sample_for_python),
        T(test_withheld_content),
        T(test_not_withheld_by_default),
    };

    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

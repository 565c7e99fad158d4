/*
 * test_milter_apply.c - unit tests for milter/milter_apply.c: a stored
 * message (behind a fake envelope, so the offset matters) in a memory
 * file, a milter outcome built by hand, and the edited message read back
 * from the output memory file and compared octet for octet.
 *
 * Covers every header edit kind, the index rules (Postfix/Sendmail:
 * INSERT 0 = top, beyond the end = append; CHANGE 1-based, 0 = 1, by
 * name case-insensitive, empty value deletes, beyond the last occurrence
 * appends, hidden fields skipped by CHANGE and counted by INSERT),
 * folding sent as LF or CRLF, body replacement with LF normalised,
 * header-only messages, a header with no empty line before the body, a
 * body bigger than one read chunk, and every refusal.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "milter/milter_apply.h"
#include "util/fileio.h"

#define ENVELOPE "sealpost-envelope 1\nid X\n\n"

static char errbuf[256];
static size_t out_len;

static int memfd_with(const char *data, size_t len)
{
    int fd = memfd_create("test", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_true(write_all(fd, data, len));
    return fd;
}

/* The edited message (malloc'ed, NUL-terminated), or NULL with errbuf. */
static char *apply_max(const char *msg, size_t msg_len, const struct milter_outcome *o,
                       unsigned hidden, size_t max)
{
    size_t elen = strlen(ENVELOPE), n = 0;
    char *in = malloc(elen + msg_len + 1);
    int in_fd, out_fd;
    char *out;
    ssize_t got;

    assert_non_null(in);
    memcpy(in, ENVELOPE, elen);
    memcpy(in + elen, msg, msg_len);
    in_fd = memfd_with(in, elen + msg_len);
    free(in);
    out_fd = memfd_create("out", MFD_CLOEXEC);
    assert_true(out_fd >= 0);
    errbuf[0] = '\0';
    out_len = 0;
    if (!milter_apply(in_fd, (off_t)elen, msg_len, o, hidden, out_fd, max, &n, errbuf,
                      sizeof(errbuf))) {
        assert_true(errbuf[0] != '\0');
        close(in_fd);
        close(out_fd);
        return NULL;
    }
    out = malloc(n + 1);
    assert_non_null(out);
    got = pread(out_fd, out, n + 1, 0);
    assert_int_equal(got, (ssize_t)n);
    out[n] = '\0';
    out_len = n;
    close(in_fd);
    close(out_fd);
    return out;
}

static char *apply(const char *msg, const struct milter_outcome *o, unsigned hidden)
{
    return apply_max(msg, strlen(msg), o, hidden, 1 << 20);
}

static void edit(struct milter_outcome *o, enum milter_edit_kind kind, uint32_t index,
                 const char *name, const char *value)
{
    struct milter_edit *e = &o->edits[o->edit_count++];

    e->kind = kind;
    e->index = index;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->value = strdup(value);
}

static void expect(const char *msg, struct milter_outcome *o, unsigned hidden, const char *want)
{
    char *got = apply(msg, o, hidden);

    if (got == NULL)
        fail_msg("refused: %s", errbuf);
    assert_string_equal(got, want);
    assert_int_equal(out_len, strlen(want));
    free(got);
    milter_outcome_clear(o);
}

static void expect_refused(const char *msg, struct milter_outcome *o, const char *why)
{
    char *got = apply(msg, o, 0);

    assert_null(got);
    if (strstr(errbuf, why) == NULL)
        fail_msg("error '%s' lacks '%s'", errbuf, why);
    milter_outcome_clear(o);
}

#define MSG "Received: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n\r\nbody\r\n"

static void test_no_edits(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    expect(MSG, &o, 0, MSG);
    /* Envelope edits are not this file's. */
    edit(&o, MILTER_EDIT_ADD_RCPT, 0, "", "x@y");
    edit(&o, MILTER_EDIT_CHANGE_FROM, 0, "", "z@y");
    edit(&o, MILTER_EDIT_DELETE_RCPT, 0, "", "c@d");
    expect(MSG, &o, 0, MSG);
}

static void test_add(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X-Spam", "yes");
    edit(&o, MILTER_EDIT_ADD_HEADER, 7, "X-Empty", "");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X-Lead", " leading space kept");
    expect(MSG, &o, 0,
           "Received: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n"
           "X-Spam: yes\r\nX-Empty:\r\nX-Lead: leading space kept\r\n\r\nbody\r\n");
}

static void test_insert(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "A", "top");
    expect(MSG, &o, 0,
           "A: top\r\nReceived: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n\r\nbody\r\n");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 2, "A", "after two");
    expect(MSG, &o, 0,
           "Received: from x\r\nFrom: a@b\r\nA: after two\r\nTo: c@d\r\nSubject: hi\r\n"
           "\r\nbody\r\n");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 4, "A", "end");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 4000000000u, "B", "far");
    expect(MSG, &o, 0,
           "Received: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\nA: end\r\nB: far\r\n"
           "\r\nbody\r\n");
    /* Edits apply in order: the second insert counts the first. */
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "A", "1");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 1, "B", "2");
    expect(MSG, &o, 0,
           "A: 1\r\nB: 2\r\nReceived: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n"
           "\r\nbody\r\n");
    /* INSERT counts a hidden field: 0 is above sealpost's Received:. */
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "A", "0");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 2, "B", "2");
    expect(MSG, &o, 1,
           "A: 0\r\nReceived: from x\r\nB: 2\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n"
           "\r\nbody\r\n");
}

#define MULTI "Received: by us\r\nReceived: one\r\nX-A: 1\r\nreceived: two\r\n" \
              "Received: three\r\n\tcontinued\r\n\r\nb\r\n"

static void test_change(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 3, "RECEIVED", "new");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nX-A: 1\r\nRECEIVED: new\r\n"
           "Received: three\r\n\tcontinued\r\n\r\nb\r\n");
    /* A folded field is replaced whole. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 4, "Received", "four");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nX-A: 1\r\nreceived: two\r\nReceived: four\r\n"
           "\r\nb\r\n");
    /* 0 is taken as 1. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 0, "x-a", "2");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nx-a: 2\r\nreceived: two\r\n"
           "Received: three\r\n\tcontinued\r\n\r\nb\r\n");
    /* Beyond the last occurrence, and a name not there: appended. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 5, "Received", "five");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "X-New", "n");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nX-A: 1\r\nreceived: two\r\n"
           "Received: three\r\n\tcontinued\r\nReceived: five\r\nX-New: n\r\n\r\nb\r\n");
    /* The hidden first field is not counted: 1 is the milter's first. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "Received", "changed");
    expect(MULTI, &o, 1,
           "Received: by us\r\nReceived: changed\r\nX-A: 1\r\nreceived: two\r\n"
           "Received: three\r\n\tcontinued\r\n\r\nb\r\n");
    /* A prefix of a name is another name. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "X", "x");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nX-A: 1\r\nreceived: two\r\n"
           "Received: three\r\n\tcontinued\r\nX: x\r\n\r\nb\r\n");
}

static void test_delete(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 4, "received", "");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "X-A", "");
    expect(MULTI, &o, 0,
           "Received: by us\r\nReceived: one\r\nreceived: two\r\n\r\nb\r\n");
    /* Deleting what is not there changes nothing; nor does a hidden one. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 9, "Received", "");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "X-None", "");
    expect(MULTI, &o, 0, MULTI);
    /* Deletes in order: deleting #1 twice removes the first two. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "Received", "");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "Received", "");
    expect(MULTI, &o, 1,
           "Received: by us\r\nX-A: 1\r\nReceived: three\r\n\tcontinued\r\n\r\nb\r\n");
    /* Delete one the milter added before. */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X-B", "b");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "x-b", "");
    expect(MSG, &o, 0, MSG);
}

static void test_folding(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    /* libmilter milters (OpenDKIM) fold with "\r\n\t" or "\n\t". */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "DKIM-Signature", "v=1; a=rsa-sha256;\r\n\tb=abc");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "X-Folded", "one\n two\n\tthree");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "Subject", "\n\tstarts folded");
    expect(MSG, &o, 0,
           "X-Folded: one\r\n two\r\n\tthree\r\nReceived: from x\r\nFrom: a@b\r\nTo: c@d\r\n"
           "Subject:\r\n\tstarts folded\r\n"
           "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n\r\nbody\r\n");
}

static void test_body_replace(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    o.body_replaced = true;
    o.body = strdup("new\nbody\r\nlast");
    o.body_len = strlen(o.body);
    expect(MSG, &o, 0,
           "Received: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n\r\n"
           "new\r\nbody\r\nlast\r\n");
    /* An empty body. */
    o.body_replaced = true;
    expect(MSG, &o, 0, "Received: from x\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n\r\n");
    /* A header-only message gets its empty line with the new body. */
    o.body_replaced = true;
    o.body = strdup("x\n");
    o.body_len = 2;
    expect("A: b\r\n", &o, 0, "A: b\r\n\r\nx\r\n");
    /* With header edits too. */
    o.body_replaced = true;
    o.body = strdup("b\r\n\r\n");
    o.body_len = 5;
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect("A: b\r\n\r\nold\r\n", &o, 0, "A: b\r\nX: y\r\n\r\nb\r\n\r\n");
}

static void test_header_only(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect("A: b\r\n", &o, 0, "A: b\r\nX: y\r\n");
    /* The last line lacks its CRLF: it gets one. */
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "X", "y");
    expect("A: b\r\n c", &o, 0, "X: y\r\nA: b\r\n c\r\n");
    /* An empty message: only the new field. */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect("", &o, 0, "X: y\r\n");
    /* Only the empty line: no header, an empty body. */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect("\r\n", &o, 0, "X: y\r\n\r\n");
}

static void test_no_separator(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    /* A line that is no field ends the header: the empty line is added. */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect("A: b\r\nthis is body\r\nB: c\r\n", &o, 0,
           "A: b\r\nX: y\r\n\r\nthis is body\r\nB: c\r\n");
    /* A message that starts with white space has no header at all. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "A", "");
    expect(" A: b\r\n", &o, 0, "\r\n A: b\r\n");
    /* The obsolete "Name :" form is a field of name Name. */
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "subject", "new");
    expect("Subject : old\r\n\r\nb\r\n", &o, 0, "subject: new\r\n\r\nb\r\n");
}

static void test_big_body(void **state)
{
    struct milter_outcome o;
    size_t body = 3 * MILTER_APPLY_CHUNK + 17, hlen = strlen("A: b\r\n\r\n");
    char *msg = malloc(hlen + body + 1), *got;

    (void)state;
    assert_non_null(msg);
    memcpy(msg, "A: b\r\n\r\n", hlen);
    for (size_t i = 0; i < body; i++)
        msg[hlen + i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "X", "y");
    got = apply_max(msg, hlen + body, &o, 0, 1 << 20);
    assert_non_null(got);
    assert_int_equal(out_len, hlen + body + 6);
    assert_memory_equal(got, "X: y\r\n", 6);
    assert_memory_equal(got + 6, msg, hlen + body);
    free(got);
    /* The size limit: one octet short refused, exact accepted. */
    assert_null(apply_max(msg, hlen + body, &o, 0, hlen + body + 5));
    assert_non_null(strstr(errbuf, "over the limit"));
    got = apply_max(msg, hlen + body, &o, 0, hlen + body + 6);
    assert_non_null(got);
    free(got);
    milter_outcome_clear(&o);
    free(msg);
}

static void test_header_limit(void **state)
{
    struct milter_outcome o;
    size_t len = MILTER_APPLY_HEADER_MAX + 100;
    char *msg = malloc(len);

    (void)state;
    assert_non_null(msg);
    /* One field folded into 10-octet lines, longer than the limit. */
    memcpy(msg, "X: 12345\r\n", 10);
    for (size_t i = 10; i + 10 <= len; i += 10)
        memcpy(msg + i, "\t1234567\r\n", 10);
    milter_outcome_init(&o);
    assert_null(apply_max(msg, len, &o, 0, 1 << 22));
    assert_non_null(strstr(errbuf, "header section is longer"));
    free(msg);
}

static void test_refusals(void **state)
{
    struct milter_outcome o;
    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "a\r\nB: injected");
    expect_refused(MSG, &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "a\nB: injected");
    expect_refused(MSG, &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "a\r b");
    expect_refused(MSG, &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "a\r\n");
    expect_refused(MSG, &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "X", "a\n\n b");
    expect_refused(MSG, &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_INSERT_HEADER, 0, "X", "a\n \n b");
    expect_refused(MSG, &o, "only white space");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 1, "X", "a\n\t");
    expect_refused(MSG, &o, "only white space");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "a\001b");
    expect_refused(MSG, &o, "control octet 0x01");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X Y", "a");
    expect_refused(MSG, &o, "octet 0x20");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X:Y", "a");
    expect_refused(MSG, &o, "octet 0x3a");
    edit(&o, MILTER_EDIT_CHANGE_HEADER, 0, "\xc3\xa9", "a");
    expect_refused(MSG, &o, "octet 0xc3");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "", "a");
    expect_refused(MSG, &o, "empty");
}

static void test_line_length(void **state)
{
    struct milter_outcome o;
    char v[1100];
    char *got;

    (void)state;
    memset(v, 'v', sizeof(v));
    milter_outcome_init(&o);
    v[995] = '\0';                                    /* "X: " + 995 = 998 */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", v);
    got = apply("A: b\r\n\r\n", &o, 0);
    assert_non_null(got);
    assert_int_equal(out_len, 6 + 998 + 2 + 2);
    free(got);
    milter_outcome_clear(&o);
    v[995] = 'v';
    v[996] = '\0';
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", v);
    expect_refused(MSG, &o, "longer than 998");
    /* A folded line counts alone. */
    memset(v, 'v', sizeof(v));
    memcpy(v, "a\n\t", 3);
    v[1000] = '\0';                                   /* "\t" + 997 = 998 */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", v);
    got = apply("A: b\r\n", &o, 0);
    assert_non_null(got);
    free(got);
    milter_outcome_clear(&o);
    v[1000] = 'v';
    v[1001] = '\0';                                   /* "\t" + 998 = 999 */
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", v);
    expect_refused(MSG, &o, "longer than 998");
}

static void test_body_refusals(void **state)
{
    struct milter_outcome o;
    char line[1000];
    char *got;

    (void)state;
    milter_outcome_init(&o);
    o.body_replaced = true;
    o.body = malloc(5);
    memcpy(o.body, "a\0b\r\n", 5);
    o.body_len = 5;
    expect_refused(MSG, &o, "NUL");
    o.body_replaced = true;
    o.body = strdup("a\rb\r\n");
    o.body_len = 5;
    expect_refused(MSG, &o, "bare CR");
    o.body_replaced = true;
    o.body = strdup("ab\r");
    o.body_len = 3;
    expect_refused(MSG, &o, "bare CR");
    memset(line, 'x', sizeof(line));
    o.body_replaced = true;
    o.body = malloc(sizeof(line));
    memcpy(o.body, line, sizeof(line));
    o.body_len = 999;
    expect_refused(MSG, &o, "longer than 998");
    o.body_replaced = true;
    o.body = malloc(sizeof(line));
    memcpy(o.body, line, sizeof(line));
    o.body_len = 998;
    got = apply(MSG, &o, 0);
    assert_non_null(got);
    assert_int_equal(out_len, strlen(MSG) - strlen("body\r\n") + 1000);
    assert_memory_equal(got + out_len - 1000, line, 998);
    assert_memory_equal(got + out_len - 2, "\r\n", 2);
    free(got);
    milter_outcome_clear(&o);
}

static void test_stored_bare_lf(void **state)
{
    struct milter_outcome o;

    (void)state;
    milter_outcome_init(&o);
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect_refused("A: b\nB: c\r\n\r\n", &o, "bare CR or LF");
    edit(&o, MILTER_EDIT_ADD_HEADER, 0, "X", "y");
    expect_refused("A: b\rc\r\n\r\n", &o, "bare CR or LF");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_edits),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_change),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_folding),
        cmocka_unit_test(test_body_replace),
        cmocka_unit_test(test_header_only),
        cmocka_unit_test(test_no_separator),
        cmocka_unit_test(test_big_body),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_line_length),
        cmocka_unit_test(test_body_refusals),
        cmocka_unit_test(test_stored_bare_lf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

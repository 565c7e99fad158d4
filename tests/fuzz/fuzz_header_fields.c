/*
 * fuzz_header_fields.c - libFuzzer target for the submission header
 * scanner (src/mail/header_fields.c) and the address-list parser of
 * From: (src/mail/mailbox_list.c).
 *
 * Input layout: byte 0 and byte 1 pick the sizes of the pieces the rest
 * is fed in (1..256 octets, alternating), the rest is a message as the
 * smtpd worker streams it (any octets: the scanner runs before the
 * session refuses bare CR/LF or NUL).
 *
 * Checked: fed whole and fed in pieces the output, the results and the
 * point where the added fields go are the same; at_end runs exactly
 * once; the output is the input with nothing but the insertion point
 * (and the empty line or CRLF the header promises) added, so no octet of
 * the message is lost, moved or changed; an empty-line end is at a line
 * start with CR; a field flag is set only when its name is in the input
 * before the insertion; the From: text is bounded and has no CR. The
 * address-list parser, on the collected From: text and on the whole
 * input: deterministic; each address has an '@', no control octets, at
 * most ADDR_PATH_MAX octets, and parses back alone as itself.
 */
#include "fuzz.h"

#include <strings.h>

#include "mail/header_fields.h"
#include "mail/mailbox_list.h"

struct sink_out {
    char *buf;
    size_t len, cap;
    size_t at;              /* output length when at_end ran */
    unsigned ends;
};

static void sink(void *arg, const char *data, size_t len)
{
    struct sink_out *o = arg;

    FUZZ_CHECK(o->len + len <= o->cap);
    memcpy(o->buf + o->len, data, len);
    o->len += len;
}

static void at_end(void *arg, const struct header_scan *h)
{
    struct sink_out *o = arg;

    FUZZ_CHECK(h->end != HEADER_END_NONE);
    o->at = o->len;
    o->ends++;
}

static void run(struct header_scan *h, struct sink_out *o, const char *msg, size_t len,
                const uint8_t *sizes)
{
    size_t pos = 0;
    unsigned k = 0;

    memset(o, 0, sizeof(*o));
    o->cap = len + 4;
    o->buf = malloc(o->cap);
    if (o->buf == NULL)
        abort();
    header_scan_init(h, sink, at_end, o);
    while (pos < len) {
        size_t n = sizes ? (size_t)sizes[k++ % 2] + 1 : len;

        if (n > len - pos)
            n = len - pos;
        header_scan_feed(h, msg + pos, n);
        pos += n;
    }
    header_scan_finish(h);
    FUZZ_CHECK(o->ends == 1);
}

static bool has_name(const char *msg, size_t upto, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i + n <= upto; i++)
        if (strncasecmp(msg + i, name, n) == 0)
            return true;
    return false;
}

static void check_output(const struct header_scan *h, const struct sink_out *o, const char *msg,
                         size_t len)
{
    size_t k = o->at;

    FUZZ_CHECK(k <= len + 2);
    switch (h->end) {
    case HEADER_END_BLANK:
        FUZZ_CHECK(o->len == len && memcmp(o->buf, msg, len) == 0);
        FUZZ_CHECK(msg[k] == '\r' && (k == 0 || (k >= 2 && msg[k - 2] == '\r' &&
                                                 msg[k - 1] == '\n')));
        break;
    case HEADER_END_BODY_LINE:
        FUZZ_CHECK(o->len == len + 2 && memcmp(o->buf, msg, k) == 0);
        FUZZ_CHECK(memcmp(o->buf + k, "\r\n", 2) == 0);
        FUZZ_CHECK(memcmp(o->buf + k + 2, msg + k, len - k) == 0);
        FUZZ_CHECK(k == 0 || (k >= 2 && msg[k - 2] == '\r' && msg[k - 1] == '\n'));
        break;
    case HEADER_END_EOF:
        FUZZ_CHECK(k == o->len && o->len >= len && memcmp(o->buf, msg, len) == 0);
        FUZZ_CHECK(o->len - len <= 2);
        FUZZ_CHECK(k == 0 || (k >= 1 && o->buf[k - 1] == '\n'));
        break;
    default:
        FUZZ_CHECK(false);
    }
    if (h->seen & HEADER_HAS_FROM)
        FUZZ_CHECK(has_name(msg, k, "from") && h->from_fields > 0);
    if (h->seen & HEADER_HAS_DATE)
        FUZZ_CHECK(has_name(msg, k, "date"));
    if (h->seen & HEADER_HAS_MESSAGE_ID)
        FUZZ_CHECK(has_name(msg, k, "message-id"));
    FUZZ_CHECK(h->from_len <= HEADER_FROM_MAX);
    FUZZ_CHECK(memchr(h->from, '\r', h->from_len) == NULL);
}

static void check_addr(const char *addr)
{
    size_t n = strlen(addr);

    FUZZ_CHECK(n > 2 && n <= ADDR_PATH_MAX && strchr(addr, '@') != NULL);
    FUZZ_CHECK(!fuzz_has_control(addr, n));
}

struct round {
    const char *want;
    int seen;
};

static bool same_addr(void *arg, const char *addr)
{
    struct round *r = arg;

    FUZZ_CHECK(strcmp(addr, r->want) == 0);
    r->seen++;
    return true;
}

/* Each address parses back alone as itself. */
static bool round_trip(void *arg, const char *addr)
{
    struct round r = { addr, 0 };
    char err[128];

    (void)arg;
    check_addr(addr);
    FUZZ_CHECK(mailbox_list_parse(addr, strlen(addr), same_addr, &r, err, sizeof(err)) == 1);
    FUZZ_CHECK(r.seen == 1);
    return true;
}

static void check_list(const char *text, size_t len)
{
    char err1[128] = "", err2[128] = "";
    int a = mailbox_list_parse(text, len, round_trip, NULL, err1, sizeof(err1));
    int b = mailbox_list_parse(text, len, NULL, NULL, err2, sizeof(err2));

    FUZZ_CHECK(a == b && a >= -1);
    if (a == -1)
        FUZZ_CHECK(err1[0] != '\0' && strcmp(err1, err2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct header_scan whole, pieces;
    struct sink_out o1, o2;
    const char *msg;
    size_t len;
    char fields[512];

    if (size < 2)
        return 0;
    msg = (const char *)data + 2;
    len = size - 2;
    run(&whole, &o1, msg, len, NULL);
    run(&pieces, &o2, msg, len, data);
    FUZZ_CHECK(o1.len == o2.len && memcmp(o1.buf, o2.buf, o1.len) == 0 && o1.at == o2.at);
    FUZZ_CHECK(whole.seen == pieces.seen && whole.end == pieces.end);
    FUZZ_CHECK(whole.from_len == pieces.from_len && whole.from_overflow == pieces.from_overflow);
    FUZZ_CHECK(memcmp(whole.from, pieces.from, whole.from_len) == 0);
    check_output(&whole, &o1, msg, len);
    if (!whole.from_overflow)
        check_list(whole.from, whole.from_len);
    check_list(msg, len);
    len = header_format_missing(&whole, fields, sizeof(fields), 1795968693, "4ABC", 7,
                                "mx.example.test");
    FUZZ_CHECK(len == 0 || (fields[len - 2] == '\r' && fields[len - 1] == '\n'));
    FUZZ_CHECK((len == 0) == ((whole.seen & (HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID)) ==
                              (HEADER_HAS_DATE | HEADER_HAS_MESSAGE_ID)));
    free(o1.buf);
    free(o2.buf);
    return 0;
}

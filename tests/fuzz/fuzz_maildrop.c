/*
 * fuzz_maildrop.c - libFuzzer target for local submission's parsers:
 * the maildrop file (mail/maildrop_format.c), which the queue reads from
 * a folder every local user can write to, and the header scan of
 * `sealpost sendmail -t` (sendmail/sendmail_headers.c) with the address
 * lists it finds parsed as the command parses them (mail/mailbox_list.c,
 * lone names allowed).
 *
 * Input layout: the whole input is one maildrop file, in a buffer of
 * exactly its size. Checked:
 *  - a refused head leaves a printable, non-empty error;
 *  - an accepted head has 1..MAILDROP_RCPTS_MAX recipients, valid
 *    addresses, and formats back to exactly the input's head (one form);
 *  - the message check over the rest never reads past it, and its
 *    verdict does not depend on how the bytes are split;
 *  - the canonical form of the input passes the message check (given
 *    lines short enough) and is canonical again unchanged;
 *  - the header scan output is never longer than its input and the
 *    list parser only ever gives non-empty addresses of bounded length.
 */
#include "fuzz.h"

#include "mail/mailbox_list.h"
#include "mail/maildrop_format.h"
#include "sendmail/sendmail_headers.h"

static struct maildrop_head head;
static char out[MAILDROP_HEAD_MAX + 1];

static bool emitted(void *arg, const char *addr)
{
    (void)arg;
    FUZZ_CHECK(addr[0] != '\0' && strlen(addr) <= ADDR_PATH_MAX);
    return true;
}

static bool check_body(const char *p, size_t n, size_t split, bool *eb)
{
    struct maildrop_body_check c;

    maildrop_body_begin(&c, 998);
    maildrop_body_feed(&c, p, split);
    maildrop_body_feed(&c, p + split, n - split);
    *eb = c.eight_bit;
    FUZZ_CHECK(c.total == n);
    return maildrop_body_end(&c);
}

static void head_checks(const char *copy, size_t size)
{
    char err[200] = "";
    size_t hlen = maildrop_head_parse(copy, size, &head, err, sizeof(err));
    bool utf8, eb1, eb2;

    if (hlen == 0) {
        FUZZ_CHECK(err[0] != '\0');
        for (const char *p = err; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        return;
    }
    FUZZ_CHECK(hlen <= size && head.rcpt_count >= 1 && head.rcpt_count <= MAILDROP_RCPTS_MAX);
    FUZZ_CHECK(maildrop_addr_valid(head.from, true, &utf8));
    for (size_t i = 0; i < head.rcpt_count; i++)
        FUZZ_CHECK(maildrop_addr_valid(head.rcpts[i], false, &utf8));
    FUZZ_CHECK(maildrop_head_format(&head, out, sizeof(out)) == hlen);
    FUZZ_CHECK(memcmp(out, copy, hlen) == 0);
    FUZZ_CHECK(check_body(copy + hlen, size - hlen, (size - hlen) / 3, &eb1) ==
               check_body(copy + hlen, size - hlen, size - hlen, &eb2));
    FUZZ_CHECK(eb1 == eb2);
}

static void sendmail_checks(const char *copy, size_t size)
{
    char *canon = malloc(2 * size + 2), *again = malloc(4 * size + 4), *scanned;
    size_t n, m;
    struct sendmail_headers hs;
    char err[128];
    bool eb;

    if (canon == NULL || again == NULL)
        abort();
    n = maildrop_canonical(copy, size, size % 2 == 0, canon);
    FUZZ_CHECK(n <= 2 * size + 2);
    m = maildrop_canonical(canon, n, false, again);
    FUZZ_CHECK(m == n && memcmp(again, canon, n) == 0);
    if (size < 990)
        FUZZ_CHECK(check_body(canon, n, n / 2, &eb));
    scanned = malloc(n + 1);
    if (scanned == NULL)
        abort();
    FUZZ_CHECK(sendmail_headers_scan(canon, n, &hs, scanned) <= n);
    for (size_t i = 0; i < hs.field_count; i++)
        mailbox_list_parse_flags(hs.fields[i].value, strlen(hs.fields[i].value),
                                 MAILBOX_BARE_LOCAL, emitted, NULL, err, sizeof(err));
    sendmail_headers_free(&hs);
    mailbox_list_parse_flags(copy, size, MAILBOX_BARE_LOCAL, emitted, NULL, err, sizeof(err));
    free(scanned);
    free(again);
    free(canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    head_checks(copy, size);
    sendmail_checks(copy, size);
    free(copy);
    return 0;
}

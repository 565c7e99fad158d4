/*
 * fuzz_received.c - libFuzzer target for the Received header
 * (src/mail/received.c) and the Maildir local-part encoding
 * (maildir_encode_local in src/mail/maildir.c).
 *
 * received_format trusts its inputs to be validated session values, so
 * each field taken from the input goes through the validator the
 * session uses first: the HELO identity through command_parse_helo, the
 * recipient through address_parse_path + mailbox_format, the client IP
 * through inet_ntop; the hostname is config-checked LDH text, the TLS
 * summary printable ASCII from OpenSSL, the queue id base-32ish. Then:
 * the header fits its buffer or is refused (0), ends in CRLF, and every
 * other CRLF is folding (followed by a tab): no field can add a line.
 *
 * maildir_encode_local gets the rest of the input (raw bytes up to the
 * first NUL) after the Received fields: its output must be one
 * safe path component that decodes back to the lower-cased input.
 */
#include "fuzz.h"

#include <arpa/inet.h>

#include "mail/maildir.h"
#include "mail/address.h"
#include "smtpd/command.h"
#include "mail/received.h"

/* Keep only the bytes of s that are in set (a filter like the config's). */
static void filter(char *s, const char *set)
{
    size_t o = 0;

    for (size_t i = 0; s[i]; i++)
        if (strchr(set, s[i]))
            s[o++] = s[i];
    s[o] = '\0';
}

static void printable(char *s)
{
    for (size_t i = 0; s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            s[i] = '?';
}

static void check_header(const char *h, size_t len)
{
    FUZZ_CHECK(strlen(h) == len);
    FUZZ_CHECK(strncmp(h, "Received: from ", 15) == 0);
    FUZZ_CHECK(len >= 2 && h[len - 2] == '\r' && h[len - 1] == '\n');
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '\r') {
            FUZZ_CHECK(i + 1 < len && h[i + 1] == '\n');
            FUZZ_CHECK(i + 2 == len || h[i + 2] == '\t');
            FUZZ_CHECK(line <= 998);            /* RFC 5322 2.1.1 */
            line = 0;
            i++;
            continue;
        }
        FUZZ_CHECK(c != '\n' && c != '\0');
        FUZZ_CHECK(c >= 0x20 || c == '\t');
        line++;
    }
}

static void fuzz_received(struct fuzz_input *in)
{
    uint8_t flags = fuzz_byte(in);
    char *helo_raw = fuzz_string(in, 300);
    char *rcpt_raw = fuzz_string(in, 300);
    char *host = fuzz_string(in, 255);
    char *tls = fuzz_string(in, 255);
    char *qid = fuzz_string(in, 16);          /* QUEUE_ID_LEN */
    uint8_t ipb[16];
    char helo[256], ip[INET6_ADDRSTRLEN], rcpt[ADDR_PATH_MAX + 1] = "";
    struct mailbox mb;
    size_t consumed;
    struct received_info ri;

    for (size_t i = 0; i < sizeof(ipb); i++)
        ipb[i] = fuzz_byte(in);
    if (!command_parse_helo(helo_raw, strlen(helo_raw), helo, sizeof(helo)))
        snprintf(helo, sizeof(helo), "%s", "unknown");
    FUZZ_CHECK(inet_ntop((flags & 1) ? AF_INET6 : AF_INET, ipb, ip, sizeof(ip)) != NULL);
    bool one_rcpt = address_parse_path(rcpt_raw, strlen(rcpt_raw), (flags & 2) != 0,
                                       &mb, &consumed) == ADDR_OK;
    if (one_rcpt)
        mailbox_format(&mb, rcpt, sizeof(rcpt));
    filter(host, "abcdefghijklmnopqrstuvwxyz0123456789-.");
    filter(qid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    printable(tls);

    memset(&ri, 0, sizeof(ri));
    ri.helo = helo;
    ri.client_ip = ip;
    ri.hostname = host;
    ri.queue_id = qid;
    ri.single_rcpt = one_rcpt ? rcpt : NULL;
    ri.tls_summary = (flags & 4) ? tls : NULL;
    ri.esmtp = flags & 8;
    ri.tls = flags & 16;
    ri.auth = flags & 32;
    ri.smtputf8 = flags & 64;
    /* A time the kernel could give: 1970 .. 9999. */
    uint64_t t = 0;
    for (int i = 0; i < 5; i++)
        t = t << 8 | fuzz_byte(in);
    ri.when = (time_t)(t % 253402300800ull);

    /* The session's buffer size, and a tight one from the input. */
    size_t sizes[2] = { 2048, 1 + (size_t)fuzz_byte(in) * 4 };
    size_t first = 0;
    for (int k = 0; k < 2; k++) {
        char *out = malloc(sizes[k]);
        FUZZ_CHECK(out != NULL);
        size_t n = received_format(&ri, out, sizes[k]);
        if (n > 0) {
            FUZZ_CHECK(n < sizes[k]);
            check_header(out, n);
        }
        if (k == 0)
            first = n;
        else if (sizes[k] > first && first > 0)
            FUZZ_CHECK(n == first);     /* fits: the same header */
        free(out);
    }
    FUZZ_CHECK(first > 0);      /* validated fields always fit 2048 */

    free(helo_raw);
    free(rcpt_raw);
    free(host);
    free(tls);
    free(qid);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void fuzz_maildir_local(const char *local)
{
    size_t len = strlen(local);
    size_t outsize = 3 * len + 1;
    char *out = malloc(outsize);
    FUZZ_CHECK(out != NULL);
    bool ok = maildir_encode_local(local, out, outsize);

    FUZZ_CHECK(ok == (len > 0));
    if (ok) {
        size_t olen = strnlen(out, outsize);
        FUZZ_CHECK(olen < outsize && olen > 0);
        FUZZ_CHECK(out[0] != '.');
        /* One component: no '/', no controls, no quotes, decodes back. */
        size_t d = 0;
        for (size_t i = 0; i < olen; i++) {
            unsigned char c = (unsigned char)out[i];
            FUZZ_CHECK(c != '/' && c != '\\' && c != '"' && c != '\'' && c != ' ');
            FUZZ_CHECK(c >= 0x20 && c != 0x7f);
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z') || (i >= 1 && out[i - 1] == '%') ||
                       (i >= 2 && out[i - 2] == '%'));
            int b = c;
            if (c == '%') {
                FUZZ_CHECK(i + 2 < olen);
                int hi = hexval(out[i + 1]), lo = hexval(out[i + 2]);
                FUZZ_CHECK(hi >= 0 && lo >= 0);
                b = hi << 4 | lo;
                i += 2;
            }
            FUZZ_CHECK(d < len);
            unsigned char want = (unsigned char)local[d++];
            if (want >= 'A' && want <= 'Z')
                want = (unsigned char)(want - 'A' + 'a');
            FUZZ_CHECK(b == want);
        }
        FUZZ_CHECK(d == len);
    }
    free(out);

    /* Smaller buffers: fail cleanly, or give the same text. */
    for (size_t size = 1; size < outsize; size += 1 + size / 2) {
        char *tight = malloc(size);
        FUZZ_CHECK(tight != NULL);
        if (maildir_encode_local(local, tight, size))
            FUZZ_CHECK(strnlen(tight, size) < size);
        free(tight);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };

    fuzz_received(&in);
    /* The rest of the input is a local part for the Maildir encoder. */
    char *local = fuzz_cstring(data + in.pos, size - in.pos);
    fuzz_maildir_local(local);
    free(local);
    return 0;
}

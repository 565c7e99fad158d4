/*
 * fuzz_dns_name.c - libFuzzer target for DNS answer handling: the name
 * helpers of src/delivery/dns_name.c (wire-format names, text names, IP
 * literals, printable copies), dns_classify() of src/delivery/dns.c, and the
 * MX / A / AAAA rdata parsing of src/delivery/dns_mx.c.
 *
 * The rdata parsers in dns_mx.c are static, so this file includes
 * dns_mx.c itself (it is then not linked separately) and calls
 * is_null_mx(), mx_candidates() and store_addrs() on a ub_result built
 * from the input, every rdata in its own exact-size allocation so that
 * AddressSanitizer sees a read past any record.
 *
 * Input layout: byte 0 holds flags (bogus, secure, nxdomain, why_bogus
 * present, also classify an error code), byte 1 the rcode; then a
 * why_bogus string if flagged; then records, each a length byte and that
 * many rdata bytes. The port comes from the first and last byte. The
 * name helpers get the whole input.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <strings.h>

#include "delivery/dns_mx.c"

#define MAX_RECORDS 64

static void check_printable(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    FUZZ_CHECK(len < size);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c >= 0x20 && c < 0x7f && c != '"' && c != '\\');
    }
}

/* A text name as dns_name_normalize() would return it. */
static void check_normal_name(const char *name)
{
    char again[DNS_NAME_MAX + 1];

    FUZZ_CHECK(strlen(name) <= DNS_NAME_MAX);
    FUZZ_CHECK(dns_name_normalize(name, again, sizeof(again)));
    FUZZ_CHECK(strcmp(again, name) == 0);
}

static void check_wire_name(const uint8_t *buf, size_t len)
{
    char out[256];
    size_t used = dns_wire_name(buf, len, out, sizeof(out));

    if (used == 0)
        return;
    FUZZ_CHECK(used <= len && used <= 255);
    if (out[0] != '\0')
        check_normal_name(out);
    else
        FUZZ_CHECK(used == 1 && buf[0] == 0);

    /* Encoding the text again gives the wire bytes, lower-cased. */
    uint8_t wire[256];
    size_t w = 0;
    const char *p = out;
    while (*p) {
        size_t n = strcspn(p, ".");
        wire[w++] = (uint8_t)n;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            wire[w++] = c;
        }
        p += n;
        if (*p == '.')
            p++;
    }
    wire[w++] = 0;
    FUZZ_CHECK(w == used);
    for (size_t i = 0; i < used; i++) {
        uint8_t c = buf[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        FUZZ_CHECK(wire[i] == c);
    }

    /* Any smaller buffer: the same name if it fits with its NUL, else 0. */
    for (size_t size = 1; size <= sizeof(out); size += 1 + size / 3) {
        char *tight = malloc(size);
        FUZZ_CHECK(tight != NULL);
        size_t u = dns_wire_name(buf, len, tight, size);
        if (strlen(out) < size)
            FUZZ_CHECK(u == used && strcmp(tight, out) == 0);
        else
            FUZZ_CHECK(u == 0);
        free(tight);
    }
}

static void check_text_name(const char *s)
{
    char out[DNS_NAME_MAX + 1];

    if (!dns_name_normalize(s, out, sizeof(out)))
        return;
    check_normal_name(out);
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '.')
        len--;
    FUZZ_CHECK(strlen(out) == len && strncasecmp(out, s, len) == 0);
}

static void check_ip_literal(const char *s, uint16_t port)
{
    struct sockaddr_storage ss, ss2;
    socklen_t sslen = 0, sslen2 = 0;
    char text[INET6_ADDRSTRLEN], text2[INET6_ADDRSTRLEN];

    if (!dns_ip_literal(s, port, &ss, &sslen, text, sizeof(text)))
        return;
    FUZZ_CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    FUZZ_CHECK(sslen == (ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6)));
    check_printable(text, sizeof(text));
    FUZZ_CHECK(dns_ip_literal(text, port, &ss2, &sslen2, text2, sizeof(text2)));
    FUZZ_CHECK(sslen2 == sslen && memcmp(&ss, &ss2, sslen) == 0);
    FUZZ_CHECK(strcmp(text, text2) == 0);
}

static void check_printable_copy(const char *s, size_t outsize)
{
    char *out = malloc(outsize ? outsize : 1);

    FUZZ_CHECK(out != NULL);
    dns_printable(out, outsize, s);
    if (outsize > 0) {
        check_printable(out, outsize);
        FUZZ_CHECK(strlen(out) == (strlen(s) < outsize - 1 ? strlen(s) : outsize - 1));
    }
    free(out);
}

/* ---- answers ---- */

struct fake_answer {
    struct ub_result res;
    char *data[MAX_RECORDS + 1];
    int len[MAX_RECORDS + 1];
    size_t count;
};

static void build_answer(struct fuzz_input *in, uint8_t flags, struct fake_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->res.rcode = fuzz_byte(in);
    a->res.secure = (flags & 2) != 0;
    a->res.bogus = (flags & 1) != 0;
    a->res.nxdomain = (flags & 4) != 0;
    if (flags & 8)
        a->res.why_bogus = fuzz_string(in, 300);
    while (in->pos < in->len && a->count < MAX_RECORDS) {
        size_t n = fuzz_byte(in);
        if (n > in->len - in->pos)
            n = in->len - in->pos;
        a->data[a->count] = malloc(n ? n : 1);
        FUZZ_CHECK(a->data[a->count] != NULL);
        memcpy(a->data[a->count], in->p + in->pos, n);
        a->len[a->count] = (int)n;
        in->pos += n;
        a->count++;
    }
    a->data[a->count] = NULL;
    a->res.data = a->data;
    a->res.len = a->len;
    a->res.havedata = a->count > 0;
}

static void free_answer(struct fake_answer *a)
{
    for (size_t i = 0; i < a->count; i++)
        free(a->data[i]);
    free(a->res.why_bogus);
}

static void check_classify(int err, const struct fake_answer *a)
{
    struct dns_answer ans;

    dns_classify(err, &a->res, &ans);
    check_printable(ans.why, sizeof(ans.why));
    if (err != 0)
        FUZZ_CHECK(ans.kind == DNS_ANS_TEMPFAIL);
    else if (a->res.bogus)
        FUZZ_CHECK(ans.kind == DNS_ANS_BOGUS && ans.dnssec == DNSSEC_BOGUS);
    else if (a->res.rcode == 3 || a->res.nxdomain)
        FUZZ_CHECK(ans.kind == DNS_ANS_NXDOMAIN);
    else if (a->res.rcode != 0)
        FUZZ_CHECK(ans.kind == DNS_ANS_TEMPFAIL);
    else
        FUZZ_CHECK(ans.kind == (a->count > 0 ? DNS_ANS_DATA : DNS_ANS_NODATA));
}

/* The lowest preference of the valid MX records naming name, or -1. */
static long best_preference(const struct fake_answer *a, const char *name)
{
    long best = -1;

    for (size_t i = 0; i < a->count; i++) {
        char rec[256];
        size_t n = (size_t)a->len[i];
        const uint8_t *p = (const uint8_t *)a->data[i];
        if (n < 3 || dns_wire_name(p + 2, n - 2, rec, sizeof(rec)) != n - 2 ||
            strcmp(rec, name) != 0)
            continue;
        long pref = (long)(p[0] << 8 | p[1]);
        if (best < 0 || pref < best)
            best = pref;
    }
    return best;
}

static void check_mx(const struct fake_answer *a)
{
    struct mx_job *job = calloc(1, sizeof(*job));
    size_t distinct = 0;

    FUZZ_CHECK(job != NULL);
    if (a->count == 0 || is_null_mx(&a->res)) {
        free(job);
        return;                     /* mx_answered() stops there too */
    }
    mx_candidates(job, &a->res);
    FUZZ_CHECK(job->ncand <= DNS_MAX_HOSTS);
    for (size_t i = 0; i < job->ncand; i++) {
        const struct mx_cand *c = &job->cands[i];
        FUZZ_CHECK(c->name[0] != '\0');
        check_normal_name(c->name);
        FUZZ_CHECK((long)c->preference == best_preference(a, c->name));
        if (i > 0)
            FUZZ_CHECK(job->cands[i - 1].preference <= c->preference);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(job->cands[j].name, c->name) != 0);
    }
    /* Every distinct usable exchange is kept, up to DNS_MAX_HOSTS. */
    for (size_t i = 0; i < a->count; i++) {
        char rec[256];
        size_t n = (size_t)a->len[i];
        const uint8_t *p = (const uint8_t *)a->data[i];
        bool first = true;
        if (n < 3 || dns_wire_name(p + 2, n - 2, rec, sizeof(rec)) != n - 2 || !rec[0])
            continue;
        for (size_t j = 0; j < i && first; j++) {
            char other[256];
            size_t m = (size_t)a->len[j];
            const uint8_t *q = (const uint8_t *)a->data[j];
            first = !(m >= 3 && dns_wire_name(q + 2, m - 2, other, sizeof(other)) == m - 2 &&
                      strcmp(other, rec) == 0);
        }
        distinct += first;
    }
    FUZZ_CHECK(job->ncand == (distinct < DNS_MAX_HOSTS ? distinct : DNS_MAX_HOSTS));
    free(job);
}

static void check_addrs(const struct fake_answer *a, uint16_t port)
{
    struct mx_cand *c = calloc(1, sizeof(*c));

    FUZZ_CHECK(c != NULL);
    store_addrs(c, FAM_V4, &a->res, port);
    store_addrs(c, FAM_V6, &a->res, port);
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        size_t want = fam == FAM_V4 ? 4 : 16, k = 0;
        FUZZ_CHECK(c->naddr[fam] <= DNS_MAX_ADDRS);
        for (size_t i = 0; i < a->count && k < c->naddr[fam]; i++) {
            if ((size_t)a->len[i] != want)
                continue;
            const struct sockaddr_storage *ss = &c->addrs[fam][k++];
            if (fam == FAM_V4) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
                FUZZ_CHECK(sin->sin_family == AF_INET && ntohs(sin->sin_port) == port);
                FUZZ_CHECK(memcmp(&sin->sin_addr, a->data[i], 4) == 0);
            } else {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
                FUZZ_CHECK(sin6->sin6_family == AF_INET6 && ntohs(sin6->sin6_port) == port);
                FUZZ_CHECK(memcmp(&sin6->sin6_addr, a->data[i], 16) == 0);
            }
        }
        FUZZ_CHECK(k == c->naddr[fam]);
    }
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    uint8_t flags = fuzz_byte(&in);
    struct fake_answer *a = malloc(sizeof(*a));
    char *text = fuzz_cstring(data, size);
    uint16_t port = (uint16_t)(size ? data[0] << 8 | data[size - 1] : 25);

    FUZZ_CHECK(a != NULL);
    build_answer(&in, flags, a);
    check_classify(0, a);
    if (flags & 16)
        check_classify(-(int)(flags >> 5) - 1, a);     /* ub_ctx_err codes */
    check_mx(a);
    check_addrs(a, port);
    free_answer(a);
    free(a);

    check_wire_name(data, size);
    if (size > 0)
        check_wire_name(data + 1, size - 1);
    check_text_name(text);
    check_ip_literal(text, port);
    check_printable_copy(text, size % 40);
    check_printable_copy(text, DNS_WHY_MAX);
    free(text);
    return 0;
}

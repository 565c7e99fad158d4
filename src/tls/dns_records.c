/*
 * dns_records.c - the records `sealpost dns-records` prints (see
 * dns_records.h).
 *
 * Trusts: the config and the PEM files it names; a file is read whole
 * (at most DNS_RECORDS_FILE_MAX octets) and only its public key is used.
 */
#include "tls/dns_records.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/tls_server.h"

#define DNS_RECORDS_FILE_MAX (1024 * 1024)  /* octets of one PEM file */
#define POLICY_MAX 1024                     /* octets of the policy text */

static void hex_of(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* An encrypted private key is refused, never prompted for. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* The whole file into buf (at most size - 1 octets): its length, or -1
 * with err. */
static long read_pem(const char *path, char *buf, size_t size, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    if (ferror(f) || !feof(f)) {
        snprintf(err, errsize, "%s: %s", path,
                 ferror(f) ? strerror(errno) : "larger than 1 MiB: not a PEM file");
        fclose(f);
        return -1;
    }
    fclose(f);
    return (long)n;
}

/* The public key of the first certificate, else of a PUBLIC KEY or a
 * PRIVATE KEY block of the PEM text; NULL when there is none. */
static EVP_PKEY *pem_public_key(const char *pem, long len, bool *from_cert)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = NULL;
    X509 *x;

    if (bio == NULL)
        return NULL;
    x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
    *from_cert = x != NULL;
    if (x) {
        pkey = X509_get_pubkey(x);
        X509_free(x);
    }
    if (pkey == NULL && BIO_reset(bio) == 1)
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
    if (pkey == NULL && BIO_reset(bio) == 1)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

static bool spki_digest(EVP_PKEY *pkey, char hex[65])
{
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int len = i2d_PUBKEY(pkey, &der);
    bool ok;

    if (len <= 0)
        return false;
    ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
    OPENSSL_free(der);
    if (ok)
        hex_of(md, 32, hex);
    return ok;
}

bool dns_records_spki_sha256(const char *path, char hex[65], char *desc, size_t descsize,
                             char *err, size_t errsize)
{
    static char pem[DNS_RECORDS_FILE_MAX];
    long len = read_pem(path, pem, sizeof(pem), err, errsize);
    EVP_PKEY *pkey;
    bool from_cert = false, ok;
    char key[64];

    if (len < 0)
        return false;
    pkey = pem_public_key(pem, len, &from_cert);
    OPENSSL_cleanse(pem, (size_t)len);          /* it may have held a private key */
    if (pkey == NULL) {
        snprintf(err, errsize, "%s: no PEM certificate, public key or unencrypted private "
                               "key in it", path);
        return false;
    }
    ok = spki_digest(pkey, hex);
    tls_key_description(pkey, false, key, sizeof(key));
    snprintf(desc, descsize, "%s of the %s", key, from_cert ? "certificate" : "key file");
    EVP_PKEY_free(pkey);
    if (!ok)
        snprintf(err, errsize, "%s: cannot encode its public key", path);
    return ok;
}

size_t dns_records_sts_policy(const char *mx_host, char *out, size_t size)
{
    int n = snprintf(out, size, "version: STSv1\nmode: testing\nmx: %s\nmax_age: %u\n",
                     mx_host, (unsigned)DNS_RECORDS_STS_MAX_AGE);

    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

void dns_records_sts_txt(const char *policy, char *out, size_t size)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65] = "";

    if (EVP_Digest(policy, strlen(policy), md, &mdlen, EVP_sha256(), NULL) == 1)
        hex_of(md, 32, hex);
    hex[DNS_RECORDS_STS_ID_LEN] = '\0';
    snprintf(out, size, "v=STSv1; id=%s", hex);
}

void dns_records_tlsrpt_txt(const char *domain, char *out, size_t size)
{
    snprintf(out, size, "v=TLSRPTv1; rua=mailto:tlsrpt@%s", domain);
}

/* --- printing --- */

struct tlsa_line {
    char hex[65];
    char desc[128];
    const char *path;
    bool next;
};

/* Every TLSA line, before anything is printed: a file that cannot be
 * read fails the command with nothing half-printed. */
static bool collect(const struct config *cfg, const char *const *next, size_t next_count,
                    struct tlsa_line *lines, size_t *count, char *err, size_t errsize)
{
    *count = 0;
    if (cfg->tls.cert_count == 0) {
        snprintf(err, errsize, "%s: [tls] names no certificate: without TLS no other "
                               "server can authenticate this one (configure [tls] "
                               "certificate first)", cfg->path);
        return false;
    }
    for (size_t i = 0; i < cfg->tls.cert_count + next_count; i++) {
        struct tlsa_line *l = &lines[*count];

        l->next = i >= cfg->tls.cert_count;
        l->path = l->next ? next[i - cfg->tls.cert_count] : cfg->tls.certificates[i];
        if (!dns_records_spki_sha256(l->path, l->hex, l->desc, sizeof(l->desc), err, errsize))
            return false;
        (*count)++;
    }
    return true;
}

static void print_tlsa(const struct config *cfg, const struct tlsa_line *lines, size_t count,
                       FILE *out)
{
    fprintf(out,
            ";\n; DANE (RFC 7672) for %s: publish in the DNSSEC-signed zone of that name.\n"
            "; TLSA 3 1 1 = DANE-EE, SubjectPublicKeyInfo, SHA-256: it names the key,\n"
            "; not the certificate, so a renewal that keeps the key needs no DNS change.\n"
            "; New key: publish its record beside the current one (--next-key FILE), wait\n"
            "; at least two TTLs, switch the key, then remove the old record (RFC 7671 8.1).\n",
            cfg->hostname);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "; %s key: %s, %s\n", lines[i].next ? "next" : "current", lines[i].path,
                lines[i].desc);
        fprintf(out, "_%d._tcp.%s. IN TLSA 3 1 1 %s\n", DNS_RECORDS_TLSA_PORT, cfg->hostname,
                lines[i].hex);
    }
}

/* A TXT record; a value over 255 octets is split into several strings,
 * which a TXT record joins (RFC 1035 3.3.14, RFC 8460 3). */
static void print_txt(FILE *out, const char *owner, const char *domain, const char *value)
{
    size_t len = strlen(value);

    fprintf(out, "%s.%s. IN TXT", owner, domain);
    for (size_t off = 0; off < len; off += 255)
        fprintf(out, " \"%.*s\"", (int)(len - off < 255 ? len - off : 255), value + off);
    fputc('\n', out);
}

static void print_domain(const struct config *cfg, const char *domain, FILE *out)
{
    char policy[POLICY_MAX], txt[512];
    const char *line, *end;

    if (dns_records_sts_policy(cfg->hostname, policy, sizeof(policy)) == 0)
        return;                     /* cannot happen: hostname < 256 octets */
    dns_records_sts_txt(policy, txt, sizeof(txt));
    fprintf(out, ";\n; ---- domain %s ----\n; Its MX record must name %s.\n", domain,
            cfg->hostname);
    fprintf(out, "; MTA-STS (RFC 8461). The id is the first %d hex digits of the SHA-256\n"
                 "; of the policy text below: a changed policy gets a new id.\n",
            DNS_RECORDS_STS_ID_LEN);
    print_txt(out, "_mta-sts", domain, txt);
    fprintf(out, "; Serve the lines between the markers, without \"; \", as\n"
                 "; https://mta-sts.%s/.well-known/mta-sts.txt (text/plain; the host\n"
                 "; mta-sts.%s needs address records and a certificate for its name):\n"
                 "; ---- begin mta-sts.txt ----\n", domain, domain);
    for (line = policy; *line; line = end + 1) {
        end = strchr(line, '\n');
        fprintf(out, "; %.*s\n", (int)(end - line), line);
    }
    fprintf(out, "; ---- end mta-sts.txt ----\n"
                 "; \"mode: testing\" is the safe start: senders report failures (TLS-RPT)\n"
                 "; but still deliver. Once the reports show none, switch to \"mode: enforce\"\n"
                 "; with a longer max_age (e.g. 1209600), and publish the new id printed for it.\n");
    dns_records_tlsrpt_txt(domain, txt, sizeof(txt));
    fprintf(out, "; TLS-RPT (RFC 8460): where senders mail their daily TLS reports.\n");
    print_txt(out, "_smtp._tls", domain, txt);
}

bool dns_records_print(const struct config *cfg, const char *const *next, size_t next_count,
                       FILE *out, char *err, size_t errsize)
{
    struct tlsa_line lines[CONFIG_MAX_CERTS + DNS_RECORDS_NEXT_MAX];
    size_t count;

    if (next_count > DNS_RECORDS_NEXT_MAX) {
        snprintf(err, errsize, "at most %d --next-key files", DNS_RECORDS_NEXT_MAX);
        return false;
    }

    if (!collect(cfg, next, next_count, lines, &count, err, errsize))
        return false;
    fprintf(out, "; DNS records for %s (sealpost dns-records -c %s)\n"
                 "; Zone-file syntax; TTLs are your zone's $TTL.\n", cfg->hostname, cfg->path);
    print_tlsa(cfg, lines, count, out);
    for (size_t i = 0; i < cfg->domain_count; i++)
        print_domain(cfg, cfg->domains[i].name, out);
    return fflush(out) == 0;
}

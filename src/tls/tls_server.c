/*
 * tls_server.c - OpenSSL server context and handshake summary (see
 * tls_server.h). The master reads the certificate and key files (and
 * checks the keys' modes) into a snapshot; the context is built from
 * those bytes, in memory, by the master to check them and by each
 * worker to use them.
 *
 * Defaults: TLS 1.2 or 1.3 only (configurable floor), forward-secret
 * AEAD suites only (no RSA key exchange, no CBC), groups X25519 and
 * P-256, no renegotiation, no compression, server cipher preference,
 * session resumption by tickets and a server-side cache.
 */
#include "tls/tls_server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "util/log.h"
#include "util/snapshot.h"
#include "util/xalloc.h"

#define TLS12_CIPHERS "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
                      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS_GROUPS    "X25519:P-256"
#define SESSION_ID_CONTEXT "sealpost"
/* Session ticket keys (name, HMAC and AES keys) the master makes with
 * each set of files, so that every worker accepts the tickets of the
 * others. Not a path: config paths are absolute. */
#define TICKET_KEYS_NAME "tls-session-ticket-keys"
#define TICKET_KEYS_LEN 80

struct tls_server {
    SSL_CTX *ctx;
};

void tls_error_string(unsigned long first, char *out, size_t outsize)
{
    unsigned long e = first ? first : ERR_get_error();

    if (e == 0) {
        snprintf(out, outsize, "%s", errno ? strerror(errno) : "unknown error");
        return;
    }
    ERR_error_string_n(e, out, outsize);
    ERR_clear_error();
}

/* A private key must not be readable or writable by group or others:
 * checked on the descriptor its bytes are read from. */
static bool key_file_private(const char *path, int fd, char *err, size_t errsize)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        snprintf(err, errsize, "private key %s: %s", path, strerror(errno));
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errsize, "private key %s is accessible by group or others (mode %04o); "
                               "run: chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
        return false;
    }
    return true;
}

static bool read_key(struct file_snapshot *files, const char *path, char *err, size_t errsize)
{
    char why[256];
    int fd = snapshot_open(path, why, sizeof(why));
    bool ok;

    if (fd < 0) {
        snprintf(err, errsize, "private key %s: %s", path, why);
        return false;
    }
    ok = key_file_private(path, fd, err, errsize);
    if (ok && !snapshot_read_fd(files, path, fd, why, sizeof(why))) {
        snprintf(err, errsize, "private key %s: %s", path, why);
        ok = false;
    }
    close(fd);
    return ok;
}

static bool add_ticket_keys(struct file_snapshot *files, char *err, size_t errsize)
{
    unsigned char keys[TICKET_KEYS_LEN];
    bool ok = RAND_bytes(keys, sizeof(keys)) == 1 &&
              snapshot_put(files, TICKET_KEYS_NAME, keys, sizeof(keys));

    OPENSSL_cleanse(keys, sizeof(keys));
    if (!ok)
        snprintf(err, errsize, "cannot make session ticket keys");
    return ok;
}

struct file_snapshot *tls_server_read_files(const struct tls_config *cfg, char *err,
                                            size_t errsize)
{
    struct file_snapshot *files = snapshot_new();
    char why[256];

    for (size_t i = 0; i < cfg->cert_count && i < cfg->key_count; i++) {
        if (!read_key(files, cfg->private_keys[i], err, errsize))
            goto fail;
        if (!snapshot_read_file(files, cfg->certificates[i], why, sizeof(why))) {
            snprintf(err, errsize, "certificate %s: %s", cfg->certificates[i], why);
            goto fail;
        }
    }
    if (!add_ticket_keys(files, err, errsize))
        goto fail;
    return files;
fail:
    snapshot_free(files);
    return NULL;
}

/* Keys with a passphrase are not supported: never prompt (a daemon has
 * no terminal to ask on). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static BIO *file_bio(const struct file_snapshot *files, const char *path)
{
    const struct snapshot_file *f = snapshot_find(files, path);

    if (f == NULL || f->len > INT_MAX) {
        ERR_raise(ERR_LIB_SYS, ENOENT);
        return NULL;
    }
    return BIO_new_mem_buf(f->data, (int)f->len);
}

/* As SSL_CTX_use_certificate_chain_file, from the snapshot's bytes: the
 * first certificate, then the chain up to the end of the file. */
static bool use_chain(SSL_CTX *ctx, BIO *bio)
{
    X509 *x = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL);
    X509 *ca;
    unsigned long e;
    bool ok;

    if (x == NULL)
        return false;
    ok = SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
    X509_free(x);
    while (ok && (ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            ok = false;
        }
    }
    if (!ok)
        return false;
    /* The end of the file shows as "no start line": that is success. */
    e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return false;
    ERR_clear_error();
    return true;
}

static bool use_key(SSL_CTX *ctx, BIO *bio)
{
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    bool ok;

    if (pkey == NULL)
        return false;
    ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
    EVP_PKEY_free(pkey);
    return ok;
}

static bool load_cert(SSL_CTX *ctx, const struct file_snapshot *files, const char *cert,
                      char *err, size_t errsize)
{
    BIO *bio = file_bio(files, cert);
    char ssl_err[256];
    bool ok;

    ERR_clear_error();
    ok = bio && use_chain(ctx, bio);
    BIO_free(bio);
    if (!ok) {
        tls_error_string(0, ssl_err, sizeof(ssl_err));
        snprintf(err, errsize, "certificate %s: %s", cert, ssl_err);
    }
    return ok;
}

static bool load_pair(SSL_CTX *ctx, const struct file_snapshot *files, const char *cert,
                      const char *key, char *err, size_t errsize)
{
    char ssl_err[256];
    BIO *bio;
    bool ok;

    if (!load_cert(ctx, files, cert, err, errsize))
        return false;
    bio = file_bio(files, key);
    ok = bio && use_key(ctx, bio);
    BIO_free(bio);
    if (!ok) {
        /* OpenSSL checks the pair itself when the key lands in the slot
         * of the certificate just loaded: say so in plain words. */
        unsigned long e = ERR_peek_last_error();
        bool mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 &&
                        ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;

        tls_error_string(0, ssl_err, sizeof(ssl_err));
        if (mismatch)
            snprintf(err, errsize, "private key %s does not match certificate %s", key, cert);
        else
            snprintf(err, errsize, "private key %s: %s", key, ssl_err);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error_string(0, ssl_err, sizeof(ssl_err));
        snprintf(err, errsize, "private key %s does not match certificate %s: %s", key, cert,
                 ssl_err);
        return false;
    }
    return true;
}

/* The master's ticket keys when the snapshot has them (else OpenSSL's
 * own, random per context). */
static bool use_ticket_keys(SSL_CTX *ctx, const struct file_snapshot *files, char *err,
                            size_t errsize)
{
    const struct snapshot_file *keys = snapshot_find(files, TICKET_KEYS_NAME);

    if (keys == NULL)
        return true;
    if (keys->len != TICKET_KEYS_LEN ||
        SSL_CTX_set_tlsext_ticket_keys(ctx, keys->data, TICKET_KEYS_LEN) != 1) {
        snprintf(err, errsize, "cannot set session ticket keys");
        return false;
    }
    return true;
}

static SSL_CTX *build_ctx(const struct tls_config *cfg, const struct file_snapshot *files,
                          char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int types[CONFIG_MAX_CERTS];

    if (ctx == NULL) {
        snprintf(err, errsize, "cannot create TLS context");
        return NULL;
    }
    if (cfg->cert_count == 0) {
        snprintf(err, errsize, "no [tls] certificate configured");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->min_version ? cfg->min_version : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        snprintf(err, errsize, "cannot set TLS cipher suites or groups");
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* Bounded: OpenSSL's default of 20,480 cached sessions would keep a
     * connection storm's memory; TLS 1.3 resumes by ticket anyway. */
    SSL_CTX_sess_set_cache_size(ctx, 1024);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                   sizeof(SESSION_ID_CONTEXT) - 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!use_ticket_keys(ctx, files, err, errsize))
        goto fail;
    for (size_t i = 0; i < cfg->cert_count; i++) {
        X509 *cert;
        EVP_PKEY *pkey;

        if (!load_pair(ctx, files, cfg->certificates[i], cfg->private_keys[i], err, errsize))
            goto fail;
        /* OpenSSL keeps one certificate per key type: a second one of a
         * type would silently replace the first. */
        cert = SSL_CTX_get0_certificate(ctx);
        pkey = cert ? X509_get0_pubkey(cert) : NULL;
        types[i] = pkey ? EVP_PKEY_get_base_id(pkey) : NID_undef;
        for (size_t j = 0; j < i; j++) {
            if (types[j] == types[i]) {
                snprintf(err, errsize, "certificate %s has the same key type (%s) as "
                         "certificate %s; give at most one certificate per key type",
                         cfg->certificates[i],
                         types[i] == EVP_PKEY_EC ? "ECDSA" : OBJ_nid2sn(types[i]),
                         cfg->certificates[j]);
                goto fail;
            }
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

bool tls_server_wanted(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->listener_count; i++) {
        if (cfg->listeners[i].tls != LTLS_NONE)
            return true;
    }
    return false;
}

struct tls_server *tls_server_new(const struct tls_config *cfg,
                                  const struct file_snapshot *files, char *err, size_t errsize)
{
    SSL_CTX *ctx = build_ctx(cfg, files, err, errsize);
    struct tls_server *ts;

    if (ctx == NULL)
        return NULL;
    ts = xcalloc(1, sizeof(*ts));
    ts->ctx = ctx;
    return ts;
}

void tls_server_free(struct tls_server *ts)
{
    if (ts == NULL)
        return;
    SSL_CTX_free(ts->ctx);
    free(ts);
}

SSL *tls_server_ssl_new(struct tls_server *ts)
{
    return SSL_new(ts->ctx);
}

void tls_key_description(EVP_PKEY *pkey, bool pss, char *out, size_t outsize)
{
    char group[64];
    size_t glen = 0;
    int id;

    if (pkey == NULL) {
        snprintf(out, outsize, "none");
        return;
    }
    id = EVP_PKEY_get_base_id(pkey);
    if (id == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group), &glen) == 1)
        snprintf(out, outsize, "ECDSA (%s)", strcmp(group, "prime256v1") == 0 ? "P-256" : group);
    else if (id == EVP_PKEY_RSA)
        snprintf(out, outsize, "%s (%d bits)", pss ? "RSA-PSS" : "RSA", EVP_PKEY_get_bits(pkey));
    else
        snprintf(out, outsize, "%s (%d bits)", OBJ_nid2sn(id), EVP_PKEY_get_bits(pkey));
}

/* The key that signed this handshake. TLS 1.3 signs with RSA only in
 * PSS mode; TLS 1.2 may use PSS or PKCS#1 v1.5, as the handshake says. */
static void key_description(SSL *ssl, EVP_PKEY *pkey, char *out, size_t outsize)
{
    int sig_type = NID_undef;
    bool pss;

    if (SSL_get_signature_type_nid(ssl, &sig_type) == 1 && sig_type != NID_undef)
        pss = sig_type == EVP_PKEY_RSA_PSS;
    else
        pss = SSL_version(ssl) >= TLS1_3_VERSION;
    tls_key_description(pkey, pss, out, outsize);
}

void tls_summary(SSL *ssl, char *out, size_t outsize)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int alg_bits = 0, bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
    int group = SSL_get_negotiated_group(ssl), digest = NID_undef;
    const char *group_name = group ? OBJ_nid2sn(group) : NULL;
    char sig[192] = "";

    /* A resumed session makes no signature, and SSL_get_certificate()
     * then names whichever certificate was loaded last, not the one of
     * the original handshake: claim nothing. */
    if (!SSL_session_reused(ssl)) {
        X509 *cert = SSL_get_certificate(ssl);
        char key[96];

        key_description(ssl, cert ? X509_get0_pubkey(cert) : NULL, key, sizeof(key));
        SSL_get_signature_nid(ssl, &digest);
        snprintf(sig, sizeof(sig), " server-signature %s%s%s", key,
                 digest != NID_undef ? " server-digest " : "",
                 digest != NID_undef ? OBJ_nid2sn(digest) : "");
    }
    snprintf(out, outsize, "using %s with cipher %s (%d/%d bits) key-exchange %s%s",
             SSL_get_version(ssl), cipher ? SSL_CIPHER_get_name(cipher) : "none", bits,
             alg_bits, group_name ? group_name : "unknown", sig);
}

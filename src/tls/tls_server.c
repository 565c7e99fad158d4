/*
 * tls_server.c - OpenSSL server context and handshake summary (see
 * tls_server.h).
 *
 * Defaults: TLS 1.2 or 1.3 only (configurable floor), forward-secret
 * AEAD suites only (no RSA key exchange, no CBC), groups X25519 and
 * P-256, no renegotiation, no compression, server cipher preference,
 * session resumption by tickets and a server-side cache.
 */
#include "tls/tls_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/log.h"
#include "util/xalloc.h"

#define TLS12_CIPHERS "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
                      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS_GROUPS    "X25519:P-256"
#define SESSION_ID_CONTEXT "sealpost"

struct tls_server {
    const struct tls_config *cfg;
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

/* A private key must not be readable or writable by group or others. */
static bool key_file_private(const char *path, char *err, size_t errsize)
{
    struct stat st;

    if (stat(path, &st) < 0) {
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

static bool load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errsize)
{
    char ssl_err[256];

    if (!key_file_private(key, err, errsize))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error_string(0, ssl_err, sizeof(ssl_err));
        snprintf(err, errsize, "certificate %s: %s", cert, ssl_err);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
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

static SSL_CTX *build_ctx(const struct tls_config *cfg, char *err, size_t errsize)
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
    for (size_t i = 0; i < cfg->cert_count; i++) {
        X509 *cert;
        EVP_PKEY *pkey;

        if (!load_pair(ctx, cfg->certificates[i], cfg->private_keys[i], err, errsize))
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

struct tls_server *tls_server_new(const struct tls_config *cfg, char *err, size_t errsize)
{
    SSL_CTX *ctx = build_ctx(cfg, err, errsize);
    struct tls_server *ts;

    if (ctx == NULL)
        return NULL;
    ts = xcalloc(1, sizeof(*ts));
    ts->cfg = cfg;
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

bool tls_server_reload(struct tls_server *ts, char *err, size_t errsize)
{
    SSL_CTX *ctx = build_ctx(ts->cfg, err, errsize);

    if (ctx == NULL)
        return false;
    /* Live connections hold their own reference to the old context. */
    SSL_CTX_free(ts->ctx);
    ts->ctx = ctx;
    return true;
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

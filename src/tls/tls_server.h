/*
 * tls_server.h - the server side of TLS: one OpenSSL context built from
 * [tls] (certificates, keys, protocol floor), reloadable on SIGHUP, and
 * the one-line summary of a finished handshake used in logs and in the
 * Received header.
 *
 * Trusts: the certificate and key files named in the config, which it
 * refuses when the key is readable by group or others. Handshake bytes
 * come from untrusted clients and are handled by OpenSSL.
 */
#ifndef SEALPOST_TLS_TLS_SERVER_H
#define SEALPOST_TLS_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "config/config.h"

struct tls_server;

/* Build a context from cfg->tls. NULL + err when a file is missing,
 * unreadable, too open, or a key does not match its certificate. */
struct tls_server *tls_server_new(const struct tls_config *cfg, char *err, size_t errsize);
void tls_server_free(struct tls_server *ts);

/* Re-read the certificate and key files. On failure the old context
 * stays in use and err says why. */
bool tls_server_reload(struct tls_server *ts, char *err, size_t errsize);

/* A new server-side SSL for one connection (NULL on allocation failure). */
SSL *tls_server_ssl_new(struct tls_server *ts);

/*
 * Describe a finished handshake in Postfix's style, e.g.
 * "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
 *  key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256"
 * (one line; out is always NUL-terminated). RSA signatures are named
 * "RSA-PSS" or "RSA" as actually made; a resumed session made no
 * signature, so it has no server-signature part.
 */
void tls_summary(SSL *ssl, char *out, size_t outsize);

/* "ECDSA (P-256)", "RSA-PSS (2048 bits)", "RSA (2048 bits)" ... for the
 * key that signs a handshake (pss: RSA signs in PSS mode). */
void tls_key_description(EVP_PKEY *pkey, bool pss, char *out, size_t outsize);

/* The pending OpenSSL error queue as text (for logs); clears it. */
void tls_error_string(unsigned long first, char *out, size_t outsize);

#endif

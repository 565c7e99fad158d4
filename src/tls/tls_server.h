/*
 * tls_server.h - the server side of TLS: one OpenSSL context built from
 * [tls] (certificates, keys, protocol floor) and the bytes of its files,
 * and the one-line summary of a finished handshake used in logs and in
 * the Received header. A SIGHUP reload is the master reading the files
 * again into a new snapshot; the workers it then starts build from it.
 *
 * Trusts: the certificate and key files named in the config, which it
 * refuses when the key is readable by group or others, and the snapshot
 * of them it is given (util/snapshot.h). Handshake bytes come from
 * untrusted clients and are handled by OpenSSL.
 */
#ifndef SEALPOST_TLS_TLS_SERVER_H
#define SEALPOST_TLS_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "config/config.h"

struct tls_server;
struct file_snapshot;

/* Some listener of cfg speaks TLS (STARTTLS or implicit). */
bool tls_server_wanted(const struct config *cfg);

/* Read cfg's certificate and key files into a new snapshot, with new
 * session ticket keys (so that every worker built from it resumes the
 * others' sessions); each key is refused when group or others may
 * access it (checked on the descriptor it is read from). NULL + err when
 * a file is missing, unreadable or a key too open. */
struct file_snapshot *tls_server_read_files(const struct tls_config *cfg, char *err,
                                            size_t errsize);

/* Build a context from cfg and the files' bytes (from
 * tls_server_read_files). NULL + err when a certificate or key does not
 * parse, a key does not match its certificate, or two certificates have
 * one key type. */
struct tls_server *tls_server_new(const struct tls_config *cfg,
                                  const struct file_snapshot *files, char *err, size_t errsize);
void tls_server_free(struct tls_server *ts);

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

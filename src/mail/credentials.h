/*
 * credentials.h - the submission users file ([submission] users): one
 * "user:hash" line per user, hash as crypt(3) writes it (yescrypt "$y$",
 * bcrypt "$2b$", sha512-crypt "$6$", sha256-crypt "$5$"), as made by
 * `mkpasswd -m yescrypt` or `openssl passwd -6`. Fields after the hash
 * (":uid:gid:..." in Dovecot's passwd-file format) are ignored, so one
 * file can serve both. Blank lines and lines starting with '#' are
 * skipped. Held by the queue process only (the smtpd workers never see
 * a hash).
 *
 * Trusts: the operator's file, but checks it: user names as SASL takes
 * them, hashes that libcrypt accepts (crypt_checksalt), no duplicates,
 * bounded sizes. Errors are "line N: reason" and never quote a hash.
 */
#ifndef SEALPOST_MAIL_CREDENTIALS_H
#define SEALPOST_MAIL_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#define CREDENTIALS_MAX_USERS 100000
#define CREDENTIALS_HASH_MAX  512       /* octets of one stored hash */

struct credentials;

/* Parse data[0..len) (a snapshot's bytes). NULL + err on the first error. */
struct credentials *credentials_parse(const char *data, size_t len, char *err, size_t errsize);
/* The stored hash of user, or NULL. */
const char *credentials_hash(const struct credentials *c, const char *user);
size_t credentials_count(const struct credentials *c);
/* Frees c, wiping the hashes first. NULL is allowed. */
void credentials_free(struct credentials *c);

#endif

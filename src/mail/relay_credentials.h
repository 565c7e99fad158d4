/*
 * relay_credentials.h - the smart host's login ([relay]
 * relayhost_credentials): a file with one "user:password" line, the
 * password in clear (the smart host needs it so), split at the first ':'.
 * Blank lines and lines starting with '#' are skipped; exactly one
 * credentials line must remain. The master checks the file's mode and
 * owner (master/master_files.c, at start and at SIGHUP) and hands its
 * bytes to the delivery process, which alone parses and uses them (client AUTH PLAIN/LOGIN,
 * delivery/smtp_client_open.c).
 *
 * Trusts: the operator's file, but checks it: a non-empty user and
 * password within RELAY_CRED_FIELD_MAX octets, no control characters
 * (a NUL, CR or LF would break AUTH PLAIN's framing or the SMTP line).
 * Errors are "line N: reason" and never quote the password (nor the
 * user, which is on the same line).
 */
#ifndef SEALPOST_MAIL_RELAY_CREDENTIALS_H
#define SEALPOST_MAIL_RELAY_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#define RELAY_CRED_FIELD_MAX 255        /* octets of the user, and of the password */
#define RELAY_CRED_FILE_MAX  4096       /* octets of the whole file */

struct relay_credentials {
    char user[RELAY_CRED_FIELD_MAX + 1];
    char password[RELAY_CRED_FIELD_MAX + 1];
};

/* Parse data[0..len) into *out. false + err (then *out is wiped). */
bool relay_credentials_parse(const char *data, size_t len, struct relay_credentials *out,
                             char *err, size_t errsize);
/* Zero *c in a way the compiler keeps (explicit_bzero). */
void relay_credentials_wipe(struct relay_credentials *c);

#endif

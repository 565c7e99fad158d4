/*
 * maildir.h - local delivery into a Maildir (tmp/ -> new/, fsync), shared
 * by the queue process (domains the queue user owns) and the local
 * delivery processes (domains with another [domain] owner).
 *
 * Trusts: the config (maildir templates) and the spool. Recipient
 * addresses come from the envelope and are turned into paths only
 * through maildir_path_for(), which encodes every byte that could
 * escape the template ('/', leading '.', controls, quotes) so that no
 * address can name a file outside its domain's mail folder.
 */
#ifndef SEALPOST_MAIL_MAILDIR_H
#define SEALPOST_MAIL_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"

/*
 * The Maildir for a recipient address ("local@domain", wire form).
 * postmaster@<any local domain> goes to cfg->postmaster. false + err if
 * the domain is not local or the path does not fit.
 */
bool maildir_path_for(const struct config *cfg, const char *addr, char *out,
                      size_t outsize, char *err, size_t errsize);

/* The same, and *dc the domain whose Maildir it is (after the postmaster
 * redirect): its owner is who delivers there ([domain] owner). */
bool maildir_target_for(const struct config *cfg, const char *addr, char *out,
                        size_t outsize, const struct domain_config **dc, char *err,
                        size_t errsize);

/*
 * Encode a local part for use as one path component: ASCII lower-cased;
 * letters, digits, '.', '_', '+', '-', '=' and UTF-8 bytes kept; every
 * other byte, and a leading '.', as %XX. Returns false if it does not fit.
 */
bool maildir_encode_local(const char *local, char *out, size_t outsize);

/*
 * Deliver one copy: "Return-Path" and "Delivered-To" headers, then
 * body_size bytes of msg_fd from body_offset. Durable on success.
 */
bool maildir_deliver(const char *maildir, const char *hostname, const char *return_path,
                     const char *delivered_to, int msg_fd, off_t body_offset,
                     uint64_t body_size, char *err, size_t errsize);

#endif

/*
 * tls_required.h - find "TLS-Required: No" (RFC 8689 section 5) in the
 * header section of a message.
 *
 * The field name is case-insensitive, optional white space may precede
 * the colon (RFC 5322 obsolete syntax), the value is unfolded and
 * trimmed and must be "No" (case-insensitive). Only the header section
 * is looked at: scanning stops at the first empty line, and only the
 * first len octets (the caller reads TLS_REQUIRED_SCAN_MAX) are seen,
 * so a field further down is not found; that errs on the safe side (the
 * recipient's TLS policies then apply as usual). Pure: fuzzed and
 * unit-tested.
 *
 * Trusts nothing: the header is whatever the sender wrote.
 */
#ifndef SEALPOST_MAIL_TLS_REQUIRED_H
#define SEALPOST_MAIL_TLS_REQUIRED_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_REQUIRED_SCAN_MAX 16384     /* octets of the header section read */

bool tls_required_no(const char *msg, size_t len);

#endif

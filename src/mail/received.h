/*
 * received.h - the Received trace header sealpost prepends (RFC 5321
 * 4.4, protocol names per RFC 3848 and RFC 6531).
 *
 * Inputs are validated session values (HELO identity checked by
 * command_parse_helo, addresses by address.c, IP from the kernel); the
 * header is still folded and bounded here, never longer than its buffer.
 */
#ifndef SEALPOST_MAIL_RECEIVED_H
#define SEALPOST_MAIL_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct received_info {
    const char *helo;           /* client's HELO/EHLO identity */
    const char *client_ip;      /* textual IP address */
    const char *hostname;       /* our hostname */
    const char *queue_id;
    const char *single_rcpt;    /* "for <...>" when exactly one, else NULL */
    const char *tls_summary;    /* "TLSv1.3 with cipher ... ", or NULL */
    bool esmtp, tls, auth, smtputf8;
    bool hide_client_ip;        /* "from HELO" only ([submission] received_client_ip = no) */
    time_t when;
};

/* The RFC 3848 / RFC 6531 "with" protocol name, e.g. "ESMTPS". */
const char *received_protocol(bool esmtp, bool tls, bool auth, bool smtputf8);

/* Format the header with CRLF line ends; returns its length, 0 if it did
 * not fit (out must then not be used). */
size_t received_format(const struct received_info *info, char *out, size_t outsize);

/* RFC 5322 date-time in the C locale, e.g. "Sun, 29 Nov 2026 16:11:33 +0000". */
void rfc5322_date(time_t when, char *out, size_t outsize);

#endif

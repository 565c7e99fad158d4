/*
 * mail_params.h - the values of MAIL and RCPT parameters that travel
 * with a message from the SMTP server through the queue to the next hop:
 * BODY (RFC 6152) and the DSN parameters RET, ENVID, NOTIFY and ORCPT
 * (RFC 3461). The parsers live in smtpd/command.c; the envelope, the
 * bounce writer and the SMTP client only read these values.
 */
#ifndef SEALPOST_MAIL_MAIL_PARAMS_H
#define SEALPOST_MAIL_MAIL_PARAMS_H

enum body_type { BODY_UNSPECIFIED = 0, BODY_7BIT, BODY_8BITMIME };
enum dsn_ret { DSN_RET_UNSPECIFIED = 0, DSN_RET_FULL, DSN_RET_HDRS };

#define DSN_ENVID_MAX  100   /* RFC 3461 4.4 */
#define DSN_ORCPT_MAX  500   /* RFC 3461 4.2 */
#define DSN_NOTIFY_NEVER   1u
#define DSN_NOTIFY_SUCCESS 2u
#define DSN_NOTIFY_FAILURE 4u
#define DSN_NOTIFY_DELAY   8u

#endif

/*
 * lmtp_client.h - the LMTP client (RFC 2033) of the lmtp role: one
 * transaction per job over a cached connection to an LMTP server
 * ([domain] deliver = lmtp:unix:/PATH or lmtp:[IP]:PORT).
 *
 * Blocking I/O with a poll() timeout on every read and write
 * ([domain] lmtp_timeout), so a silent or slow server costs at most that
 * per step, never a hang. Replies go through the SMTP client's bounded
 * reply parser (delivery/smtp_reply.h, fuzzed); a reply it refuses ends
 * the connection and defers what has no result yet.
 *
 * Trusts: nothing the server sends; the job as far as remote_job_decode
 * and lmtp_role.c checked it.
 */
#ifndef SEALPOST_LMTP_LMTP_CLIENT_H
#define SEALPOST_LMTP_LMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config/config.h"
#include "mail/envelope.h"
#include "mail/smtp_result.h"

/* Connections kept open between jobs (one per target; RSET between
 * transactions), and how long an unused one stays open. */
#define LMTP_CONN_MAX 8
#define LMTP_IDLE_SECONDS 30

struct lmtp_conn;

struct lmtp_tx {
    const struct envelope *env;     /* from and the flags */
    const char *const *rcpts;       /* the recipients, in order */
    size_t rcpt_count;
    int fd;                         /* the message, read with pread */
    off_t body_offset;
    uint64_t body_size;
    unsigned timeout;               /* seconds per reply or write */
    const char *hostname;           /* for LHLO */
};

/* A connection to t (cached or new; NULL and err when the server cannot
 * be reached or does not greet; connections are not shared between
 * targets). chrooted: connect to the socket's name in "/". */
struct lmtp_conn *lmtp_connect(const struct lmtp_target *t, bool chrooted, const char *hostname,
                               unsigned timeout, char *err, size_t errsize);
/* One transaction; results[i] for rcpts[i]. A broken connection is
 * closed (the next job opens a new one). */
void lmtp_transaction(struct lmtp_conn *c, const struct lmtp_tx *tx,
                      struct smtp_result *results);
/* Close connections unused for LMTP_IDLE_SECONDS (all with force). */
void lmtp_close_idle(time_t now, bool force);
/* "lmtp:unix:/PATH" or "lmtp:[IP]:PORT", for logs and results. */
void lmtp_target_name(const struct lmtp_target *t, char *out, size_t size);

#endif

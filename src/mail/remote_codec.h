/*
 * remote_codec.h - the two messages between the queue process and the
 * delivery process (docs/ARCHITECTURE.md, "Processes"):
 *
 *   job     queue -> delivery: send this message to these recipients at
 *           this destination (the message file travels beside it as a
 *           read-only descriptor, see ipc.h IPC_REMOTE_JOB);
 *   result  delivery -> queue: one SMTP outcome per recipient, the relay
 *           that answered and its TLS summary.
 *
 * Both ends are sealpost, but the delivery process talks to the internet
 * (DNS answers, SMTP replies, TLS), so the queue treats a result as
 * untrusted input: every field is bounded, NUL-terminated, in range, and
 * free of control bytes before anything reads it, and a malformed result
 * is refused (the queue then drops the channel and retries the jobs).
 * The delivery process checks jobs the same way.
 */
#ifndef SEALPOST_MAIL_REMOTE_CODEC_H
#define SEALPOST_MAIL_REMOTE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/delivery_job.h"
#include "mail/envelope.h"

/* Recipients per job, and so per SMTP transaction (Postfix's default
 * smtp_destination_recipient_limit; RFC 5321 4.5.3.1.8 asks servers to
 * take at least 100). With every field at its maximum a job still fits
 * one IPC message (checked by tests/unit/test_remote_codec.c). */
#define REMOTE_JOB_MAX_RCPTS 50

#define REMOTE_RELAY_MAX 300
#define REMOTE_TLS_MAX 256

struct remote_job_msg {
    uint64_t job_id;
    int64_t body_offset;
    uint64_t body_size;
    char destination[256];          /* lower-case domain, or "[literal]" */
    struct envelope env;            /* exactly the job's recipients */
};

struct remote_result_msg {
    uint64_t job_id;
    bool dsn_passed;                /* the next hop took NOTIFY/ORCPT */
    char relay[REMOTE_RELAY_MAX];   /* "host[addr]:port" or "" */
    char tls[REMOTE_TLS_MAX];       /* TLS summary or "" for none */
    size_t count;
    struct smtp_result results[REMOTE_JOB_MAX_RCPTS];
};

/*
 * Encode a job for env->rcpts[rcpt_index[0..n)] into out. false when n is
 * 0 or over REMOTE_JOB_MAX_RCPTS, or the encoding does not fit outsize.
 */
bool remote_job_encode(uint64_t job_id, const char *destination, const struct envelope *env,
                       const size_t *rcpt_index, size_t n, int64_t body_offset,
                       uint64_t body_size, char *out, size_t outsize, size_t *len);
/* Decode; on success out->env must be released with envelope_clear(). */
bool remote_job_decode(const void *payload, size_t len, struct remote_job_msg *out,
                       char *err, size_t errsize);

/* Encode a result (count 1..REMOTE_JOB_MAX_RCPTS); returns the length,
 * 0 when it does not fit. */
size_t remote_result_encode(const struct remote_result_msg *r, void *out, size_t outsize);
/* Decode and check a result: outcome in range, reply code 0 or 200-599,
 * enhanced status "c.s.d" whose class agrees with the outcome, strings
 * NUL-terminated; control bytes in texts become '?'. */
bool remote_result_decode(const void *payload, size_t len, struct remote_result_msg *out,
                          char *err, size_t errsize);

#endif

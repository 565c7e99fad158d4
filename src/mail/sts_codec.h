/*
 * sts_codec.h - one cached MTA-STS policy (RFC 8461 5.1) as it travels
 * between the delivery process and the queue, and as the queue keeps it
 * under the spool (spool/sts/DOMAIN, docs/SPOOL.md):
 *
 *   delivery -> queue  IPC_STS_STORE: a policy just fetched (store it);
 *   queue -> delivery  IPC_STS_CACHE: the policies on disk, handed to a
 *                      new delivery process before its first job.
 *
 * One text form for both, so a file can be read with `cat`:
 *
 *   sealpost-sts 1 LF
 *   domain <policy domain> LF     lower-case LDH name, <= 253 octets
 *   id <TXT id> LF                1-32 letters and digits (RFC 8461 3.1)
 *   fetched <unix seconds> LF     when the body was fetched, 1..2^40
 *   LF
 *   <the policy body exactly as fetched, <= STS_POLICY_BODY_MAX octets>
 *
 * Trusts nothing: the delivery process talks to the internet and the
 * spool may be damaged, so a record is accepted only when every line is
 * exactly as above and the body parses with sts_policy_parse.
 */
#ifndef SEALPOST_MAIL_STS_CODEC_H
#define SEALPOST_MAIL_STS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mail/sts_policy.h"

#define STS_DOMAIN_MAX 253              /* octets of a policy domain */
#define STS_ID_MAX 32                   /* characters of a policy id */
#define STS_RECORD_HEAD_MAX 400         /* octets before the body */
#define STS_RECORD_MAX (STS_RECORD_HEAD_MAX + STS_POLICY_BODY_MAX)

struct sts_record {
    char domain[STS_DOMAIN_MAX + 1];
    char id[STS_ID_MAX + 1];
    int64_t fetched;
    size_t body_len;
    char body[STS_POLICY_BODY_MAX];
};

/* Encode r into out; returns the length, 0 when a field is invalid or
 * it does not fit outsize. */
size_t sts_record_encode(const struct sts_record *r, char *out, size_t outsize);

/* Decode and check; on success *out is filled and the parsed body is in
 * *pol (required). On failure err says why. */
bool sts_record_decode(const void *data, size_t len, struct sts_record *out,
                       struct sts_policy *pol, char *err, size_t errsize);

/* Has the policy's max_age passed at now (RFC 8461 5.1)? A record
 * fetched in the future counts as expired (clock trouble: refetch). */
bool sts_record_expired(const struct sts_record *r, const struct sts_policy *pol, time_t now);

/* A lower-case LDH domain name (labels 1-63 of [a-z0-9-], not starting
 * or ending with '-', total <= STS_DOMAIN_MAX, no trailing dot): safe as
 * a file name and in a URL. */
bool sts_domain_valid(const char *d);

/* 1..STS_ID_MAX letters and digits. */
bool sts_id_valid(const char *id);

#endif

/*
 * remote_codec.c - encode and check the job and result messages between
 * the queue and the delivery process (see remote_codec.h).
 *
 * Wire forms (both ends are the same binary, so fixed-size fields in
 * host byte order):
 *   job     struct job_wire, then the job's envelope in its spool form
 *           (envelope.h), which envelope_read() parses strictly;
 *   result  struct result_wire, then count x struct result_item.
 * Structural faults (sizes, counts, missing NULs, values out of range)
 * refuse the message. Text that came from the internet through the
 * delivery process is cleaned, not refused: control bytes become '?' and
 * an enhanced status code of the wrong shape is replaced by the default
 * for the outcome, so that no remote server can make the queue drop its
 * channel.
 */
#define _GNU_SOURCE 1
#include "mail/remote_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"

struct job_wire {
    uint64_t job_id;
    int64_t body_offset;
    uint64_t body_size;
    char destination[256];
};

struct result_wire {
    uint64_t job_id;
    uint32_t dsn_passed;
    uint32_t count;
    char relay[REMOTE_RELAY_MAX];
    char tls[REMOTE_TLS_MAX];
};

struct result_item {
    uint32_t outcome;
    int32_t code;
    char dsn[16];
    char text[512];
};

static void set_err(char *err, size_t errsize, const char *what)
{
    if (errsize)
        snprintf(err, errsize, "%s", what);
}

bool remote_job_encode(uint64_t job_id, const char *destination, const struct envelope *env,
                       const size_t *rcpt_index, size_t n, int64_t body_offset,
                       uint64_t body_size, char *out, size_t outsize, size_t *len)
{
    struct job_wire w;
    struct envelope sub = *env;
    char *text;
    size_t text_len;
    bool ok;

    if (n == 0 || n > REMOTE_JOB_MAX_RCPTS || strlen(destination) >= sizeof(w.destination))
        return false;
    memset(&w, 0, sizeof(w));
    w.job_id = job_id;
    w.body_offset = body_offset;
    w.body_size = body_size;
    memcpy(w.destination, destination, strlen(destination));
    /* The same envelope, but only this job's recipients. */
    sub.rcpts = malloc(n * sizeof(*sub.rcpts));
    if (sub.rcpts == NULL)
        return false;
    for (size_t k = 0; k < n; k++) {
        if (rcpt_index[k] >= env->rcpt_count) {
            free(sub.rcpts);
            return false;
        }
        sub.rcpts[k] = env->rcpts[rcpt_index[k]];
    }
    sub.rcpt_count = sub.rcpt_alloc = n;
    text = envelope_serialize(&sub, &text_len);
    free(sub.rcpts);
    ok = sizeof(w) + text_len <= outsize;
    if (ok) {
        memcpy(out, &w, sizeof(w));
        memcpy(out + sizeof(w), text, text_len);
        *len = sizeof(w) + text_len;
    }
    free(text);
    return ok;
}

static bool nul_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* A destination is a lower-case domain or an address literal in [...]:
 * nothing that could break a log line or a DNS query. */
static bool destination_ok(const char *d)
{
    if (d[0] == '\0')
        return false;
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c <= ' ' || c >= 0x7f || ascii_lower(c) != (char)c)
            return false;
    }
    return true;
}

bool remote_job_decode(const void *payload, size_t len, struct remote_job_msg *out,
                       char *err, size_t errsize)
{
    struct job_wire w;
    long body_start;
    FILE *fp;
    bool ok;

    if (len <= sizeof(w)) {
        set_err(err, errsize, "job too short");
        return false;
    }
    memcpy(&w, payload, sizeof(w));
    if (!nul_terminated(w.destination, sizeof(w.destination)) ||
        !destination_ok(w.destination)) {
        set_err(err, errsize, "bad destination");
        return false;
    }
    if (w.body_offset < 0 || w.body_size > (uint64_t)INT64_MAX - (uint64_t)w.body_offset) {
        set_err(err, errsize, "body offset or size out of range");
        return false;
    }
    fp = fmemopen((void *)((const char *)payload + sizeof(w)), len - sizeof(w), "r");
    if (fp == NULL) {
        set_err(err, errsize, "fmemopen failed");
        return false;
    }
    ok = envelope_read(fp, &out->env, &body_start, err, errsize);
    fclose(fp);
    if (!ok)
        return false;
    if ((size_t)body_start != len - sizeof(w) || out->env.rcpt_count == 0 ||
        out->env.rcpt_count > REMOTE_JOB_MAX_RCPTS) {
        envelope_clear(&out->env);
        set_err(err, errsize, "bytes after the envelope, or a bad recipient count");
        return false;
    }
    out->job_id = w.job_id;
    out->body_offset = w.body_offset;
    out->body_size = w.body_size;
    memcpy(out->destination, w.destination, sizeof(out->destination));
    return true;
}

size_t remote_result_encode(const struct remote_result_msg *r, void *out, size_t outsize)
{
    struct result_wire w;
    size_t need = sizeof(w) + r->count * sizeof(struct result_item);
    char *p = out;

    if (r->count == 0 || r->count > REMOTE_JOB_MAX_RCPTS || need > outsize)
        return 0;
    memset(&w, 0, sizeof(w));
    w.job_id = r->job_id;
    w.dsn_passed = r->dsn_passed;
    w.count = (uint32_t)r->count;
    snprintf(w.relay, sizeof(w.relay), "%s", r->relay);
    snprintf(w.tls, sizeof(w.tls), "%s", r->tls);
    memcpy(p, &w, sizeof(w));
    p += sizeof(w);
    for (size_t i = 0; i < r->count; i++) {
        struct result_item it;

        memset(&it, 0, sizeof(it));
        it.outcome = (uint32_t)r->results[i].outcome;
        it.code = r->results[i].code;
        snprintf(it.dsn, sizeof(it.dsn), "%s", r->results[i].dsn);
        snprintf(it.text, sizeof(it.text), "%s", r->results[i].text);
        memcpy(p, &it, sizeof(it));
        p += sizeof(it);
    }
    return need;
}

static void clean_text(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            *s = '?';
    }
}

static bool digits(const char **p, int max)
{
    int n = 0;

    while (ascii_digit((unsigned char)**p) && n < max) {
        (*p)++;
        n++;
    }
    return n > 0 && !ascii_digit((unsigned char)**p);
}

/* RFC 3463: class "." subject "." detail, class 2, 4 or 5, 1-3 digits. */
static bool status_code_ok(const char *s)
{
    const char *p = s + 1;

    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return false;
    if (*p++ != '.' || !digits(&p, 3) || *p++ != '.' || !digits(&p, 3))
        return false;
    return *p == '\0';
}

/*
 * The delivery process decides the outcome; the status it reports must
 * say the same thing. "Delivered" needs a 2xx reply and no 4.x.x or
 * 5.x.x status (the queue removes the message for it); any other outcome
 * must not carry a success status. A deferral may carry a 2xx reply code:
 * a next hop that answered out of turn (issue 10) is a protocol error.
 * An enhanced status of the wrong shape is cleaned, not refused.
 */
static bool outcome_agrees(uint32_t outcome, int code, const char *dsn)
{
    bool well_formed = status_code_ok(dsn);

    if (outcome == SMTP_DELIVERED)
        return code >= 200 && code <= 299 && (!well_formed || dsn[0] == '2');
    if (outcome == SMTP_FAILED && code >= 200 && code <= 299)
        return false;
    return !well_formed || dsn[0] != '2';
}

bool remote_result_decode(const void *payload, size_t len, struct remote_result_msg *out,
                          char *err, size_t errsize)
{
    static const char *const fallback[] = { "2.0.0", "4.0.0", "5.0.0" };
    struct result_wire w;
    const char *p = payload;

    if (len < sizeof(w)) {
        set_err(err, errsize, "result too short");
        return false;
    }
    memcpy(&w, p, sizeof(w));
    if (w.count == 0 || w.count > REMOTE_JOB_MAX_RCPTS ||
        len != sizeof(w) + w.count * sizeof(struct result_item) || w.dsn_passed > 1 ||
        !nul_terminated(w.relay, sizeof(w.relay)) || !nul_terminated(w.tls, sizeof(w.tls))) {
        set_err(err, errsize, "malformed result header");
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->job_id = w.job_id;
    out->dsn_passed = w.dsn_passed;
    out->count = w.count;
    memcpy(out->relay, w.relay, sizeof(out->relay));
    memcpy(out->tls, w.tls, sizeof(out->tls));
    clean_text(out->relay);
    clean_text(out->tls);
    p += sizeof(w);
    for (size_t i = 0; i < w.count; i++, p += sizeof(struct result_item)) {
        struct result_item it;
        struct smtp_result *r = &out->results[i];

        memcpy(&it, p, sizeof(it));
        if (it.outcome > SMTP_FAILED || (it.code != 0 && (it.code < 200 || it.code > 599)) ||
            !nul_terminated(it.dsn, sizeof(it.dsn)) || !nul_terminated(it.text, sizeof(it.text))) {
            set_err(err, errsize, "malformed recipient result");
            return false;
        }
        if (!outcome_agrees(it.outcome, it.code, it.dsn)) {
            set_err(err, errsize, "recipient result contradicts its status");
            return false;
        }
        r->outcome = (enum smtp_outcome)it.outcome;
        r->code = it.code;
        snprintf(r->dsn, sizeof(r->dsn), "%s",
                 status_code_ok(it.dsn) ? it.dsn : fallback[it.outcome]);
        memcpy(r->text, it.text, sizeof(r->text));
        clean_text(r->text);
    }
    return true;
}

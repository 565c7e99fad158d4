/*
 * fuzz_remote_codec.c - libFuzzer target for the messages between the
 * queue and the delivery process (src/mail/remote_codec.c). The first
 * input byte picks the decoder: even = a result (what the queue reads
 * from the internet-facing delivery process), odd = a job (what the
 * delivery process reads from the queue).
 *
 * Checked besides memory errors and leaks: a decoded result has 1..max
 * recipients, outcomes in range, reply codes 0 or 200-599, status codes
 * of the form c.s.d with no control bytes anywhere in its texts, and
 * encodes back to a message that decodes to the same values; a decoded
 * job has 1..max recipients and re-encodes to a job that decodes again.
 */
#include "fuzz.h"

#include "mail/remote_codec.h"
#include "util/ipc.h"

static struct remote_result_msg res, again;
static struct remote_job_msg job, job2;
static char out[IPC_MAX_PAYLOAD];

static void check_text(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    FUZZ_CHECK(len < size);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK((unsigned char)s[i] >= ' ' && s[i] != 0x7f);
}

static void check_result(void)
{
    FUZZ_CHECK(res.count >= 1 && res.count <= REMOTE_JOB_MAX_RCPTS);
    check_text(res.relay, sizeof(res.relay));
    check_text(res.tls, sizeof(res.tls));
    for (size_t i = 0; i < res.count; i++) {
        const struct smtp_result *r = &res.results[i];

        FUZZ_CHECK(r->outcome <= SMTP_FAILED);
        FUZZ_CHECK(r->code == 0 || (r->code >= 200 && r->code <= 599));
        check_text(r->text, sizeof(r->text));
        FUZZ_CHECK(strchr("245", r->dsn[0]) != NULL && r->dsn[0] && r->dsn[1] == '.');
    }
    size_t len = remote_result_encode(&res, out, sizeof(out));
    FUZZ_CHECK(len > 0);
    char err[128];
    FUZZ_CHECK(remote_result_decode(out, len, &again, err, sizeof(err)));
    FUZZ_CHECK(again.count == res.count && again.job_id == res.job_id);
    FUZZ_CHECK(strcmp(again.relay, res.relay) == 0 && strcmp(again.tls, res.tls) == 0);
    for (size_t i = 0; i < res.count; i++) {
        FUZZ_CHECK(again.results[i].outcome == res.results[i].outcome);
        FUZZ_CHECK(strcmp(again.results[i].dsn, res.results[i].dsn) == 0);
        FUZZ_CHECK(strcmp(again.results[i].text, res.results[i].text) == 0);
    }
}

static void check_job(void)
{
    size_t pick[REMOTE_JOB_MAX_RCPTS], len;
    char err[256];

    FUZZ_CHECK(job.env.rcpt_count >= 1 && job.env.rcpt_count <= REMOTE_JOB_MAX_RCPTS);
    FUZZ_CHECK(strnlen(job.destination, sizeof(job.destination)) < sizeof(job.destination));
    FUZZ_CHECK(job.body_offset >= 0);
    for (size_t i = 0; i < job.env.rcpt_count; i++)
        pick[i] = i;
    FUZZ_CHECK(remote_job_encode(job.job_id, job.destination, &job.env, pick,
                                 job.env.rcpt_count, job.body_offset, job.body_size, out,
                                 sizeof(out), &len));
    if (!remote_job_decode(out, len, &job2, err, sizeof(err))) {
        fprintf(stderr, "re-encoded job does not decode: %s\n", err);
        FUZZ_CHECK(!"job round trip");
    }
    FUZZ_CHECK(job2.env.rcpt_count == job.env.rcpt_count);
    FUZZ_CHECK(strcmp(job2.destination, job.destination) == 0);
    for (size_t i = 0; i < job.env.rcpt_count; i++)
        FUZZ_CHECK(strcmp(job2.env.rcpts[i].addr, job.env.rcpts[i].addr) == 0);
    envelope_clear(&job2.env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];

    if (size < 1 || size - 1 > IPC_MAX_PAYLOAD)
        return 0;
    /* an aligned, exactly sized copy, as ipc_recv would hand it over */
    char *copy = malloc(size - 1 ? size - 1 : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    if (data[0] % 2 == 0) {
        if (remote_result_decode(copy, size - 1, &res, err, sizeof(err)))
            check_result();
    } else if (remote_job_decode(copy, size - 1, &job, err, sizeof(err))) {
        check_job();
        envelope_clear(&job.env);
    }
    free(copy);
    return 0;
}

/*
 * fuzz_milter_codec.c - libFuzzer target for the messages between the
 * queue and the milter role (src/mail/milter_codec.c): the queue decodes
 * every result (it came from the process that talks to milters), the
 * role decodes every job.
 *
 * Input layout: the first octet picks the decoder (even: result, odd:
 * job), the rest is the payload, in a buffer of exactly its size.
 * Checked:
 *  - a refused payload leaves a non-empty error;
 *  - an accepted result has only printable values (addresses may carry
 *    UTF-8), bounded counts, a reply of its verdict's class exactly when
 *    it refuses, and encodes to a payload that decodes to the same
 *    result; the same round trip for a job.
 */
#include "fuzz.h"

#include "mail/milter_codec.h"
#include "util/ipc.h"

static struct milter_result_msg res, res2;
static struct milter_job_msg job, job2;
static char buf[IPC_MAX_PAYLOAD];

static bool clean(const char *s, bool allow_8bit)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !allow_8bit))
            return false;
    return true;
}

static void check_result(void)
{
    char err[200] = "";
    size_t len;

    FUZZ_CHECK(res.add_count + res.delete_count <= MILTER_CODEC_RCPT_EDITS);
    FUZZ_CHECK(clean(res.reply, false) && clean(res.milter, false) && clean(res.reason, false));
    FUZZ_CHECK(clean(res.from, true));
    for (size_t i = 0; i < res.add_count; i++)
        FUZZ_CHECK(res.add[i][0] && clean(res.add[i], true));
    for (size_t i = 0; i < res.delete_count; i++)
        FUZZ_CHECK(res.del[i][0] && clean(res.del[i], true));
    if (res.verdict == MILTER_RESULT_REJECT)
        FUZZ_CHECK(res.reply[0] == '5' && milter_reply_valid(res.reply, false));
    else if (res.verdict == MILTER_RESULT_TEMPFAIL)
        FUZZ_CHECK(res.reply[0] == '4' && milter_reply_valid(res.reply, true));
    else
        FUZZ_CHECK(res.reply[0] == '\0');
    len = milter_result_encode(&res, buf, sizeof(buf));
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(milter_result_decode(buf, len, &res2, err, sizeof(err)));
    FUZZ_CHECK(memcmp(&res, &res2, sizeof(res)) == 0);
}

static void check_job(void)
{
    char err[200] = "";
    size_t len;

    FUZZ_CHECK(job.listener[0] && clean(job.listener, false) && clean(job.auth_user, true));
    /* a user and how it authenticated, both or neither */
    FUZZ_CHECK(job.auth_user[0] ? auth_mechanism_known(job.auth_type) : !job.auth_type[0]);
    len = milter_job_encode(&job, buf, sizeof(buf));
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(milter_job_decode(buf, len, &job2, err, sizeof(err)));
    FUZZ_CHECK(memcmp(&job, &job2, sizeof(job)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[200] = "";
    uint8_t *copy;
    bool ok;

    if (size < 1)
        return 0;
    copy = malloc(size - 1 ? size - 1 : 1);
    memcpy(copy, data + 1, size - 1);
    if (data[0] % 2 == 0) {
        ok = milter_result_decode(copy, size - 1, &res, err, sizeof(err));
        if (ok)
            check_result();
    } else {
        ok = milter_job_decode(copy, size - 1, &job, err, sizeof(err));
        if (ok)
            check_job();
    }
    FUZZ_CHECK(ok || err[0]);
    free(copy);
    return 0;
}

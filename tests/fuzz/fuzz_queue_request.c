/*
 * fuzz_queue_request.c - libFuzzer target for the NEW request a worker
 * sends the queue (src/mail/queue_request.c): the input is the payload
 * as it arrives on the channel from a possibly compromised worker.
 *
 * Checked besides memory errors and leaks: a refused request leaves an
 * empty envelope and a reason; an accepted one has a NUL-terminated
 * listener name and at least one recipient, and encoding it again gives
 * a request that decodes to the same facts and recipients.
 */
#include "fuzz.h"

#include "mail/queue_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct queue_request_facts facts, again_facts;
    struct envelope env, again;
    char err[256] = "";
    size_t len = 0;
    char *wire;

    if (!queue_request_decode(data, size, &facts, &env, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != '\0' && strnlen(err, sizeof(err)) < sizeof(err));
        FUZZ_CHECK(env.rcpts == NULL && env.rcpt_count == 0);
        return 0;
    }
    FUZZ_CHECK(strnlen(facts.listener, sizeof(facts.listener)) < sizeof(facts.listener));
    FUZZ_CHECK(env.rcpt_count >= 1);
    wire = queue_request_encode(&facts, &env, &len);
    if (wire != NULL) {
        FUZZ_CHECK(queue_request_decode(wire, len, &again_facts, &again, err, sizeof(err)));
        FUZZ_CHECK(again_facts.tls == facts.tls);
        FUZZ_CHECK(strcmp(again_facts.listener, facts.listener) == 0);
        FUZZ_CHECK(again.rcpt_count == env.rcpt_count);
        for (size_t i = 0; i < env.rcpt_count; i++)
            FUZZ_CHECK(strcmp(again.rcpts[i].addr, env.rcpts[i].addr) == 0);
        envelope_clear(&again);
        free(wire);
    }
    envelope_clear(&env);
    return 0;
}

/*
 * fuzz_envelope.c - libFuzzer target for the spool envelope reader
 * (src/mail/envelope.c): the input is a spool file, read through
 * fmemopen().
 *
 * Checked besides memory errors and leaks: a successful read gives
 * bounded, NUL-terminated fields, a body offset inside the file and at
 * least one recipient; serializing that envelope and reading it back
 * gives the same envelope (the queue rewrites envelopes this way).
 */
#include "fuzz.h"

#include "mail/envelope.h"

static void check_string(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    FUZZ_CHECK(len < size);
    FUZZ_CHECK(memchr(s, '\n', len) == NULL);
}

static void check_envelope(const struct envelope *env)
{
    FUZZ_CHECK(strnlen(env->id, sizeof(env->id)) == QUEUE_ID_LEN);
    check_string(env->client, sizeof(env->client));
    check_string(env->helo, sizeof(env->helo));
    check_string(env->from, sizeof(env->from));
    check_string(env->envid, sizeof(env->envid));
    FUZZ_CHECK(env->rcpt_count >= 1 && env->rcpt_count <= ENVELOPE_MAX_RCPTS);
    FUZZ_CHECK(env->rcpt_count <= env->rcpt_alloc);
    for (size_t i = 0; i < env->rcpt_count; i++) {
        check_string(env->rcpts[i].addr, sizeof(env->rcpts[i].addr));
        check_string(env->rcpts[i].orcpt, sizeof(env->rcpts[i].orcpt));
        FUZZ_CHECK(env->rcpts[i].notify <= 15);
    }
}

static void same_envelope(const struct envelope *a, const struct envelope *b)
{
    FUZZ_CHECK(strcmp(a->id, b->id) == 0);
    FUZZ_CHECK(a->arrival == b->arrival);
    FUZZ_CHECK(strcmp(a->client, b->client) == 0);
    FUZZ_CHECK(strcmp(a->helo, b->helo) == 0);
    FUZZ_CHECK(strcmp(a->from, b->from) == 0);
    FUZZ_CHECK(a->body == b->body && a->smtputf8 == b->smtputf8);
    FUZZ_CHECK(a->requiretls == b->requiretls && a->ret == b->ret);
    FUZZ_CHECK(a->dsn_content_withheld == b->dsn_content_withheld);
    FUZZ_CHECK(strcmp(a->envid, b->envid) == 0);
    FUZZ_CHECK(a->rcpt_count == b->rcpt_count);
    for (size_t i = 0; i < a->rcpt_count; i++) {
        FUZZ_CHECK(strcmp(a->rcpts[i].addr, b->rcpts[i].addr) == 0);
        FUZZ_CHECK(strcmp(a->rcpts[i].orcpt, b->rcpts[i].orcpt) == 0);
        FUZZ_CHECK(a->rcpts[i].notify == b->rcpts[i].notify);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope env, again;
    char err[256];
    long offset = -1;

    if (size == 0)
        return 0;                   /* fmemopen needs at least one byte */
    char *copy = malloc(size);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    FILE *fp = fmemopen(copy, size, "r");
    FUZZ_CHECK(fp != NULL);
    err[0] = '\0';
    bool ok = envelope_read(fp, &env, &offset, err, sizeof(err));
    fclose(fp);
    if (!ok) {
        FUZZ_CHECK(err[0] != '\0' && strnlen(err, sizeof(err)) < sizeof(err));
        FUZZ_CHECK(env.rcpts == NULL && env.rcpt_count == 0);
        free(copy);
        return 0;
    }
    FUZZ_CHECK(offset > 0 && (size_t)offset <= size);
    FUZZ_CHECK(copy[offset - 1] == '\n');
    check_envelope(&env);

    size_t len;
    char *text = envelope_serialize(&env, &len);
    FUZZ_CHECK(text != NULL && strlen(text) == len);
    fp = fmemopen(text, len, "r");
    FUZZ_CHECK(fp != NULL);
    long offset2 = -1;
    if (!envelope_read(fp, &again, &offset2, err, sizeof(err))) {
        fprintf(stderr, "serialized envelope does not read back: %s\n%s", err, text);
        FUZZ_CHECK(!"envelope round trip");
    }
    fclose(fp);
    FUZZ_CHECK((size_t)offset2 == len);
    same_envelope(&env, &again);
    envelope_clear(&again);
    envelope_clear(&env);
    free(text);
    free(copy);
    return 0;
}

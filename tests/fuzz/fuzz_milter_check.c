/*
 * fuzz_milter_check.c - libFuzzer target for the milter question asked
 * during the SMTP dialogue (src/mail/milter_check.c): the input is the
 * payload as it arrives at the queue from a possibly compromised smtpd
 * worker (and, in the same form, at the milter role from the queue).
 *
 * Checked besides memory errors and leaks: a refused question leaves an
 * empty envelope and a reason; an accepted one fits its stage (one
 * recipient at rcpt, none before) and encodes again to a question that
 * decodes to the same facts.
 */
#include "fuzz.h"

#include "mail/milter_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct milter_check c, again;
    char err[256] = "";
    size_t len = 0;
    char *wire;

    if (!milter_check_decode(data, size, &c, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != '\0' && strnlen(err, sizeof(err)) < sizeof(err));
        FUZZ_CHECK(c.env.rcpts == NULL && c.env.rcpt_count == 0);
        return 0;
    }
    FUZZ_CHECK(c.stage >= MILTER_AT_CONNECT && c.stage <= MILTER_AT_RCPT);
    FUZZ_CHECK(c.env.rcpt_count == (c.stage == MILTER_AT_RCPT ? 1u : 0u));
    FUZZ_CHECK(c.env.id[0] == '\0');
    FUZZ_CHECK(c.auth_user[0] ? auth_mechanism_known(c.auth_type) : !c.auth_type[0]);
    wire = milter_check_encode(&c, &len);
    if (wire != NULL) {
        FUZZ_CHECK(milter_check_decode(wire, len, &again, err, sizeof(err)));
        FUZZ_CHECK(again.id == c.id && again.stage == c.stage &&
                   again.client_port == c.client_port);
        FUZZ_CHECK(strcmp(again.auth_user, c.auth_user) == 0);
        FUZZ_CHECK(strcmp(again.auth_type, c.auth_type) == 0);
        FUZZ_CHECK(strcmp(again.facts.listener, c.facts.listener) == 0);
        FUZZ_CHECK(strcmp(again.env.from, c.env.from) == 0);
        FUZZ_CHECK(strcmp(again.env.helo, c.env.helo) == 0);
        envelope_clear(&again.env);
        free(wire);
    }
    envelope_clear(&c.env);
    return 0;
}

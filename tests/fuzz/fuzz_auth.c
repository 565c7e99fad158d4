/*
 * fuzz_auth.c - libFuzzer target for the SMTP AUTH inputs that cross a
 * process boundary or come from files: the IPC request a (possibly
 * compromised) smtpd worker sends the queue and the queue's answer
 * (src/mail/auth_codec.c), and the users file and sender map parsers
 * (src/mail/credentials.c, src/mail/senders.c), and the smart host's
 * credentials file (src/mail/relay_credentials.c).
 *
 * Input layout: byte 0 selects the parser (mod 5), the rest is its input.
 * Checked: decoders accept only their exact size with every string
 * terminated (a refused request is wiped); an accepted answer has a
 * verdict in range and a token of 32 hex digits exactly when it is OK;
 * the users file parser finds what it kept and its count is bounded; the
 * sender map never allows a user that no line names except the null
 * sender; relay credentials are a non-empty user and password within
 * their bounds, without control bytes, that occur in the input as
 * "user:password", and a refusal leaves them wiped.
 */
#define _GNU_SOURCE 1
#include "fuzz.h"

#include "mail/auth_codec.h"
#include "mail/credentials.h"
#include "mail/relay_credentials.h"
#include "mail/senders.h"

static void fuzz_request(const uint8_t *p, size_t n)
{
    struct auth_request r;

    if (auth_request_decode(p, n, &r)) {
        FUZZ_CHECK(n == sizeof(r));
        FUZZ_CHECK(auth_mechanism_name(r.mechanism) != NULL);
        FUZZ_CHECK(strnlen(r.user, sizeof(r.user)) > 0 && strnlen(r.user, sizeof(r.user)) <
                   sizeof(r.user));
        FUZZ_CHECK(strnlen(r.password, sizeof(r.password)) < sizeof(r.password));
    } else {
        for (size_t i = 0; i < sizeof(r.password); i++)
            FUZZ_CHECK(r.password[i] == '\0');
    }
}

static void fuzz_answer(const uint8_t *p, size_t n)
{
    struct auth_answer a;

    if (!auth_answer_decode(p, n, &a))
        return;
    FUZZ_CHECK(a.verdict <= AUTH_VERDICT_MAX);
    FUZZ_CHECK((a.verdict == AUTH_OK) == auth_token_valid(a.token));
}

static void fuzz_users(const uint8_t *p, size_t n)
{
    char err[256];
    struct credentials *c = credentials_parse((const char *)p, n, err, sizeof(err));

    if (c == NULL) {
        FUZZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err));
        return;
    }
    FUZZ_CHECK(credentials_count(c) <= CREDENTIALS_MAX_USERS);
    FUZZ_CHECK(credentials_hash(c, "") == NULL);
    credentials_free(c);
}

static void fuzz_senders(const uint8_t *p, size_t n)
{
    char err[256];
    struct sender_map *m = sender_map_parse((const char *)p, n, err, sizeof(err));

    if (m == NULL)
        return;
    FUZZ_CHECK(sender_map_allows(m, "nobody-at-all", ""));     /* <> always */
    FUZZ_CHECK(!sender_map_allows(m, "user with blank", "a@b"));  /* names have no blanks */
    sender_map_free(m);
}

static void fuzz_relay(const uint8_t *p, size_t n)
{
    char err[256], line[2 * RELAY_CRED_FIELD_MAX + 2];
    struct relay_credentials rc;
    size_t ul, pl;

    if (!relay_credentials_parse((const char *)p, n, &rc, err, sizeof(err))) {
        FUZZ_CHECK(rc.user[0] == '\0' && rc.password[0] == '\0');
        FUZZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err));
        return;
    }
    ul = strnlen(rc.user, sizeof(rc.user));
    pl = strnlen(rc.password, sizeof(rc.password));
    FUZZ_CHECK(ul > 0 && ul <= RELAY_CRED_FIELD_MAX && pl > 0 && pl <= RELAY_CRED_FIELD_MAX);
    FUZZ_CHECK(!fuzz_has_control(rc.user, ul) && !fuzz_has_control(rc.password, pl));
    FUZZ_CHECK(memchr(rc.user, ':', ul) == NULL);
    snprintf(line, sizeof(line), "%s:%s", rc.user, rc.password);
    FUZZ_CHECK(memmem(p, n, line, ul + 1 + pl) != NULL);
    relay_credentials_wipe(&rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 5) {
    case 0: fuzz_request(data + 1, size - 1); break;
    case 1: fuzz_answer(data + 1, size - 1); break;
    case 2: fuzz_users(data + 1, size - 1); break;
    case 3: fuzz_senders(data + 1, size - 1); break;
    default: fuzz_relay(data + 1, size - 1); break;
    }
    return 0;
}

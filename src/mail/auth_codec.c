/*
 * auth_codec.c - check the AUTH IPC messages (see auth_codec.h).
 *
 * Trusts: nothing; the sender may be a compromised worker (requests) or
 * a confused queue (answers). A request that fails is wiped before the
 * caller sees it fail.
 */
#include "mail/auth_codec.h"

#include <string.h>

#include "util/ascii.h"

static bool terminated(const char *s, size_t size, bool nonempty)
{
    size_t n = strnlen(s, size);

    return n < size && (!nonempty || n > 0);
}

bool auth_token_valid(const char *token)
{
    size_t n = strnlen(token, AUTH_TOKEN_LEN + 1);

    if (n != AUTH_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
            return false;
    return true;
}

/* The printable characters of an address in text form. */
static bool client_ok(const char *s)
{
    for (; *s; s++)
        if (!(ascii_hex((unsigned char)*s) || *s == '.' || *s == ':'))
            return false;
    return true;
}

const char *auth_mechanism_name(uint32_t mechanism)
{
    switch (mechanism) {
    case AUTH_MECH_PLAIN: return "PLAIN";
    case AUTH_MECH_LOGIN: return "LOGIN";
    }
    return NULL;
}

bool auth_mechanism_known(const char *name)
{
    for (uint32_t m = 0; m <= AUTH_MECH_MAX; m++)
        if (strcmp(name, auth_mechanism_name(m)) == 0)
            return true;
    return false;
}

bool auth_request_decode(const void *payload, size_t len, struct auth_request *out)
{
    if (len != sizeof(*out)) {
        memset(out, 0, sizeof(*out));
        return false;
    }
    memcpy(out, payload, sizeof(*out));
    if (out->mechanism <= AUTH_MECH_MAX &&
        terminated(out->client, sizeof(out->client), true) && client_ok(out->client) &&
        terminated(out->user, sizeof(out->user), true) &&
        terminated(out->password, sizeof(out->password), true))
        return true;
    explicit_bzero(out, sizeof(*out));
    return false;
}

bool auth_answer_decode(const void *payload, size_t len, struct auth_answer *out)
{
    memset(out, 0, sizeof(*out));
    if (len != sizeof(*out))
        return false;
    memcpy(out, payload, sizeof(*out));
    if (out->verdict > AUTH_VERDICT_MAX || !terminated(out->token, sizeof(out->token), false))
        return false;
    if (out->verdict == AUTH_OK ? !auth_token_valid(out->token) : out->token[0] != '\0')
        return false;
    return true;
}

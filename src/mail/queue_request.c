/*
 * queue_request.c - encode and check the NEW request (see
 * queue_request.h). Wire form: struct request_wire (fixed size, host byte
 * order: both ends are the same binary), then the envelope text.
 */
#define _GNU_SOURCE 1
#include "mail/queue_request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ipc.h"
#include "util/xalloc.h"

#define FLAG_TLS 1u

struct request_wire {
    uint32_t flags;
    char listener[CONFIG_NAME_MAX];
    char auth_token[AUTH_TOKEN_LEN + 1];
};

char *queue_request_encode(const struct queue_request_facts *facts,
                           const struct envelope *env, size_t *len)
{
    struct request_wire w;
    size_t tlen;
    char *text = envelope_serialize(env, &tlen), *out;

    if (sizeof(w) + tlen > IPC_MAX_PAYLOAD) {
        free(text);
        return NULL;
    }
    memset(&w, 0, sizeof(w));
    w.flags = facts->tls ? FLAG_TLS : 0;
    snprintf(w.listener, sizeof(w.listener), "%s", facts->listener);
    snprintf(w.auth_token, sizeof(w.auth_token), "%s", facts->auth_token);
    out = xmalloc(sizeof(w) + tlen);
    memcpy(out, &w, sizeof(w));
    memcpy(out + sizeof(w), text, tlen);
    free(text);
    *len = sizeof(w) + tlen;
    return out;
}

static bool decode(const void *payload, size_t len, bool partial,
                   struct queue_request_facts *facts, struct envelope *env, char *err,
                   size_t errsize)
{
    struct request_wire w;
    long body_offset = 0;
    FILE *fp;
    bool ok;

    envelope_init(env);
    if (len < sizeof(w)) {
        snprintf(err, errsize, "request too short");
        return false;
    }
    memcpy(&w, payload, sizeof(w));
    if ((w.flags & ~FLAG_TLS) != 0 || memchr(w.listener, '\0', sizeof(w.listener)) == NULL ||
        memchr(w.auth_token, '\0', sizeof(w.auth_token)) == NULL ||
        (w.auth_token[0] != '\0' && !auth_token_valid(w.auth_token))) {
        snprintf(err, errsize, "malformed request header");
        return false;
    }
    facts->tls = (w.flags & FLAG_TLS) != 0;
    memcpy(facts->listener, w.listener, sizeof(facts->listener));
    memcpy(facts->auth_token, w.auth_token, sizeof(facts->auth_token));
    fp = fmemopen((char *)payload + sizeof(w), len - sizeof(w), "r");
    if (fp == NULL) {
        snprintf(err, errsize, "fmemopen failed");
        return false;
    }
    if (partial) {
        ok = envelope_read_partial(fp, env, err, errsize);
        body_offset = ftell(fp);
    } else {
        ok = envelope_read(fp, env, &body_offset, err, errsize);
    }
    fclose(fp);
    if (ok && (size_t)body_offset != len - sizeof(w)) {
        snprintf(err, errsize, "bytes after the envelope");
        ok = false;
    }
    if (!ok)
        envelope_clear(env);
    return ok;
}

bool queue_request_decode(const void *payload, size_t len, struct queue_request_facts *facts,
                          struct envelope *env, char *err, size_t errsize)
{
    return decode(payload, len, false, facts, env, err, errsize);
}

bool queue_request_decode_partial(const void *payload, size_t len,
                                  struct queue_request_facts *facts, struct envelope *env,
                                  char *err, size_t errsize)
{
    return decode(payload, len, true, facts, env, err, errsize);
}

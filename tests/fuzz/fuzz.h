/*
 * fuzz.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * A target feeds its input to real code from src/ and checks the
 * invariants that code promises in its header. A broken invariant is a
 * bug exactly like a crash: FUZZ_CHECK prints where and aborts, so
 * libFuzzer saves the input (see docs/FUZZING.md).
 */
#ifndef SEALPOST_TESTS_FUZZ_H
#define SEALPOST_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,      \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Reads the input front to back; past its end every read yields 0. */
struct fuzz_input {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static inline uint8_t fuzz_byte(struct fuzz_input *in)
{
    return in->pos < in->len ? in->p[in->pos++] : 0;
}

/* Up to max bytes as a NUL-terminated malloc'ed string (free it). The
 * length is taken from the next byte, so fields can be of any size. */
static inline char *fuzz_string(struct fuzz_input *in, size_t max)
{
    size_t n = fuzz_byte(in);
    char *s;

    if (n > max)
        n = max;
    if (n > in->len - in->pos)
        n = in->len - in->pos;
    s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, in->p + in->pos, n);
    s[n] = '\0';
    in->pos += n;
    return s;
}

/* A copy of data[0..size) with a NUL after it, in a buffer of exactly
 * size + 1 bytes so that AddressSanitizer sees any read past the end. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* True if s[0..len) holds a control character (C0 or DEL). */
static inline bool fuzz_has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

#endif

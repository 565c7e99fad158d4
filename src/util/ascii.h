/*
 * ascii.h - character classes of the ASCII grammars in mail RFCs (ABNF
 * ALPHA, DIGIT, HEXDIG, WSP), independent of the C locale: the one set
 * every parser in sealpost uses (no <ctype.h> anywhere). Header only.
 * Trusts nothing; any byte value is a valid argument.
 */
#ifndef SEALPOST_UTIL_ASCII_H
#define SEALPOST_UTIL_ASCII_H

#include <stdbool.h>
#include <stddef.h>

static inline bool ascii_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool ascii_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool ascii_hex(unsigned char c)
{
    return ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The value of a hex digit, or -1. */
static inline int ascii_hex_value(unsigned char c)
{
    if (ascii_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool ascii_alnum(unsigned char c)
{
    return ascii_alpha(c) || ascii_digit(c);
}

/* The C locale's isspace(): SP, HT, LF, VT, FF, CR. */
static inline bool ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline bool ascii_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..*len) without the WSP at either end: *s and *len move inwards. */
static inline void ascii_trim_wsp(const char **s, size_t *len)
{
    while (*len > 0 && ascii_wsp((unsigned char)**s))
        (*s)++, (*len)--;
    while (*len > 0 && ascii_wsp((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static inline char ascii_lower(unsigned char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

/* Lower-case ASCII copy of s[0..len) into out, NUL-terminated,
 * truncated to outsize (nothing written when outsize is 0). */
static inline void ascii_lower_copy(char *out, size_t outsize, const char *s, size_t len)
{
    size_t i;

    if (outsize == 0)
        return;
    for (i = 0; i < len && i + 1 < outsize; i++)
        out[i] = ascii_lower((unsigned char)s[i]);
    out[i] = '\0';
}

#endif

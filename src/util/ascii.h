/*
 * ascii.h - character classes of the ASCII grammars in mail RFCs (ABNF
 * ALPHA, DIGIT, HEXDIG, WSP), independent of the C locale. Header only.
 * Trusts nothing; any byte value is a valid argument.
 */
#ifndef SEALPOST_UTIL_ASCII_H
#define SEALPOST_UTIL_ASCII_H

#include <stdbool.h>

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

static inline bool ascii_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline char ascii_lower(unsigned char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

#endif

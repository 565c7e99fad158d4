/*
 * dns_name.c - syntax of names and IP literals for the DNS code: text
 * names from the envelope or config, wire-format names from answers.
 *
 * Trusts: nothing. Every input may be hostile (a recipient domain, an MX
 * exchange chosen by whoever runs that zone): lengths are checked before
 * each copy, loops are bounded by the input length, nothing recurses.
 * Must never: accept a name that could split a log line or an SMTP
 * command (only letters, digits, '-' and '_' pass).
 */
#include "delivery/dns_internal.h"

#include "util/ascii.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

static bool label_char_ok(unsigned char c)
{
    return ascii_alnum(c) || c == '-' || c == '_';
}

bool dns_name_normalize(const char *in, char *out, size_t outsize)
{
    size_t len = strnlen(in, DNS_NAME_MAX + 2);
    size_t label = 0;

    if (len > 0 && in[len - 1] == '.')
        len--;                              /* one trailing dot is fine */
    if (len == 0 || len > DNS_NAME_MAX || len >= outsize)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0)
                return false;               /* empty label */
            label = 0;
        } else if (label_char_ok(c)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
        out[i] = ascii_lower(c);
    }
    if (label == 0)
        return false;
    out[len] = '\0';
    return true;
}

size_t dns_wire_name(const uint8_t *buf, size_t len, char *out, size_t outsize)
{
    size_t pos = 0, o = 0;

    if (outsize == 0)
        return 0;
    for (;;) {
        if (pos >= len || pos >= 255)
            return 0;                       /* ran off the data, or too long */
        size_t n = buf[pos++];
        if (n == 0)
            break;
        if (n > 63)
            return 0;                       /* pointer or extended label type */
        if (pos + n > len || pos + n > 255)
            return 0;
        if (o != 0) {
            if (o + 1 >= outsize)
                return 0;
            out[o++] = '.';
        }
        if (o + n >= outsize)
            return 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = buf[pos + i];
            if (!label_char_ok(c))
                return 0;
            out[o++] = ascii_lower(c);
        }
        pos += n;
    }
    out[o] = '\0';
    return pos;
}

bool dns_ip_literal(const char *s, uint16_t port, struct sockaddr_storage *ss,
                    socklen_t *sslen, char *text, size_t textsize)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t len = strnlen(s, sizeof(buf) + 8);
    bool bracketed = false;

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
        bracketed = true;
    }
    if (bracketed && len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
        s += 5;
        len -= 5;
    }
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';

    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *sslen = sizeof(*sin);
        return inet_ntop(AF_INET, &sin->sin_addr, text, (socklen_t)textsize) != NULL;
    }
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *sslen = sizeof(*sin6);
        return inet_ntop(AF_INET6, &sin6->sin6_addr, text, (socklen_t)textsize) != NULL;
    }
    return false;
}

void dns_printable(char *out, size_t outsize, const char *s)
{
    size_t o = 0;

    if (outsize == 0)
        return;
    for (; s != NULL && *s != '\0' && o + 1 < outsize; s++) {
        unsigned char c = (unsigned char)*s;
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[o] = '\0';
}

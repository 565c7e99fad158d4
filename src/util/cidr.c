/*
 * cidr.c - CIDR networks (see cidr.h). Input is operator config and
 * kernel-formatted peer addresses; both are parsed with inet_pton only.
 */
#include "util/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool prefix_ok(const unsigned char *addr, size_t len, unsigned prefix)
{
    for (size_t bit = prefix; bit < len * 8; bit++) {
        if (addr[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    }
    return true;
}

bool cidr_parse(const char *text, struct network *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    unsigned long prefix;
    char *end;
    size_t alen;

    if (hlen == 0 || hlen >= sizeof(host))
        return false;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET, alen = 4;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6, alen = 16;
    else
        return false;
    prefix = alen * 8;
    if (slash) {
        if (slash[1] < '0' || slash[1] > '9')
            return false;
        prefix = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || prefix > alen * 8)
            return false;
    }
    if (!prefix_ok(out->addr, alen, (unsigned)prefix))
        return false;
    out->prefix = (unsigned)prefix;
    inet_ntop(out->family, out->addr, host, sizeof(host));   /* normalised */
    snprintf(out->text, sizeof(out->text), "%.46s/%u", host, out->prefix);
    return true;
}

static bool in_network(const struct network *n, const unsigned char *addr)
{
    unsigned full = n->prefix / 8, rest = n->prefix % 8;

    if (memcmp(n->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xFFu << (8 - rest));
    return (n->addr[full] & mask) == (addr[full] & mask);
}

bool cidr_match_text(const struct network *nets, size_t count, const char *ip)
{
    unsigned char v4[4], v6[16];
    bool is4 = inet_pton(AF_INET, ip, v4) == 1;
    bool is6 = !is4 && inet_pton(AF_INET6, ip, v6) == 1;
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (is6 && memcmp(v6, mapped, 12) == 0) {
        memcpy(v4, v6 + 12, 4);
        is4 = true;
    }
    for (size_t i = 0; i < count; i++) {
        if (nets[i].family == AF_INET && is4 && in_network(&nets[i], v4))
            return true;
        if (nets[i].family == AF_INET6 && is6 && in_network(&nets[i], v6))
            return true;
    }
    return false;
}

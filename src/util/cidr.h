/*
 * cidr.h - IPv4/IPv6 networks in CIDR notation ("192.0.2.0/24",
 * "2001:db8::/32", a bare address means a /32 or /128) and matching an
 * address against them. Used for [relay] trusted_networks.
 */
#ifndef SEALPOST_UTIL_CIDR_H
#define SEALPOST_UTIL_CIDR_H

#include <stdbool.h>
#include <stddef.h>

struct network {
    int family;                     /* AF_INET or AF_INET6 */
    unsigned char addr[16];         /* network address, host bits zero */
    unsigned prefix;                /* prefix length */
    char text[64];                  /* normalised, e.g. "127.0.0.0/8" */
};

/* Parse text; false on a malformed address or prefix, or set host bits
 * (e.g. "10.0.0.1/8" is refused: write "10.0.0.0/8"). */
bool cidr_parse(const char *text, struct network *out);

/* Is the textual address ip inside one of nets[0..count)? An IPv4-mapped
 * IPv6 address ("::ffff:192.0.2.1") matches IPv4 networks. */
bool cidr_match_text(const struct network *nets, size_t count, const char *ip);

#endif

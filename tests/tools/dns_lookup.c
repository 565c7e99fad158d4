/*
 * dns_lookup.c - test tool: one lookup through sealpost's DNS code,
 * printed as one JSON object per line, for tests/integration/test_dns.py.
 *
 *   dns_lookup [--resolver IP@PORT] [--trust-anchor FILE]
 *              [--unbound-config FILE] [--timeout MS] [--port N]
 *              [--cancel] mx|host NAME
 *
 * Output: {"outcome": "...", "implicit": bool, "mx_dnssec": "...",
 * "error": "..."} then one {"host": ..., "preference": N, "dnssec": ...,
 * "addresses": ["ip:port", ...]} line per host. --cancel frees the
 * resolver right after starting the lookup and checks that the callback
 * never runs (prints {"cancelled": true}). Exit status 0 unless setup
 * fails (2). Trusts its command line: it is a test tool.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "delivery/dns.h"

static const char *outcome_name(enum dns_outcome o)
{
    switch (o) {
    case DNS_OK:
        return "DNS_OK";
    case DNS_NXDOMAIN:
        return "DNS_NXDOMAIN";
    case DNS_NULL_MX:
        return "DNS_NULL_MX";
    case DNS_NO_ADDRESS:
        return "DNS_NO_ADDRESS";
    case DNS_TEMPFAIL:
        return "DNS_TEMPFAIL";
    }
    return "?";
}

/* A JSON string: the library already made error text printable ASCII. */
static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_addr(const struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    unsigned port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        port = ntohs(sin->sin_port);
        printf("\"%s:%u\"", text, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        port = ntohs(sin6->sin6_port);
        printf("\"[%s]:%u\"", text, port);
    } else {
        printf("\"?\"");
    }
}

static int callbacks;

static void done(const struct dns_mx_result *res, void *arg)
{
    struct event_base *base = arg;

    callbacks++;
    printf("{\"outcome\": \"%s\", \"implicit\": %s, \"mx_dnssec\": \"%s\", \"error\": ",
           outcome_name(res->outcome), res->implicit_mx ? "true" : "false",
           dns_dnssec_name(res->mx_dnssec));
    print_json_string(res->error);
    printf(", \"host_count\": %zu}\n", res->host_count);
    for (size_t i = 0; i < res->host_count; i++) {
        const struct dns_host *h = &res->hosts[i];
        printf("{\"host\": ");
        print_json_string(h->name);
        printf(", \"preference\": %u, \"dnssec\": \"%s\", \"addresses\": [",
               h->preference, dns_dnssec_name(h->addr_dnssec));
        for (size_t j = 0; j < h->addr_count; j++) {
            if (j)
                printf(", ");
            print_addr(&h->addrs[j]);
        }
        printf("]}\n");
    }
    fflush(stdout);
    event_base_loopbreak(base);
}

static void usage(void)
{
    fprintf(stderr, "usage: dns_lookup [--resolver IP@PORT] [--trust-anchor FILE] "
            "[--unbound-config FILE] [--timeout MS] [--port N] [--cancel] mx|host NAME\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct dns_config cfg = { 0 };
    unsigned port = 25;
    int cancel = 0;
    int i;

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--cancel") == 0) {
            cancel = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--resolver") == 0)
            cfg.resolver = argv[++i];
        else if (strcmp(argv[i], "--trust-anchor") == 0)
            cfg.trust_anchor = argv[++i];
        else if (strcmp(argv[i], "--unbound-config") == 0)
            cfg.unbound_config = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0)
            cfg.timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--port") == 0)
            port = (unsigned)strtoul(argv[++i], NULL, 10);
        else
            usage();
    }
    if (argc - i != 2 || port > 65535)
        usage();
    const char *mode = argv[i], *name = argv[i + 1];

    struct event_base *base = event_base_new();
    char err[256];
    struct dns_resolver *r = dns_resolver_new(base, &cfg, err, sizeof(err));
    if (r == NULL) {
        printf("{\"setup_error\": ");
        print_json_string(err);
        printf("}\n");
        event_base_free(base);
        return 2;
    }
    if (strcmp(mode, "mx") == 0)
        dns_resolve_mx(r, name, (uint16_t)port, done, base);
    else if (strcmp(mode, "host") == 0)
        dns_resolve_host(r, name, (uint16_t)port, done, base);
    else
        usage();
    if (callbacks != 0) {
        printf("{\"bug\": \"callback ran inside dns_resolve_*\"}\n");
        return 1;
    }
    if (cancel) {
        dns_resolver_free(r);
        r = NULL;
        /* Run the loop a while: nothing may call back any more. */
        struct timeval tv = { 0, 300000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        printf("{\"cancelled\": true, \"callbacks\": %d}\n", callbacks);
    } else {
        event_base_dispatch(base);
        dns_resolver_free(r);
    }
    event_base_free(base);
    return 0;
}

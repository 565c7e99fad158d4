/*
 * sts_http.h - HTTPS GET of MTA-STS policy files (RFC 8461 3.3) with
 * libcurl's multi interface, driven by the caller's libevent loop: no
 * call here ever blocks, and results come back through a callback.
 *
 * Made for a process without file access: the CA certificates are
 * handed over in memory (CURLOPT_CAINFO_BLOB), no CA file or folder is
 * ever opened, proxies from the environment are ignored, the host's
 * address is given by the caller (CURLOPT_RESOLVE: the same libunbound
 * resolver as everything else), only https is spoken, redirects are not
 * followed, the body is cut off after body_max octets (too_big) and the
 * whole request has a deadline. sts_http_new must run before the
 * sandbox (it creates curl's multi handle and its internal socket pair).
 *
 * Trusts: the CA certificates and the URL (built by the caller from a
 * checked domain); nothing the server sends is interpreted here, only
 * collected within limits for sts_response.h.
 */
#ifndef SEALPOST_DELIVERY_STS_HTTP_H
#define SEALPOST_DELIVERY_STS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#define STS_HTTP_CTYPE_MAX 128      /* octets of Content-Type kept */

struct sts_http_response {
    bool transport_ok;              /* an HTTP response arrived whole */
    bool tls_verify_failed;         /* the certificate did not verify (webpki) */
    bool too_big;                   /* the body passed body_max: cut off */
    long status;                    /* HTTP status, 0 when none */
    char content_type[STS_HTTP_CTYPE_MAX];  /* "" when none or too long */
    const char *body;               /* valid during the callback */
    size_t body_len;
    char error[256];                /* printable reason when !transport_ok */
};

struct sts_http;
struct sts_http_req;

typedef void (*sts_http_cb)(const struct sts_http_response *resp, void *arg);

/* ca/ca_len: PEM certificates (copied). timeout_s: whole request. */
struct sts_http *sts_http_new(struct event_base *base, const char *ca, size_t ca_len,
                              unsigned timeout_s, size_t body_max, char *err, size_t errsize);
/* Cancels every request in progress (no callback runs). NULL allowed. */
void sts_http_free(struct sts_http *h);

/* GET url; resolve is a CURLOPT_RESOLVE entry "HOST:PORT:ADDR[,ADDR]".
 * The callback runs exactly once, later, unless cancelled. */
struct sts_http_req *sts_http_get(struct sts_http *h, const char *url, const char *resolve,
                                  sts_http_cb cb, void *arg);
void sts_http_cancel(struct sts_http_req *req);

#endif

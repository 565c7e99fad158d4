/*
 * sts_http.c - libcurl multi interface on a libevent loop, for MTA-STS
 * policy fetches (see sts_http.h for the rules and what is trusted).
 *
 * curl tells which sockets to watch (socket callback: one persistent
 * event per socket, kept with curl_multi_assign) and when to wake it up
 * (timer callback: one timer); the events hand control back with
 * curl_multi_socket_action, and finished transfers are collected with
 * curl_multi_info_read outside of any curl callback. Connections are
 * not reused (one fetch per policy domain, rarely), so no socket
 * outlives its transfer.
 */
#include "delivery/sts_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "util/log.h"
#include "util/xalloc.h"

struct sts_http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    char *ca;
    size_t ca_len;
    unsigned timeout_s;
    size_t body_max;
    struct sts_http_req *reqs;
};

struct sts_http_req {
    struct sts_http *h;
    CURL *easy;
    struct curl_slist *resolve;
    char *buf;
    size_t len, cap;
    bool too_big;
    char errbuf[CURL_ERROR_SIZE];
    sts_http_cb cb;
    void *arg;
    struct sts_http_req *prev, *next;
};

static void check_done(struct sts_http *h);

static void sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct sts_http *h = arg;
    int running = 0;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
                ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    curl_multi_socket_action(h->multi, fd, flags, &running);
    check_done(h);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct sts_http *h = userp;
    struct event *ev = socketp;
    short kind = EV_PERSIST;

    (void)easy;
    if (ev != NULL)
        event_free(ev);
    if (what == CURL_POLL_REMOVE) {
        curl_multi_assign(h->multi, s, NULL);
        return 0;
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    ev = event_new(h->base, s, kind, sock_event, h);
    if (ev == NULL || event_add(ev, NULL) != 0)
        fatal("event=sts_http_error error=\"cannot watch a socket\"");
    curl_multi_assign(h->multi, s, ev);
    return 0;
}

static void timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct sts_http *h = arg;
    int running = 0;

    (void)fd;
    (void)what;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct sts_http *h = userp;
    struct timeval tv;

    (void)multi;
    evtimer_del(h->timer);
    if (timeout_ms < 0)
        return 0;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(h->timer, &tv);
    return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sts_http_req *req = arg;
    size_t len = size * n;

    if (len > req->h->body_max - req->len) {
        req->too_big = true;
        return 0;                       /* CURLE_WRITE_ERROR: stop reading */
    }
    if (req->len + len > req->cap) {
        size_t cap = req->cap ? req->cap : 4096;
        while (cap < req->len + len)
            cap *= 2;
        if (cap > req->h->body_max)
            cap = req->h->body_max;
        req->buf = xrealloc(req->buf, cap);
        req->cap = cap;
    }
    memcpy(req->buf + req->len, p, len);
    req->len += len;
    return len;
}

static void req_unlink(struct sts_http_req *req)
{
    struct sts_http *h = req->h;

    if (req->prev)
        req->prev->next = req->next;
    else
        h->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    curl_multi_remove_handle(h->multi, req->easy);
}

static void req_free(struct sts_http_req *req)
{
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->resolve);
    free(req->buf);
    free(req);
}

/* Printable copy of curl's error text (it may quote the server). */
static void printable(char *out, size_t size, const char *s)
{
    size_t i = 0;

    for (; s[i] && i + 1 < size; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') ? s[i] : '?';
    out[i] = '\0';
}

static void finish(struct sts_http_req *req, CURLcode rc)
{
    struct sts_http_response resp;
    char *ctype = NULL;

    memset(&resp, 0, sizeof(resp));
    resp.too_big = req->too_big || rc == CURLE_FILESIZE_EXCEEDED;
    resp.transport_ok = rc == CURLE_OK;
    resp.tls_verify_failed = rc == CURLE_PEER_FAILED_VERIFICATION;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    if (curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype &&
        strlen(ctype) < sizeof(resp.content_type))
        printable(resp.content_type, sizeof(resp.content_type), ctype);
    if (!resp.transport_ok)
        printable(resp.error, sizeof(resp.error),
                  req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc));
    resp.body = req->buf ? req->buf : "";
    resp.body_len = req->len;
    req_unlink(req);
    req->cb(&resp, req->arg);
    req_free(req);
}

static void check_done(struct sts_http *h)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct sts_http_req *req = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        if (req != NULL)
            finish(req, msg->data.result);
    }
}

struct sts_http *sts_http_new(struct event_base *base, const char *ca, size_t ca_len,
                              unsigned timeout_s, size_t body_max, char *err, size_t errsize)
{
    struct sts_http *h;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errsize, "curl_global_init failed");
        return NULL;
    }
    h = xcalloc(1, sizeof(*h));
    h->base = base;
    h->ca = xmalloc(ca_len ? ca_len : 1);
    memcpy(h->ca, ca, ca_len);
    h->ca_len = ca_len;
    h->timeout_s = timeout_s;
    h->body_max = body_max;
    h->multi = curl_multi_init();
    h->timer = evtimer_new(base, timer_event, h);
    if (h->multi == NULL || h->timer == NULL) {
        snprintf(err, errsize, "cannot set up libcurl");
        sts_http_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return h;
}

void sts_http_free(struct sts_http *h)
{
    if (h == NULL)
        return;
    while (h->reqs)
        sts_http_cancel(h->reqs);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->timer)
        event_free(h->timer);
    free(h->ca);
    free(h);
}

/* Everything that keeps curl inside the sandbox's limits and RFC 8461 3.3. */
static bool setup_easy(struct sts_http_req *req, const char *url)
{
    struct sts_http *h = req->h;
    struct curl_blob blob = { h->ca, h->ca_len, CURL_BLOB_COPY };
    CURL *e = req->easy;

    return curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOPROXY, "*") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_RESOLVE, req->resolve) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CAINFO, NULL) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CAPATH, NULL) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_s * 1000L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                            (curl_off_t)h->body_max) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_USERAGENT, "sealpost/" SEALPOST_VERSION) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, req) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PRIVATE, req) == CURLE_OK;
}

struct sts_http_req *sts_http_get(struct sts_http *h, const char *url, const char *resolve,
                                  sts_http_cb cb, void *arg)
{
    struct sts_http_req *req = xcalloc(1, sizeof(*req));

    req->h = h;
    req->cb = cb;
    req->arg = arg;
    req->easy = curl_easy_init();
    req->resolve = curl_slist_append(NULL, resolve);
    if (req->easy == NULL || req->resolve == NULL)
        fatal("event=sts_http_error error=\"out of memory\"");
    req->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = req;
    h->reqs = req;
    /* Only a libcurl without https or out of memory refuses these. */
    if (!setup_easy(req, url) || curl_multi_add_handle(h->multi, req->easy) != CURLM_OK)
        fatal("event=sts_http_error error=\"cannot set up the HTTPS request\"");
    return req;
}

void sts_http_cancel(struct sts_http_req *req)
{
    req_unlink(req);
    req_free(req);
}

/*
 * metrics_role.c - the metrics role (see metrics_role.h).
 *
 * At start it reads every role's metric block from its channel (the
 * master sends each as a read-only descriptor, IPC_METRICS_BLOCK, then
 * closes its end) and maps them read-only; then it drops to its user,
 * chroots into spool/empty and runs under the smtpd seccomp list and
 * Landlock rules: no files, no new sockets. Each scrape sums the blocks
 * (metrics_render.h).
 *
 * HTTP (evhttp): GET /metrics answers 200; another path 404, another
 * method 405; a request line plus headers longer than
 * [metrics] max_request_size, or any request body, is refused by evhttp
 * with 4xx/close; a connection silent for [metrics] timeout is closed.
 *
 * Trusts: the master for the descriptors (checked: sealed size, header);
 * nothing from the network - it parses only what evhttp hands it, and
 * answers only with the numbers.
 */
#include "metrics/metrics_role.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "metrics/metrics_render.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

/* Blocks one master can send: itself, queue, delivery, every worker
 * slot, every local process, this role; with room to spare. */
#define METRICS_MAX_BLOCKS 256

struct metrics_state {
    const struct metrics_block *blocks[METRICS_MAX_BLOCKS];
    size_t count;
    const struct config *cfg;
    struct evhttp *http;
};

/* A 4xx with a one-line body; the connection closes after it. (Not
 * evhttp_send_error, which drops the headers set here.) */
static void refuse(struct evhttp_request *req, int code, const char *reason)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();

    metrics_add(METRICS_C_HTTP + 1, 1);
    evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    if (body != NULL)
        evbuffer_add_printf(body, "%d %s\n", code, reason);
    evhttp_send_reply(req, code, reason, body);
    if (body != NULL)
        evbuffer_free(body);
}

static bool is_metrics_path(const char *uri)
{
    static const char path[] = "/metrics";
    size_t n = sizeof(path) - 1;

    return uri != NULL && strncmp(uri, path, n) == 0 && (uri[n] == '\0' || uri[n] == '?');
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct metrics_state *st = arg;
    struct evbuffer *body;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        refuse(req, 405, "Method Not Allowed");
        return;
    }
    if (!is_metrics_path(evhttp_request_get_uri(req))) {
        refuse(req, 404, "Not Found");
        return;
    }
    body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    metrics_add(METRICS_C_HTTP, 1);
    metrics_render(body, st->cfg, st->blocks, st->count, time(NULL));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* Every block the master sends, until it closes its end. */
static void receive_blocks(struct metrics_state *st)
{
    char why[256];

    for (;;) {
        enum ipc_type type;
        char payload[8];
        size_t len;
        int fd = -1;
        const struct metrics_block *b;
        enum ipc_status rs = ipc_recv(ROLE_FD_CHANNEL, &type, payload, sizeof(payload), &len,
                                      true, &fd);

        if (rs == IPC_EOF)
            break;
        if (rs != IPC_OK || type != IPC_METRICS_BLOCK || fd < 0 || len != 0 ||
            st->count == METRICS_MAX_BLOCKS)
            fatal("event=start_failed role=metrics error=\"unexpected message from the master\"");
        b = metrics_attach(fd, false, why, sizeof(why));
        close(fd);
        if (b == NULL)
            fatal("event=start_failed role=metrics error=\"%s\"", why);
        st->blocks[st->count++] = b;
    }
    close(ROLE_FD_CHANNEL);
}

static void metrics_prepare(struct role_ctx *ctx)
{
    struct metrics_state *st = xcalloc(1, sizeof(*st));

    ctx->state = st;
    st->cfg = ctx->cfg;
    receive_blocks(st);
}

static void metrics_start(struct role_ctx *ctx)
{
    struct metrics_state *st = ctx->state;
    const struct metrics_config *mc = &ctx->cfg->metrics;

    st->http = evhttp_new(ctx->base);
    if (st->http == NULL)
        fatal("event=start_failed role=metrics error=\"evhttp_new\"");
    /* Every method reaches request_cb, which answers 405 itself (counted). */
    evhttp_set_allowed_methods(st->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(st->http, (ev_ssize_t)mc->max_request_size);
    evhttp_set_max_body_size(st->http, 0);
    evhttp_set_timeout(st->http, (int)mc->timeout);
    evhttp_set_gencb(st->http, request_cb, st);
    if (evhttp_accept_socket(st->http, ROLE_FD_METRICS_LISTEN) < 0)
        fatal("event=start_failed role=metrics error=\"cannot serve the listening socket\"");
    log_info("event=metrics_ready blocks=%zu address=%s", st->count,
             mc->addresses[0].text);
}

static void metrics_cleanup(struct role_ctx *ctx)
{
    struct metrics_state *st = ctx->state;

    if (st->http)
        evhttp_free(st->http);
    for (size_t i = 0; i < st->count; i++)
        metrics_detach(st->blocks[i]);
    free(st);
    ctx->state = NULL;
}

const struct role_ops role_metrics_ops = {
    .name = "metrics",
    .sandbox = SANDBOX_METRICS,
    .prepare = metrics_prepare,
    .start = metrics_start,
    .cleanup = metrics_cleanup,
};

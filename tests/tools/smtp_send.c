/*
 * smtp_send.c - test driver for the outbound SMTP client
 * (delivery/smtp_client.h): open a connection to the given hosts, send
 * FILE (the whole file is the message, body_offset 0) one or more times,
 * and print what happened, one "key: value" line per fact:
 *
 *   peer: mx.example.test[127.0.0.1]:2525
 *   tls: TLSv1.3 with cipher ... | tls: none
 *   rcpt: <b@other.test> outcome=delivered code=250 dsn=2.0.0 text=250 2.0.0 Ok
 *   connection_ok: 1
 *   open_failed: outcome=deferred code=0 dsn=4.4.1 text=connect to ...
 *
 * Usage: smtp_send --host NAME --addr IP [--addr IP2] [--host NAME2 --addr ...]
 *          [--port P] --from A --to B [--to C] [--helo H] [--timeout N]
 *          [--count N] [--require-tls] [--no-tls] [--smtputf8] [--requiretls]
 *          [--8bitmime] [--ret FULL|HDRS] [--envid X] [--notify LIST]
 *          [--orcpt X] FILE
 * --addr takes "IP", "IPv4:PORT" or "[IPv6]:PORT"; plain addresses use
 * --port (default 25). --notify/--orcpt apply to the --to options after
 * them. --count sends the message N times on the same connection.
 * Exit: 0 all delivered, 3 some recipient not delivered, 4 no
 * connection, 2 usage. Trusts its command line (a test tool).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/smtp_client.h"
#include "util/log.h"

#define MAX_TO 64

struct run {
    struct event_base *base;
    struct envelope env;
    size_t index[MAX_TO];
    struct smtp_transaction tx;
    unsigned count, sent;
    int status;
};

static const char *outcome_name(enum smtp_outcome o)
{
    return o == SMTP_DELIVERED ? "delivered" : o == SMTP_DEFERRED ? "deferred" : "failed";
}

static void usage(void)
{
    fprintf(stderr, "usage: smtp_send --host NAME --addr IP [--port P] --from A --to B "
                    "[--to C] [--helo H] [--timeout N] [--count N] [--require-tls] "
                    "[--no-tls] [--smtputf8] [--requiretls] [--8bitmime] [--ret FULL|HDRS] "
                    "[--envid X] [--notify LIST] [--orcpt X] FILE\n");
    exit(2);
}

static unsigned long number(const char *s, unsigned long max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v > max)
        usage();
    return v;
}

/* "IP", "IPv4:PORT" or "[IPv6]:PORT" into the host's next slot. */
static void add_addr(struct dns_host *h, const char *spec, unsigned port)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *colon = strrchr(spec, ':');
    size_t iplen = strlen(spec);
    struct sockaddr_storage *ss;

    if (h->addr_count >= DNS_MAX_ADDRS)
        usage();
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (close == NULL)
            usage();
        iplen = (size_t)(close - spec - 1);
        spec++;
        if (close[1] == ':')
            port = (unsigned)number(close + 2, 65535);
    } else if (colon && strchr(spec, ':') == colon) {
        iplen = (size_t)(colon - spec);
        port = (unsigned)number(colon + 1, 65535);
    }
    if (iplen >= sizeof(ip))
        usage();
    memcpy(ip, spec, iplen);
    ip[iplen] = '\0';
    ss = &h->addrs[h->addr_count];
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        h->addr_lens[h->addr_count++] = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        h->addr_lens[h->addr_count++] = sizeof(struct sockaddr_in6);
    } else {
        fprintf(stderr, "smtp_send: bad address %s\n", ip);
        exit(2);
    }
}

static void sent_cb(struct smtp_conn *conn, const struct smtp_result *results, size_t count,
                    bool connection_ok, void *arg)
{
    struct run *run = arg;

    for (size_t i = 0; i < count; i++) {
        const struct smtp_result *r = &results[i];

        printf("rcpt: <%s> outcome=%s code=%d dsn=%s text=%s\n",
               run->env.rcpts[run->tx.rcpt_index[i]].addr, outcome_name(r->outcome), r->code,
               r->dsn, r->text);
        if (r->outcome != SMTP_DELIVERED)
            run->status = 3;
    }
    printf("connection_ok: %d\n", connection_ok);
    fflush(stdout);
    if (++run->sent < run->count && connection_ok) {
        smtp_conn_send(conn, &run->tx, sent_cb, run);
        return;
    }
    smtp_conn_close(conn);
}

static void ready_cb(struct smtp_conn *conn, const struct smtp_result *err, void *arg)
{
    struct run *run = arg;
    const char *tls;

    if (conn == NULL) {
        printf("open_failed: outcome=%s code=%d dsn=%s text=%s\n", outcome_name(err->outcome),
               err->code, err->dsn, err->text);
        run->status = 4;
        return;
    }
    tls = smtp_conn_tls(conn);
    printf("peer: %s\n", smtp_conn_peer(conn));
    printf("tls: %s\n", tls ? tls : "none");
    fflush(stdout);
    smtp_conn_send(conn, &run->tx, sent_cb, run);
}

int main(int argc, char **argv)
{
    static struct dns_host hosts[DNS_MAX_HOSTS];
    static struct run run;
    struct smtp_client_config cfg = { .helo_name = "client.example.test" };
    static const char *addr_spec[DNS_MAX_HOSTS * DNS_MAX_ADDRS];
    static size_t addr_host[DNS_MAX_HOSTS * DNS_MAX_ADDRS];
    size_t host_count = 0, addr_count = 0;
    unsigned port = 25, notify = 0;
    const char *orcpt = "", *file = NULL;
    bool no_tls = false;
    struct stat st;
    int i, fd;

    smtp_client_timeouts_default(&cfg.timeouts);
    envelope_init(&run.env);
    run.count = 1;
    for (i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "--require-tls") == 0) { cfg.require_tls = true; continue; }
        if (strcmp(opt, "--no-tls") == 0) { no_tls = true; continue; }
        if (strcmp(opt, "--smtputf8") == 0) { run.env.smtputf8 = true; continue; }
        if (strcmp(opt, "--requiretls") == 0) { run.env.requiretls = true; continue; }
        if (strcmp(opt, "--8bitmime") == 0) { run.env.body = BODY_8BITMIME; continue; }
        if (strncmp(opt, "--", 2) != 0) {
            if (file)
                usage();
            file = opt;
            continue;
        }
        if (val == NULL)
            usage();
        i++;
        if (strcmp(opt, "--host") == 0) {
            if (host_count >= DNS_MAX_HOSTS)
                usage();
            snprintf(hosts[host_count++].name, sizeof(hosts[0].name), "%s", val);
        } else if (strcmp(opt, "--addr") == 0) {
            if (host_count == 0 || addr_count >= DNS_MAX_HOSTS * DNS_MAX_ADDRS)
                usage();
            addr_host[addr_count] = host_count - 1;
            addr_spec[addr_count++] = val;
        } else if (strcmp(opt, "--port") == 0) {
            port = (unsigned)number(val, 65535);    /* for every plain --addr */
        } else if (strcmp(opt, "--from") == 0) {
            snprintf(run.env.from, sizeof(run.env.from), "%s", val);
        } else if (strcmp(opt, "--to") == 0) {
            if (run.env.rcpt_count >= MAX_TO)
                usage();
            envelope_add_rcpt(&run.env, val, notify, orcpt);
        } else if (strcmp(opt, "--helo") == 0) {
            cfg.helo_name = val;
        } else if (strcmp(opt, "--timeout") == 0) {
            unsigned t = (unsigned)number(val, 86400);

            cfg.timeouts = (struct smtp_client_timeouts){ t, t, t, t, t, t };
        } else if (strcmp(opt, "--count") == 0) {
            run.count = (unsigned)number(val, 1000);
        } else if (strcmp(opt, "--ret") == 0) {
            run.env.ret = strcmp(val, "FULL") == 0 ? DSN_RET_FULL : DSN_RET_HDRS;
        } else if (strcmp(opt, "--envid") == 0) {
            snprintf(run.env.envid, sizeof(run.env.envid), "%s", val);
        } else if (strcmp(opt, "--notify") == 0) {
            notify = (strstr(val, "NEVER") ? DSN_NOTIFY_NEVER : 0) |
                     (strstr(val, "SUCCESS") ? DSN_NOTIFY_SUCCESS : 0) |
                     (strstr(val, "FAILURE") ? DSN_NOTIFY_FAILURE : 0) |
                     (strstr(val, "DELAY") ? DSN_NOTIFY_DELAY : 0);
        } else if (strcmp(opt, "--orcpt") == 0) {
            orcpt = val;
        } else {
            usage();
        }
    }
    if (file == NULL || host_count == 0 || run.env.rcpt_count == 0)
        usage();
    for (size_t a = 0; a < addr_count; a++)
        add_addr(&hosts[addr_host[a]], addr_spec[a], port);
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(file);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_DEBUG);
    for (size_t r = 0; r < run.env.rcpt_count; r++)
        run.index[r] = r;
    run.tx = (struct smtp_transaction){
        .env = &run.env, .rcpt_index = run.index, .rcpt_count = run.env.rcpt_count,
        .msg_fd = fd, .body_offset = 0, .body_size = (uint64_t)st.st_size,
    };
    cfg.tls_ctx = no_tls ? NULL : smtp_client_tls_ctx_new();
    run.base = event_base_new();
    if (run.base == NULL || (!no_tls && cfg.tls_ctx == NULL)) {
        fprintf(stderr, "smtp_send: cannot initialise libevent or OpenSSL\n");
        return 2;
    }
    smtp_conn_open(run.base, &cfg, hosts, host_count, ready_cb, &run);
    event_base_dispatch(run.base);
    event_base_free(run.base);
    SSL_CTX_free(cfg.tls_ctx);
    envelope_clear(&run.env);
    close(fd);
    return run.status;
}

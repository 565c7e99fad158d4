/*
 * test_smtp_client.c - unit tests for the outbound SMTP client's state
 * machine (deliver/smtp_client*.c) against a scripted server: a thread
 * with a blocking socket on 127.0.0.1 that reads the client's lines and
 * answers with exactly the bytes a test gives, in or out of turn.
 *
 * Covers the strict conversation (issue 10, item 7): a reply to DATA
 * other than 354 or 4xx/5xx, an extra reply in a pipelined group or
 * behind a reply without PIPELINING, a reply before the end of data,
 * an extra reply behind the final one, a doubled greeting, and a 3xx
 * where none belongs are protocol errors (4.5.0, connection dropped,
 * nothing delivered, nothing more sent); and the idle watch (item 8):
 * an idle connection that gets EOF, a 421 or a stray reply is reported
 * lost at once and is no longer ready. Clean conversations (pipelined,
 * with rejected recipients, MAIL refused, two transactions on one
 * connection) show the reply accounting stays in step.
 *
 * Trusts: nothing; the server side is this file's own script.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery/smtp_client.h"
#include "util/log.h"

/* ------------------------------------------------------------ server */

struct step {
    const char *expect;         /* prefix of the next client line; NULL: read nothing */
    bool body;                  /* then read the message up to ".\r\n" */
    unsigned delay_ms;          /* before replying */
    const char *reply;          /* bytes to send ("" or NULL: nothing) */
};

#define EHLO_PIPE "250-srv.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define EHLO_PLAIN "250-srv.test\r\n250 8BITMIME\r\n"

struct script {
    const char *greeting;
    const struct step *steps;
    size_t step_count;
    /* after the steps: "close" hangs up, anything else (or NULL) keeps
     * reading, answering QUIT with 221 and recording every other line */
    const char *then;
    bool discard;               /* while reading after the steps, record nothing */
};

struct server {
    int lfd;
    uint16_t port;
    pthread_t thread;
    const struct script *sc;
    int mismatch;               /* 1 + index of the first step whose line differed */
    unsigned bodies;
    char extra[8192];           /* lines the client sent after the script */
    size_t extra_len;
    bool quit;                  /* the client said QUIT */
    char buf[65536];
    size_t len;
};

/* One line (with its LF) into line; -1 on EOF or error. */
static ssize_t read_line(struct server *s, int fd, char *line, size_t size)
{
    for (;;) {
        char *lf = memchr(s->buf, '\n', s->len);
        ssize_t n;

        if (lf != NULL) {
            size_t l = (size_t)(lf - s->buf) + 1, copy = l < size - 1 ? l : size - 1;

            memcpy(line, s->buf, copy);
            line[copy] = '\0';
            memmove(s->buf, s->buf + l, s->len - l);
            s->len -= l;
            return (ssize_t)copy;
        }
        if (s->len == sizeof(s->buf))
            s->len = 0;         /* an over-long line: forget it */
        n = recv(fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        s->len += (size_t)n;
    }
}

static void send_all(int fd, const char *data)
{
    size_t len = data ? strlen(data) : 0, off = 0;

    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

        if (n <= 0)
            return;             /* the client hung up: its right */
        off += (size_t)n;
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Run the steps; false when the client hung up or sent a surprise. */
static bool run_steps(struct server *s, int fd)
{
    char line[1024];

    for (size_t i = 0; i < s->sc->step_count; i++) {
        const struct step *st = &s->sc->steps[i];

        if (st->expect) {
            if (read_line(s, fd, line, sizeof(line)) < 0 ||
                strncmp(line, st->expect, strlen(st->expect)) != 0) {
                s->mismatch = (int)i + 1;
                return false;
            }
        }
        while (st->body) {
            if (read_line(s, fd, line, sizeof(line)) < 0)
                return false;
            if (strcmp(line, ".\r\n") == 0) {
                s->bodies++;
                break;
            }
        }
        if (st->delay_ms)
            sleep_ms(st->delay_ms);
        send_all(fd, st->reply);
    }
    return true;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    struct timeval tv = { 20, 0 };
    char line[1024];
    int fd = accept(s->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    send_all(fd, s->sc->greeting);
    if (run_steps(s, fd) && !(s->sc->then && strcmp(s->sc->then, "close") == 0)) {
        send_all(fd, s->sc->then);
        while (read_line(s, fd, line, sizeof(line)) >= 0) {
            if (strncmp(line, "QUIT", 4) == 0) {
                s->quit = true;
                send_all(fd, "221 2.0.0 bye\r\n");
                break;
            }
            if (!s->sc->discard && s->extra_len + strlen(line) < sizeof(s->extra)) {
                memcpy(s->extra + s->extra_len, line, strlen(line) + 1);
                s->extra_len += strlen(line);
            }
        }
    }
    close(fd);
    return NULL;
}

static void server_start(struct server *s, const struct script *sc)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    int small = 4096;

    memset(s, 0, sizeof(*s));
    s->sc = sc;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    /* A small receive buffer, so a server that does not read stalls the
     * client's body soon. */
    setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_join(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

/* ------------------------------------------------------------ client */

#define MAX_TX 2
#define MAX_RCPT 3

struct run {
    struct event_base *base;
    struct event *watchdog;
    struct smtp_conn *conn;
    struct envelope env;
    size_t index[MAX_RCPT];
    struct smtp_transaction tx;
    unsigned transactions;      /* to send on the connection */
    bool keep_idle;             /* after them, wait for the connection to be lost */
    unsigned sent;
    struct smtp_result results[MAX_TX][MAX_RCPT];
    bool ok[MAX_TX];
    bool open_failed;
    struct smtp_result open_err;
    unsigned lost;
    bool ready_when_lost;
    bool timed_out;
};

static void finish(struct run *run)
{
    if (run->conn)
        smtp_conn_close(run->conn);
    run->conn = NULL;
    evtimer_del(run->watchdog);
}

static void lost_cb(struct smtp_conn *conn, void *arg)
{
    struct run *run = arg;

    run->lost++;
    run->ready_when_lost = smtp_conn_ready(conn);
    finish(run);
}

static void sent_cb(struct smtp_conn *conn, const struct smtp_result *results, size_t count,
                    bool connection_ok, void *arg)
{
    struct run *run = arg;
    unsigned k = run->sent++;

    assert_true(k < MAX_TX && count <= MAX_RCPT);
    memcpy(run->results[k], results, count * sizeof(*results));
    run->ok[k] = connection_ok;
    if (connection_ok && run->sent < run->transactions) {
        smtp_conn_send(conn, &run->tx, sent_cb, run);
        return;
    }
    if (!(connection_ok && run->keep_idle))
        finish(run);
}

static void ready_cb(struct smtp_conn *conn, const struct smtp_result *err, void *arg)
{
    struct run *run = arg;

    if (conn == NULL) {
        run->conn = NULL;
        run->open_failed = true;
        run->open_err = *err;
        finish(run);
        return;
    }
    smtp_conn_watch_idle(conn, lost_cb, run);
    smtp_conn_send(conn, &run->tx, sent_cb, run);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *run = arg;

    (void)fd;
    (void)what;
    run->timed_out = true;
    smtp_conn_abort(run->conn);
    run->conn = NULL;
}

/* A message file of size bytes of short lines. */
static int message_fd(size_t size)
{
    static const char line[] = "0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    static char block[64 * (sizeof(line) - 1)];
    int fd = memfd_create("msg", MFD_CLOEXEC);
    size_t off = 0;

    assert_true(fd >= 0);
    for (size_t k = 0; k < sizeof(block); k += sizeof(line) - 1)
        memcpy(block + k, line, sizeof(line) - 1);
    while (off < size) {
        size_t n = size - off < sizeof(block) ? size - off : sizeof(block);

        assert_int_equal(write(fd, block, n), (ssize_t)n);
        off += n;
    }
    return fd;
}

/* Send `transactions` messages of body_size bytes to rcpts over one
 * connection to the scripted server; returns when all is done. */
static void run_client(struct run *run, const struct script *sc, struct server *srv,
                       const char *const *rcpts, size_t nrcpt, size_t body_size)
{
    struct smtp_client_config cfg = { .helo_name = "client.test" };
    struct dns_host host;
    struct sockaddr_in *sin = (struct sockaddr_in *)&host.addrs[0];
    struct timeval limit = { 20, 0 };
    int fd = message_fd(body_size);

    server_start(srv, sc);
    memset(&host, 0, sizeof(host));
    snprintf(host.name, sizeof(host.name), "srv.test");
    sin->sin_family = AF_INET;
    sin->sin_port = htons(srv->port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    host.addr_lens[0] = sizeof(*sin);
    host.addr_count = 1;
    cfg.timeouts = (struct smtp_client_timeouts){ 5, 5, 5, 5, 5, 5 };
    envelope_init(&run->env);
    snprintf(run->env.from, sizeof(run->env.from), "a@client.test");
    for (size_t i = 0; i < nrcpt; i++) {
        envelope_add_rcpt(&run->env, rcpts[i], 0, "");
        run->index[i] = i;
    }
    run->tx = (struct smtp_transaction){ .env = &run->env, .rcpt_index = run->index,
                                         .rcpt_count = nrcpt, .msg_fd = fd,
                                         .body_size = body_size };
    if (run->transactions == 0)
        run->transactions = 1;
    run->base = event_base_new();
    run->watchdog = evtimer_new(run->base, watchdog_cb, run);
    evtimer_add(run->watchdog, &limit);
    run->conn = smtp_conn_open(run->base, &cfg, &host, 1, ready_cb, run);
    event_base_dispatch(run->base);
    event_free(run->watchdog);
    event_base_free(run->base);
    envelope_clear(&run->env);
    close(fd);
    server_join(srv);
    assert_false(run->timed_out);
}

static struct server srv;       /* large: not on the stack */
static const char *const one_rcpt[] = { "b@srv.test" };

#define GREETING "220 srv.test ESMTP\r\n"

static void assert_protocol_error(const struct run *run, size_t nrcpt)
{
    assert_int_equal(run->sent, 1);
    assert_false(run->ok[0]);
    for (size_t i = 0; i < nrcpt; i++) {
        assert_int_equal(run->results[0][i].outcome, SMTP_DEFERRED);
        assert_string_equal(run->results[0][i].dsn, "4.5.0");
        assert_non_null(strstr(run->results[0][i].text, "protocol error"));
    }
    assert_int_equal(run->lost, 0);     /* reported by the send callback */
    assert_int_equal(srv.bodies, 0);
    assert_int_equal(srv.mismatch, 0);
    assert_string_equal(srv.extra, ""); /* no RSET, no QUIT: just dropped */
    assert_false(srv.quit);
}

/* ------------------------------------------------------------ tests */

static void test_data_250_not_delivered(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "250 2.0.0 ok thanks\r\n" },
    };
    static const struct script sc = { GREETING, steps, 4, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
    assert_non_null(strstr(run.results[0][0].text, "unexpected reply to DATA"));
}

static void test_data_250_pipelined(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PIPE },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "250 2.0.0 ok thanks\r\n" },
    };
    static const struct script sc = { GREETING, steps, 5, NULL, false };
    static const char *const two[] = { "b@srv.test", "c@srv.test" };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, two, 2, 100);
    assert_protocol_error(&run, 2);
}

static void test_other_3xx_to_data(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "334 what\r\n" },
    };
    static const struct script sc = { GREETING, steps, 4, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
}

static void test_duplicate_rcpt_reply(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n250 2.1.5 ok\r\n" },
    };
    static const struct script sc = { GREETING, steps, 3, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
}

static void test_extra_reply_after_mail_pipelined(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PIPE },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "354 go ahead\r\n" },
    };
    static const struct script sc = { GREETING, steps, 4, NULL, true };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
}

static void test_extra_reply_behind_354(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "354 go ahead\r\n250 2.0.0 ok\r\n" },
    };
    static const struct script sc = { GREETING, steps, 4, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
}

static void test_extra_reply_behind_final(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "354 go ahead\r\n" },
        { NULL, true, 0, "250 2.0.0 queued\r\n250 2.0.0 queued\r\n" },
    };
    static const struct script sc = { GREETING, steps, 5, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_false(run.ok[0]);
    assert_int_equal(run.results[0][0].outcome, SMTP_DEFERRED);
    assert_string_equal(run.results[0][0].dsn, "4.5.0");
    assert_int_equal(srv.bodies, 1);
    assert_string_equal(srv.extra, "");
}

/* The final reply comes while the body is still being written. */
static void test_reply_before_end_of_data(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "DATA", false, 0, "354 go ahead\r\n" },
        { NULL, false, 300, "250 2.0.0 queued\r\n" },
    };
    static const struct script sc = { GREETING, steps, 5, NULL, true };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 32u << 20);
    assert_false(run.ok[0]);
    assert_int_equal(run.results[0][0].outcome, SMTP_DEFERRED);
    assert_string_equal(run.results[0][0].dsn, "4.5.0");
    assert_non_null(strstr(run.results[0][0].text, "before the end of data"));
}

static void test_3xx_to_rcpt(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "354 go ahead\r\n" },
    };
    static const struct script sc = { GREETING, steps, 3, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_protocol_error(&run, 1);
}

static void test_doubled_greeting(void **state)
{
    static const struct script sc = { GREETING "220 srv.test again\r\n", NULL, 0, NULL,
                                      false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_true(run.open_failed);
    assert_string_equal(run.open_err.dsn, "4.5.0");
    assert_non_null(strstr(run.open_err.text, "protocol error"));
    assert_string_equal(srv.extra, "");     /* not even EHLO */
}

static const struct step clean_tx_plain[] = {
    { "EHLO", false, 0, EHLO_PLAIN },
    { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
    { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
    { "DATA", false, 0, "354 go ahead\r\n" },
    { NULL, true, 0, "250 2.0.0 queued\r\n" },
};

/* then: what the server does 0.3 s after the final reply. */
static void idle_loss(const char *then)
{
    struct step steps[6];
    struct script sc = { GREETING, steps, 6, NULL, false };
    struct run run = { .keep_idle = true };

    memcpy(steps, clean_tx_plain, sizeof(clean_tx_plain));
    steps[5] = (struct step){ NULL, false, 300, strcmp(then, "close") ? then : NULL };
    sc.then = strcmp(then, "close") == 0 || strncmp(then, "421", 3) == 0 ? "close" : NULL;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_int_equal(run.sent, 1);
    assert_true(run.ok[0]);
    assert_int_equal(run.results[0][0].outcome, SMTP_DELIVERED);
    assert_int_equal(run.lost, 1);
    assert_false(run.ready_when_lost);
    assert_string_equal(srv.extra, "");
}

static void test_idle_eof_reported(void **state)
{
    (void)state;
    idle_loss("close");
}

static void test_idle_421_reported(void **state)
{
    (void)state;
    idle_loss("421 4.4.2 srv.test idle timeout\r\n");
}

static void test_idle_stray_reply_reported(void **state)
{
    (void)state;
    idle_loss("250 2.0.0 stray\r\n");
}

/* Two clean pipelined transactions on one connection, one recipient
 * refused each time: the accounting stays in step, then QUIT. */
static void test_clean_pipelined_reuse(void **state)
{
    static const struct step tx[] = {
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "250 2.1.5 ok\r\n" },
        { "RCPT", false, 0, "550 5.1.1 no such user\r\n" },
        { "DATA", false, 0, "354 go ahead\r\n" },
        { NULL, true, 0, "250 2.0.0 queued\r\n" },
    };
    struct step steps[11] = { { "EHLO", false, 0, EHLO_PIPE } };
    struct script sc = { GREETING, steps, 11, NULL, false };
    static const char *const two[] = { "b@srv.test", "gone@srv.test" };
    struct run run = { .transactions = 2 };

    (void)state;
    memcpy(steps + 1, tx, sizeof(tx));
    memcpy(steps + 6, tx, sizeof(tx));
    run_client(&run, &sc, &srv, two, 2, 5000);
    assert_int_equal(run.sent, 2);
    for (int k = 0; k < 2; k++) {
        assert_true(run.ok[k]);
        assert_int_equal(run.results[k][0].outcome, SMTP_DELIVERED);
        assert_int_equal(run.results[k][1].outcome, SMTP_FAILED);
        assert_string_equal(run.results[k][1].dsn, "5.1.1");
    }
    assert_int_equal(srv.bodies, 2);
    assert_int_equal(srv.mismatch, 0);
    assert_true(srv.quit);
    assert_string_equal(srv.extra, "");
}

/* MAIL refused in a pipelined group: the RCPT and DATA replies are still
 * read (and ignored), RSET goes, and the connection stays usable. */
static void test_mail_refused_pipelined(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PIPE },
        { "MAIL", false, 0, "451 4.3.0 later\r\n" },
        { "RCPT", false, 0, "503 5.5.1 need MAIL\r\n" },
        { "DATA", false, 0, "503 5.5.1 need RCPT\r\n" },
        { "RSET", false, 0, "250 2.0.0 ok\r\n" },
    };
    static const struct script sc = { GREETING, steps, 5, NULL, false };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, one_rcpt, 1, 100);
    assert_true(run.ok[0]);
    assert_int_equal(run.results[0][0].outcome, SMTP_DEFERRED);
    assert_string_equal(run.results[0][0].dsn, "4.3.0");
    assert_true(srv.quit);
    assert_string_equal(srv.extra, "");
}

/* Without PIPELINING, every recipient refused: RSET, no DATA. */
static void test_all_refused_plain(void **state)
{
    static const struct step steps[] = {
        { "EHLO", false, 0, EHLO_PLAIN },
        { "MAIL", false, 0, "250 2.1.0 ok\r\n" },
        { "RCPT", false, 0, "550 5.1.1 no\r\n" },
        { "RCPT", false, 0, "450 4.2.1 busy\r\n" },
        { "RSET", false, 0, "250 2.0.0 ok\r\n" },
    };
    static const struct script sc = { GREETING, steps, 5, NULL, false };
    static const char *const two[] = { "b@srv.test", "c@srv.test" };
    struct run run = { 0 };

    (void)state;
    run_client(&run, &sc, &srv, two, 2, 100);
    assert_true(run.ok[0]);
    assert_int_equal(run.results[0][0].outcome, SMTP_FAILED);
    assert_int_equal(run.results[0][1].outcome, SMTP_DEFERRED);
    assert_true(srv.quit);
    assert_string_equal(srv.extra, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_250_not_delivered),
        cmocka_unit_test(test_data_250_pipelined),
        cmocka_unit_test(test_other_3xx_to_data),
        cmocka_unit_test(test_duplicate_rcpt_reply),
        cmocka_unit_test(test_extra_reply_after_mail_pipelined),
        cmocka_unit_test(test_extra_reply_behind_354),
        cmocka_unit_test(test_extra_reply_behind_final),
        cmocka_unit_test(test_reply_before_end_of_data),
        cmocka_unit_test(test_3xx_to_rcpt),
        cmocka_unit_test(test_doubled_greeting),
        cmocka_unit_test(test_idle_eof_reported),
        cmocka_unit_test(test_idle_421_reported),
        cmocka_unit_test(test_idle_stray_reply_reported),
        cmocka_unit_test(test_clean_pipelined_reuse),
        cmocka_unit_test(test_mail_refused_pipelined),
        cmocka_unit_test(test_all_refused_plain),
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

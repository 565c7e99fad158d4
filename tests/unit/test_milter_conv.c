/*
 * test_milter_conv.c - unit tests for milter/milter_conv.c against a
 * scripted fake milter in a child process on a unix socket: what is sent
 * (macros, envelope, header fields unfolded as Postfix does, the body
 * from the spool offset), which steps are left out or left unanswered as
 * negotiated, how replies become the outcome, and that a milter breaking
 * the protocol leaves the outcome as it was.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/envelope.h"
#include "milter/milter_conv.h"
#include "milter/milter_proto.h"

/* One reply packet the fake milter sends. */
struct rpkt {
    char cmd;
    const char *data;
    size_t len;
};

#define R(c, lit) { c, lit, sizeof(lit) }     /* data with its NUL */
#define R0(c) { c, "", 0 }

struct plan {
    uint32_t version, actions, protocol;
    const char *symlist;            /* raw OPTNEG tail, or NULL */
    size_t symlist_len;
    struct rpkt on[128][6];         /* replies to command [c]; none: 'c' */
    bool silent[128];               /* never answer this command */
};

static char dir[40], sock[64], logpath[64];
static struct milter_outcome out;
static char err[256];
static struct envelope env;
static struct milter_facts facts;
static int msg_fd = -1;

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static bool read_n(int fd, unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t got = read(fd, b, n);

        if (got <= 0)
            return false;
        b += got;
        n -= (size_t)got;
    }
    return true;
}

static void send_pkt(int fd, char cmd, const void *data, size_t len)
{
    unsigned char h[5];

    put32(h, (uint32_t)len + 1);
    h[4] = (unsigned char)cmd;
    if (write(fd, h, 5) != 5 || (len && write(fd, data, len) != (ssize_t)len))
        _exit(3);
}

/* The fake milter: log every packet ("cmd len\n" + data + "\n"), answer
 * as planned. */
static void fake(int lfd, const struct plan *pl)
{
    int cfd = accept(lfd, NULL, NULL);
    FILE *log = fopen(logpath, "w");
    static unsigned char buf[1 << 17];

    if (cfd < 0 || !log)
        _exit(2);
    for (;;) {
        unsigned char h[4];
        uint32_t len;

        if (!read_n(cfd, h, 4))
            break;
        len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (len < 1 || len > sizeof(buf) || !read_n(cfd, buf, len))
            _exit(4);
        fprintf(log, "%c %u\n", buf[0], len - 1);
        fwrite(buf + 1, 1, len - 1, log);
        fputc('\n', log);
        fflush(log);
        unsigned char c = buf[0] & 0x7f;
        if (c == 'O') {
            unsigned char o[12 + 256];

            put32(o, pl->version);
            put32(o + 4, pl->actions);
            put32(o + 8, pl->protocol);
            if (pl->symlist)
                memcpy(o + 12, pl->symlist, pl->symlist_len);
            send_pkt(cfd, 'O', o, 12 + (pl->symlist ? pl->symlist_len : 0));
            continue;
        }
        if (c == 'D' || c == 'A' || c == 'Q' || pl->silent[c])
            continue;
        if (pl->on[c][0].cmd == 0) {
            send_pkt(cfd, 'c', "", 0);
            continue;
        }
        for (int i = 0; i < 6 && pl->on[c][i].cmd; i++)
            send_pkt(cfd, pl->on[c][i].cmd, pl->on[c][i].data, pl->on[c][i].len);
    }
    fclose(log);
    _exit(0);
}

/* Run one conversation against plan; returns milter_converse's result. */
static bool run(const struct plan *pl, unsigned timeout)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    struct milter_target t = { .is_unix = true };
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0), st;
    pid_t pid;
    bool ok;

    unlink(sock);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", sock);
    assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        fake(lfd, pl);
    close(lfd);
    snprintf(t.path, sizeof(t.path), "%s", sock);
    err[0] = 0;
    ok = milter_converse("fake", &t, &facts, timeout, &out, err, sizeof(err));
    if (pl->silent['E'] || pl->silent['C'])
        kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return ok;
}

static char logbuf[1 << 18];

/* The fake milter's log holds these octets (a literal, NULs included). */
#define HAS(lit) memmem(logbuf, sizeof(logbuf), lit, sizeof(lit) - 1)

/* The fake milter's log of what it received. */
static const char *received(void)
{
    FILE *f = fopen(logpath, "r");
    size_t n;

    memset(logbuf, 0, sizeof(logbuf));      /* nothing left from an earlier test */
    n = f ? fread(logbuf, 1, sizeof(logbuf) - 1, f) : 0;

    if (f)
        fclose(f);
    logbuf[n] = 0;
    return logbuf;
}

/* The sequence of commands received, e.g. "ODCDHDMDRDTLLNBDE Q". */
static const char *commands(void)
{
    static char seq[256];
    const char *p = received();
    size_t n = 0;

    while (*p && n + 1 < sizeof(seq)) {
        unsigned len = 0;

        seq[n++] = *p;
        sscanf(p + 2, "%u", &len);
        p = strchr(p, '\n') + 1 + len + 1;
    }
    seq[n] = 0;
    return seq;
}

static const char msg[] =
    "xxxxxxxxxx"        /* the spool envelope: msg_offset skips it */
    "Received: from client.example\r\n\tby mx; Sat, 5 Dec 2026\r\n"
    "Subject:  two spaces\r\n continued\r\n"
    "X-Tight:no space\r\n"
    "X-Spaced : value\r\n"
    "\r\n"
    "Body line 1\r\n"
    "Body line 2\r\n";

static int setup(void **state)
{
    FILE *f;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_milter_conv.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/milter.sock", dir);
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    f = tmpfile();
    fwrite(msg, 1, sizeof(msg) - 1, f);
    fflush(f);
    msg_fd = dup(fileno(f));
    fclose(f);
    envelope_init(&env);
    snprintf(env.from, sizeof(env.from), "alice@example.com");
    env.body = BODY_8BITMIME;
    envelope_add_rcpt(&env, "bob@example.org", DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, "");
    envelope_add_rcpt(&env, "carol@example.org", 0, "");
    facts = (struct milter_facts){
        .hostname = "mx.example.com", .queue_id = "QID123", .client_addr = "192.0.2.7",
        .client_port = 4321, .client_name = "client.example", .helo = "helo.example",
        .auth_user = "", .auth_type = "", .tls_version = "TLSv1.3", .tls_cipher = "TLS_AES_128_GCM_SHA256",
        .env = &env, .msg_fd = msg_fd, .msg_offset = 10, .msg_size = sizeof(msg) - 11,
    };
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    envelope_clear(&env);
    close(msg_fd);
    unlink(sock);
    unlink(logpath);
    rmdir(dir);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    milter_outcome_clear(&out);
    return 0;
}

static struct plan plan;

static void new_plan(uint32_t actions, uint32_t protocol)
{
    memset(&plan, 0, sizeof(plan));
    plan.version = 6;
    plan.actions = actions;
    plan.protocol = protocol;
}

static void test_whole_conversation(void **state)
{
    (void)state;
    new_plan(0, 0);
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_CONTINUE);
    assert_int_equal(out.edit_count, 0);
    assert_string_equal(commands(), "ODCDHDMDRDRDTLLLLDNBDEQ");
    received();
    /* OPTNEG offers version 6, every action, our protocol steps. */
    assert_non_null((HAS("O 12\n\0\0\0\x06\0\0\x01\xff\0\x0f\xf7\xff")));
    assert_non_null((HAS("Cj\0mx.example.com\0{daemon_name}\0mx.example.com\0"
                           "v\0sealpost\0_\0client.example [192.0.2.7]\0{client_addr}\0"
                           "192.0.2.7\0{client_name}\0client.example\0{client_port}\0" "4321\0")));
    assert_non_null((HAS("client.example\0" "4\x10\xe1" "192.0.2.7\0")));
    assert_non_null((HAS("H{tls_version}\0TLSv1.3\0{cipher}\0")));
    assert_non_null((HAS("helo.example\0")));
    assert_non_null((HAS("Mi\0QID123\0{mail_addr}\0alice@example.com\0")));
    assert_non_null((HAS("<alice@example.com>\0BODY=8BITMIME\0")));
    assert_non_null((HAS("<bob@example.org>\0NOTIFY=FAILURE,DELAY\0")));
    assert_non_null((HAS("Ri\0QID123\0{rcpt_addr}\0carol@example.org\0")));
    assert_null((HAS("{auth_authen}")));     /* empty: not sent */
    /* Header fields: name, value after "Name:" minus one space, "\n" folding. */
    assert_non_null((HAS("Received\0from client.example\n\tby mx; Sat, 5 Dec 2026\0")));
    assert_non_null((HAS("Subject\0 two spaces\n continued\0")));
    assert_non_null((HAS("X-Tight\0no space\0")));
    assert_non_null((HAS("X-Spaced\0value\0")));
    assert_non_null((HAS("B 26\nBody line 1\r\nBody line 2\r\n\n")));
}

/* A check (milter_check.h) stops after its command: ABORT once a message
 * was begun (MAIL sent), then QUIT; its verdict is that command's. */
static void test_checks_stop_at_their_command(void **state)
{
    static const struct { enum milter_upto upto; const char *heard; } cases[] = {
        { MILTER_UPTO_CONNECT, "ODCQ" },
        { MILTER_UPTO_MAIL, "ODCDHDMAQ" },
        { MILTER_UPTO_RCPT, "ODCDHDMDRDRAQ" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        new_plan(0, 0);
        facts.upto = cases[i].upto;
        assert_true(run(&plan, 5));
        facts.upto = MILTER_UPTO_EOM;
        assert_int_equal(out.verdict, MILTER_CONTINUE);
        assert_string_equal(commands(), cases[i].heard);
        milter_outcome_clear(&out);
    }
    /* the recipient refused: that is the check's answer */
    new_plan(0, 0);
    plan.on['R'][0] = (struct rpkt)R('y', "550 5.7.1 not bob");
    facts.upto = MILTER_UPTO_RCPT;
    assert_true(run(&plan, 5));
    facts.upto = MILTER_UPTO_EOM;
    assert_int_equal(out.verdict, MILTER_REJECT);
    assert_string_equal(out.reply, "550 5.7.1 not bob");
    assert_string_equal(commands(), "ODCDHDMDRAQ");
    milter_outcome_clear(&out);
    /* a reject at CONNECT: no message was begun, so no ABORT */
    new_plan(0, 0);
    plan.on['C'][0] = (struct rpkt)R0('r');
    facts.upto = MILTER_UPTO_CONNECT;
    assert_true(run(&plan, 5));
    facts.upto = MILTER_UPTO_EOM;
    assert_int_equal(out.verdict, MILTER_REJECT);
    assert_string_equal(commands(), "ODCQ");
}

static void test_negotiated_steps_left_out(void **state)
{
    (void)state;
    /* No CONNECT, HELO or body; no reply to headers, RCPT and EOH; only
     * the macros asked for in the symlist (CONNECT: j only; EOM: none). */
    new_plan(0, SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NR_HDR | SMFIP_NR_RCPT |
                    SMFIP_NR_EOH | SMFIP_HDR_LEADSPC);
    static const char symlist[] = "\0\0\0\0j {nonexistent}\0\0\0\0\x05{i}";

    plan.symlist = symlist;
    plan.symlist_len = sizeof(symlist);
    plan.silent['L'] = plan.silent['R'] = plan.silent['N'] = true;
    if (!run(&plan, 5))
        fail_msg("%s", err);
    assert_string_equal(commands(), "ODDDMDRDRDTLLLLDNDEQ");
    /* Our own Received: hidden: one field less, starting with Subject. */
    facts.hidden_fields = 1;
    assert_true(run(&plan, 5));
    facts.hidden_fields = 0;
    assert_string_equal(commands(), "ODDDMDRDRDTLLLDNDEQ");
    assert_null(HAS("Received"));
    assert_non_null(HAS("Subject\0 two spaces\n continued\0"));
    assert_non_null((received(), HAS("Cj\0mx.example.com\0\n")));
    assert_non_null((HAS("E{i}\0QID123\0")));
    /* HDR_LEADSPC is not offered: values keep the usual form. */
    assert_non_null((HAS("X-Tight\0no space\0")));
}

static void test_edits_at_eom(void **state)
{
    static const struct rpkt eom[] = {
        R('i', "\0\0\0\0DKIM-Signature\0v=1; d=example.com;\n\tb=abc"),
        R('h', "X-Spam\0Yes"), R('m', "\0\0\0\0Subject\0[SPAM] x"),
        R('2', "<dave@example.org>\0NOTIFY=NEVER"), R('-', "<bob@example.org>"),
        R0('c'),
    };
    static const struct rpkt eom2[] = {
        R('e', "<>"), { 'b', "new\r\n", 5 }, { 'b', "body\r\n", 6 }, R('q', "looks odd"),
        R0('a'),
    };

    (void)state;
    new_plan(0x1ff, 0);
    memcpy(plan.on['E'], eom, sizeof(eom));
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_CONTINUE);
    assert_int_equal(out.edit_count, 5);
    assert_int_equal(out.edits[0].kind, MILTER_EDIT_INSERT_HEADER);
    assert_int_equal(out.edits[0].index, 0);
    assert_string_equal(out.edits[0].name, "DKIM-Signature");
    assert_string_equal(out.edits[0].value, "v=1; d=example.com;\n\tb=abc");
    assert_int_equal(out.edits[2].kind, MILTER_EDIT_CHANGE_HEADER);
    assert_int_equal(out.edits[2].index, 1);            /* 0 reads as 1 */
    assert_int_equal(out.edits[3].kind, MILTER_EDIT_ADD_RCPT);
    assert_string_equal(out.edits[3].value, "dave@example.org");
    assert_string_equal(out.edits[3].args, "NOTIFY=NEVER");
    assert_string_equal(out.edits[4].value, "bob@example.org");
    /* A second milter appends; its body replaces, quarantine noted. */
    new_plan(0x1ff, 0);
    memcpy(plan.on['E'], eom2, sizeof(eom2));
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_ACCEPT);
    assert_string_equal(out.milter, "fake");
    assert_int_equal(out.edit_count, 6);
    assert_int_equal(out.edits[5].kind, MILTER_EDIT_CHANGE_FROM);
    assert_string_equal(out.edits[5].value, "");
    assert_true(out.body_replaced);
    assert_int_equal(out.body_len, 11);
    assert_memory_equal(out.body, "new\r\nbody\r\n", 11);
    assert_true(out.quarantine);
    assert_string_equal(out.reason, "looks odd");
    assert_string_equal(commands(), "ODCDHDMDRDRDTLLLLDNBDEQ");
}

/* A broken conversation leaves the outcome of earlier milters alone. */
static void expect_broken(const struct plan *pl, const char *why)
{
    size_t before = out.edit_count;

    assert_false(run(pl, 2));
    if (!strstr(err, why))
        fail_msg("error \"%s\" lacks \"%s\"", err, why);
    assert_int_equal(out.edit_count, before);
    assert_int_equal(out.verdict, MILTER_CONTINUE);
    assert_false(out.body_replaced);
}

static void test_protocol_errors(void **state)
{
    static const struct rpkt edit_then_bad[] = { R('h', "X-A\0b"), R0('Z') };
    static const struct rpkt hdr[] = { R('h', "X-A\0b"), R0('c') };
    static const struct rpkt body_split[] = { { 'b', "a", 1 }, R('h', "X\0y"), { 'b', "b", 1 } };
    static const struct rpkt big_body[] = { { 'b', "0123456789", 10 }, { 'b', "x", 1 } };

    (void)state;
    /* An earlier milter's edit must survive every failure below. */
    new_plan(SMFIF_ADDHDRS, 0);
    memcpy(plan.on['E'], hdr, sizeof(hdr));
    assert_true(run(&plan, 5));
    assert_int_equal(out.edit_count, 1);

    new_plan(SMFIF_ADDHDRS, 0);
    memcpy(plan.on['E'], edit_then_bad, sizeof(edit_then_bad));
    expect_broken(&plan, "unknown reply");
    new_plan(SMFIF_ADDHDRS, 0);
    memcpy(plan.on['T'], hdr, sizeof(hdr));             /* edit before EOM */
    expect_broken(&plan, "unexpected milter reply 'h' to 'T'");
    new_plan(0, 0);                                     /* not announced */
    memcpy(plan.on['E'], hdr, sizeof(hdr));
    expect_broken(&plan, "without announcing");
    new_plan(SMFIF_CHGBODY | SMFIF_ADDHDRS, 0);
    memcpy(plan.on['E'], body_split, sizeof(body_split));
    expect_broken(&plan, "interrupted");
    new_plan(SMFIF_CHGBODY, 0);
    memcpy(plan.on['E'], big_body, sizeof(big_body));
    facts.body_max = 10;
    expect_broken(&plan, "larger than");
    facts.body_max = 0;
    new_plan(0, 0);
    plan.on['H'][0] = (struct rpkt)R0('d');             /* DISCARD at HELO */
    expect_broken(&plan, "unexpected milter reply 'd' to 'H'");
    new_plan(0, 0);
    plan.on['E'][0] = (struct rpkt)R0('s');             /* SKIP at EOM */
    expect_broken(&plan, "unexpected milter reply 's'");
    new_plan(0x3ff, 0);                                 /* actions not offered */
    expect_broken(&plan, "did not offer");
    new_plan(0, 0);
    plan.version = 7;
    expect_broken(&plan, "version 7");
    new_plan(0, 0);
    plan.silent['E'] = true;                            /* never answers EOM */
    expect_broken(&plan, "did not answer within 2s");
    new_plan(0, 0);
    for (int i = 0; i < 6; i++)
        plan.on['M'][i] = (struct rpkt)R0('p');
    expect_broken(&plan, "did not answer within 2s");   /* progress, then nothing */
    assert_int_equal(out.edit_count, 1);
}

static void test_verdicts(void **state)
{
    (void)state;
    new_plan(0, 0);
    plan.on['R'][0] = (struct rpkt)R0('r');             /* reject at RCPT: the message */
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_REJECT);
    assert_string_equal(out.reply, "550 5.7.1 Command rejected");
    assert_string_equal(commands(), "ODCDHDMDRAQ");     /* ABORT, QUIT */
    milter_outcome_clear(&out);

    new_plan(0, 0);
    plan.on['E'][0] = (struct rpkt)R0('t');
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_TEMPFAIL);
    assert_string_equal(out.reply, "451 4.7.1 Service unavailable - try again later");
    assert_string_equal(commands(), "ODCDHDMDRDRDTLLLLDNBDEQ");
    milter_outcome_clear(&out);

    new_plan(0, 0);
    plan.on['B'][0] = (struct rpkt)R('y', "554 5.7.1 Spam message rejected");
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_REJECT);
    assert_string_equal(out.reply, "554 5.7.1 Spam message rejected");
    milter_outcome_clear(&out);

    new_plan(0, 0);
    plan.on['C'][0] = (struct rpkt)R('y', "421 4.3.2 busy");
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_TEMPFAIL);
    assert_string_equal(out.reply, "421 4.3.2 busy");
    milter_outcome_clear(&out);

    new_plan(0, 0);
    plan.on['T'][0] = (struct rpkt)R0('d');
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_DISCARD);
    milter_outcome_clear(&out);

    /* progress, then skip of the headers: the rest of them not sent */
    new_plan(0, 0);
    plan.on['L'][0] = (struct rpkt)R0('p');
    plan.on['L'][1] = (struct rpkt)R0('s');
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_CONTINUE);
    assert_string_equal(commands(), "ODCDHDMDRDRDTLDNBDEQ");

    /* An ACCEPT does not override an earlier milter's REJECT, a REJECT
     * overrides an earlier ACCEPT. */
    new_plan(0, 0);
    plan.on['E'][0] = (struct rpkt)R0('a');
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_ACCEPT);
    new_plan(0, 0);
    plan.on['E'][0] = (struct rpkt)R('y', "550 5.7.0 no");
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_REJECT);
    new_plan(0, 0);
    plan.on['E'][0] = (struct rpkt)R0('a');
    assert_true(run(&plan, 5));
    assert_int_equal(out.verdict, MILTER_REJECT);
    assert_string_equal(out.reply, "550 5.7.0 no");
}

/* A field longer than a packet (and than the reader's buffer) is cut to
 * fit one; the fields after it and the body are intact. */
static void test_long_field(void **state)
{
    static char big[100000];
    size_t n = 0;
    FILE *f = tmpfile();
    struct milter_facts saved = facts;
    const char *p;
    unsigned len = 0;

    (void)state;
    n += (size_t)snprintf(big, sizeof(big), "X-Long: ");
    memset(big + n, 'a', 70000);
    n += 70000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n continued\r\nSubject: s\r\n\r\nbody\r\n");
    fwrite(big, 1, n, f);
    fflush(f);
    facts.msg_fd = fileno(f);
    facts.msg_offset = 0;
    facts.msg_size = n;
    new_plan(0, 0);
    assert_true(run(&plan, 5));
    facts = saved;
    fclose(f);
    assert_string_equal(commands(), "ODCDHDMDRDRDTLLDNBDEQ");
    received();
    p = memmem(logbuf, sizeof(logbuf), "\nL ", 3);
    assert_non_null(p);
    sscanf(p + 3, "%u", &len);
    assert_int_equal(len, MILTER_SEND_DATA_MAX);
    assert_memory_equal(strchr(p + 1, '\n') + 1, "X-Long\0aaaa", 11);
    assert_non_null(HAS("Subject\0s\0"));
    assert_non_null(HAS("B 6\nbody\r\n"));
}

static void test_connect_failure(void **state)
{
    struct milter_target t;

    (void)state;
    unlink(sock);
    assert_true(milter_target_parse("unix:/nonexistent/milter.sock", &t, err, sizeof(err)));
    assert_false(milter_converse("x", &t, &facts, 2, &out, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot connect"));
    assert_true(milter_target_parse("inet:127.0.0.1:1", &t, err, sizeof(err)));
    assert_false(milter_converse("x", &t, &facts, 2, &out, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot connect"));
}

static void test_target_parse(void **state)
{
    struct milter_target t;

    (void)state;
    assert_true(milter_target_parse("inet:127.0.0.1:11332", &t, err, sizeof(err)));
    assert_false(t.is_unix);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 11332);
    assert_true(milter_target_parse("inet6:[::1]:8891", &t, err, sizeof(err)));
    assert_string_equal(t.host, "::1");
    assert_true(milter_target_parse("inet:[::1]:8891", &t, err, sizeof(err)));
    assert_true(milter_target_parse("unix:/run/milter.sock", &t, err, sizeof(err)));
    assert_true(t.is_unix);
    assert_string_equal(t.path, "/run/milter.sock");
    /* the config's grammar (config_parse_milter_socket), so localhost and
     * Sendmail's PORT@HOST too */
    assert_true(milter_target_parse("inet:localhost:11332", &t, err, sizeof(err)));
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 11332);
    assert_true(milter_target_parse("inet:8891@127.0.0.2", &t, err, sizeof(err)));
    assert_false(t.is_unix);
    assert_string_equal(t.host, "127.0.0.2");
    assert_int_equal(t.port, 8891);
    assert_true(milter_target_parse("inet:8891@[::1]", &t, err, sizeof(err)));
    assert_string_equal(t.host, "::1");
    assert_true(milter_target_parse("local:/run/milter.sock", &t, err, sizeof(err)));
    assert_true(t.is_unix);
    assert_string_equal(t.path, "/run/milter.sock");
    assert_false(milter_target_parse("inet:mail.example:11332", &t, err, sizeof(err)));
    assert_non_null(strstr(err, "mail.example"));
    assert_false(milter_target_parse("inet:127.0.0.1:0", &t, err, sizeof(err)));
    assert_false(milter_target_parse("inet:127.0.0.1:65536", &t, err, sizeof(err)));
    assert_false(milter_target_parse("inet:127.0.0.1", &t, err, sizeof(err)));
    assert_false(milter_target_parse("unix:relative", &t, err, sizeof(err)));
    assert_false(milter_target_parse("tcp:127.0.0.1:1", &t, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_whole_conversation, reset),
        cmocka_unit_test_teardown(test_checks_stop_at_their_command, reset),
        cmocka_unit_test_teardown(test_negotiated_steps_left_out, reset),
        cmocka_unit_test_teardown(test_edits_at_eom, reset),
        cmocka_unit_test_teardown(test_protocol_errors, reset),
        cmocka_unit_test_teardown(test_verdicts, reset),
        cmocka_unit_test_teardown(test_long_field, reset),
        cmocka_unit_test_teardown(test_connect_failure, reset),
        cmocka_unit_test(test_target_parse),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * milter_run.c - test driver for the milter client (milter/milter_conv.h):
 * one conversation with the milter at SOCKET about MESSAGE_FILE, then what
 * it answered, one item per line:
 *
 *   verdict continue|accept|reject|tempfail|discard
 *   reply 550 5.7.1 Spam message rejected        (reject/tempfail only)
 *   milter NAME                                  (the one that decided)
 *   quarantine REASON                            (when asked)
 *   edit add_header NAME VALUE
 *   edit insert_header INDEX NAME VALUE
 *   edit change_header INDEX NAME VALUE
 *   edit add_rcpt ADDR [ARGS]
 *   edit delete_rcpt ADDR
 *   edit change_from ADDR [ARGS]
 *   body LEN                                     (body replaced)
 *   error NAME REASON                            (exit 1: default_action)
 *
 * Values are escaped: backslash, \r, \n, \t and other octets outside
 * printable ASCII as \xHH, so folding shows ("\n\t" or "\r\n\t").
 *
 * Usage: milter_run SOCKET MESSAGE_FILE [--from A] [--rcpt B]...
 *          [--client IP] [--client-name N] [--port P] [--helo H]
 *          [--auth USER (mechanism PLAIN)] [--tls VERSION:CIPHER] [--queue-id ID]
 *          [--hostname H] [--timeout N] [--offset N] [--body-max N]
 *          [--hidden N]
 * SOCKET is unix:/path or inet:IP:port, or several of them joined by
 * commas: the milters, in order, named milter1, milter2... . The file's bare LF line ends
 * become CRLF (the spool's form); --offset N puts N octets of filler
 * before the message (tests the spool offset); --hidden N keeps the
 * first N header fields from the milters. Exit 0 on an answer,
 * 1 when the conversation failed, 2 usage. Trusts its command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/envelope.h"
#include "milter/milter_conv.h"

static void usage(void)
{
    fprintf(stderr, "usage: milter_run SOCKET MESSAGE_FILE [--from A] [--rcpt B]... "
                    "[--client IP] [--client-name N] [--port P] [--helo H] [--auth USER] "
                    "[--tls VERSION:CIPHER] [--queue-id ID] [--hostname H] [--timeout N] "
                    "[--offset N] [--body-max N] [--hidden N]\n");
    exit(2);
}

static void print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\\')
            fputs("\\\\", stdout);
        else if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch > 0x7e)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
}

/* The message, CRLF line ends, after `offset` filler octets, in a temp file. */
static int spool_copy(const char *path, size_t offset, size_t *size)
{
    FILE *in = fopen(path, "rb"), *out = tmpfile();
    int ch, prev = 0;

    if (!in || !out) {
        perror(path);
        exit(2);
    }
    for (size_t i = 0; i < offset; i++)
        fputc('x', out);
    *size = 0;
    while ((ch = fgetc(in)) != EOF) {
        if (ch == '\n' && prev != '\r') {
            fputc('\r', out);
            (*size)++;
        }
        fputc(ch, out);
        (*size)++;
        prev = ch;
    }
    fclose(in);
    fflush(out);
    return dup(fileno(out));    /* the FILE stays open until exit */
}

static void print_outcome(const struct milter_outcome *o)
{
    static const char *const verdicts[] = { "continue", "accept", "reject", "tempfail",
                                            "discard" };
    static const char *const kinds[] = { "add_header", "insert_header", "change_header",
                                         "add_rcpt", "delete_rcpt", "change_from" };

    printf("verdict %s\n", verdicts[o->verdict]);
    if (o->verdict == MILTER_REJECT || o->verdict == MILTER_TEMPFAIL)
        printf("reply %s\n", o->reply);
    if (o->milter[0])
        printf("milter %s\n", o->milter);
    if (o->quarantine)
        printf("quarantine %s\n", o->reason);
    for (size_t i = 0; i < o->edit_count; i++) {
        const struct milter_edit *e = &o->edits[i];

        printf("edit %s ", kinds[e->kind]);
        if (e->kind == MILTER_EDIT_INSERT_HEADER || e->kind == MILTER_EDIT_CHANGE_HEADER)
            printf("%u ", (unsigned)e->index);
        if (e->kind <= MILTER_EDIT_CHANGE_HEADER)
            printf("%s ", e->name);
        print_escaped(e->value, strlen(e->value));
        if (e->args) {
            putchar(' ');
            print_escaped(e->args, strlen(e->args));
        }
        putchar('\n');
    }
    if (o->body_replaced)
        printf("body %zu\n", o->body_len);
}

int main(int argc, char **argv)
{
    static struct milter_outcome out;
    struct milter_target t;
    struct milter_facts f = {
        .hostname = "mx.sealpost.test", .queue_id = "4F3A2B1C0D9E8F70",
        .client_addr = "127.0.0.1", .client_port = 41234, .client_name = "",
        .helo = "client.example", .auth_user = "", .auth_type = "", .tls_version = "", .tls_cipher = "",
    };
    struct envelope env;
    char err[512], tls[128], name[128];
    size_t offset = 0;
    unsigned timeout = 10;

    if (argc < 3)
        usage();
    envelope_init(&env);
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--from"))
            snprintf(env.from, sizeof(env.from), "%s", v);
        else if (!strcmp(a, "--rcpt"))
            envelope_add_rcpt(&env, v, 0, "");
        else if (!strcmp(a, "--client"))
            f.client_addr = v;
        else if (!strcmp(a, "--client-name"))
            f.client_name = v;
        else if (!strcmp(a, "--port"))
            f.client_port = (uint16_t)atoi(v);
        else if (!strcmp(a, "--helo"))
            f.helo = v;
        else if (!strcmp(a, "--auth")) {
            f.auth_user = v;
            f.auth_type = "PLAIN";
        }
        else if (!strcmp(a, "--queue-id"))
            f.queue_id = v;
        else if (!strcmp(a, "--hostname"))
            f.hostname = v;
        else if (!strcmp(a, "--timeout"))
            timeout = (unsigned)atoi(v);
        else if (!strcmp(a, "--offset"))
            offset = (size_t)atol(v);
        else if (!strcmp(a, "--hidden"))
            f.hidden_fields = (unsigned)atoi(v);
        else if (!strcmp(a, "--body-max"))
            f.body_max = (size_t)atol(v);
        else if (!strcmp(a, "--tls") && strchr(v, ':')) {
            snprintf(tls, sizeof(tls), "%s", v);
            *strchr(tls, ':') = 0;
            f.tls_version = tls;
            f.tls_cipher = tls + strlen(tls) + 1;
        } else
            usage();
    }
    if (!f.client_name[0]) {
        snprintf(name, sizeof(name), "[%s]", f.client_addr);
        f.client_name = name;
    }
    f.env = &env;
    f.msg_fd = spool_copy(argv[2], offset, &f.msg_size);
    f.msg_offset = (off_t)offset;
    milter_outcome_init(&out);

    /* SOCKET,SOCKET...: milters in order, named milter1, milter2...; the
     * chain stops at a REJECT, TEMPFAIL or DISCARD, as the role's does. */
    bool ok = true;
    char *specs = strdup(argv[1]), *save = NULL;
    unsigned i = 0;

    for (char *spec = strtok_r(specs, ",", &save); ok && spec;
         spec = strtok_r(NULL, ",", &save)) {
        char mname[16];

        if (out.verdict != MILTER_CONTINUE && out.verdict != MILTER_ACCEPT)
            break;
        if (!milter_target_parse(spec, &t, err, sizeof(err))) {
            fprintf(stderr, "milter_run: %s\n", err);
            return 2;
        }
        snprintf(mname, sizeof(mname), "milter%u", ++i);
        ok = milter_converse(mname, &t, &f, timeout, &out, err, sizeof(err));
    }
    free(specs);
    if (ok)
        print_outcome(&out);
    else
        printf("error milter%u %s\n", i, err);
    milter_outcome_clear(&out);
    envelope_clear(&env);
    close(f.msg_fd);
    return ok ? 0 : 1;
}

/*
 * main.c - the sealpost command: subcommand dispatch.
 *
 *   sealpost serve [-c FILE]   run the server in the foreground
 *   sealpost check [-c FILE]   validate the config, print effective settings
 *   sealpost dns-records [-c FILE] [--next-key FILE]...
 *                              the TLSA, MTA-STS and TLS-RPT records to publish
 *   sealpost tls-report [--date YYYY-MM-DD] [-c FILE]
 *                              print the TLS-RPT JSON reports of a UTC day
 *   sealpost queue [-c FILE] list|show ID|flush [ID]|delete ID|hold ID|release ID
 *                              the running daemon's queue (master/queue_tool.h)
 *   sealpost sendmail [options] [recipient...]
 *                              submit a message from a local program
 *                              (sendmail/sendmail.h; also when the binary is
 *                              run under the name `sendmail`)
 *   sealpost version
 *
 * and, not in the usage, `sealpost role NAME ...`: how the master starts
 * each role process (sandbox/role.h).
 *
 * Trusts its command line and the config file it is pointed at.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "mail/envelope.h"
#include "mail/recipient.h"
#include "master/master.h"
#include "master/preflight.h"
#include "master/queue_tool.h"
#include "master/role_start.h"
#include "tls/dns_records.h"
#include "queue/tlsrpt_mail.h"
#include "queue/tlsrpt_report.h"
#include "queue/tlsrpt_store.h"
#include "sendmail/sendmail.h"
#include "util/log.h"
#include "util/snapshot.h"

#define DEFAULT_CONFIG "/etc/sealpost/sealpost.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost serve [-c FILE]   run the mail server in the foreground\n"
            "       sealpost check [-c FILE]   check the configuration and print it\n"
            "       sealpost dns-records [-c FILE] [--next-key FILE]...\n"
            "                                  print the DNS records (TLSA, MTA-STS, TLS-RPT)\n"
            "                                  other servers need to authenticate this one\n"
            "       sealpost tls-report [--date YYYY-MM-DD] [-c FILE]\n"
            "                                  print the day's TLS-RPT reports (UTC, default\n"
            "                                  today), one JSON document per line\n"
            "       sealpost queue [-c FILE] list | show ID | flush [ID] | delete ID | hold ID |\n"
            "                                release ID\n"
            "                                  inspect and change the running daemon's queue\n"
            "                                  (`sealpost queue --help`, sealpost(8))\n"
            "       sealpost sendmail [-t] [-i] [-f SENDER] [-F NAME] [-C FILE] [RCPT]...\n"
            "                                  send the message on stdin (Sendmail-compatible;\n"
            "                                  also run as `sendmail`; see sealpost(8))\n"
            "       sealpost version           print the version\n"
            "FILE defaults to " DEFAULT_CONFIG ".\n");
}

/* Parse "-c FILE" after the subcommand; NULL on a usage error. */
static const char *config_arg(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int opt;

    optind = 2;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c')
            return NULL;
        path = optarg;
    }
    return optind == argc ? path : NULL;
}

static struct config *load_or_report(const char *path)
{
    char err[1024];
    struct config *cfg = config_load(path, err, sizeof(err));

    if (cfg == NULL)
        fprintf(stderr, "sealpost: %s\n", err);
    return cfg;
}

static int cmd_check(const char *path)
{
    struct config *cfg = load_or_report(path);

    if (cfg == NULL)
        return 1;
    if (preflight_check(cfg, stderr) + preflight_dns(cfg, stderr) > 0) {
        config_free(cfg);
        return 1;
    }
    if (cfg->max_recipients > ENVELOPE_RCPTS_ALWAYS_FIT)
        fprintf(stderr, "sealpost: note: max_recipients = %u: a transaction whose envelope "
                        "passes %zu octets is refused with 452 4.5.3 before that (%zu "
                        "recipients of the largest size always fit)\n",
                cfg->max_recipients, (size_t)ENVELOPE_WIRE_MAX,
                (size_t)ENVELOPE_RCPTS_ALWAYS_FIT);
    config_print(cfg, stdout);
    config_free(cfg);
    return 0;
}

/* One RFC 8460 JSON document per policy domain of day, one per line
 * (JSON Lines), domains in name order. Reads the spool: run it as a
 * user that may (root, or [server] queue_user). */
static int cmd_tls_report(const char *path, const char *day)
{
    struct config *cfg = load_or_report(path);
    struct tlsrpt_report_meta meta;
    struct tlsrpt_report_info info;
    char from[ADDR_PATH_MAX + 1], contact[ADDR_PATH_MAX + 1], err[512];
    char (*names)[256] = NULL;
    size_t n;
    int status = 0;

    if (cfg == NULL)
        return 1;
    tlsrpt_meta(cfg, &meta, from, sizeof(from), contact, sizeof(contact));
    n = tlsrpt_report_domains(cfg->spool, day, &names);
    if (n == 0)
        fprintf(stderr, "sealpost: no TLS-RPT records for %s in %s/%s\n", day, cfg->spool,
                TLSRPT_DIR);
    for (size_t i = 0; i < n; i++) {
        struct tlsrpt_buf json = { 0 };

        if (tlsrpt_report_json(cfg->spool, day, names[i], &meta, &json, &info, err,
                               sizeof(err))) {
            fwrite(json.data, 1, json.len, stdout);
            fputc('\n', stdout);
        } else if (!info.empty) {
            fprintf(stderr, "sealpost: %s: %s\n", names[i], err);
            status = 1;
        }   /* else a file just created, its first line not yet written */
        if (info.bad_lines)
            fprintf(stderr, "sealpost: %s: %zu malformed lines skipped\n", names[i],
                    info.bad_lines);
        tlsrpt_buf_free(&json);
    }
    free(names);
    config_free(cfg);
    return fflush(stdout) == 0 ? status : 1;
}

static int tls_report_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "date", required_argument, NULL, 'd' },
        { "config", required_argument, NULL, 'c' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = DEFAULT_CONFIG;
    char day[TLSRPT_DAY_LEN + 1];
    time_t start;
    int opt;

    tlsrpt_day_name(time(NULL), day);
    optind = 2;
    while ((opt = getopt_long(argc, argv, "c:d:", opts, NULL)) != -1) {
        if (opt == 'c') {
            path = optarg;
        } else if (opt == 'd' && tlsrpt_day_parse(optarg, &start)) {
            snprintf(day, sizeof(day), "%.10s", optarg);
        } else {
            if (opt == 'd')
                fprintf(stderr, "sealpost: --date wants YYYY-MM-DD, not '%s'\n", optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return cmd_tls_report(path, day);
}

/* serve refuses what check refuses, before it opens anything. */
static int cmd_serve(const char *path)
{
    struct config *cfg = load_or_report(path);
    int status;

    if (cfg == NULL)
        return 1;
    if (preflight_check(cfg, stderr) > 0) {
        fprintf(stderr, "sealpost: not started (see `sealpost check -c %s`)\n", path);
        config_free(cfg);
        return 1;
    }
    status = master_run(cfg);
    config_free(cfg);
    return status;
}

/* dns-records [-c FILE] [--next-key FILE]...: the records to publish
 * (tls/dns_records.h); exit 1 when a certificate or key cannot be read. */
static int cmd_dns_records(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "next-key", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = DEFAULT_CONFIG, *next[DNS_RECORDS_NEXT_MAX + 1];
    size_t next_count = 0;
    struct config *cfg;
    char err[1024];
    int opt;
    bool ok;

    optind = 2;
    while ((opt = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        if (opt == 'c') {
            path = optarg;
        } else if (opt == 'n' && next_count <= DNS_RECORDS_NEXT_MAX) {
            next[next_count++] = optarg;    /* one too many is refused below */
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    cfg = load_or_report(path);
    if (cfg == NULL)
        return 1;
    ok = dns_records_print(cfg, next, next_count, stdout, err, sizeof(err));
    if (!ok)
        fprintf(stderr, "sealpost: dns-records: %s\n", err);
    config_free(cfg);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *path;
    const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;

    name = name ? name + 1 : argc > 0 ? argv[0] : "";
    if (strcmp(name, "sendmail") == 0)
        return sendmail_main(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("sealpost %s\n", SEALPOST_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "role") == 0)
        return role_run(argc, argv);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "sendmail") == 0)
        return sendmail_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "dns-records") == 0)
        return cmd_dns_records(argc, argv);
    if (strcmp(argv[1], "tls-report") == 0)
        return tls_report_main(argc, argv);
    if (strcmp(argv[1], "queue") == 0)
        return queue_tool_main(argc, argv, DEFAULT_CONFIG);
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "sealpost: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    path = config_arg(argc, argv);
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    return strcmp(argv[1], "serve") == 0 ? cmd_serve(path) : cmd_check(path);
}

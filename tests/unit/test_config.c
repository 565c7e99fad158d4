/*
 * test_config.c - unit tests for the configuration loader: defaults,
 * bounds, error messages with line numbers, line limits, paths, TLS
 * pairs, listen addresses, durations and sizes, and the round trip
 * through config_print.
 *
 * Every fixture is written by the test into a fresh mkdtemp() folder
 * (config files go to DIR/etc/sealpost.conf) and removed at the end.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "util/log.h"

static char tmpdir[256];            /* real path, no symlinks */
static char etcdir[512];
static char conf_path[1024];
static char err[2048];

#define MINIMAL \
    "[listener mx]\n" \
    "address = 127.0.0.1:2525\n" \
    "\n" \
    "[domain example.test]\n" \
    "maildir = ../mail/{domain}/{local}\n"

/* ---- fixtures ---------------------------------------------------------- */

static void write_path(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* name relative to DIR/etc */
static void write_file(const char *name, const char *text)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", etcdir, name);
    write_path(path, text, strlen(text));
}

static struct config *load_bytes(const char *text, size_t len)
{
    err[0] = '\0';
    write_path(conf_path, text, len);
    return config_load(conf_path, err, sizeof(err));
}

static struct config *load_text(const char *text)
{
    return load_bytes(text, strlen(text));
}

__attribute__((format(printf, 1, 2)))
static struct config *load_fmt(const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    return load_text(text);
}

static void expect_error(struct config *cfg, int line, const char *msg)
{
    char want[2048];

    if (line > 0)
        snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, msg);
    else
        snprintf(want, sizeof(want), "%s: %s", conf_path, msg);
    if (cfg)
        fail_msg("loaded, expected error: %s", want);
    assert_string_equal(err, want);
}

/* The error mentions line and contains part. */
static void expect_error_part(struct config *cfg, int line, const char *part)
{
    char prefix[PATH_MAX + 32];

    if (cfg)
        fail_msg("loaded, expected error containing: %s", part);
    snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, part))
        fail_msg("error '%s' lacks '%s' or '%s'", err, prefix, part);
}

static struct config *must_load(struct config *cfg)
{
    if (!cfg)
        fail_msg("config_load failed: %s", err);
    return cfg;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    char tmpl[] = "/tmp/sealpost-config-XXXXXX";
    char real[PATH_MAX];

    (void)state;
    if (!mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(tmpdir))
        return -1;
    memcpy(tmpdir, real, strlen(real) + 1);
    snprintf(etcdir, sizeof(etcdir), "%s/etc", tmpdir);
    snprintf(conf_path, sizeof(conf_path), "%s/sealpost.conf", etcdir);
    return mkdir(etcdir, 0700);
}

static int teardown_dir(void **state)
{
    (void)state;
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- defaults ------------------------------------------------------------ */

static void test_defaults(void **state)
{
    struct config *cfg = must_load(load_text(MINIMAL));
    const struct listener_config *l = &cfg->listeners[0];
    char host[256] = "";
    char path[PATH_MAX];

    (void)state;
    gethostname(host, sizeof(host) - 1);
    assert_string_equal(cfg->hostname, host);
    assert_string_equal(cfg->path, conf_path);
    assert_string_equal(cfg->dir, etcdir);
    assert_string_equal(cfg->spool, "/var/spool/sealpost");
    assert_string_equal(cfg->postmaster, "postmaster@example.test");
    assert_int_equal(cfg->max_message_size, 50 * 1024 * 1024);
    assert_int_equal(cfg->max_recipients, 100);
    assert_int_equal(cfg->max_errors, 10);
    assert_int_equal(cfg->max_line_length, 2048);
    assert_int_equal(cfg->max_text_line_length, 1000);
    assert_int_equal(cfg->max_output_buffer, 256 * 1024);
    assert_int_equal(cfg->command_timeout, 300);
    assert_int_equal(cfg->data_timeout, 300);
    assert_int_equal(cfg->close_timeout, 5);
    assert_int_equal(cfg->max_connections, 1000);
    assert_int_equal(cfg->max_connections_per_ip, 50);
    assert_int_equal(cfg->per_ip_ipv6_prefix, 64);
    assert_int_equal(cfg->shutdown_timeout, 10);
    assert_int_equal(cfg->delivery_retry, 60);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);

    assert_int_equal(cfg->listener_count, 1);
    assert_string_equal(l->name, "mx");
    assert_int_equal(l->role, ROLE_MX);
    assert_int_equal(l->tls, LTLS_NONE);
    assert_false(l->require_tls);
    assert_int_equal(l->cleartext_count, 2);
    assert_string_equal(l->cleartext_recipients[0], "postmaster");
    assert_string_equal(l->cleartext_recipients[1], "abuse");

    assert_int_equal(cfg->domain_count, 1);
    assert_string_equal(cfg->domains[0].name, "example.test");
    assert_null(cfg->domains[0].mailboxes_file);
    snprintf(path, sizeof(path), "%s/mail/{domain}/{local}", tmpdir);
    assert_string_equal(cfg->domains[0].maildir, path);

    assert_int_equal(cfg->tls.cert_count, 0);
    assert_int_equal(cfg->tls.key_count, 0);
    assert_int_equal(cfg->tls.min_version, TLS1_2_VERSION);
    assert_false(cfg->queue.hold);
    config_free(cfg);
}

/* ---- bounds -------------------------------------------------------------- */

#define GETTER(field) \
    static uint64_t get_##field(const struct config *c) { return c->field; }
GETTER(max_message_size)
GETTER(max_recipients)
GETTER(max_errors)
GETTER(max_line_length)
GETTER(max_text_line_length)
GETTER(max_output_buffer)
GETTER(command_timeout)
GETTER(data_timeout)
GETTER(close_timeout)
GETTER(max_connections)
GETTER(max_connections_per_ip)
GETTER(per_ip_ipv6_prefix)
GETTER(shutdown_timeout)
GETTER(delivery_retry)

struct bound {
    const char *key;
    uint64_t (*get)(const struct config *);
    const char *min, *max;          /* at the limits */
    uint64_t vmin, vmax;
    const char *below, *above;      /* one past; below NULL when min is 0 */
};

static const struct bound bounds[] = {
    { "max_message_size", get_max_message_size, "1k", "2G", 1024, 2147483648ULL,
      "1023", "2147483649" },
    { "max_recipients", get_max_recipients, "1", "100000", 1, 100000, "0", "100001" },
    { "max_errors", get_max_errors, "1", "1000", 1, 1000, "0", "1001" },
    { "max_line_length", get_max_line_length, "512", "65536", 512, 65536, "511", "65537" },
    { "max_text_line_length", get_max_text_line_length, "1000", "1048576",
      1000, 1048576, "999", "1048577" },
    { "max_output_buffer", get_max_output_buffer, "16k", "64M", 16384, 67108864,
      "16383", "67108865" },
    { "command_timeout", get_command_timeout, "1s", "1h", 1, 3600, "0", "3601" },
    { "data_timeout", get_data_timeout, "1", "60m", 1, 3600, "0s", "3601s" },
    { "close_timeout", get_close_timeout, "1s", "1m", 1, 60, "0", "61" },
    { "max_connections", get_max_connections, "1", "100000", 1, 100000, "0", "100001" },
    { "max_connections_per_ip", get_max_connections_per_ip, "1", "100000",
      1, 100000, "0", "100001" },
    { "per_ip_ipv6_prefix", get_per_ip_ipv6_prefix, "32", "128", 32, 128, "31", "129" },
    { "shutdown_timeout", get_shutdown_timeout, "0", "10m", 0, 600, NULL, "601" },
    { "delivery_retry", get_delivery_retry, "1s", "1d", 1, 86400, "0", "86401" },
};

static void check_at_limit_in(const char *section, const struct bound *b,
                              const char *text, uint64_t want)
{
    struct config *cfg = load_fmt("[%s]\n%s = %s\n" MINIMAL, section, b->key, text);

    if (!cfg)
        fail_msg("%s = %s refused: %s", b->key, text, err);
    if (b->get(cfg) != want)
        fail_msg("%s = %s gave %llu", b->key, text, (unsigned long long)b->get(cfg));
    config_free(cfg);
}

static void check_past_limit_in(const char *section, const struct bound *b,
                                const char *text)
{
    struct config *cfg = load_fmt("[%s]\n%s = %s\n" MINIMAL, section, b->key, text);

    expect_error_part(cfg, 2, "is out of range");
}

static void check_at_limit(const struct bound *b, const char *text, uint64_t want)
{
    check_at_limit_in("server", b, text, want);
}

static void check_past_limit(const struct bound *b, const char *text)
{
    check_past_limit_in("server", b, text);
}

static void test_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        check_at_limit(&bounds[i], bounds[i].min, bounds[i].vmin);
        check_at_limit(&bounds[i], bounds[i].max, bounds[i].vmax);
        if (bounds[i].below)
            check_past_limit(&bounds[i], bounds[i].below);
        check_past_limit(&bounds[i], bounds[i].above);
    }
}

static void test_bound_messages(void **state)
{
    (void)state;
    expect_error(load_text("[server]\nmax_recipients = 0\n" MINIMAL), 2,
                 "max_recipients = 0 is out of range (1..100000)");
    expect_error(load_text("[server]\nmax_message_size = 3G\n" MINIMAL), 2,
                 "max_message_size = 3G is out of range (1k..2G)");
    expect_error(load_text("[server]\n\ncommand_timeout = 2h\n" MINIMAL), 3,
                 "command_timeout = 2h is out of range (1s..1h)");
    expect_error(load_text("[server]\nmax_errors = ten\n" MINIMAL), 2,
                 "max_errors = ten: expected a whole number");
    expect_error(load_text("[server]\nmax_errors = -1\n" MINIMAL), 2,
                 "max_errors = -1: expected a whole number");
    expect_error(load_text("[server]\ndata_timeout = 5 m\n" MINIMAL), 2,
                 "data_timeout = 5 m: expected a duration like 30s, 5m, 2h or 1d");
    expect_error(load_text("[server]\nmax_recipients = 99999999999999999999999\n"
                           MINIMAL), 2, "max_recipients = 99999999999999999999999: "
                 "expected a whole number");
}

/* ---- durations and sizes ------------------------------------------------- */

static void test_durations(void **state)
{
    static const struct { const char *text; uint64_t want; } good[] = {
        { "0", 0 }, { "42", 42 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 },
        { "1d", 86400 }, { "007", 7 }, { "0s", 0 },
        { "213503982334601d", 213503982334601ULL * 86400 },
    };
    static const char *const bad[] = {
        "", "s", "5x", "5M", "-1", "+5", " 5", "5 ", "5mm", "1.5h", "5s5",
        "18446744073709551616", "213503982334602d", "0x10",
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 1;
        assert_true(config_parse_duration(good[i].text, &v));
        assert_int_equal(v, good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_duration(bad[i], &v))
            fail_msg("duration '%s' accepted", bad[i]);
}

static void test_sizes(void **state)
{
    static const struct { const char *text; uint64_t want; } good[] = {
        { "0", 0 }, { "52428800", 52428800 }, { "10k", 10240 }, { "10K", 10240 },
        { "50M", 52428800 }, { "50m", 52428800 }, { "1G", 1073741824 },
        { "2g", 2147483648ULL }, { "18446744073709551615", UINT64_MAX },
    };
    static const char *const bad[] = {
        "", "k", "1T", "1.5M", "1MB", "1 M", "-1", "M1", "18446744073709551616",
        "17179869184G",
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 1;
        assert_true(config_parse_size(good[i].text, &v));
        assert_int_equal(v, good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_size(bad[i], &v))
            fail_msg("size '%s' accepted", bad[i]);
}

static void test_duration_and_size_units_in_file(void **state)
{
    struct config *cfg = must_load(load_text(
        "[server]\nmax_message_size = 10M\ncommand_timeout = 2m\n"
        "data_timeout = 90\nshutdown_timeout = 0\ndelivery_retry = 1h\n" MINIMAL));

    (void)state;
    assert_int_equal(cfg->max_message_size, 10 * 1024 * 1024);
    assert_int_equal(cfg->command_timeout, 120);
    assert_int_equal(cfg->data_timeout, 90);
    assert_int_equal(cfg->shutdown_timeout, 0);
    assert_int_equal(cfg->delivery_retry, 3600);
    config_free(cfg);
}

/* ---- unknown names, syntax, line numbers ------------------------------- */

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error(load_text("[server]\nhostname = mx.example.test\n# comment\n"
                           "bogus = 1\n" MINIMAL), 4, "unknown key 'bogus' in [server]");
    expect_error(load_text(MINIMAL "\n[listener sub]\naddress = 127.0.0.1:587\n"
                           "   ; comment\nfoo = bar\n"), 10,
                 "unknown key 'foo' in [listener sub]");
    expect_error(load_text(MINIMAL "mailbox = x\n"), 6,
                 "unknown key 'mailbox' in [domain example.test] (did you mean 'mailboxes'?)");
    expect_error(load_text("[server]\nHostname = mx.example.test\n" MINIMAL), 2,
                 "unknown key 'Hostname' in [server] (did you mean 'hostname'?)");
    /* a typo two edits away gets a suggestion; a word that is no typo none */
    expect_error(load_text("[server]\nhostnmae = mx.example.test\n" MINIMAL), 2,
                 "unknown key 'hostnmae' in [server] (did you mean 'hostname'?)");
    expect_error(load_text(MINIMAL "[queue]\ncolour = blue\n"), 7,
                 "unknown key 'colour' in [queue]");
}

static void test_fingerprints(void **state)
{
    const char *hex = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
    struct config *cfg;

    (void)state;
    cfg = must_load(load_fmt(MINIMAL "[destination pinned.test]\nsecurity = fingerprint\n"
                             "fingerprints = %s,\n"
                             "  AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:"
                             "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\n  %s\n", hex,
                             hex));
    assert_int_equal(cfg->destination_count, 1);
    assert_int_equal(cfg->destinations[0].security, TLS_SEC_FINGERPRINT);
    assert_int_equal(cfg->destinations[0].fingerprint_count, 2);     /* duplicate folded */
    assert_int_equal(cfg->destinations[0].fingerprints[0].sha256[0], 0x01);
    assert_int_equal(cfg->destinations[0].fingerprints[0].sha256[31], 0xef);
    assert_string_equal(cfg->destinations[0].fingerprints[1].text,
                        "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899");
    config_free(cfg);
    expect_error_part(load_text(MINIMAL "[destination p.test]\nsecurity = fingerprint\n"
                                "fingerprints = abcd\n"), 8, "not a SHA-256 digest");
    expect_error_part(load_fmt(MINIMAL "[destination p.test]\nsecurity = fingerprint\n"
                               "fingerprints = %s00\n", hex), 8, "not a SHA-256 digest");
    expect_error_part(load_text(MINIMAL "[destination p.test]\nsecurity = fingerprint\n"),
                      7, "needs fingerprints");
    expect_error_part(load_fmt(MINIMAL "[destination p.test]\nsecurity = verify\n"
                               "fingerprints = %s\n", hex), 8,
                      "used only with security = fingerprint");
    expect_error_part(load_text(MINIMAL "[relay]\nsecurity = fingerprint\n"), 7,
                      "not for [relay]");
}

/* issue 15: [route D] is [destination D]; nexthop and its port; security
 * defaults to [relay]'s; relay_domains are domains, never local ones. */
static void test_routes_and_relay_domains(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[relay]\nsecurity = may\nsmtp_port = 2525\n"
                              "relay_domains = B.test a.test, b.test\n"
                              "[route b.test]\nnexthop = [10.0.0.5]\n"
                              "[destination c.test]\nnexthop = mx.c.test:26\n"
                              "security = verify\n"));
    assert_int_equal(cfg->relay.relay_domain_count, 2);
    assert_string_equal(cfg->relay.relay_domains[0], "b.test");
    assert_true(config_is_relay_domain(cfg, "a.test"));
    assert_false(config_is_relay_domain(cfg, "example.test"));
    assert_int_equal(cfg->destination_count, 2);
    assert_string_equal(cfg->destinations[0].name, "b.test");
    assert_string_equal(cfg->destinations[0].nexthop, "[10.0.0.5]");
    assert_int_equal(cfg->destinations[0].nexthop_port, 2525);
    assert_int_equal(cfg->destinations[0].security, TLS_SEC_MAY);
    assert_string_equal(cfg->destinations[1].nexthop, "mx.c.test");
    assert_int_equal(cfg->destinations[1].nexthop_port, 26);
    assert_int_equal(cfg->destinations[1].security, TLS_SEC_VERIFY);
    config_free(cfg);
    expect_error_part(load_text(MINIMAL "[relay]\nrelay_domains = Example.test\n"), 7,
                      "relay_domains: example.test has a [domain] section");
    expect_error_part(load_text(MINIMAL "[relay]\nrelay_domains = not_a domain!\n"), 7,
                      "is not a domain name");
    expect_error_part(load_text(MINIMAL "[route b.test]\nnexthop = [b.test\n"), 7,
                      "nexthop");
    expect_error_part(load_text(MINIMAL "[route b.test]\n[destination B.test]\n"), 7,
                      "duplicate section");
    expect_error_part(load_text(MINIMAL "[route]\n"), 6, "needs a name");
}

static void test_unknown_section(void **state)
{
    (void)state;
    expect_error(load_text(MINIMAL "\n[foo]\nx = 1\n"), 7, "unknown section [foo]");
    /* no keys after it: still found */
    expect_error(load_text(MINIMAL "[smtp  relay]\n"), 6, "unknown section [smtp relay]");
    expect_error(load_text("[Server]\n" MINIMAL), 1, "unknown section [Server]");
}

static void test_section_names(void **state)
{
    (void)state;
    expect_error(load_text("[listener]\n" MINIMAL), 1,
                 "section [listener] needs a name: [listener NAME]");
    expect_error(load_text("[server main]\n" MINIMAL), 1, "section [server] takes no name");
    expect_error_part(load_text("[listener a.b]\n" MINIMAL), 1, "invalid listener name 'a.b'");
    expect_error(load_text(MINIMAL "[listener mx]\n"), 6, "duplicate section [listener mx]");
    expect_error(load_text(MINIMAL "[domain EXAMPLE.test]\n"), 6,
                 "duplicate section [domain EXAMPLE.test]");
    expect_error(load_text("[server]\n[tls]\n[server]\n" MINIMAL), 3,
                 "duplicate section [server] (first on line 1)");
    expect_error(load_text("[domain -bad.example]\n" MINIMAL), 1,
                 "invalid domain name '-bad.example'");
    expect_error(load_text("[domain 192.0.2.1]\n" MINIMAL), 1,
                 "invalid domain name '192.0.2.1'");
    expect_error(load_text("[domain a..b]\n" MINIMAL), 1, "invalid domain name 'a..b'");
    expect_error(load_text(MINIMAL "[server\n"), 6, "syntax error: missing ']'");
    expect_error(load_text(MINIMAL "[tls] x\n"), 6, "unexpected text after ']'");
}

static void test_section_header_details(void **state)
{
    struct config *cfg;
    const char *long_domain =
        "a-rather-long-subdomain.of-an-organisation.example.test";

    (void)state;
    /* longer than inih's 49-byte section buffer; comment after ']' */
    cfg = must_load(load_fmt("[listener mx]\naddress = 127.0.0.1:25\n"
                             "[domain %s] ; long\nmaildir = /m/{local}\n"
                             "[ listener  second_one ]\naddress = 127.0.0.1:26\n",
                             long_domain));
    assert_string_equal(cfg->domains[0].name, long_domain);
    assert_string_equal(cfg->domains[0].maildir, "/m/{local}");
    assert_string_equal(cfg->listeners[1].name, "second_one");
    config_free(cfg);
}

static void test_domains(void **state)
{
    struct config *cfg = must_load(load_text(
        "[listener mx]\naddress = 127.0.0.1:25\n"
        "[domain Example.TEST]\nmaildir = /m/{domain}/{local}\n"
        "[domain other.example]\nmaildir = /o/{local}\n"));

    (void)state;
    assert_int_equal(cfg->domain_count, 2);
    assert_string_equal(cfg->domains[0].name, "example.test");
    assert_ptr_equal(config_find_domain(cfg, "example.test"), &cfg->domains[0]);
    assert_ptr_equal(config_find_domain(cfg, "EXAMPLE.Test"), &cfg->domains[0]);
    assert_ptr_equal(config_find_domain(cfg, "other.example"), &cfg->domains[1]);
    assert_null(config_find_domain(cfg, "example"));
    assert_null(config_find_domain(cfg, "sub.example.test"));
    assert_string_equal(cfg->postmaster, "postmaster@example.test");
    config_free(cfg);
}

static void test_too_many_sections(void **state)
{
    char text[8192];
    size_t used = 0;

    (void)state;
    used += (size_t)snprintf(text, sizeof(text), "[domain example.test]\nmaildir = /m/{local}\n");
    for (int i = 0; i <= CONFIG_MAX_LISTENERS; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used,
                                 "[listener l%d]\naddress = 127.0.0.1:%d\n", i, 1000 + i);
    expect_error(load_text(text), 2 + 2 * CONFIG_MAX_LISTENERS + 1,
                 "too many listeners (max 16)");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error(load_text("[server]\nhostname mx.example.test\n" MINIMAL), 2,
                 "syntax error: expected 'key = value', '[section]' or a comment");
    /* inih's syntax error comes before our own later error */
    expect_error_part(load_text("[server]\njunk\nbogus = 1\n" MINIMAL), 2, "syntax error");
    expect_error(load_text("hostname = mx.example.test\n[server]\n" MINIMAL), 1,
                 "key 'hostname' outside of any section");
    expect_error(load_text("[server]\nhostname =\n" MINIMAL), 2,
                 "missing value for hostname in [server]");
}

static void test_duplicate_keys(void **state)
{
    struct config *cfg;

    (void)state;
    expect_error(load_text("[server]\nmax_errors = 5\nmax_errors = 6\n" MINIMAL), 3,
                 "duplicate key 'max_errors' in [server]");
    expect_error(load_text("[server]\nhostname = a.example\n  b.example\n" MINIMAL), 3,
                 "hostname in [server] takes a single value (an indented line "
                 "continues the key above it)");
    expect_error(load_text(MINIMAL "maildir = /x/{local}\n"), 6,
                 "duplicate key 'maildir' in [domain example.test]");
    /* lists may repeat */
    cfg = must_load(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:1\n"
                              "address = 127.0.0.1:2\n"));
    assert_int_equal(cfg->listeners[1].address_count, 2);
    config_free(cfg);
}

static void test_comments_and_line_endings(void **state)
{
    struct config *cfg;

    (void)state;
    /* ';' starts a comment only after a blank */
    expect_error(load_text("[server]\nmax_errors = 7;no-space\n" MINIMAL), 2,
                 "max_errors = 7;no-space: expected a whole number");
    cfg = must_load(load_text(
        "\xEF\xBB\xBF# BOM, then a comment\r\n"
        "[server]   ; inline\r\n"
        "  # indented comment\r\n"
        "hostname = mx.example.test ; inline comment\r\n"
        "\t\r\n"
        "[listener mx]\r\naddress = 127.0.0.1:25\r\n"
        "[domain example.test]\r\nmaildir = /m/{local}\r\n"));
    assert_string_equal(cfg->hostname, "mx.example.test");
    config_free(cfg);
}

static void test_control_characters(void **state)
{
    static const char nul[] = "[server]\nhostname = mx\0.example.test\n";

    (void)state;
    expect_error(load_text(MINIMAL "[server]\nhostname = mx\x01.example.test\n"), 7,
                 "control character in line");
    expect_error(load_bytes(nul, sizeof(nul) - 1), 2, "control character in line");
    expect_error(load_text("[server]\nhostname = mx\r.example.test\n" MINIMAL), 2,
                 "control character in line");
}

/* ---- line length ------------------------------------------------------- */

static void test_line_too_long(void **state)
{
    char line[300];
    struct config *cfg;

    (void)state;
    memset(line, 'x', sizeof(line));
    line[0] = '#';
    line[200] = '\0';               /* 200 characters */
    expect_error(load_fmt("[server]\n\n%s\n" MINIMAL, line), 3,
                 "line too long (max 199 characters; continue long lists on "
                 "indented lines)");
    expect_error(load_fmt("[server]\n%s", line), 2,
                 "line too long (max 199 characters; continue long lists on "
                 "indented lines)");

    line[199] = '\0';               /* exactly 199: fine, also as a key line */
    cfg = must_load(load_fmt("%s\n" MINIMAL "%s\r\n", line, line));
    config_free(cfg);
    memcpy(line, "spool = /", 9);
    cfg = must_load(load_fmt("[server]\n%s\n" MINIMAL, line));
    assert_int_equal(strlen(cfg->spool), 199 - 8);
    config_free(cfg);
    /* and without a final newline */
    cfg = must_load(load_fmt(MINIMAL "[server]\n%s", line));
    assert_int_equal(strlen(cfg->spool), 199 - 8);
    config_free(cfg);
}

/* ---- paths ---------------------------------------------------------- */

static void expect_path(const char *got, const char *rel)
{
    char want[PATH_MAX];

    snprintf(want, sizeof(want), "%s%s", tmpdir, rel);
    assert_string_equal(got, want);
}

static void test_relative_paths(void **state)
{
    struct config *cfg;

    (void)state;
    write_file("users", "alice\n");
    cfg = must_load(load_text(
        "[server]\nspool = ../var/spool\n"
        "[listener mx]\naddress = 127.0.0.1:25\n"
        "[domain example.test]\nmailboxes = ./users\nmaildir = ../mail/{domain}/{local}\n"
        "[domain b.example]\nmailboxes = users\nmaildir = .//maildirs/../x/{local}/\n"
        "[domain c.example]\nmailboxes = ../etc/users\nmaildir = /srv/{domain}/{local}\n"
        "[tls]\ncertificate = certs/a.pem\nprivate_key = ../keys/a.key\n"));
    expect_path(cfg->spool, "/var/spool");
    expect_path(cfg->domains[0].mailboxes_file, "/etc/users");
    expect_path(cfg->domains[0].maildir, "/mail/{domain}/{local}");
    expect_path(cfg->domains[1].mailboxes_file, "/etc/users");
    expect_path(cfg->domains[1].maildir, "/etc/maildirs/../x/{local}/");
    expect_path(cfg->domains[2].mailboxes_file, "/etc/users");
    assert_string_equal(cfg->domains[2].maildir, "/srv/{domain}/{local}");
    expect_path(cfg->tls.certificates[0], "/etc/certs/a.pem");
    expect_path(cfg->tls.private_keys[0], "/keys/a.key");
    config_free(cfg);

    cfg = must_load(load_text("[server]\nspool = ../../../../../../../../../../../x\n"
                              MINIMAL));
    assert_string_equal(cfg->spool, "/x");
    config_free(cfg);
    cfg = must_load(load_text("[server]\nspool = .\n" MINIMAL));
    assert_string_equal(cfg->spool, etcdir);
    config_free(cfg);
}

static void test_mailboxes_and_maildir(void **state)
{
    char want[PATH_MAX + 64];

    (void)state;
    write_file("users", "alice\n");
    snprintf(want, sizeof(want), "cannot read '%s/nope': No such file or directory", etcdir);
    expect_error(load_text(MINIMAL "mailboxes = nope\n"), 6, want);
    snprintf(want, sizeof(want), "'%s' is not a regular file", tmpdir);
    expect_error(load_text(MINIMAL "mailboxes = ..\n"), 6, want);
    expect_error(load_text("[listener mx]\naddress = 127.0.0.1:25\n"
                           "[domain example.test]\nmaildir = /var/mail/{domain}\n"),
                 4, "maildir '/var/mail/{domain}' must contain {local}");
    expect_error_part(load_text("[listener mx]\naddress = 127.0.0.1:25\n"
                                "[domain example.test]\nmaildir = /m/{user}/{local}\n"),
                      4, "unknown placeholder");
    expect_error(load_text("[listener mx]\naddress = 127.0.0.1:25\n"
                           "\n[domain example.test]\nmailboxes = users\n"), 4,
                 "missing required key 'maildir' in [domain example.test]");
}

/* ---- required sections and keys --------------------------------------- */

static void test_required(void **state)
{
    (void)state;
    expect_error(load_text("[domain example.test]\nmaildir = /m/{local}\n"), 0,
                 "no [listener NAME] section; at least one is required");
    expect_error(load_text("[listener mx]\naddress = 127.0.0.1:25\n"), 0,
                 "no [domain NAME] section; at least one is required");
    expect_error(load_text(MINIMAL "\n[listener empty]\nrole = mx\n"), 7,
                 "missing required key 'address' in [listener empty]");
    expect_error(load_text(MINIMAL "[listener empty]\naddress = ,\n"), 7,
                 "address in [listener empty] lists no address");
    snprintf(conf_path, sizeof(conf_path), "%s/absent.conf", etcdir);
    err[0] = '\0';
    assert_null(config_load(conf_path, err, sizeof(err)));
    expect_error(NULL, 0, "cannot open: No such file or directory");
    snprintf(conf_path, sizeof(conf_path), "%s/sealpost.conf", etcdir);
}

/* ---- TLS ------------------------------------------------------------- */

static void test_multiple_certificates(void **state)
{
    struct config *cfg = must_load(load_text(
        MINIMAL
        "[tls]\n"
        "certificate = rsa.pem\n"
        "certificate = /etc/ssl/ecdsa.pem\n"
        "    ed25519.pem ; continuation line\n"
        "private_key = rsa.key\n"
        "private_key = /etc/ssl/ecdsa.key\n"
        "    ed25519.key\n"
        "min_version = TLSv1.3\n"));

    (void)state;
    assert_int_equal(cfg->tls.cert_count, 3);
    assert_int_equal(cfg->tls.key_count, 3);
    expect_path(cfg->tls.certificates[0], "/etc/rsa.pem");
    assert_string_equal(cfg->tls.certificates[1], "/etc/ssl/ecdsa.pem");
    expect_path(cfg->tls.certificates[2], "/etc/ed25519.pem");
    expect_path(cfg->tls.private_keys[0], "/etc/rsa.key");
    assert_string_equal(cfg->tls.private_keys[1], "/etc/ssl/ecdsa.key");
    expect_path(cfg->tls.private_keys[2], "/etc/ed25519.key");
    assert_int_equal(cfg->tls.min_version, TLS1_3_VERSION);
    /* a certificate makes starttls the default */
    assert_int_equal(cfg->listeners[0].tls, LTLS_STARTTLS);
    config_free(cfg);

    expect_error(load_text(MINIMAL "[tls]\ncertificate = 1\ncertificate = 2\n"
                           "certificate = 3\ncertificate = 4\ncertificate = 5\n"), 11,
                 "too many certificate values (max 4)");
    expect_error(load_text(MINIMAL "[tls]\nmin_version = TLSv1.1\n"), 7,
                 "min_version = TLSv1.1: expected one of TLSv1.2 TLSv1.3");
}

static void test_cert_key_mismatch(void **state)
{
    (void)state;
    expect_error(load_text(MINIMAL "\n[tls]\ncertificate = a.pem\ncertificate = b.pem\n"
                           "private_key = a.key\n"), 7,
                 "[tls] has 2 certificate(s) but 1 private_key(s); they pair up in order");
    expect_error(load_text(MINIMAL "[tls]\nprivate_key = a.key\n"), 6,
                 "[tls] has 0 certificate(s) but 1 private_key(s); they pair up in order");
}

static void test_require_tls(void **state)
{
    struct config *cfg;

    (void)state;
    expect_error(load_text(MINIMAL "[listener s]\naddress = 127.0.0.1:587\ntls = none\n"
                           "require_tls = yes\n"), 9,
                 "require_tls = yes in [listener s] needs tls = starttls or implicit");
    expect_error(load_text(MINIMAL "[listener s]\naddress = 127.0.0.1:587\n"
                           "require_tls = yes\n"), 8,
                 "require_tls = yes in [listener s] needs tls = starttls or implicit "
                 "(tls is none by default when [tls] has no certificate)");
    expect_error(load_text(MINIMAL "[listener s]\naddress = 127.0.0.1:465\n"
                           "tls = implicit\n"), 8,
                 "tls = implicit in [listener s] needs a certificate in [tls]");
    write_file("subusers", "");
    cfg = must_load(load_text(MINIMAL "[submission]\nusers = subusers\n"
                              "[listener s]\naddress = 127.0.0.1:587\n"
                              "role = submission\nrequire_tls = yes\n"
                              "[listener i]\naddress = 127.0.0.1:465\ntls = implicit\n"
                              "[listener p]\naddress = 127.0.0.1:26\ntls = none\n"
                              "[tls]\ncertificate = c.pem\nprivate_key = c.key\n"));
    assert_int_equal(cfg->listeners[1].role, ROLE_SUBMISSION);
    assert_int_equal(cfg->listeners[1].tls, LTLS_STARTTLS);
    assert_true(cfg->listeners[1].require_tls);
    assert_int_equal(cfg->listeners[2].tls, LTLS_IMPLICIT);
    assert_int_equal(cfg->listeners[3].tls, LTLS_NONE);
    config_free(cfg);
}

/* ---- [queue] ------------------------------------------------------------ */

static char *print_to_string(const struct config *cfg);

static void test_queue_hold(void **state)
{
    struct config *cfg;
    char *out;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[queue]\nhold = yes\n"));
    assert_true(cfg->queue.hold);
    out = print_to_string(cfg);
    assert_non_null(strstr(out, "\n[queue]\nhold = yes\n"));
    free(out);
    config_free(cfg);

    cfg = must_load(load_text("[queue]\nhold = off\n" MINIMAL));
    assert_false(cfg->queue.hold);
    config_free(cfg);

    /* an empty [queue] section takes the default */
    cfg = must_load(load_text(MINIMAL "[queue]\n"));
    assert_false(cfg->queue.hold);
    config_free(cfg);

    expect_error(load_text(MINIMAL "[queue]\nhold = maybe\n"), 7,
                 "hold = maybe: expected yes or no");
    expect_error(load_text(MINIMAL "[queue]\nhold = yes\nhold = no\n"), 8,
                 "duplicate key 'hold' in [queue]");
    expect_error(load_text(MINIMAL "[queue]\nhold = yes\n[queue]\n"), 8,
                 "duplicate section [queue] (first on line 6)");
    expect_error(load_text(MINIMAL "[queue]\nholds = yes\n"), 7,
                 "unknown key 'holds' in [queue] (did you mean 'hold'?)");
    expect_error(load_text(MINIMAL "[queue q]\n"), 6,
                 "section [queue] takes no name");
    expect_error(load_text(MINIMAL "[queue]\nhold =\n"), 7,
                 "missing value for hold in [queue]");
}

/* ---- [relay] ------------------------------------------------------------ */

static void test_relay_defaults(void **state)
{
    static const unsigned retry[] = { 300, 600, 1200, 2400, 3600 };
    struct config *cfg = must_load(load_text(MINIMAL));
    const struct relay_config *rc = &cfg->relay;

    (void)state;
    assert_int_equal(rc->network_count, 0);
    assert_false(cidr_match_text(rc->networks, rc->network_count, "127.0.0.1"));
    assert_int_equal(rc->smtp_port, 25);
    assert_null(rc->relayhost);
    assert_int_equal(rc->relayhost_port, 25);
    assert_null(rc->resolver);
    assert_null(rc->trust_anchor);
    assert_null(rc->unbound_config);
    assert_string_equal(rc->helo_name, cfg->hostname);
    assert_int_equal(rc->retry_count, 5);
    assert_memory_equal(rc->retry, retry, sizeof(retry));
    assert_int_equal(rc->max_queue_lifetime, 5 * 86400);
    assert_int_equal(rc->bounce_lifetime, 5 * 86400);
    assert_int_equal(rc->bounce_after_warning, 0);
    assert_int_equal(rc->destination_concurrency, 20);
    assert_int_equal(rc->max_outbound_connections, 200);
    assert_int_equal(rc->connect_timeout, 30);
    assert_int_equal(rc->smtp_timeout, 0);
    assert_int_equal(rc->dns_timeout, 30);
    config_free(cfg);

    /* an empty section takes the defaults; helo_name follows hostname */
    cfg = must_load(load_text("[server]\nhostname = mx.example.test\n" MINIMAL
                              "[relay]\n"));
    assert_string_equal(cfg->relay.helo_name, "mx.example.test");
    assert_int_equal(cfg->relay.retry_count, 5);
    assert_int_equal(cfg->relay.smtp_port, 25);
    config_free(cfg);
}

static void test_relay_section(void **state)
{
    (void)state;
    expect_error(load_text(MINIMAL "[relay]\nsmtp_port = 25\n[relay]\n"), 8,
                 "duplicate section [relay] (first on line 6)");
    expect_error(load_text(MINIMAL "[relay r]\n"), 6, "section [relay] takes no name");
    expect_error(load_text(MINIMAL "[relay]\nrelay_host = a.example\n"), 7,
                 "unknown key 'relay_host' in [relay] (did you mean 'relayhost'?)");
    expect_error(load_text(MINIMAL "[relay]\nsmtp_port = 25\nsmtp_port = 26\n"), 8,
                 "duplicate key 'smtp_port' in [relay]");
    expect_error(load_text(MINIMAL "[relay]\nrelayhost =\n"), 7,
                 "missing value for relayhost in [relay]");
}

#define RGETTER(field) \
    static uint64_t get_relay_##field(const struct config *c) { return c->relay.field; }
RGETTER(smtp_port)
RGETTER(max_queue_lifetime)
RGETTER(bounce_lifetime)
RGETTER(bounce_after_warning)
RGETTER(destination_concurrency)
RGETTER(max_outbound_connections)
RGETTER(connect_timeout)
RGETTER(smtp_timeout)
RGETTER(dns_timeout)

static const struct bound relay_bounds[] = {
    { "smtp_port", get_relay_smtp_port, "1", "65535", 1, 65535, "0", "65536" },
    { "max_queue_lifetime", get_relay_max_queue_lifetime, "1s", "100d", 1, 8640000,
      "0", "8640001" },
    { "bounce_lifetime", get_relay_bounce_lifetime, "1", "2400h", 1, 8640000,
      "0s", "101d" },
    { "bounce_after_warning", get_relay_bounce_after_warning, "0", "4h", 0, 14400,
      NULL, "101d" },
    { "destination_concurrency", get_relay_destination_concurrency, "1", "1000",
      1, 1000, "0", "1001" },
    { "max_outbound_connections", get_relay_max_outbound_connections, "1", "100000",
      1, 100000, "0", "100001" },
    { "connect_timeout", get_relay_connect_timeout, "1s", "10m", 1, 600, "0", "601" },
    { "smtp_timeout", get_relay_smtp_timeout, "0", "1h", 0, 3600, NULL, "3601" },
    { "dns_timeout", get_relay_dns_timeout, "1s", "600s", 1, 600, "0", "11m" },
};

static void test_relay_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(relay_bounds) / sizeof(relay_bounds[0]); i++) {
        const struct bound *b = &relay_bounds[i];
        check_at_limit_in("relay", b, b->min, b->vmin);
        check_at_limit_in("relay", b, b->max, b->vmax);
        if (b->below)
            check_past_limit_in("relay", b, b->below);
        check_past_limit_in("relay", b, b->above);
    }
    expect_error(load_text(MINIMAL "[relay]\nconnect_timeout = 1 m\n"), 7,
                 "connect_timeout = 1 m: expected a duration like 30s, 5m, 2h or 1d");
    expect_error(load_text(MINIMAL "[relay]\nmax_queue_lifetime = 5w\n"), 7,
                 "max_queue_lifetime = 5w: expected a duration like 30s, 5m, 2h or 1d");
    expect_error(load_text(MINIMAL "[relay]\nsmtp_port = 0\n"), 7,
                 "smtp_port = 0 is out of range (1..65535)");
    expect_error(load_text(MINIMAL "[relay]\ndns_timeout = 1h\n"), 7,
                 "dns_timeout = 1h is out of range (1s..10m)");
    expect_error(load_text(MINIMAL "[relay]\nsmtp_port = smtp\n"), 7,
                 "smtp_port = smtp: expected a whole number");
}

static void test_trusted_networks(void **state)
{
    struct config *cfg;
    const struct relay_config *rc;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[relay]\ntrusted_networks = 127.0.0.0/8, ::1/128\n"));
    rc = &cfg->relay;
    assert_int_equal(rc->network_count, 2);
    assert_string_equal(rc->networks[0].text, "127.0.0.0/8");
    assert_string_equal(rc->networks[1].text, "::1/128");
    assert_true(cidr_match_text(rc->networks, rc->network_count, "127.1.2.3"));
    assert_true(cidr_match_text(rc->networks, rc->network_count, "::1"));
    assert_false(cidr_match_text(rc->networks, rc->network_count, "192.0.2.1"));
    config_free(cfg);

    /* blanks and commas, continuation lines, repeated keys, bare addresses,
     * normalised text, duplicates dropped */
    cfg = must_load(load_text(MINIMAL "[relay]\n"
        "trusted_networks = 10.0.0.0/8 192.168.0.0/16,172.16.0.0/12\n"
        "    2001:DB8:0::/32 ,, 192.0.2.7\n"
        "trusted_networks = 10.0.0.0/8\t0.0.0.0/0\n"));
    rc = &cfg->relay;
    assert_int_equal(rc->network_count, 6);
    assert_string_equal(rc->networks[0].text, "10.0.0.0/8");
    assert_string_equal(rc->networks[1].text, "192.168.0.0/16");
    assert_string_equal(rc->networks[2].text, "172.16.0.0/12");
    assert_string_equal(rc->networks[3].text, "2001:db8::/32");
    assert_string_equal(rc->networks[4].text, "192.0.2.7/32");
    assert_string_equal(rc->networks[5].text, "0.0.0.0/0");
    config_free(cfg);

    /* empty: nobody */
    cfg = must_load(load_text(MINIMAL "[relay]\ntrusted_networks =\n"));
    assert_int_equal(cfg->relay.network_count, 0);
    config_free(cfg);

    expect_error(load_text(MINIMAL "[relay]\ntrusted_networks = 127.0.0.0/8, 10.0.0.1/8\n"),
                 7, "trusted_networks: 10.0.0.1/8 has host bits set; "
                 "did you mean 10.0.0.0/8?");
    expect_error(load_text(MINIMAL "[relay]\ntrusted_networks = 2001:db8::1/32\n"), 7,
                 "trusted_networks: 2001:db8::1/32 has host bits set; "
                 "did you mean 2001:db8::/32?");
    expect_error(load_text(MINIMAL "[relay]\ntrusted_networks = 192.168.1.1/23\n"), 7,
                 "trusted_networks: 192.168.1.1/23 has host bits set; "
                 "did you mean 192.168.0.0/23?");
    expect_error(load_text(MINIMAL "[relay]\ntrusted_networks = ::1\n  10.0.0/8\n"), 8,
                 "trusted_networks: '10.0.0/8' is not a network like 192.0.2.0/24, "
                 "2001:db8::/32 or a single address");
    static const char *const bad[] = {
        "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
        "10.0.0.0/+8", "/8", "example.com", "10.0.0.256/32", "[::1]/128",
        "localhost", "10.0.0.0/8/8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = load_fmt(MINIMAL "[relay]\ntrusted_networks = %s\n", bad[i]);
        expect_error_part(cfg, 7, "is not a network like");
    }
}

static void test_trusted_networks_limit(void **state)
{
    char text[8192];
    size_t used;
    struct config *cfg;

    (void)state;
    used = (size_t)snprintf(text, sizeof(text), MINIMAL "[relay]\ntrusted_networks =");
    for (int i = 0; i < CONFIG_MAX_NETWORKS; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "\n  10.%d.0.0/16", i);
    snprintf(text + used, sizeof(text) - used, "\n");
    cfg = must_load(load_text(text));
    assert_int_equal(cfg->relay.network_count, CONFIG_MAX_NETWORKS);
    assert_string_equal(cfg->relay.networks[63].text, "10.63.0.0/16");
    config_free(cfg);

    snprintf(text + used, sizeof(text) - used, "\n  10.200.0.0/16\n");
    expect_error(load_text(text), 7 + CONFIG_MAX_NETWORKS + 1,
                 "too many trusted_networks (max 64)");
}

static void test_relayhost(void **state)
{
    static const struct { const char *text, *host; unsigned port; } good[] = {
        { "[127.0.0.1]:10026", "[127.0.0.1]", 10026 },
        { "[mx.example.net]", "[mx.example.net]", 25 },
        { "smarthost.example.net:587", "smarthost.example.net", 587 },
        { "smarthost.example.net", "smarthost.example.net", 25 },
        { "SmartHost.Example.NET", "SmartHost.Example.NET", 25 },
        { "[IPv6:2001:db8::1]:25", "[IPv6:2001:db8::1]", 25 },
        { "[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]", 25 },
        { "[2001:db8::1]:2525", "[2001:db8::1]", 2525 },
        { "[192.0.2.1]:65535", "[192.0.2.1]", 65535 },
        { "localhost:1", "localhost", 1 },
    };
    struct config *cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cfg = load_fmt(MINIMAL "[relay]\nrelayhost = %s\n", good[i].text);
        if (!cfg)
            fail_msg("relayhost = %s refused: %s", good[i].text, err);
        assert_string_equal(cfg->relay.relayhost, good[i].host);
        assert_int_equal(cfg->relay.relayhost_port, good[i].port);
        config_free(cfg);
    }

    /* without a port, relayhost_port is smtp_port, wherever it is set */
    cfg = must_load(load_text(MINIMAL "[relay]\nrelayhost = [mx.example.net]\n"
                              "smtp_port = 2525\n"));
    assert_int_equal(cfg->relay.smtp_port, 2525);
    assert_int_equal(cfg->relay.relayhost_port, 2525);
    config_free(cfg);
    cfg = must_load(load_text("[relay]\nsmtp_port = 2526\nrelayhost = a.example:587\n"
                              MINIMAL));
    assert_int_equal(cfg->relay.relayhost_port, 587);
    config_free(cfg);
    cfg = must_load(load_text(MINIMAL "[relay]\nsmtp_port = 26\n"));
    assert_null(cfg->relay.relayhost);
    assert_int_equal(cfg->relay.relayhost_port, 26);
    config_free(cfg);
}

static void test_bad_relayhost(void **state)
{
    static const struct { const char *text, *msg; } bad[] = {
        { "127.0.0.1", "an IP address must be in brackets, like [127.0.0.1]" },
        { "127.0.0.1:25", "an IP address must be in brackets, like [127.0.0.1]" },
        { "2001:db8::1", "an IPv6 address must be in brackets, like [IPv6:2001:db8::1]:25" },
        { "[127.0.0.1", "expected [HOST] or [HOST]:PORT" },
        { "[127.0.0.1]25", "expected [HOST] or [HOST]:PORT" },
        { "[a.example]:25:26", "port '25:26' in [a.example]:25:26 must be 1..65535" },
        { "[]", "'' is not an IPv4 address, an IPv6 address or a host name" },
        { "[IPv6:192.0.2.1]",
          "'IPv6:192.0.2.1' is not an IPv4 address, an IPv6 address or a host name" },
        { "[300.1.1.1]", "'300.1.1.1' is not an IPv4 address, an IPv6 address or a host name" },
        { "[bad_name.example]",
          "'bad_name.example' is not an IPv4 address, an IPv6 address or a host name" },
        { "a.example:0", "port '0' in a.example:0 must be 1..65535" },
        { "a.example:65536", "port '65536' in a.example:65536 must be 1..65535" },
        { "a.example:", "port '' in a.example: must be 1..65535" },
        { "[a.example]:", "port '' in [a.example]: must be 1..65535" },
        { "a.example:smtp", "port 'smtp' in a.example:smtp must be 1..65535" },
        { ":25", "'' is not a valid host name" },
        { "a.example.", "'a.example.' is not a valid host name" },
        { "a.example]", "'a.example]' is not a valid host name" },
        { "-a.example", "'-a.example' is not a valid host name" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char msg[512];
        snprintf(msg, sizeof(msg), "relayhost = %s: %s", bad[i].text, bad[i].msg);
        expect_error(load_fmt(MINIMAL "[relay]\nrelayhost = %s\n", bad[i].text), 7, msg);
    }
    expect_error_part(load_text(MINIMAL "[relay]\nrelayhost = a.example, b.example\n"),
                      7, "is not a valid host name");
}

static void test_resolver(void **state)
{
    static const char *const good[] = {
        "127.0.0.1", "127.0.0.1@5353", "::1", "2001:db8::53@53", "192.0.2.1@65535",
    };
    static const char *const bad[] = {
        "localhost", "127.0.0.1:53", "[::1]@53", "@53", "127.0.0.1@", "1.2.3.4@0",
        "1.2.3.4@65536", "1.2.3.4@53@53", "1.2.3",
    };
    struct config *cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cfg = load_fmt(MINIMAL "[relay]\nresolver = %s\n", good[i]);
        if (!cfg)
            fail_msg("resolver = %s refused: %s", good[i], err);
        assert_string_equal(cfg->relay.resolver, good[i]);
        config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = load_fmt(MINIMAL "[relay]\nresolver = %s\n", bad[i]);
        expect_error_part(cfg, 7, "resolver = ");
    }
    expect_error(load_text(MINIMAL "[relay]\nresolver = localhost\n"), 7,
                 "resolver = localhost: expected an IP address with an optional "
                 "@PORT, like 127.0.0.1 or 127.0.0.1@5353");
    expect_error(load_text(MINIMAL "[relay]\nresolver = 127.0.0.1@0\n"), 7,
                 "resolver = 127.0.0.1@0: port '0' must be 1..65535");
}

static void test_relay_files(void **state)
{
    char path[PATH_MAX + 64], msg[PATH_MAX + 128];
    struct config *cfg;

    (void)state;
    write_file("root.key", ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n");
    write_file("unbound.conf", "server:\n");
    cfg = must_load(load_text(MINIMAL "[relay]\ntrust_anchor = root.key\n"
                              "unbound_config = ./unbound.conf\n"));
    snprintf(path, sizeof(path), "%s/root.key", etcdir);
    assert_string_equal(cfg->relay.trust_anchor, path);
    snprintf(path, sizeof(path), "%s/unbound.conf", etcdir);
    assert_string_equal(cfg->relay.unbound_config, path);
    config_free(cfg);

    snprintf(path, sizeof(path), "%s/missing.key", etcdir);
    snprintf(msg, sizeof(msg), "cannot read '%s': No such file or directory", path);
    expect_error(load_text(MINIMAL "[relay]\ntrust_anchor = missing.key\n"), 7, msg);
    snprintf(msg, sizeof(msg), "cannot read '%s': No such file or directory", path);
    expect_error(load_text(MINIMAL "[relay]\nunbound_config = missing.key\n"), 7, msg);
    snprintf(msg, sizeof(msg), "'%s' is not a regular file", etcdir);
    expect_error(load_text(MINIMAL "[relay]\ntrust_anchor = .\n"), 7, msg);
}

static void test_helo_name(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = must_load(load_text("[server]\nhostname = mx.example.test\n" MINIMAL
                              "[relay]\nhelo_name = out.example.test\n"));
    assert_string_equal(cfg->hostname, "mx.example.test");
    assert_string_equal(cfg->relay.helo_name, "out.example.test");
    config_free(cfg);
    expect_error(load_text(MINIMAL "[relay]\nhelo_name = [192.0.2.1]\n"), 7,
                 "helo_name = [192.0.2.1]: not a valid domain name");
    expect_error(load_text(MINIMAL "[relay]\nhelo_name = 192.0.2.1\n"), 7,
                 "helo_name = 192.0.2.1: not a valid domain name");
    expect_error(load_text(MINIMAL "[relay]\nhelo_name = out_1.example\n"), 7,
                 "helo_name = out_1.example: not a valid domain name");
}

static void test_retry(void **state)
{
    static const unsigned one[] = { 60 };
    static const unsigned mixed[] = { 300, 600, 3600, 7200, 86400, 30, 604800 };
    struct config *cfg;
    char text[4096];
    size_t used;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[relay]\nretry = 1m\n"));
    assert_int_equal(cfg->relay.retry_count, 1);
    assert_memory_equal(cfg->relay.retry, one, sizeof(one));
    config_free(cfg);

    /* commas and/or blanks, continuation lines, repeated keys add */
    cfg = must_load(load_text(MINIMAL "[relay]\nretry = 5m,10m  1h ,\t2h,,\n"
                              "   1d\nretry = 30 7d\n"));
    assert_int_equal(cfg->relay.retry_count, 7);
    assert_memory_equal(cfg->relay.retry, mixed, sizeof(mixed));
    config_free(cfg);

    expect_error(load_text(MINIMAL "[relay]\nretry = 5m 0 1h\n"), 7,
                 "retry: 0 is out of range (1s..7d)");
    expect_error(load_text(MINIMAL "[relay]\nretry = 5m\n  8d\n"), 8,
                 "retry: 8d is out of range (1s..7d)");
    expect_error(load_text(MINIMAL "[relay]\nretry = 5m 10x\n"), 7,
                 "retry: '10x' is not a duration like 30s, 5m, 2h or 1d");
    expect_error(load_text(MINIMAL "[relay]\nretry = 5m;10m\n"), 7,
                 "retry: '5m;10m' is not a duration like 30s, 5m, 2h or 1d");
    expect_error(load_text(MINIMAL "[relay]\nretry =\n"), 7,
                 "retry in [relay] lists no interval");
    expect_error(load_text(MINIMAL "[relay]\nretry = , ,\n"), 7,
                 "retry in [relay] lists no interval");

    used = (size_t)snprintf(text, sizeof(text), MINIMAL "[relay]\nretry =");
    for (int i = 0; i < CONFIG_MAX_RETRY; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, " %dm", i + 1);
    snprintf(text + used, sizeof(text) - used, "\n");
    cfg = must_load(load_text(text));
    assert_int_equal(cfg->relay.retry_count, CONFIG_MAX_RETRY);
    assert_int_equal(cfg->relay.retry[CONFIG_MAX_RETRY - 1], CONFIG_MAX_RETRY * 60);
    config_free(cfg);
    snprintf(text + used, sizeof(text) - used, " 1h\n");
    expect_error(load_text(text), 7, "too many retry values (max 16)");
}

static void test_bounce_after_warning(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[relay]\nbounce_after_warning = 4h\n"));
    assert_int_equal(cfg->relay.bounce_after_warning, 4 * 3600);
    config_free(cfg);
    cfg = must_load(load_text(MINIMAL "[relay]\nmax_queue_lifetime = 1h\n"
                              "bounce_after_warning = 0\n"));
    assert_int_equal(cfg->relay.bounce_after_warning, 0);
    config_free(cfg);
    expect_error(load_text(MINIMAL "[relay]\nmax_queue_lifetime = 1h\n"
                           "bounce_after_warning = 60m\n"), 8,
                 "bounce_after_warning = 1h must be shorter than max_queue_lifetime "
                 "(1h), or no warning is ever sent; 0 turns warnings off");
    expect_error(load_text(MINIMAL "[relay]\nbounce_after_warning = 6d\n"), 7,
                 "bounce_after_warning = 6d must be shorter than max_queue_lifetime "
                 "(5d), or no warning is ever sent; 0 turns warnings off");
}

static void test_booleans(void **state)
{
    static const struct { const char *text; bool want; } forms[] = {
        { "yes", true }, { "no", false }, { "true", true }, { "false", false },
        { "on", true }, { "off", false }, { "1", true }, { "0", false },
        { "YES", true }, { "Off", false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct config *cfg = must_load(load_fmt(
            MINIMAL "[listener i]\naddress = 127.0.0.1:465\ntls = implicit\n"
            "require_tls = %s\n[tls]\ncertificate = c\nprivate_key = k\n", forms[i].text));
        assert_int_equal(cfg->listeners[1].require_tls, forms[i].want);
        config_free(cfg);
    }
    expect_error(load_text(MINIMAL "[listener i]\naddress = 127.0.0.1:1\n"
                           "require_tls = maybe\n"), 8,
                 "require_tls = maybe: expected yes or no");
}

/* ---- listen addresses --------------------------------------------------- */

static void check_v4(const struct listen_address *a, const char *text,
                     const char *ip, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addr;
    char buf[INET_ADDRSTRLEN];

    assert_string_equal(a->text, text);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(a->addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
}

static void check_v6(const struct listen_address *a, const char *text,
                     const char *ip, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->addr;
    char buf[INET6_ADDRSTRLEN];

    assert_string_equal(a->text, text);
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(a->addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(sin6->sin6_port), port);
    assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
}

static void test_addresses(void **state)
{
    struct config *cfg = must_load(load_text(
        "[listener mx]\n"
        "address = 127.0.0.1:2525,[::1]:2526 ,\n"
        "    *:25, 0.0.0.0:65535\n"
        "    [::]:1, [2001:db8::1]:587\n"
        "[domain example.test]\nmaildir = /m/{local}\n"));
    const struct listen_address *a = cfg->listeners[0].addresses;

    (void)state;
    assert_int_equal(cfg->listeners[0].address_count, 6);
    check_v4(&a[0], "127.0.0.1:2525", "127.0.0.1", 2525);
    check_v6(&a[1], "[::1]:2526", "::1", 2526);
    check_v4(&a[2], "*:25", "0.0.0.0", 25);
    check_v4(&a[3], "0.0.0.0:65535", "0.0.0.0", 65535);
    check_v6(&a[4], "[::]:1", "::", 1);
    check_v6(&a[5], "[2001:db8::1]:587", "2001:db8::1", 587);
    config_free(cfg);
}

static void test_bad_addresses(void **state)
{
    static const struct { const char *text, *msg; } bad[] = {
        { "127.0.0.1", "address '127.0.0.1': expected IPV4:PORT, [IPV6]:PORT or *:PORT" },
        { "::1:25", "address '::1:25': expected IPV4:PORT, [IPV6]:PORT or *:PORT" },
        { "[::1]", "address '[::1]': expected IPV4:PORT, [IPV6]:PORT or *:PORT" },
        { "[::1]25", "address '[::1]25': expected IPV4:PORT, [IPV6]:PORT or *:PORT" },
        { "127.0.0.1:0", "address '127.0.0.1:0': port must be 1..65535" },
        { "127.0.0.1:65536", "address '127.0.0.1:65536': port must be 1..65535" },
        { "127.0.0.1:+25", "address '127.0.0.1:+25': port must be 1..65535" },
        { "127.0.0.1:", "address '127.0.0.1:': port must be 1..65535" },
        { "localhost:25", "address 'localhost:25': 'localhost' is not a numeric "
                          "IPv4 address" },
        { "256.0.0.1:25", "address '256.0.0.1:25': '256.0.0.1' is not a numeric "
                          "IPv4 address" },
        { "[127.0.0.1]:25", "address '[127.0.0.1]:25': '127.0.0.1' is not a numeric "
                            "IPv6 address" },
        { "127.0.0.1:25 127.0.0.2:25", "address '127.0.0.1:25 127.0.0.2:25': "
                                       "expected IPV4:PORT, [IPV6]:PORT or *:PORT" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(load_fmt("[listener mx]\naddress = %s\n", bad[i].text), 2, bad[i].msg);
    expect_error(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:2525\n"), 7,
                 "address 127.0.0.1:2525 is already used by [listener mx]");
    expect_error(load_text("[listener mx]\naddress = [::1]:25, [0::1]:25\n"), 2,
                 "address [0::1]:25 is already used by [listener mx]");
    expect_error(load_text("[listener mx]\naddress = 127.0.0.1:1, 127.0.0.1:2, "
                           "127.0.0.1:3, 127.0.0.1:4\n  127.0.0.1:5, 127.0.0.1:6, "
                           "127.0.0.1:7, 127.0.0.1:8, 127.0.0.1:9\n"), 3,
                 "too many addresses in one listener (max 8)");
}

/* ---- recipients, postmaster, hostname, enums -------------------------- */

static void test_cleartext_recipients(void **state)
{
    struct config *cfg = must_load(load_text(
        MINIMAL "[listener b]\naddress = 127.0.0.1:1\n"
        "cleartext_recipients = Postmaster, ABUSE@Example.Test,\n"
        "    hostmaster ; comment\n"
        "    postmaster\n"
        "[listener c]\naddress = 127.0.0.1:2\ncleartext_recipients =\n"));
    const struct listener_config *l = &cfg->listeners[1];

    (void)state;
    assert_int_equal(l->cleartext_count, 3);
    assert_string_equal(l->cleartext_recipients[0], "postmaster");
    assert_string_equal(l->cleartext_recipients[1], "abuse@example.test");
    assert_string_equal(l->cleartext_recipients[2], "hostmaster");
    assert_int_equal(cfg->listeners[2].cleartext_count, 0);
    config_free(cfg);

    expect_error(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:1\n"
                           "cleartext_recipients = abuse@elsewhere.example\n"), 8,
                 "cleartext_recipients in [listener b]: abuse@elsewhere.example is "
                 "not in a local domain");
    expect_error(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:1\n"
                           "cleartext_recipients = a b\n"), 8,
                 "cleartext_recipients: 'a b' is not a local part or local@domain");
    expect_error(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:1\n"
                           "cleartext_recipients = a..b\n"), 8,
                 "cleartext_recipients: 'a..b' is not a local part or local@domain");
}

static void test_postmaster(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = must_load(load_text("[server]\npostmaster = Hostmaster@EXAMPLE.test\n" MINIMAL));
    assert_string_equal(cfg->postmaster, "Hostmaster@example.test");
    config_free(cfg);
    expect_error(load_text("[server]\npostmaster = root@elsewhere.example\n" MINIMAL), 2,
                 "postmaster = root@elsewhere.example is not in a local domain "
                 "(one with a [domain] section)");
    expect_error(load_text("[server]\npostmaster = root\n" MINIMAL), 2,
                 "postmaster = root: expected an address like local@domain");
}

static void test_hostname(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = must_load(load_text("[server]\nhostname = MX1.Example.test\n" MINIMAL));
    assert_string_equal(cfg->hostname, "MX1.Example.test");
    config_free(cfg);
    expect_error(load_text("[server]\nhostname = mx_1.example.test\n" MINIMAL), 2,
                 "hostname = mx_1.example.test: not a valid domain name");
    expect_error(load_text("[server]\nhostname = mx.example.test.\n" MINIMAL), 2,
                 "hostname = mx.example.test.: not a valid domain name");
    expect_error(load_text("[server]\nhostname = "
                           "a123456789012345678901234567890123456789012345678901234567890123"
                           ".test\n" MINIMAL), 2,
                 "hostname = a123456789012345678901234567890123456789012345678901234567890123"
                 ".test: not a valid domain name");
}

static void test_enums(void **state)
{
    static const struct { const char *text; int want; } levels[] = {
        { "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO },
        { "warn", LOG_LEVEL_WARN }, { "ERROR", LOG_LEVEL_ERROR },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        struct config *cfg = must_load(load_fmt("[server]\nlog_level = %s\n" MINIMAL,
                                                levels[i].text));
        assert_int_equal(cfg->log_level, levels[i].want);
        config_free(cfg);
    }
    expect_error(load_text("[server]\nlog_level = verbose\n" MINIMAL), 2,
                 "log_level = verbose: expected one of debug info warn error");
    expect_error(load_text(MINIMAL "[listener b]\naddress = 127.0.0.1:1\nrole = relay\n"), 8,
                 "role = relay: expected one of mx submission");
}

/* ---- config_print --------------------------------------------------------- */

static char *print_to_string(const struct config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    config_print(cfg, fp);
    assert_int_equal(fclose(fp), 0);
    return buf;
}

/* Load text, print it, load the print, print again: same output. */
static void round_trip(const char *text)
{
    struct config *first = must_load(load_text(text));
    char *printed = print_to_string(first);
    struct config *second = must_load(load_text(printed));
    char *again = print_to_string(second);

    /* the first line names the file loaded, which is the same here */
    assert_string_equal(printed, again);
    for (const char *line = printed; *line; line = strchr(line, '\n') + 1)
        if (strcspn(line, "\n") > CONFIG_LINE_MAX - 1)
            fail_msg("printed line too long: %.60s...", line);
    free(printed);
    free(again);
    config_free(first);
    config_free(second);
}

static void test_round_trip_defaults(void **state)
{
    (void)state;
    round_trip(MINIMAL);
}

static void test_round_trip_full(void **state)
{
    char text[8192];
    size_t used;

    (void)state;
    write_file("example.test.users", "alice\n");
    used = (size_t)snprintf(text, sizeof(text),
        "[server]\nhostname = mx.example.test\nspool = ../spool\n"
        "postmaster = hostmaster@example.test\nmax_message_size = 10485761\n"
        "max_recipients = 5\nmax_errors = 3\nmax_line_length = 4096\n"
        "max_text_line_length = 2000\ncommand_timeout = 90\ndata_timeout = 20m\n"
        "max_connections = 10\nmax_connections_per_ip = 2\nshutdown_timeout = 0\n"
        "delivery_retry = 1d\nlog_level = warn\n"
        "[listener mx]\naddress = 127.0.0.1:25, [::1]:25\ntls = none\n"
        "cleartext_recipients =\n"
        "[listener submission]\nrole = submission\ntls = implicit\nrequire_tls = on\n"
        "address = [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:465,\n"
        "  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:2]:465,\n"
        "  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:3]:465,\n"
        "  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:4]:465, [2001:db8::5]:465\n"
        "cleartext_recipients = ");
    for (int i = 0; i < CONFIG_MAX_CLEARTEXT; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s\n  rcpt%02d@example.test",
                                 i ? "," : "", i);
    snprintf(text + used, sizeof(text) - used,
        "\n[domain example.test]\nmailboxes = example.test.users\n"
        "maildir = ../mail/{domain}/{local}\n"
        "[domain other.example]\nmaildir = /srv/mail/{local}\n"
        "[tls]\ncertificate = a.pem\ncertificate = b.pem\n"
        "private_key = a.key\nprivate_key = b.key\nmin_version = TLSv1.3\n"
        "[queue]\nhold = yes\n"
        "[relay]\ntrusted_networks = 127.0.0.0/8 ::1/128, 192.0.2.0/24\n"
        "relayhost = [IPv6:2001:db8::1]:10026\nsmtp_port = 2525\n"
        "resolver = 2001:db8::53@5353\ntrust_anchor = root.key\n"
        "unbound_config = ../etc/unbound.conf\nhelo_name = out.example.test\n"
        "retry = 90, 3m,1h 1d 7d\nmax_queue_lifetime = 100d\nbounce_lifetime = 1s\n"
        "bounce_after_warning = 99d\ndestination_concurrency = 1000\n"
        "max_outbound_connections = 1\nconnect_timeout = 61\nsmtp_timeout = 1s\n"
        "dns_timeout = 10m\n"
        "[submission]\nusers = subusers\nsenders = subsenders\nauth_failures = 7\n"
        "auth_window = 1h\nauth_lockout = 2h\nauth_failure_delay = 0\n"
        "received_client_ip = no\n");
    write_file("subusers", "");
    write_file("subsenders", "");
    write_file("root.key", ". IN DS 1 8 2 00\n");
    write_file("unbound.conf", "server:\n");
    round_trip(text);
}

/* Effective values: the relayhost gets its port, long lists wrap. */
static void test_round_trip_relay(void **state)
{
    char text[8192];
    size_t used;
    struct config *cfg;
    char *out;

    (void)state;
    cfg = must_load(load_text(MINIMAL "[relay]\nrelayhost = smarthost.example.net\n"
                              "smtp_port = 587\n"));
    out = print_to_string(cfg);
    assert_non_null(strstr(out, "\nrelayhost = smarthost.example.net:587\n"));
    free(out);
    config_free(cfg);
    round_trip(MINIMAL "[relay]\nrelayhost = smarthost.example.net\nsmtp_port = 587\n");
    round_trip(MINIMAL "[relay]\nrelayhost = [192.0.2.1]\n");

    used = (size_t)snprintf(text, sizeof(text), MINIMAL "[relay]\ntrusted_networks =");
    for (int i = 0; i < CONFIG_MAX_NETWORKS; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used,
                                 "\n  2001:db8:%x:ffff:ffff:ffff:ffff:0/112", i);
    snprintf(text + used, sizeof(text) - used, "\nretry = 1s");
    for (int i = 1; i < CONFIG_MAX_RETRY; i++) {
        used = strlen(text);
        snprintf(text + used, sizeof(text) - used, " %ds", 604800 - i);
    }
    used = strlen(text);
    snprintf(text + used, sizeof(text) - used, "\n");
    round_trip(text);
}

static void test_print_format(void **state)
{
    struct config *cfg = must_load(load_text("[server]\nmax_message_size = 1025\n" MINIMAL));
    char *out = print_to_string(cfg);

    (void)state;
    assert_non_null(strstr(out, "\n[server]\nhostname = "));
    assert_non_null(strstr(out, "\nmax_message_size = 1025\n"));
    assert_non_null(strstr(out, "\ncommand_timeout = 5m\n"));
    assert_non_null(strstr(out, "\nshutdown_timeout = 10s\n"));
    assert_non_null(strstr(out, "\ndelivery_retry = 1m\n"));
    assert_non_null(strstr(out, "\nlog_level = info\n"));
    assert_non_null(strstr(out, "\n[listener mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                                "tls = none\nrequire_tls = no\n"
                                "cleartext_recipients = postmaster, abuse\n"));
    assert_non_null(strstr(out, "\n[domain example.test]\n# mailboxes is not set\n"));
    assert_non_null(strstr(out, "\n[tls]\n# certificate is not set\n"
                                "# private_key is not set\nmin_version = TLSv1.2\n"));
    assert_non_null(strstr(out, "\n[queue]\nhold = no\n"));
    assert_non_null(strstr(out, "\n[relay]\ntrusted_networks =\nsmtp_port = 25\n"
                                "# relayhost is not set\n# resolver is not set\n"
                                "# trust_anchor is not set\n# unbound_config is not set\n"
                                "helo_name = "));
    assert_non_null(strstr(out, "\nretry = 5m 10m 20m 40m 1h\nmax_queue_lifetime = 5d\n"
                                "bounce_lifetime = 5d\nbounce_after_warning = 0s\n"
                                "destination_concurrency = 20\n"
                                "max_outbound_connections = 200\nconnect_timeout = 30s\n"
                                "smtp_timeout = 0s\ndns_timeout = 30s\n"));
    free(out);
    config_free(cfg);
}

/* ---- the shipped files ------------------------------------------------- */

static void test_dev_config(void **state)
{
    struct config *cfg;
    size_t len;

    (void)state;
    cfg = config_load(TEST_SOURCE_DIR "/../etc/sealpost.dev.conf", err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    assert_string_equal(cfg->hostname, "mx.example.test");
    len = strlen(cfg->spool);
    assert_true(len > 10 && strcmp(cfg->spool + len - 10, "/var/spool") == 0);
    assert_int_equal(cfg->listener_count, 2);
    assert_string_equal(cfg->listeners[0].addresses[0].text, "127.0.0.1:2525");
    assert_int_equal(cfg->listeners[0].role, ROLE_MX);
    assert_int_equal(cfg->listeners[0].tls, LTLS_STARTTLS);
    assert_true(cfg->listeners[0].require_tls);
    assert_string_equal(cfg->listeners[1].name, "smtps");
    assert_string_equal(cfg->listeners[1].addresses[0].text, "127.0.0.1:4650");
    assert_int_equal(cfg->listeners[1].tls, LTLS_IMPLICIT);
    assert_int_equal(cfg->tls.cert_count, 1);
    assert_non_null(strstr(cfg->tls.certificates[0], "/var/tls/cert.pem"));
    assert_non_null(strstr(cfg->tls.private_keys[0], "/var/tls/key.pem"));
    assert_false(cfg->queue.hold);
    assert_non_null(config_find_domain(cfg, "example.test"));
    assert_non_null(strstr(cfg->domains[0].mailboxes_file, "/etc/example.test.users"));
    assert_non_null(strstr(cfg->domains[0].maildir, "/var/mail/{domain}/{local}"));
    config_free(cfg);
}

static void test_docs_cover_every_key(void **state)
{
    static const enum section_kind kinds[] = {
        SECTION_SERVER, SECTION_LISTENER, SECTION_DOMAIN, SECTION_TLS,
        SECTION_QUEUE, SECTION_RELAY, SECTION_DESTINATION,
    };
    FILE *fp = fopen(TEST_SOURCE_DIR "/../docs/CONFIGURATION.md", "r");
    char doc[65536], want[128];
    size_t len;

    (void)state;
    assert_non_null(fp);
    len = fread(doc, 1, sizeof(doc) - 1, fp);
    doc[len] = '\0';
    fclose(fp);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const struct section_def *def = config_section(kinds[k]);
        for (size_t i = 0; i < def->count; i++) {
            snprintf(want, sizeof(want), "| `%s` |", def->settings[i].name);
            if (!strstr(doc, want))
                fail_msg("docs/CONFIGURATION.md has no table row for %s", want);
        }
    }
}

/* ---- [domain] deliver (LMTP) --------------------------------------------- */

static void test_deliver_lmtp(void **state)
{
    struct lmtp_target t;
    char e[200], dir[LMTP_TARGET_MAX];
    bool lmtp;
    struct config *cfg;

    (void)state;
    assert_true(config_parse_deliver("maildir", &lmtp, &t, e, sizeof(e)));
    assert_false(lmtp);
    assert_true(config_parse_deliver("lmtp:unix:/run/dovecot/lmtp", &lmtp, &t, e, sizeof(e)));
    assert_true(lmtp && t.unix_socket);
    assert_string_equal(t.path, "/run/dovecot/lmtp");
    assert_true(config_parse_deliver("lmtp:[127.0.0.1]:24", &lmtp, &t, e, sizeof(e)));
    assert_true(!t.unix_socket && t.port == 24);
    assert_string_equal(t.host, "127.0.0.1");
    assert_true(config_parse_deliver("lmtp:[IPv6:::1]:2424", &lmtp, &t, e, sizeof(e)));
    assert_string_equal(t.host, "::1");
    assert_int_equal(t.port, 2424);
    assert_false(config_parse_deliver("lmtp:unix:run/lmtp", &lmtp, &t, e, sizeof(e)));
    assert_false(config_parse_deliver("lmtp:unix:/run/", &lmtp, &t, e, sizeof(e)));
    assert_false(config_parse_deliver("lmtp:unix:/run/../etc/x", &lmtp, &t, e, sizeof(e)));
    assert_false(config_parse_deliver("lmtp:[127.0.0.1]", &lmtp, &t, e, sizeof(e)));
    assert_false(config_parse_deliver("smtp:[127.0.0.1]:25", &lmtp, &t, e, sizeof(e)));
    assert_false(config_parse_deliver("lmtp:unix:/a/b c", &lmtp, &t, e, sizeof(e)));

    /* an LMTP domain needs no maildir; the sockets' folder is found */
    cfg = must_load(load_text("[listener mx]\naddress = 127.0.0.1:2525\n"
                              "[domain example.test]\ndeliver = lmtp:unix:/run/dovecot/lmtp\n"));
    assert_true(config_uses_lmtp(cfg));
    assert_true(config_lmtp_target(&cfg->domains[0], &t));
    config_lmtp_socket_dir(cfg, dir, sizeof(dir));
    assert_string_equal(dir, "/run/dovecot");
    assert_int_equal(cfg->domains[0].lmtp_timeout, 300);
    config_free(cfg);
    /* a Maildir domain still needs its maildir */
    expect_error_part(load_text("[listener mx]\naddress = 127.0.0.1:2525\n"
                                "[domain example.test]\n"), 3, "maildir");
    /* sockets in two folders */
    expect_error_part(load_text("[listener mx]\naddress = 127.0.0.1:2525\n"
                                "[domain a.test]\ndeliver = lmtp:unix:/run/a/lmtp\n"
                                "[domain b.test]\ndeliver = lmtp:unix:/run/b/lmtp\n"),
                      5, "one folder");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fingerprints),
        cmocka_unit_test(test_routes_and_relay_domains),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bound_messages),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_duration_and_size_units_in_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_section_names),
        cmocka_unit_test(test_section_header_details),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_too_many_sections),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_comments_and_line_endings),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_mailboxes_and_maildir),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_multiple_certificates),
        cmocka_unit_test(test_cert_key_mismatch),
        cmocka_unit_test(test_require_tls),
        cmocka_unit_test(test_queue_hold),
        cmocka_unit_test(test_relay_defaults),
        cmocka_unit_test(test_relay_section),
        cmocka_unit_test(test_relay_bounds),
        cmocka_unit_test(test_trusted_networks),
        cmocka_unit_test(test_trusted_networks_limit),
        cmocka_unit_test(test_relayhost),
        cmocka_unit_test(test_bad_relayhost),
        cmocka_unit_test(test_resolver),
        cmocka_unit_test(test_relay_files),
        cmocka_unit_test(test_helo_name),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_bounce_after_warning),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_cleartext_recipients),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_round_trip_defaults),
        cmocka_unit_test(test_round_trip_full),
        cmocka_unit_test(test_round_trip_relay),
        cmocka_unit_test(test_print_format),
        cmocka_unit_test(test_dev_config),
        cmocka_unit_test(test_docs_cover_every_key),
        cmocka_unit_test(test_deliver_lmtp),
    };

    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

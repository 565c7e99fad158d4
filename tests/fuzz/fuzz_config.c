/*
 * fuzz_config.c - libFuzzer target for the config loader
 * (src/config/, with inih): the input is written to a file in a private
 * temporary folder and loaded with config_load(), which takes a path.
 * The folder also holds a mailbox list ("example.test.users") so that
 * settings naming a readable file can succeed.
 *
 * Must never crash or leak (LeakSanitizer runs at the end of every
 * libFuzzer run). When the load succeeds, the printed effective config
 * (`sealpost check`) must load again and print the same (config.h:
 * config_print writes INI that config_load accepts). On failure the
 * error is a NUL-terminated, printable "FILE:LINE: message".
 *
 * Loading a file is slow, so the value parsers of config_syntax.c are
 * also called directly on the value of each of the first lines (the text
 * after '=', or the whole line): durations and sizes must survive a
 * format/parse round trip, listen addresses a parse of their text.
 */
#include "fuzz.h"

#include <unistd.h>

#include "config/config_internal.h"   /* the value parsers, as the unit test does */

static char dir[64];
static char conf_path[128], printed_path[128], users_path[128];

static void cleanup(void)
{
    unlink(conf_path);
    unlink(printed_path);
    unlink(users_path);
    rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "w");

    FUZZ_CHECK(fp != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, fp) == size || size == 0);
    FUZZ_CHECK(fclose(fp) == 0);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/sealpost-fuzz-XXXXXX",
             tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(conf_path, sizeof(conf_path), "%s/sealpost.conf", dir);
    snprintf(printed_path, sizeof(printed_path), "%s/printed.conf", dir);
    snprintf(users_path, sizeof(users_path), "%s/example.test.users", dir);
    write_file(users_path, "alice\nbob\n", 10);
    atexit(cleanup);
}

static char *print_config(const struct config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);

    FUZZ_CHECK(mem != NULL);
    config_print(cfg, mem);
    FUZZ_CHECK(fclose(mem) == 0);
    return text;
}

static void check_error(const char *err, size_t size)
{
    size_t len = strnlen(err, size);

    FUZZ_CHECK(len > 0 && len < size);
    FUZZ_CHECK(strncmp(err, conf_path, strlen(conf_path)) == 0 ||
               strncmp(err, printed_path, strlen(printed_path)) == 0);
}

static void check_values(const char *value)
{
    char msg[CONFIG_MSG_MAX], buf[64], host[256];
    uint64_t v, again;
    unsigned port;
    struct network net;
    struct listen_address la, la2;

    config_parse_number(value, &v);
    if (config_parse_duration(value, &v)) {
        config_format_duration(v, buf, sizeof(buf));
        FUZZ_CHECK(config_parse_duration(buf, &again) && again == v);
    }
    if (config_parse_size(value, &v)) {
        config_format_size(v, buf, sizeof(buf));
        FUZZ_CHECK(config_parse_size(buf, &again) && again == v);
    }
    config_valid_domain(value);
    config_valid_local_part(value, strlen(value));
    config_valid_listener_name(value);
    cidr_parse(value, &net);
    if (!config_parse_network(value, &net, msg, sizeof(msg)))
        FUZZ_CHECK(strnlen(msg, sizeof(msg)) < sizeof(msg));
    if (config_parse_nexthop(value, host, sizeof(host), &port, msg, sizeof(msg)))
        FUZZ_CHECK(strnlen(host, sizeof(host)) < sizeof(host) && port <= 65535);
    config_parse_resolver(value, msg, sizeof(msg));
    if (config_parse_listen_address(value, &la, msg, sizeof(msg))) {
        FUZZ_CHECK(config_parse_listen_address(la.text, &la2, msg, sizeof(msg)));
        FUZZ_CHECK(config_same_address(&la, &la2));
    }
    char *path = config_resolve_path("/srv/sealpost/etc", value, msg, sizeof(msg));
    if (path != NULL)
        FUZZ_CHECK(path[0] == '/');
    free(path);
}

/* The value part of the first lines of the input. */
static void fuzz_values(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    char *line = text;

    for (int n = 0; n < 16 && line != NULL; n++) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        char *value = eq ? eq + 1 : line;
        while (*value == ' ' || *value == '\t')
            value++;
        size_t len = strlen(value);
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\r'))
            value[--len] = '\0';
        check_values(value);
        line = next;
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct config *cfg, *again;

    if (dir[0] == '\0')
        setup();
    fuzz_values(data, size);
    write_file(conf_path, data, size);
    err[0] = '\0';
    cfg = config_load(conf_path, err, sizeof(err));
    if (cfg == NULL) {
        check_error(err, sizeof(err));
        return 0;
    }

    size_t len1, len2;
    char *text1 = print_config(cfg, &len1);
    /* config_print warns before a line too long to load again (a long
     * relative path made absolute); such a config cannot round-trip. */
    if (strstr(text1, "# warning: the next line is longer") != NULL) {
        free(text1);
        config_free(cfg);
        return 0;
    }
    write_file(printed_path, text1, len1);
    again = config_load(printed_path, err, sizeof(err));
    if (again == NULL) {
        fprintf(stderr, "printed config does not load: %s\n--- printed:\n%s---\n", err, text1);
        FUZZ_CHECK(again != NULL);
    }
    char *text2 = print_config(again, &len2);
    /* The first line names the file loaded; the rest must not change. */
    const char *body1 = strchr(text1, '\n'), *body2 = strchr(text2, '\n');
    FUZZ_CHECK(body1 != NULL && body2 != NULL);
    if (strcmp(body1, body2) != 0) {
        fprintf(stderr, "--- first print:\n%s--- second print:\n%s---\n", text1, text2);
        FUZZ_CHECK(!"config_print output changes when loaded again");
    }
    free(text1);
    free(text2);
    config_free(again);
    config_free(cfg);
    return 0;
}

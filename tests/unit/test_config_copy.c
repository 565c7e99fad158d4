/*
 * test_config_copy.c - unit tests for config_load_copy: a role parses
 * the bytes the master's config_load read and gets the same settings
 * (relative paths resolved against the original file's folder, the
 * master's host name as default), even once the file and the files it
 * names have changed or gone; and for the size bound on the config file.
 *
 * Fixtures go to a fresh mkdtemp() folder, removed at the end.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char dir[PATH_MAX];
static char conf_path[PATH_MAX + 32];
static char users_path[PATH_MAX + 32];
static char err[2048];

#define CONFIG_TEXT(server) \
    "[server]\n" server "spool = ../spool\n" \
    "[listener mx]\naddress = 127.0.0.1:2525\n" \
    "[domain example.test]\nmailboxes = users\nmaildir = ../mail/{domain}/{local}\n"

static void write_path(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/sealpost-cfgcopy-XXXXXX";

    (void)state;
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, dir));
    snprintf(conf_path, sizeof(conf_path), "%s/sealpost.conf", dir);
    snprintf(users_path, sizeof(users_path), "%s/users", dir);
    write_path(users_path, "alice\n", 6);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(conf_path);
    unlink(users_path);
    rmdir(dir);
    return 0;
}

static struct config *load(const char *text)
{
    struct config *cfg;

    write_path(conf_path, text, strlen(text));
    cfg = config_load(conf_path, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("config_load: %s", err);
    return cfg;
}

static void test_copy_matches_the_original_after_the_files_went(void **state)
{
    struct config *cfg = load(CONFIG_TEXT(""));
    struct config *copy;

    (void)state;
    assert_int_equal(cfg->text_len, strlen(CONFIG_TEXT("")));
    assert_memory_equal(cfg->text, CONFIG_TEXT(""), cfg->text_len);
    /* edited and its mailboxes file removed after the master loaded it */
    write_path(conf_path, "garbage\n", 8);
    unlink(users_path);
    assert_null(config_load(conf_path, err, sizeof(err)));
    copy = config_load_copy(cfg->text, cfg->text_len, cfg->path, "master.example",
                            err, sizeof(err));
    if (copy == NULL)
        fail_msg("config_load_copy: %s", err);
    assert_string_equal(copy->path, cfg->path);
    assert_string_equal(copy->dir, dir);
    assert_string_equal(copy->domains[0].mailboxes_file, users_path);
    assert_string_equal(copy->domains[0].mailboxes_file, cfg->domains[0].mailboxes_file);
    assert_string_equal(copy->domains[0].maildir, cfg->domains[0].maildir);
    assert_string_equal(copy->spool, cfg->spool);
    /* no hostname in the file: the master's, not the system's */
    assert_string_equal(copy->hostname, "master.example");
    assert_true(copy->replayed);
    assert_false(cfg->replayed);
    config_free(copy);
    config_free(cfg);
}

static void test_copy_keeps_a_configured_hostname(void **state)
{
    struct config *cfg = load(CONFIG_TEXT("hostname = mx.example.test\n"));
    struct config *copy = config_load_copy(cfg->text, cfg->text_len, cfg->path,
                                           "other.example", err, sizeof(err));

    (void)state;
    assert_non_null(copy);
    assert_string_equal(copy->hostname, "mx.example.test");
    config_free(copy);
    config_free(cfg);
}

static void test_copy_errors_name_the_path(void **state)
{
    static const char bad[] = "[server]\nmax_errors = many\n";
    char want[PATH_MAX + 64];

    (void)state;
    assert_null(config_load_copy(bad, strlen(bad), conf_path, "h.example", err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:2: ", conf_path);
    assert_memory_equal(err, want, strlen(want));
    /* a relative path cannot be the master's (its cfg->path is absolute) */
    assert_null(config_load_copy(bad, strlen(bad), "sealpost.conf", "h.example", err,
                                 sizeof(err)));
    assert_string_equal(err, "sealpost.conf: not a copy of a loaded config");
}

static void test_config_file_size_bound(void **state)
{
    size_t len = CONFIG_FILE_MAX + 1;
    char *text = malloc(len);
    char want[PATH_MAX + 64];

    (void)state;
    assert_non_null(text);
    memset(text, '\n', len);
    write_path(conf_path, text, len);
    assert_null(config_load(conf_path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: larger than %u bytes", conf_path, CONFIG_FILE_MAX);
    assert_string_equal(err, want);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_matches_the_original_after_the_files_went,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_keeps_a_configured_hostname, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_copy_errors_name_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_size_bound, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

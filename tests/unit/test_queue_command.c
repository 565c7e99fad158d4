/*
 * test_queue_command.c - unit tests for queue/queue_command.c, the
 * parser of `sealpost queue`'s control socket line: every form it takes,
 * and the near misses it must refuse (case, spacing, ids, lengths, NUL,
 * a line it must not read past).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue/queue_command.h"

#define ID "661D9837BF4EF000"

static bool parse(const char *line, struct queue_cmd *cmd, char *err)
{
    return queue_cmd_parse(line, strlen(line), cmd, err, 160);
}

static void test_accepted(void **state)
{
    struct queue_cmd cmd;
    char err[160];

    (void)state;
    assert_true(parse("list", &cmd, err));
    assert_int_equal(cmd.verb, QUEUE_CMD_LIST);
    assert_string_equal(cmd.id, "");
    assert_true(parse("flush", &cmd, err));
    assert_int_equal(cmd.verb, QUEUE_CMD_FLUSH);
    assert_string_equal(cmd.id, "");
    static const struct { const char *line; enum queue_cmd_verb verb; } with_id[] = {
        { "show " ID, QUEUE_CMD_SHOW },   { "flush " ID, QUEUE_CMD_FLUSH },
        { "delete " ID, QUEUE_CMD_DELETE }, { "hold " ID, QUEUE_CMD_HOLD },
        { "release " ID, QUEUE_CMD_RELEASE },
    };
    for (size_t i = 0; i < sizeof(with_id) / sizeof(with_id[0]); i++) {
        assert_true(parse(with_id[i].line, &cmd, err));
        assert_int_equal(cmd.verb, with_id[i].verb);
        assert_string_equal(cmd.id, ID);
        assert_memory_equal(queue_cmd_name(cmd.verb), with_id[i].line,
                            strlen(with_id[i].line) - sizeof(ID));
    }
    assert_false(queue_cmd_mutates(QUEUE_CMD_LIST));
    assert_false(queue_cmd_mutates(QUEUE_CMD_SHOW));
    assert_true(queue_cmd_mutates(QUEUE_CMD_DELETE));
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "", " ", "LIST", "list ", " list", "list x", "show", "show ", "delete",
        "hold  " ID, "show " ID " ", "show 661d9837bf4ef000", "show 661D9837BF4EF00",
        "show 661D9837BF4EF0000", "show 661D9837BF4EF00G", "flush ", "flush all",
        "release\t" ID, "show\r", "frobnicate", "show ../../etc/passwd",
    };
    struct queue_cmd cmd;
    char err[160];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(parse(bad[i], &cmd, err));
        assert_true(strlen(err) > 0);
        assert_string_equal(cmd.id, "");
    }
    assert_false(parse("show", &cmd, err));
    assert_string_equal(err, "show wants a queue id");
    assert_false(parse("list x", &cmd, err));
    assert_string_equal(err, "list takes no argument");
}

static void test_bounds(void **state)
{
    struct queue_cmd cmd;
    char err[160], line[QUEUE_CMD_LINE_MAX + 2];
    char *exact = malloc(sizeof("hold " ID) - 1);      /* no NUL after it */

    (void)state;
    assert_false(queue_cmd_parse("list\0x", 6, &cmd, err, sizeof(err)));
    assert_string_equal(err, "NUL in the command line");
    assert_true(queue_cmd_parse("list\nrest", 4, &cmd, err, sizeof(err)));
    memset(line, 'a', sizeof(line));
    assert_false(queue_cmd_parse(line, sizeof(line), &cmd, err, sizeof(err)));
    assert_string_equal(err, "command line too long");
    memcpy(exact, "hold " ID, sizeof("hold " ID) - 1);
    assert_true(queue_cmd_parse(exact, sizeof("hold " ID) - 1, &cmd, err, sizeof(err)));
    assert_string_equal(cmd.id, ID);
    assert_false(queue_cmd_parse(exact, sizeof("hold " ID) - 2, &cmd, err, sizeof(err)));
    free(exact);
    assert_false(queue_cmd_parse("list", 4 - 4, &cmd, err, 8));     /* small err: cut */
    assert_true(strlen(err) < 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

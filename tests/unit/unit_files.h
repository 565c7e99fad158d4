/*
 * unit_files.h - writing the small files a unit test's configuration
 * names (users, aliases, relay recipient lists) into the test's own
 * temporary folder. For the cmocka programs only: a failed write fails
 * the test.
 */
#ifndef SEALPOST_TESTS_UNIT_FILES_H
#define SEALPOST_TESTS_UNIT_FILES_H

#include <stdio.h>

/* dir/name holds text (replaced if it exists). */
static inline void unit_write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

    assert_true(n > 0 && (size_t)n < sizeof(path));
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

#endif

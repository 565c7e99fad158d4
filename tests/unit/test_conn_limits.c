/*
 * test_conn_limits.c - unit tests for smtpd/conn_limits.c: the per-IP and
 * total connection counts that all smtpd workers share.
 *
 * Keys are compared in full (exact IPv4 address, IPv6 prefix), rows are
 * summed, a full row refuses instead of failing, and counts stay exact
 * when several processes change one row at once (the table is the real
 * shared mapping; the writers are forked children, as workers are).
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpd/conn_limits.h"

#define BIG 100000u

static struct conn_key key_of(const char *ip, unsigned prefix)
{
    struct conn_key k;

    assert_true(conn_key_from_text(ip, prefix, &k));
    return k;
}

static bool same_key(const char *a, const char *b, unsigned prefix)
{
    struct conn_key ka = key_of(a, prefix), kb = key_of(b, prefix);

    return memcmp(&ka, &kb, sizeof(ka)) == 0;
}

/* The bucket the old table used: FNV-1a of the address text mod 4096. */
static unsigned old_bucket(const char *ip)
{
    unsigned h = 2166136261u;

    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % 4096;
}

static enum conn_verdict admit(struct conn_limits *cl, unsigned slot, const char *ip,
                               unsigned max_total, unsigned max_per_ip)
{
    struct conn_key k = key_of(ip, 64);

    return conn_limits_admit(cl, slot, &k, max_total, max_per_ip);
}

static void release(struct conn_limits *cl, unsigned slot, const char *ip)
{
    struct conn_key k = key_of(ip, 64);

    conn_limits_release(cl, slot, &k);
}

static unsigned count(const struct conn_limits *cl, const char *ip)
{
    struct conn_key k = key_of(ip, 64);

    return conn_limits_count(cl, &k);
}

/* ---- keys ---- */

static void test_ipv4_keys_are_exact(void **state)
{
    (void)state;
    /* the pair that shared a bucket before */
    assert_int_equal(old_bucket("127.0.0.1"), old_bucket("127.0.0.144"));
    assert_false(same_key("127.0.0.1", "127.0.0.144", 64));
    assert_true(same_key("127.0.0.1", "127.0.0.1", 64));
    assert_false(same_key("10.0.0.1", "10.0.0.2", 1));  /* no prefix for IPv4 */
    /* an IPv4 client seen through an IPv6 socket is the same client */
    assert_true(same_key("::ffff:192.0.2.7", "192.0.2.7", 64));
    assert_true(same_key("::ffff:192.0.2.7", "192.0.2.7", 32));
    assert_false(same_key("::ffff:192.0.2.7", "192.0.2.8", 32));
}

static void test_ipv6_keys_use_the_prefix(void **state)
{
    (void)state;
    assert_true(same_key("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", 64));
    assert_false(same_key("2001:db8:1:2::1", "2001:db8:1:3::1", 64));
    assert_false(same_key("2001:db8:1:2::1", "2001:db8:1:2::2", 128));
    assert_true(same_key("2001:db8:1:2::1", "2001:db8:1:3::1", 48));
    assert_true(same_key("2001:db8:1:2::1", "2001:db8:1:2::1", 128));
    /* a prefix that is not a multiple of 8 */
    assert_true(same_key("2001:db8:1:2::", "2001:db8:1:3::", 63));
    assert_false(same_key("2001:db8:1:2::", "2001:db8:1:3::", 64));
    /* an IPv6 /64 never equals an IPv4 client */
    assert_false(same_key("::", "0.0.0.0", 64));
}

static void test_bad_text_shares_one_key(void **state)
{
    struct conn_key a, b;

    (void)state;
    assert_false(conn_key_from_text("not an address", 64, &a));
    assert_false(conn_key_from_text("", 64, &b));
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(a.b[0], 0xff);
    assert_int_equal(a.b[15], 0xff);
}

/* Tables made by new_table, unmapped after the last test. */
static struct conn_limits *tables[16];
static size_t table_count;

/* A table as the master makes it; the tests keep no descriptor. */
static struct conn_limits *new_table(unsigned slots, unsigned capacity)
{
    int fd;
    struct conn_limits *cl = conn_limits_create(slots, capacity, &fd);

    close(fd);
    assert_true(table_count < sizeof(tables) / sizeof(tables[0]));
    tables[table_count++] = cl;
    return cl;
}

static int detach_tables(void **state)
{
    (void)state;
    while (table_count > 0)
        conn_limits_detach(tables[--table_count]);
    return 0;
}

/* ---- counting ---- */

static void test_colliding_addresses_have_own_quota(void **state)
{
    struct conn_limits *cl = new_table(2, 100);

    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(cl, 0, "127.0.0.144", BIG, 3), CONN_ADMIT);
    assert_int_equal(admit(cl, 0, "127.0.0.144", BIG, 3), CONN_TOO_MANY_FROM_IP);
    assert_int_equal(admit(cl, 1, "127.0.0.144", BIG, 3), CONN_TOO_MANY_FROM_IP);
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(cl, 1, "127.0.0.1", BIG, 3), CONN_ADMIT);
    assert_int_equal(count(cl, "127.0.0.144"), 3);
    assert_int_equal(count(cl, "127.0.0.1"), 3);
    assert_int_equal(conn_limits_total(cl), 6);
}

static void test_rows_are_summed(void **state)
{
    struct conn_limits *cl = new_table(3, 100);

    (void)state;
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 3), CONN_ADMIT);
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 3), CONN_ADMIT);
    assert_int_equal(admit(cl, 2, "192.0.2.1", BIG, 3), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "192.0.2.1", BIG, 3), CONN_TOO_MANY_FROM_IP);
    release(cl, 0, "192.0.2.1");
    assert_int_equal(count(cl, "192.0.2.1"), 2);
    assert_int_equal(admit(cl, 1, "192.0.2.1", BIG, 3), CONN_ADMIT);
    assert_int_equal(count(cl, "192.0.2.1"), 3);
    /* one IPv6 /64 is one client */
    assert_int_equal(admit(cl, 0, "2001:db8::1", BIG, 2), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "2001:db8::2", BIG, 2), CONN_ADMIT);
    assert_int_equal(admit(cl, 2, "2001:db8::3", BIG, 2), CONN_TOO_MANY_FROM_IP);
    assert_int_equal(admit(cl, 2, "2001:db8:0:1::3", BIG, 2), CONN_ADMIT);
}

static void test_total_limit(void **state)
{
    struct conn_limits *cl = new_table(2, 100);

    (void)state;
    assert_int_equal(admit(cl, 0, "192.0.2.1", 3, BIG), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "192.0.2.2", 3, BIG), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "192.0.2.3", 3, BIG), CONN_ADMIT);
    assert_int_equal(admit(cl, 0, "192.0.2.4", 3, BIG), CONN_TOO_MANY);
    assert_int_equal(conn_limits_total(cl), 3);
    release(cl, 1, "192.0.2.2");
    assert_int_equal(conn_limits_total(cl), 2);
    assert_int_equal(admit(cl, 0, "192.0.2.4", 3, BIG), CONN_ADMIT);
}

static void test_full_row_refuses(void **state)
{
    struct conn_limits *cl = new_table(2, 4);
    char ip[32];

    (void)state;
    for (int i = 0; i < 4; i++) {
        snprintf(ip, sizeof(ip), "198.51.100.%d", i);
        assert_int_equal(admit(cl, 0, ip, BIG, BIG), CONN_ADMIT);
    }
    /* a fifth client has no entry left in this row */
    assert_int_equal(admit(cl, 0, "198.51.100.9", BIG, BIG), CONN_TOO_MANY);
    assert_int_equal(count(cl, "198.51.100.9"), 0);
    assert_int_equal(conn_limits_total(cl), 4);
    /* a client that has an entry still gets in; another row has room */
    assert_int_equal(admit(cl, 0, "198.51.100.2", BIG, BIG), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "198.51.100.9", BIG, BIG), CONN_ADMIT);
    /* an entry is free again when its last connection ends */
    release(cl, 0, "198.51.100.0");
    assert_int_equal(admit(cl, 0, "198.51.100.9", BIG, BIG), CONN_ADMIT);
    assert_int_equal(count(cl, "198.51.100.9"), 2);
    assert_int_equal(count(cl, "198.51.100.0"), 0);
}

static void test_reset_and_bad_input(void **state)
{
    struct conn_limits *cl = new_table(2, 8);
    struct conn_key k = key_of("192.0.2.1", 64);

    (void)state;
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 2), CONN_ADMIT);
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 2), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "192.0.2.2", BIG, 2), CONN_ADMIT);
    conn_limits_reset_slot(cl, 0);          /* the worker of slot 0 died */
    assert_int_equal(count(cl, "192.0.2.1"), 0);
    assert_int_equal(count(cl, "192.0.2.2"), 1);
    assert_int_equal(conn_limits_total(cl), 1);
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 2), CONN_ADMIT);
    assert_int_equal(count(cl, "192.0.2.1"), 1);
    /* releasing what was never admitted, or on a slot out of range */
    release(cl, 0, "203.0.113.5");
    release(cl, 1, "192.0.2.1");
    conn_limits_release(cl, 7, &k);
    conn_limits_reset_slot(cl, 7);
    assert_int_equal(count(cl, "192.0.2.1"), 1);
    assert_int_equal(conn_limits_total(cl), 2);
    assert_int_equal(conn_limits_admit(cl, 2, &k, BIG, BIG), CONN_TOO_MANY);
}

/* ---- several writers ---- */

#define WRITER_ROUNDS 20000
#define WRITER_HELD   3

/* Admit and release in a ring of WRITER_HELD held connections over a few
 * clients; exits 0 if every admission succeeded. */
static int writer(struct conn_limits *cl, unsigned slot, unsigned seed)
{
    static const char *const ips[] = { "192.0.2.1", "192.0.2.2", "2001:db8::1",
                                       "2001:db8::2", "198.51.100.7" };
    unsigned held[WRITER_HELD];
    unsigned n = 0, bad = 0;

    for (unsigned r = 0; r < WRITER_ROUNDS; r++) {
        unsigned pick = (seed + r * 7) % 5;

        if (n == WRITER_HELD) {
            release(cl, slot, ips[held[0]]);
            memmove(held, held + 1, sizeof(held[0]) * (WRITER_HELD - 1));
            n--;
        }
        if (admit(cl, slot, ips[pick], BIG, BIG) == CONN_ADMIT)
            held[n++] = pick;
        else
            bad++;
    }
    while (n > 0)
        release(cl, slot, ips[held[--n]]);
    return bad == 0 ? 0 : 1;
}

static void test_concurrent_writers_keep_exact_counts(void **state)
{
    /* Two processes share slot 0 (a retired worker and its replacement),
     * two more write slot 1; rows hold 16 clients, 5 are used. */
    struct conn_limits *cl = new_table(2, 16);
    static const unsigned slots[] = { 0, 0, 1, 1 };
    pid_t pids[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(writer(cl, slots[i], (unsigned)i * 3));
    }
    for (int i = 0; i < 4; i++) {
        int status = 0;

        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(conn_limits_total(cl), 0);
    assert_int_equal(count(cl, "192.0.2.1"), 0);
    assert_int_equal(count(cl, "192.0.2.2"), 0);
    assert_int_equal(count(cl, "2001:db8::1"), 0);
    assert_int_equal(count(cl, "198.51.100.7"), 0);
    /* and the rows still work */
    assert_int_equal(admit(cl, 0, "192.0.2.1", BIG, 1), CONN_ADMIT);
    assert_int_equal(admit(cl, 1, "192.0.2.1", BIG, 1), CONN_TOO_MANY_FROM_IP);
}

/* A worker maps the master's table from its descriptor and sees (and
 * makes) the same counts; a descriptor of another size, a slot past the
 * rows, or an unsealed memory file is refused. */
static void test_attach_shares_the_table(void **state)
{
    char err[256];
    int fd, plain;
    struct conn_limits *master = conn_limits_create(2, 8, &fd), *worker;

    (void)state;
    assert_null(conn_limits_attach(fd, 2, 16, 0, err, sizeof(err)));
    assert_null(conn_limits_attach(fd, 3, 8, 0, err, sizeof(err)));
    assert_null(conn_limits_attach(fd, 2, 8, 2, err, sizeof(err)));
    plain = memfd_create("unsealed", 0);
    assert_true(plain >= 0);
    assert_int_equal(ftruncate(plain, 1 << 20), 0);
    assert_null(conn_limits_attach(plain, 2, 8, 0, err, sizeof(err)));
    close(plain);
    worker = conn_limits_attach(fd, 2, 8, 1, err, sizeof(err));
    assert_non_null(worker);
    assert_int_equal(admit(worker, 1, "192.0.2.1", BIG, 5), CONN_ADMIT);
    assert_int_equal(count(master, "192.0.2.1"), 1);
    assert_int_equal(conn_limits_total(master), 1);
    conn_limits_detach(worker);
    conn_limits_detach(master);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_keys_are_exact),
        cmocka_unit_test(test_ipv6_keys_use_the_prefix),
        cmocka_unit_test(test_bad_text_shares_one_key),
        cmocka_unit_test(test_colliding_addresses_have_own_quota),
        cmocka_unit_test(test_rows_are_summed),
        cmocka_unit_test(test_total_limit),
        cmocka_unit_test(test_full_row_refuses),
        cmocka_unit_test(test_reset_and_bad_input),
        cmocka_unit_test(test_concurrent_writers_keep_exact_counts),
        cmocka_unit_test(test_attach_shares_the_table),
    };

    return cmocka_run_group_tests(tests, NULL, detach_tables);
}

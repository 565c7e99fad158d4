/*
 * test_dns_name.c - unit tests for delivery/dns_name.c: text names (envelope
 * domains), wire-format names from answers (hostile: pointers, overlong
 * labels, truncation, bad characters) and IP literals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "delivery/dns_internal.h"

static void test_normalize_good(void **state)
{
    char out[256];

    (void)state;
    assert_true(dns_name_normalize("Example.TEST", out, sizeof(out)));
    assert_string_equal(out, "example.test");
    assert_true(dns_name_normalize("mx-1.example.test.", out, sizeof(out)));
    assert_string_equal(out, "mx-1.example.test");
    assert_true(dns_name_normalize("_srv.x", out, sizeof(out)));
    assert_true(dns_name_normalize("localhost", out, sizeof(out)));

    /* labels of 63, 63, 63 and 61 octets: 253, the longest name */
    char longest[255];
    memset(longest, 'a', 253);
    longest[63] = longest[127] = longest[191] = '.';
    longest[253] = '\0';
    assert_true(dns_name_normalize(longest, out, sizeof(out)));
    assert_int_equal(strlen(out), 253);
    longest[253] = '.';                         /* a trailing dot is still fine */
    longest[254] = '\0';
    assert_true(dns_name_normalize(longest, out, sizeof(out)));
}

static void test_normalize_bad(void **state)
{
    static const char *const bad[] = {
        "", ".", "..", "a..b", ".a", "a b", "a\nb", "a\\046b", "a\"b", "exa$mple.test",
        "\xc3\xa9t\xc3\xa9.test", "a.b..", "[1.2.3.4]",
    };
    char out[256];
    char label64[80];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(dns_name_normalize(bad[i], out, sizeof(out)));
    memset(label64, 'a', 64);
    memcpy(label64 + 64, ".test", 6);
    assert_false(dns_name_normalize(label64, out, sizeof(out)));

    char toolong[300];
    memset(toolong, 'a', sizeof(toolong));
    for (size_t i = 10; i < sizeof(toolong); i += 10)
        toolong[i] = '.';
    toolong[254] = '\0';                        /* 254 octets */
    assert_false(dns_name_normalize(toolong, out, sizeof(out)));
    toolong[254] = 'a';
    toolong[299] = '\0';
    assert_false(dns_name_normalize(toolong, out, sizeof(out)));
    /* the output buffer bounds it too */
    assert_false(dns_name_normalize("example.test", out, 5));
}

static void test_wire_good(void **state)
{
    static const uint8_t name[] = "\x03mx1\x07""Example\x04test";   /* + final NUL */
    char out[256];

    (void)state;
    assert_int_equal(dns_wire_name(name, sizeof(name), out, sizeof(out)), sizeof(name));
    assert_string_equal(out, "mx1.example.test");
    static const uint8_t root[] = { 0 };
    assert_int_equal(dns_wire_name(root, 1, out, sizeof(out)), 1);
    assert_string_equal(out, "");
    /* stops at the end of the name even when more data follows */
    static const uint8_t more[] = { 1, 'a', 0, 0xff, 0xff };
    assert_int_equal(dns_wire_name(more, sizeof(more), out, sizeof(out)), 3);
}

static void test_wire_hostile(void **state)
{
    char out[256];
    uint8_t buf[400];

    (void)state;
    static const uint8_t pointer[] = { 3, 'm', 'x', '1', 0xc0, 0x0c };
    assert_int_equal(dns_wire_name(pointer, sizeof(pointer), out, sizeof(out)), 0);
    static const uint8_t ext[] = { 0x41, 'a', 0 };
    assert_int_equal(dns_wire_name(ext, sizeof(ext), out, sizeof(out)), 0);
    static const uint8_t truncated[] = { 5, 'a', 'b' };
    assert_int_equal(dns_wire_name(truncated, sizeof(truncated), out, sizeof(out)), 0);
    static const uint8_t noend[] = { 1, 'a', 1, 'b' };
    assert_int_equal(dns_wire_name(noend, sizeof(noend), out, sizeof(out)), 0);
    static const uint8_t space[] = { 3, 'a', ' ', 'b', 0 };
    assert_int_equal(dns_wire_name(space, sizeof(space), out, sizeof(out)), 0);
    static const uint8_t dot[] = { 3, 'a', '.', 'b', 0 };
    assert_int_equal(dns_wire_name(dot, sizeof(dot), out, sizeof(out)), 0);
    static const uint8_t nul[] = { 3, 'a', 0, 'b', 0 };
    assert_int_equal(dns_wire_name(nul, sizeof(nul), out, sizeof(out)), 0);
    assert_int_equal(dns_wire_name(buf, 0, out, sizeof(out)), 0);

    /* 5 labels of 63 = 320 octets: over the 255 limit */
    size_t n = 0;
    for (int l = 0; l < 5; l++) {
        buf[n++] = 63;
        memset(buf + n, 'a', 63);
        n += 63;
    }
    buf[n++] = 0;
    assert_int_equal(dns_wire_name(buf, n, out, sizeof(out)), 0);
    /* 4 labels of 62 (+1 length each) + root = 253: fine, text 250 */
    n = 0;
    for (int l = 0; l < 4; l++) {
        buf[n++] = 62;
        memset(buf + n, 'b', 62);
        n += 62;
    }
    buf[n++] = 0;
    assert_int_equal(dns_wire_name(buf, n, out, sizeof(out)), n);
    assert_int_equal(strlen(out), 62 * 4 + 3);
    /* ...but not into a small buffer */
    assert_int_equal(dns_wire_name(buf, n, out, 100), 0);
}

static void test_ip_literals(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];

    (void)state;
    assert_true(dns_ip_literal("192.0.2.1", 25, &ss, &len, text, sizeof(text)));
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25);
    assert_string_equal(text, "192.0.2.1");
    assert_true(dns_ip_literal("[192.0.2.1]", 587, &ss, &len, text, sizeof(text)));
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 587);
    assert_true(dns_ip_literal("[IPv6:2001:DB8::1]", 25, &ss, &len, text, sizeof(text)));
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_string_equal(text, "2001:db8::1");
    assert_true(dns_ip_literal("[ipv6:::1]", 25, &ss, &len, text, sizeof(text)));
    assert_true(dns_ip_literal("::1", 25, &ss, &len, text, sizeof(text)));

    static const char *const bad[] = {
        "", "[]", "example.test", "[example.test]", "192.0.2", "192.0.2.1.5",
        "[192.0.2.1", "IPv6:::1", "[IPv6:192.0.2.1x]", "[[::1]]", " 192.0.2.1",
        "2001:db8::1::2",
        "[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(dns_ip_literal(bad[i], 25, &ss, &len, text, sizeof(text)));
}

static void test_printable(void **state)
{
    char out[8];

    (void)state;
    dns_printable(out, sizeof(out), "a\"b\\c\nd");
    assert_string_equal(out, "a?b?c?d");
    dns_printable(out, sizeof(out), "0123456789");
    assert_string_equal(out, "0123456");
    dns_printable(out, sizeof(out), NULL);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_good),
        cmocka_unit_test(test_normalize_bad),
        cmocka_unit_test(test_wire_good),
        cmocka_unit_test(test_wire_hostile),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

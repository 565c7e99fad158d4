/*
 * test_received.c - unit tests for mail/received.c: the protocol names
 * of RFC 3848 / RFC 6531, the layout and folding of the Received header,
 * "for <rcpt>" only for a single recipient, and the bound on its buffer.
 *
 * Dates are made in UTC (TZ is set before anything reads it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mail/received.h"

#define WHEN ((time_t)1795968693)    /* Sun, 29 Nov 2026 16:11:33 +0000 */
#define DATE "Sun, 29 Nov 2026 16:11:33 +0000"
#define SUMMARY "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) " \
                "key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256"

static struct received_info base_info(void)
{
    struct received_info info = {
        .helo = "client.example.org",
        .client_ip = "192.0.2.7",
        .hostname = "mx.example.test",
        .queue_id = "4ABC123DEF",
        .single_rcpt = NULL,
        .tls_summary = NULL,
        .esmtp = true,
        .when = WHEN,
    };
    return info;
}

/* Format into a heap buffer of exactly outsize bytes (ASan sees overruns). */
static size_t format_exact(const struct received_info *info, char **out, size_t outsize)
{
    *out = malloc(outsize ? outsize : 1);
    assert_non_null(*out);
    return received_format(info, *out, outsize);
}

/* Every line ends in CRLF, no bare CR or LF, continuation lines start with TAB. */
static void check_lines(const char *h, size_t len)
{
    assert_int_equal(strlen(h), len);
    assert_true(len >= 2);
    assert_memory_equal(h + len - 2, "\r\n", 2);
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '\r') {
            assert_true(i + 1 < len && h[i + 1] == '\n');
            if (i + 2 < len)
                assert_int_equal(h[i + 2], '\t');
        } else if (h[i] == '\n') {
            assert_true(i > 0 && h[i - 1] == '\r');
        }
    }
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_protocol_names(void **state)
{
    (void)state;
    /* HELO: plain SMTP whatever else is true */
    assert_string_equal(received_protocol(false, false, false, false), "SMTP");
    assert_string_equal(received_protocol(false, true, false, false), "SMTP");
    assert_string_equal(received_protocol(false, true, true, true), "SMTP");
    assert_string_equal(received_protocol(true, false, false, false), "ESMTP");
    assert_string_equal(received_protocol(true, true, false, false), "ESMTPS");
    assert_string_equal(received_protocol(true, false, true, false), "ESMTPA");
    assert_string_equal(received_protocol(true, true, true, false), "ESMTPSA");
    assert_string_equal(received_protocol(true, false, false, true), "UTF8SMTP");
    assert_string_equal(received_protocol(true, true, false, true), "UTF8SMTPS");
    assert_string_equal(received_protocol(true, false, true, true), "UTF8SMTPA");
    assert_string_equal(received_protocol(true, true, true, true), "UTF8SMTPSA");
}

static void test_date(void **state)
{
    char buf[64];

    (void)state;
    rfc5322_date(WHEN, buf, sizeof(buf));
    assert_string_equal(buf, DATE);
    rfc5322_date((time_t)0, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
}

static void test_plain_esmtp(void **state)
{
    struct received_info info = base_info();
    char buf[1024];
    size_t n = received_format(&info, buf, sizeof(buf));

    (void)state;
    assert_string_equal(buf,
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\tby mx.example.test (sealpost) with ESMTP id 4ABC123DEF;\r\n"
        "\t" DATE "\r\n");
    check_lines(buf, n);
}

/* [submission] received_client_ip = no: the HELO name alone. */
static void test_client_ip_hidden(void **state)
{
    struct received_info info = base_info();
    char buf[1024];
    size_t n;

    (void)state;
    info.hide_client_ip = true;
    info.auth = info.tls = true;
    info.tls_summary = SUMMARY;
    n = received_format(&info, buf, sizeof(buf));
    assert_true(n > 0);
    assert_null(strstr(buf, "192.0.2.7"));
    assert_memory_equal(buf, "Received: from client.example.org\r\n\t(using TLSv1.3", 50);
    assert_non_null(strstr(buf, "with ESMTPSA id 4ABC123DEF;"));
    check_lines(buf, n);
}

static void test_helo_is_smtp(void **state)
{
    struct received_info info = base_info();
    char buf[1024];

    (void)state;
    info.esmtp = false;
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\tby mx.example.test (sealpost) with SMTP id 4ABC123DEF;\r\n"));
}

static void test_tls_folded_before_key_exchange(void **state)
{
    struct received_info info = base_info();
    char buf[1024];
    size_t n;

    (void)state;
    info.tls = true;
    info.tls_summary = SUMMARY;
    n = received_format(&info, buf, sizeof(buf));
    assert_string_equal(buf,
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
        "\t key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256)\r\n"
        "\tby mx.example.test (sealpost) with ESMTPS id 4ABC123DEF;\r\n"
        "\t" DATE "\r\n");
    check_lines(buf, n);
    /* no header line is longer than 78 characters (RFC 5322 2.1.1 SHOULD) */
    for (const char *p = buf; *p; ) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        assert_true(eol - p <= 78);
        p = eol + 2;
    }
}

static void test_tls_without_key_exchange(void **state)
{
    struct received_info info = base_info();
    char buf[1024];

    (void)state;
    info.tls = true;
    info.tls_summary = "using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)";
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_string_equal(buf,
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
        "\tby mx.example.test (sealpost) with ESMTPS id 4ABC123DEF;\r\n"
        "\t" DATE "\r\n");
}

static void test_utf8_tls(void **state)
{
    struct received_info info = base_info();
    char buf[1024];

    (void)state;
    info.tls = true;
    info.smtputf8 = true;
    info.tls_summary = SUMMARY;
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, ") with UTF8SMTPS id 4ABC123DEF;\r\n"));
    info.tls = false;
    info.tls_summary = NULL;
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, ") with UTF8SMTP id 4ABC123DEF;\r\n"));
    assert_null(strstr(buf, "using"));
}

static void test_single_recipient(void **state)
{
    struct received_info info = base_info();
    char buf[1024];
    size_t n;

    (void)state;
    info.single_rcpt = "alice@example.test";
    n = received_format(&info, buf, sizeof(buf));
    assert_string_equal(buf,
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\tby mx.example.test (sealpost) with ESMTP id 4ABC123DEF\r\n"
        "\tfor <alice@example.test>;\r\n"
        "\t" DATE "\r\n");
    check_lines(buf, n);

    /* several recipients (single_rcpt NULL): no "for" clause at all */
    info.single_rcpt = NULL;
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_null(strstr(buf, "for <"));
    assert_null(strstr(buf, "\tfor"));
}

static void test_ipv6_client(void **state)
{
    struct received_info info = base_info();
    char buf[1024];

    (void)state;
    info.client_ip = "2001:db8::1";
    assert_true(received_format(&info, buf, sizeof(buf)) > 0);
    assert_true(strncmp(buf, "Received: from client.example.org ([2001:db8::1])\r\n",
                        strlen("Received: from client.example.org ([2001:db8::1])\r\n")) == 0);
}

/* The exact size fits; one byte less, and every smaller size, returns 0. */
static void test_buffer_bound(void **state)
{
    struct received_info info = base_info();
    char *buf, full[2048];
    size_t need, n;

    (void)state;
    info.tls = true;
    info.tls_summary = SUMMARY;
    info.single_rcpt = "alice@example.test";
    need = received_format(&info, full, sizeof(full));
    assert_true(need > 0);
    assert_int_equal(strlen(full), need);

    n = format_exact(&info, &buf, need + 1);
    assert_int_equal(n, need);
    assert_string_equal(buf, full);
    free(buf);
    for (size_t size = need; size + 1 > 0; size--) {
        n = format_exact(&info, &buf, size);
        if (n != 0)
            fail_msg("size %zu: returned %zu, expected 0", size, n);
        free(buf);
        if (size == 0)
            break;
    }
}

/* Longest inputs a session can produce still do not overflow; and the
 * longest recipient still appears whole or the call fails. */
static void test_long_inputs(void **state)
{
    struct received_info info = base_info();
    char helo[256], host[256], rcpt[300], summary[256], out[4096];
    size_t n;

    (void)state;
    memset(helo, 'h', sizeof(helo) - 1);
    helo[sizeof(helo) - 1] = '\0';
    memset(host, 'm', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    memset(rcpt, 'r', 254);
    rcpt[64] = '@';
    rcpt[254] = '\0';
    memset(summary, 's', sizeof(summary) - 1);
    summary[sizeof(summary) - 1] = '\0';
    info.helo = helo;
    info.hostname = host;
    info.single_rcpt = rcpt;
    info.tls = true;
    info.tls_summary = summary;
    n = received_format(&info, out, sizeof(out));
    assert_true(n > 0);
    check_lines(out, n);
    assert_non_null(strstr(out, rcpt));
    assert_non_null(strstr(out, helo));
    /* small buffers never overflow */
    for (size_t size = 1; size < 64; size++) {
        char *buf;
        assert_int_equal(format_exact(&info, &buf, size), 0);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_names),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_plain_esmtp),
        cmocka_unit_test(test_helo_is_smtp),
        cmocka_unit_test(test_client_ip_hidden),
        cmocka_unit_test(test_tls_folded_before_key_exchange),
        cmocka_unit_test(test_tls_without_key_exchange),
        cmocka_unit_test(test_utf8_tls),
        cmocka_unit_test(test_single_recipient),
        cmocka_unit_test(test_ipv6_client),
        cmocka_unit_test(test_buffer_bound),
        cmocka_unit_test(test_long_inputs),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}

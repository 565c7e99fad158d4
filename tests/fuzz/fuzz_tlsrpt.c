/*
 * fuzz_tlsrpt.c - libFuzzer target for TLS-RPT records and reports:
 * src/mail/tlsrpt_codec.c (the IPC record the queue reads from the
 * internet-facing delivery process, and the line form it reads back from
 * the spool) and src/queue/tlsrpt_report.c (aggregation of a day file
 * into the RFC 8460 JSON). The first input byte picks: 0 = an IPC
 * record, 1 = one stored line, 2 = a whole day file.
 *
 * Checked besides memory errors and leaks: a decoded record passes
 * tlsrpt_record_check again, has no control bytes in any text, and
 * survives both an IPC and a line round trip unchanged; the JSON of a
 * day file is printable ASCII only, with as many '{' as '}' and '[' as
 * ']' outside strings.
 */
#include "fuzz.h"

#include "mail/tlsrpt_codec.h"
#include "queue/tlsrpt_report.h"
#include "util/ipc.h"

static struct tlsrpt_record rec, again;
static char out[IPC_MAX_PAYLOAD];
static char line[TLSRPT_LINE_MAX];

static void check_text(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    FUZZ_CHECK(len < size);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] <= 0x7e);
}

static void check_same(void)
{
    FUZZ_CHECK(strcmp(rec.domain, again.domain) == 0 && rec.result == again.result);
    FUZZ_CHECK(rec.policy_type == again.policy_type);
    FUZZ_CHECK(strcmp(rec.mx_host, again.mx_host) == 0 && strcmp(rec.ip, again.ip) == 0);
    FUZZ_CHECK(strcmp(rec.sending_ip, again.sending_ip) == 0);
    FUZZ_CHECK(strcmp(rec.reason, again.reason) == 0);
    FUZZ_CHECK(rec.policy_string_count == again.policy_string_count);
    FUZZ_CHECK(rec.mx_pattern_count == again.mx_pattern_count);
    FUZZ_CHECK(rec.rua_count == again.rua_count);
    for (size_t i = 0; i < rec.policy_string_count; i++)
        FUZZ_CHECK(strcmp(rec.policy_strings[i], again.policy_strings[i]) == 0);
    for (size_t i = 0; i < rec.mx_pattern_count; i++)
        FUZZ_CHECK(strcmp(rec.mx_patterns[i], again.mx_patterns[i]) == 0);
    for (size_t i = 0; i < rec.rua_count; i++)
        FUZZ_CHECK(strcmp(rec.rua[i], again.rua[i]) == 0);
}

static void check_record(void)
{
    char err[128];
    size_t len;

    check_text(rec.reason, sizeof(rec.reason));
    for (size_t i = 0; i < rec.policy_string_count; i++)
        check_text(rec.policy_strings[i], sizeof(rec.policy_strings[i]));
    for (size_t i = 0; i < rec.rua_count; i++)
        check_text(rec.rua[i], sizeof(rec.rua[i]));
    FUZZ_CHECK(tlsrpt_record_check(&rec, err, sizeof(err)));
    len = tlsrpt_record_encode(&rec, out, sizeof(out));
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(tlsrpt_record_decode(out, len, &again, err, sizeof(err)));
    check_same();
    len = tlsrpt_line_format(&rec, line, sizeof(line));
    FUZZ_CHECK(len > 0);
    if (!tlsrpt_line_parse(line, len, rec.domain, &again, err, sizeof(err))) {
        fprintf(stderr, "line does not parse back: %s\n%s", err, line);
        FUZZ_CHECK(!"line round trip");
    }
    check_same();
}

static void check_json(const struct tlsrpt_buf *b)
{
    long braces = 0, brackets = 0;
    bool in_string = false;

    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];

        FUZZ_CHECK((unsigned char)c >= 0x20 && (unsigned char)c <= 0x7e);
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        in_string = c == '"';
        braces += (c == '{') - (c == '}');
        brackets += (c == '[') - (c == ']');
        FUZZ_CHECK(braces >= 0 && brackets >= 0);
    }
    FUZZ_CHECK(!in_string && braces == 0 && brackets == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct tlsrpt_report_meta meta = { "org\"x", "c@x.test", "mx.x.test" };
    struct tlsrpt_report_info info;
    struct tlsrpt_buf json = { 0 };
    char err[256];
    char *copy;

    if (size < 1 || size - 1 > IPC_MAX_PAYLOAD)
        return 0;
    copy = malloc(size);            /* exactly sized, NUL after the bytes */
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    if (data[0] % 3 == 0) {
        if (tlsrpt_record_decode(copy, size - 1, &rec, err, sizeof(err)))
            check_record();
    } else if (data[0] % 3 == 1) {
        if (tlsrpt_line_parse(copy, size - 1, "d.example.test", &rec, err, sizeof(err)))
            check_record();
    } else if (tlsrpt_report_json_data(copy, size - 1, "2026-12-04", "d.example.test", &meta,
                                       &json, &info, err, sizeof(err))) {
        check_json(&json);
    }
    tlsrpt_buf_free(&json);
    free(copy);
    return 0;
}

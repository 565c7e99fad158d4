/*
 * fuzz_address.c - libFuzzer target for the RFC 5321 path parser
 * (src/mail/address.c): address_parse_path with and without SMTPUTF8,
 * mailbox_format into exact-size buffers, and utf8_valid against an
 * independent reference decoder.
 *
 * Invariants checked (address.h): verdicts agree between the two UTF-8
 * modes, errors leave *out zeroed, parsed parts hold no control bytes
 * and only well-formed UTF-8, and the formatted address parses back to
 * the same mailbox (the queue and local delivery rely on that). The
 * canonical form (mailbox_format_canonical) is never longer than the
 * wire form, parses back to the same decoded local part and domain, and
 * is its own canonical form.
 */
#include "fuzz.h"

#include "mail/address.h"

/* Reference UTF-8 check written from RFC 3629 section 3, by code point. */
static bool ref_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;
        uint8_t b = s[i];

        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            n = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
            return false;                   /* overlong */
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += n;
    }
    return true;
}

static bool has_non_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

/* U+0080..U+009F, encoded as C2 80..C2 9F. */
static bool has_c1(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)s[i] == 0xC2 && (unsigned char)s[i + 1] < 0xA0)
            return true;
    return false;
}

static void check_part(const char *s, size_t size)
{
    size_t len = strnlen(s, size);

    FUZZ_CHECK(len < size);
    FUZZ_CHECK(!fuzz_has_control(s, len));
    FUZZ_CHECK(utf8_valid(s, len));
    FUZZ_CHECK(!has_c1(s, len));
}

static void check_canonical(const struct mailbox *mb, size_t wire_len)
{
    char canon[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2], twice[sizeof(canon)];
    char path[sizeof(canon) + 2];
    struct mailbox again;
    size_t consumed;

    mailbox_format_canonical(mb, canon, sizeof(canon));
    FUZZ_CHECK(strlen(canon) <= wire_len);
    snprintf(path, sizeof(path), "<%s>", canon);
    FUZZ_CHECK(address_parse_path(path, strlen(path), true, &again, &consumed) == ADDR_OK);
    FUZZ_CHECK(consumed == strlen(path));
    FUZZ_CHECK(strcmp(again.local_unquoted, mb->local_unquoted) == 0);
    FUZZ_CHECK(strcmp(again.domain, mb->domain) == 0);
    mailbox_format_canonical(&again, twice, sizeof(twice));
    FUZZ_CHECK(strcmp(twice, canon) == 0);
}

static void check_format(const struct mailbox *mb)
{
    char full[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];

    mailbox_format(mb, full, sizeof(full));
    size_t flen = strlen(full);
    /* Every smaller buffer gets a NUL-terminated prefix, never more. */
    for (size_t size = 1; size <= flen + 1; size += 1 + size / 4) {
        char *out = malloc(size);
        FUZZ_CHECK(out != NULL);
        mailbox_format(mb, out, size);
        size_t olen = strnlen(out, size);
        FUZZ_CHECK(olen < size);
        FUZZ_CHECK(olen == (flen < size - 1 ? flen : size - 1));
        FUZZ_CHECK(memcmp(out, full, olen) == 0);
        free(out);
    }
    mailbox_format(mb, NULL, 0);

    if (mb->is_null) {
        FUZZ_CHECK(flen == 0);
        return;
    }
    if (mb->is_bare_postmaster)
        return;                     /* "<Postmaster>" only; no domain to add */
    /* "<" formatted ">" parses to the same mailbox (source route gone). */
    char path[sizeof(full) + 2];
    snprintf(path, sizeof(path), "<%s>", full);
    struct mailbox again;
    size_t consumed;
    FUZZ_CHECK(address_parse_path(path, strlen(path), true, &again, &consumed) == ADDR_OK);
    FUZZ_CHECK(consumed == strlen(path));
    FUZZ_CHECK(strcmp(again.local, mb->local) == 0);
    FUZZ_CHECK(strcmp(again.local_unquoted, mb->local_unquoted) == 0);
    FUZZ_CHECK(strcmp(again.domain, mb->domain) == 0);
    FUZZ_CHECK(again.has_utf8 == mb->has_utf8);
    FUZZ_CHECK(again.domain_is_literal == mb->domain_is_literal);
    check_canonical(mb, flen);
}

static void check_ok(const char *s, size_t len, const struct mailbox *mb, size_t consumed)
{
    FUZZ_CHECK(consumed >= 2 && consumed <= len && consumed <= ADDR_PATH_MAX);
    FUZZ_CHECK(s[0] == '<' && s[consumed - 1] == '>');
    check_part(mb->local, sizeof(mb->local));
    check_part(mb->local_unquoted, sizeof(mb->local_unquoted));
    check_part(mb->domain, sizeof(mb->domain));
    FUZZ_CHECK(strlen(mb->local_unquoted) <= strlen(mb->local));
    FUZZ_CHECK(mb->has_utf8 == (has_non_ascii(mb->local, strlen(mb->local)) ||
                                has_non_ascii(mb->domain, strlen(mb->domain))));
    if (mb->is_null)
        FUZZ_CHECK(consumed == 2 && mb->local[0] == '\0' && mb->domain[0] == '\0');
    else
        FUZZ_CHECK(mb->local[0] != '\0');
    if (mb->is_bare_postmaster)
        FUZZ_CHECK(mb->domain[0] == '\0' && strlen(mb->local) == 10);
    if (!mb->is_null && !mb->is_bare_postmaster)
        FUZZ_CHECK(mb->domain[0] != '\0');
    if (mb->domain_is_literal)
        FUZZ_CHECK(mb->domain[0] == '[' && mb->domain[strlen(mb->domain) - 1] == ']');
    check_format(mb);
}

static void check_error(const struct mailbox *mb, size_t consumed)
{
    static const struct mailbox zero;

    FUZZ_CHECK(consumed == 0);
    FUZZ_CHECK(memcmp(mb, &zero, sizeof(zero)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct mailbox ascii, utf8;
    size_t c_ascii = 99, c_utf8 = 99;
    enum addr_status st_ascii = address_parse_path(s, size, false, &ascii, &c_ascii);
    enum addr_status st_utf8 = address_parse_path(s, size, true, &utf8, &c_utf8);

    FUZZ_CHECK(utf8_valid(s, size) == ref_utf8_valid(data, size));

    /* UTF-8 is judged last: both modes agree except for ADDR_ERR_UTF8. */
    FUZZ_CHECK(st_utf8 != ADDR_ERR_UTF8);
    if (st_ascii == ADDR_ERR_UTF8)
        FUZZ_CHECK(st_utf8 == ADDR_OK && has_non_ascii(s, c_utf8));
    else
        FUZZ_CHECK(st_ascii == st_utf8);

    if (st_ascii == ADDR_OK) {
        check_ok(s, size, &ascii, c_ascii);
        FUZZ_CHECK(!has_non_ascii(s, c_ascii));
        FUZZ_CHECK(c_ascii == c_utf8 && memcmp(&ascii, &utf8, sizeof(ascii)) == 0);
    } else {
        check_error(&ascii, c_ascii);
    }
    if (st_utf8 == ADDR_OK)
        check_ok(s, size, &utf8, c_utf8);
    else
        check_error(&utf8, c_utf8);
    return 0;
}

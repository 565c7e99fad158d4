/*
 * sendmail_headers.c - header section scan and address-list splitting
 * for `sealpost sendmail` (see sendmail_headers.h).
 */
#define _GNU_SOURCE 1
#include "sendmail/sendmail_headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

/* --- the header section --- */

static bool name_is(const char *line, size_t nlen, const char *name)
{
    return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}

/* The field line[0..len) (with its continuation lines): note it, and say
 * whether it stays in the message. */
static bool take_field(struct sendmail_headers *hs, const char *f, size_t len, size_t nlen)
{
    static const char *const rcpt_names[] = { "to", "cc", "bcc", "resent-to", "resent-cc",
                                              "resent-bcc" };
    char *value;
    size_t v = 0;

    if (name_is(f, nlen, "from"))
        hs->has_from = true;
    if (name_is(f, nlen, "date"))
        hs->has_date = true;
    if (name_is(f, nlen, "message-id"))
        hs->has_message_id = true;
    for (size_t k = 0; k < 6; k++) {
        if (!name_is(f, nlen, rcpt_names[k]))
            continue;
        value = xmalloc(len - nlen);
        for (size_t i = nlen + 1; i < len; i++)
            if (f[i] != '\r' && f[i] != '\n')
                value[v++] = f[i];
        value[v] = '\0';
        hs->fields = xrealloc(hs->fields, (hs->field_count + 1) * sizeof(*hs->fields));
        hs->fields[hs->field_count++] = (struct header_rcpt_field){ value, k >= 3 };
        hs->has_resent_rcpt |= k >= 3;
        return k != 2 && k != 5;        /* Bcc and Resent-Bcc go */
    }
    return true;
}

/* Length of a field name starting line[0..len), 0 if it is not one. */
static size_t field_name(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c == ':')
            return i;
        if (c < 33 || c > 126)
            return 0;
    }
    return 0;
}

size_t sendmail_headers_scan(const char *msg, size_t len, struct sendmail_headers *hs, char *out)
{
    size_t pos = 0, o = 0, fstart = 0, nlen = 0;
    bool in_field = false;

    memset(hs, 0, sizeof(*hs));
    while (pos < len) {
        const char *eol = memmem(msg + pos, len - pos, "\r\n", 2);
        size_t next = eol ? (size_t)(eol - msg) + 2 : len;
        bool cont = msg[pos] == ' ' || msg[pos] == '\t';
        size_t name = cont ? 0 : field_name(msg + pos, next - pos);

        if (cont && in_field) {
            pos = next;
            continue;
        }
        if (in_field && take_field(hs, msg + fstart, pos - fstart, nlen)) {
            memcpy(out + o, msg + fstart, pos - fstart);
            o += pos - fstart;
        }
        in_field = name > 0;
        if (!in_field) {
            hs->no_separator = next - pos > 2 || msg[pos] != '\r';
            break;
        }
        fstart = pos;
        nlen = name;
        pos = next;
    }
    if (in_field && take_field(hs, msg + fstart, pos - fstart, nlen)) {
        memcpy(out + o, msg + fstart, pos - fstart);
        o += pos - fstart;
    }
    hs->header_len = o;
    memcpy(out + o, msg + pos, len - pos);
    return o + len - pos;
}

void sendmail_headers_free(struct sendmail_headers *hs)
{
    for (size_t i = 0; i < hs->field_count; i++)
        free(hs->fields[i].value);
    free(hs->fields);
    memset(hs, 0, sizeof(*hs));
}

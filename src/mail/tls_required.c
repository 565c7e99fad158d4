/*
 * tls_required.c - the "TLS-Required: No" header field (see
 * tls_required.h). Trusts nothing; reads only msg[0..len).
 */
#include "mail/tls_required.h"

#include <string.h>
#include <strings.h>

#include "util/ascii.h"

/* End of the logical (unfolded) line starting at i: index of its CR or
 * LF that is not followed by WSP, or len. */
static size_t field_end(const char *m, size_t len, size_t i)
{
    while (i < len) {
        if (m[i] == '\n' || m[i] == '\r') {
            size_t j = i + 1;
            if (m[i] == '\r' && j < len && m[j] == '\n')
                j++;
            if (j < len && ascii_wsp((unsigned char)m[j])) {
                i = j;
                continue;
            }
            return i;
        }
        i++;
    }
    return len;
}

/* Folding white space: WSP, and the CR LF of a fold. */
static bool folding_space(char c)
{
    return ascii_wsp((unsigned char)c) || c == '\r' || c == '\n';
}

/* Is the value m[i..end) "No", ignoring folding white space around it? */
static bool value_is_no(const char *m, size_t i, size_t end)
{
    while (i < end && folding_space(m[i]))
        i++;
    while (end > i && folding_space(m[end - 1]))
        end--;
    return end - i == 2 && strncasecmp(m + i, "no", 2) == 0;
}

bool tls_required_no(const char *m, size_t len)
{
    static const char name[] = "TLS-Required";
    const size_t nlen = sizeof(name) - 1;
    size_t i = 0;

    while (i < len) {
        size_t end, k;

        if (m[i] == '\r' || m[i] == '\n')
            return false;               /* the empty line: end of the header */
        end = field_end(m, len, i);
        if (end - i > nlen && strncasecmp(m + i, name, nlen) == 0) {
            k = i + nlen;
            while (k < end && ascii_wsp((unsigned char)m[k]))
                k++;
            if (k < end && m[k] == ':' && value_is_no(m, k + 1, end))
                return true;
        }
        if (end >= len)
            return false;
        i = end + (m[end] == '\r' && end + 1 < len && m[end + 1] == '\n' ? 2 : 1);
    }
    return false;
}

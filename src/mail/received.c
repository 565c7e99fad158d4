/*
 * received.c - build the Received header (see received.h).
 */
#include "mail/received.h"

#include <stdio.h>
#include <string.h>

const char *received_protocol(bool esmtp, bool tls, bool auth, bool smtputf8)
{
    static const char *names[2][2][2] = {
        /* !utf8 */ { { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
        /* utf8  */ { { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
    };

    if (!esmtp)
        return "SMTP";
    return names[smtputf8][tls][auth];
}

void rfc5322_date(time_t when, char *out, size_t outsize)
{
    static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    long off;

    localtime_r(&when, &tm);
    off = tm.tm_gmtoff / 60;
    snprintf(out, outsize, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
             (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

size_t received_format(const struct received_info *info, char *out, size_t outsize)
{
    char date[64], tls[512] = "", rcpt[300] = "", client[64] = "";
    int n;

    rfc5322_date(info->when, date, sizeof(date));
    if (info->tls_summary) {
        /* Fold before "key-exchange" as Postfix does, to keep lines short. */
        const char *kx = strstr(info->tls_summary, " key-exchange ");
        int head = kx ? (int)(kx - info->tls_summary) : (int)strlen(info->tls_summary);

        snprintf(tls, sizeof(tls), "\r\n\t(%.*s%s%s)", head, info->tls_summary,
                 kx ? "\r\n\t" : "", kx ? kx : "");
    }
    if (info->single_rcpt)
        snprintf(rcpt, sizeof(rcpt), "\r\n\tfor <%s>", info->single_rcpt);
    if (!info->hide_client_ip)
        snprintf(client, sizeof(client), " ([%s])", info->client_ip);
    n = snprintf(out, outsize,
                 "Received: from %s%s%s\r\n"
                 "\tby %s (sealpost) with %s id %s%s;\r\n"
                 "\t%s\r\n",
                 info->helo, client, tls, info->hostname,
                 received_protocol(info->esmtp, info->tls, info->auth, info->smtputf8),
                 info->queue_id, rcpt, date);
    if (n < 0 || (size_t)n >= outsize)
        return 0;
    return (size_t)n;
}

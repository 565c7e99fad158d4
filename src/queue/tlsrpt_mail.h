/*
 * tlsrpt_mail.h - the daily TLS-RPT mailing (RFC 8460 section 5.3): for
 * every completed UTC day of the store (tlsrpt_store.h) not yet
 * reported, each policy domain whose last record carries a mailto: rua
 * gets its report as a multipart/report; report-type="tlsrpt" message
 * with the JSON gzipped (application/tlsrpt+gzip, base64), queued like
 * any other message (it then goes out through the normal scheduler).
 *
 * Exactly once across restarts: after a domain's report is committed to
 * the queue its name is appended (fdatasync) to the day's ".sent"; when
 * every domain is done the day gets ".reported". A crash between the
 * commit and the ".sent" append repeats that one report
 * (at-least-once, like the rest of sealpost); a restart otherwise never
 * sends a report twice. Completed days are kept TLSRPT_KEEP_DAYS days
 * for `sealpost tls-report --date`, then removed.
 *
 * rua=https: is not done (such URIs are ignored). Report messages are
 * not DKIM-signed (sealpost does not sign).
 *
 * Trusts: the config; the store only through tlsrpt_report_json's
 * checks; mailto: URIs are decoded and every address parsed with
 * address_parse_path before it reaches an envelope or a header.
 */
#ifndef SEALPOST_QUEUE_TLSRPT_MAIL_H
#define SEALPOST_QUEUE_TLSRPT_MAIL_H

#include <time.h>

#include "config/config.h"
#include "queue/queue.h"
#include "queue/tlsrpt_report.h"

#define TLSRPT_KEEP_DAYS    31      /* completed days kept after they were reported */
#define TLSRPT_MAIL_RCPTS   16      /* mailto: addresses per report */

/* Report every completed day before the UTC day of now (see above). */
void tlsrpt_mail_run(struct queue *q, const struct config *cfg, time_t now);

/* The report's metadata from [tlsrpt] (defaults from [server] hostname);
 * the strings live in bufs. */
void tlsrpt_meta(const struct config *cfg, struct tlsrpt_report_meta *meta, char *from,
                 size_t fromsize, char *contact, size_t contactsize);

#endif

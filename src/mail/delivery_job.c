/*
 * delivery_job.c - helpers for delivery jobs (see delivery_job.h).
 */
#include "mail/delivery_job.h"

#include <stdlib.h>

#include "util/xalloc.h"

void outbound_job_finish_all(struct outbound_job *job, const struct smtp_result *r,
                             const char *relay)
{
    struct smtp_result *results = xcalloc(job->rcpt_count, sizeof(*results));

    for (size_t i = 0; i < job->rcpt_count; i++)
        results[i] = *r;
    job->done(job, results, relay, NULL);
    free(results);
}

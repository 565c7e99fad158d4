/*
 * metrics_render.c - the page of GET /metrics (see metrics_render.h).
 * Every family has its HELP and TYPE lines, and every label value it can
 * take is written, zero or not, so a series never appears from nowhere.
 */
#include "metrics/metrics_render.h"

#include <inttypes.h>
#include <string.h>

_Static_assert(CONFIG_MAX_LISTENERS <= METRICS_MAX_LISTENERS,
               "util/metrics.h must have a row for every listener");

struct sums {
    uint64_t counter[METRICS_COUNTERS];
    int64_t gauge[METRICS_GAUGES];
    struct metrics_hist hist[METRICS_HISTS];
};

static void sum_blocks(struct sums *s, const struct metrics_block *const *blocks, size_t n)
{
    memset(s, 0, sizeof(*s));
    for (size_t b = 0; b < n; b++) {
        const struct metrics_block *mb = blocks[b];

        for (size_t i = 0; i < METRICS_COUNTERS; i++)
            s->counter[i] += __atomic_load_n(&mb->counter[i], __ATOMIC_RELAXED);
        for (size_t i = 0; i < METRICS_GAUGES; i++)
            s->gauge[i] += __atomic_load_n(&mb->gauge[i], __ATOMIC_RELAXED);
        for (size_t h = 0; h < METRICS_HISTS; h++) {
            for (size_t k = 0; k < METRICS_MAX_BUCKETS; k++)
                s->hist[h].bucket[k] +=
                    __atomic_load_n(&mb->hist[h].bucket[k], __ATOMIC_RELAXED);
            s->hist[h].sum += __atomic_load_n(&mb->hist[h].sum, __ATOMIC_RELAXED);
        }
    }
    /* _count is the sum of the buckets read, so it always equals the
     * +Inf bucket even while a writer is between its adds. */
    for (size_t h = 0; h < METRICS_HISTS; h++) {
        for (size_t k = 0; k < METRICS_MAX_BUCKETS; k++)
            s->hist[h].count += s->hist[h].bucket[k];
    }
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, quote and newline escaped. */
static void add_label_value(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

/* A family with one label whose values are names[0..n). */
static void family1(struct evbuffer *out, const char *name, const char *help, const char *label,
                    const char *const *names, size_t n, const uint64_t *values)
{
    head(out, name, "counter", help);
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, names[i],
                            values[i]);
}

/* A family with two labels: values[i * n2 + j]. */
static void family2(struct evbuffer *out, const char *name, const char *help, const char *l1,
                    const char *const *n1, size_t c1, const char *l2, const char *const *n2,
                    size_t c2, const uint64_t *values)
{
    head(out, name, "counter", help);
    for (size_t i = 0; i < c1; i++)
        for (size_t j = 0; j < c2; j++)
            evbuffer_add_printf(out, "%s{%s=\"%s\",%s=\"%s\"} %" PRIu64 "\n", name, l1, n1[i],
                                l2, n2[j], values[i * c2 + j]);
}

static void connections(struct evbuffer *out, const struct config *cfg, const struct sums *s)
{
    const char *name = "sealpost_smtpd_connections_total";

    head(out, name, "counter", "SMTP connections that ended, by listener and TLS state "
                               "(none, starttls, implicit).");
    for (size_t i = 0; i < cfg->listener_count && i < METRICS_MAX_LISTENERS; i++) {
        for (size_t t = 0; t < METRICS_CONN_TLS_COUNT; t++) {
            evbuffer_add_printf(out, "%s{listener=\"", name);
            add_label_value(out, cfg->listeners[i].name);
            evbuffer_add_printf(out, "\",tls=\"%s\"} %" PRIu64 "\n", metrics_conn_tls_names[t],
                                s->counter[METRICS_C_CONN + i * METRICS_CONN_TLS_COUNT + t]);
        }
    }
}

/* A bound in the rendered unit, as Prometheus writes floats. */
static void add_bound(struct evbuffer *out, uint64_t raw, double scale)
{
    evbuffer_add_printf(out, "%.9g", (double)raw / scale);
}

static void histogram(struct evbuffer *out, const struct metrics_hist_def *def,
                      const struct metrics_hist *h)
{
    uint64_t cumulative = 0;

    head(out, def->name, "histogram", def->help);
    for (unsigned b = 0; b < def->nbounds; b++) {
        cumulative += h->bucket[b];
        evbuffer_add_printf(out, "%s_bucket{le=\"", def->name);
        add_bound(out, def->bounds[b], def->scale);
        evbuffer_add_printf(out, "\"} %" PRIu64 "\n", cumulative);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum ", def->name, h->count,
                        def->name);
    add_bound(out, h->sum, def->scale);
    evbuffer_add_printf(out, "\n%s_count %" PRIu64 "\n", def->name, h->count);
}

static void gauges(struct evbuffer *out, const struct sums *s, time_t now)
{
    int64_t oldest = s->gauge[METRICS_G_QUEUE_OLDEST_ARRIVAL];
    int64_t age = oldest > 0 && now > oldest ? (int64_t)now - oldest : 0;

    head(out, "sealpost_queue_messages", "gauge", "Messages in the queue.");
    evbuffer_add_printf(out, "sealpost_queue_messages %" PRId64 "\n",
                        s->gauge[METRICS_G_QUEUE_MESSAGES]);
    head(out, "sealpost_queue_oldest_message_age_seconds", "gauge",
         "Age of the oldest message in the queue (0 when empty).");
    evbuffer_add_printf(out, "sealpost_queue_oldest_message_age_seconds %" PRId64 "\n", age);
}

void metrics_render(struct evbuffer *out, const struct config *cfg,
                    const struct metrics_block *const *blocks, size_t n, time_t now)
{
    static const char *const http_names[METRICS_HTTP_CLASSES] = { "served", "refused" };
    static struct sums s;       /* one page at a time: the role is single-threaded */

    sum_blocks(&s, blocks, n);
    connections(out, cfg, &s);
    family1(out, "sealpost_smtpd_rcpt_total", "RCPT TO verdicts by reason.", "verdict",
            metrics_rcpt_names, METRICS_RCPT_COUNT, &s.counter[METRICS_C_RCPT]);
    head(out, "sealpost_queue_messages_queued_total", "counter",
         "Messages made durable in the queue (received, and bounces generated).");
    evbuffer_add_printf(out, "sealpost_queue_messages_queued_total %" PRIu64 "\n",
                        s.counter[METRICS_C_QUEUED]);
    family2(out, "sealpost_deliveries_total", "Recipient delivery attempts by transport and "
            "outcome (delivered, deferred, bounced).", "transport", metrics_transport_names,
            METRICS_TRANSPORT_COUNT, "outcome", metrics_outcome_names, METRICS_OUTCOME_COUNT,
            &s.counter[METRICS_C_OUTCOME]);
    family2(out, "sealpost_tls_sessions_total", "TLS handshakes completed, by direction and "
            "protocol version.", "direction", metrics_direction_names, METRICS_DIR_COUNT,
            "version", metrics_tls_version_names, METRICS_TLS_VERSION_COUNT,
            &s.counter[METRICS_C_TLS]);
    family1(out, "sealpost_outbound_tls_policy_total", "Outbound TLS policy decided per MX "
            "host (DANE, MTA-STS or configured).", "policy", metrics_tls_policy_names,
            METRICS_TLS_POLICY_COUNT, &s.counter[METRICS_C_POLICY]);
    family1(out, "sealpost_process_restarts_total", "Role processes that died unexpectedly "
            "and were restarted by the master.", "role", metrics_role_names, METRICS_ROLE_COUNT,
            &s.counter[METRICS_C_RESTART]);
    family1(out, "sealpost_metrics_requests_total", "HTTP requests to the metrics endpoint: "
            "served, or refused with a 4xx.", "result", http_names, METRICS_HTTP_CLASSES,
            &s.counter[METRICS_C_HTTP]);
    head(out, "sealpost_metrics_connections_refused_total", "counter",
         "Connections to the metrics endpoint closed unread: max_connections were open.");
    evbuffer_add_printf(out, "sealpost_metrics_connections_refused_total %" PRIu64 "\n",
                        s.counter[METRICS_C_HTTP_CONN_REFUSED]);
    gauges(out, &s, now);
    for (size_t h = 0; h < METRICS_HISTS; h++)
        histogram(out, &metrics_hist_defs[h], &s.hist[h]);
}

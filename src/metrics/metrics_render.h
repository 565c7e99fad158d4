/*
 * metrics_render.h - the Prometheus text exposition format (0.0.4) of
 * the sum of every role's metric block (util/metrics.h).
 *
 * Trusts: the config (listener names become label values, escaped
 * anyway); the blocks' numbers are whatever the roles wrote - a
 * compromised role can change only its own, and only the numbers.
 */
#ifndef SEALPOST_METRICS_METRICS_RENDER_H
#define SEALPOST_METRICS_METRICS_RENDER_H

#include <stddef.h>
#include <time.h>

#include <event2/buffer.h>

#include "config/config.h"
#include "util/metrics.h"

/* Append the page for blocks[0..n) to out; now gives the queue's age. */
void metrics_render(struct evbuffer *out, const struct config *cfg,
                    const struct metrics_block *const *blocks, size_t n, time_t now);

#endif

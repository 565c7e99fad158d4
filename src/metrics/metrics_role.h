/*
 * metrics_role.h - the metrics role: `[metrics] listen` served with
 * libevent's evhttp, GET /metrics only (sandbox/role.h).
 */
#ifndef SEALPOST_METRICS_METRICS_ROLE_H
#define SEALPOST_METRICS_METRICS_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_metrics_ops;

#endif

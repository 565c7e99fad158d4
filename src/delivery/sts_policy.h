/*
 * sts_policy.h - the MTA-STS policy parser moved to mail/sts_policy.h
 * (the queue re-checks cached policies with it too); this header only
 * forwards, so existing includes keep working.
 */
#ifndef SEALPOST_DELIVERY_STS_POLICY_H
#define SEALPOST_DELIVERY_STS_POLICY_H

#include "mail/sts_policy.h"

#endif

/*
 * delivery_role.h - the delivery process: DNS and the SMTP client, as a role for the
 * one main loop (sandbox/role.h).
 */
#ifndef SEALPOST_DELIVERY_DELIVERY_ROLE_H
#define SEALPOST_DELIVERY_DELIVERY_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_delivery_ops;

#endif

/*
 * milter_role.h - the milter role: the process that talks to milters
 * (README "Milters", docs/SECURITY.md).
 */
#ifndef SEALPOST_MILTER_MILTER_ROLE_H
#define SEALPOST_MILTER_MILTER_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_milter_ops;

#endif

/*
 * smtpd_role.h - an smtpd worker: the SMTP server on the listening sockets, as a role for the
 * one main loop (sandbox/role.h).
 */
#ifndef SEALPOST_SMTPD_SMTPD_ROLE_H
#define SEALPOST_SMTPD_SMTPD_ROLE_H

#include "sandbox/role.h"

extern const struct role_ops role_smtpd_ops;

#endif

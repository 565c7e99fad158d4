/*
 * smtp_result.h - the outcome of one delivery attempt for one recipient,
 * as the SMTP client reports it and the queue records it.
 */
#ifndef SEALPOST_MAIL_SMTP_RESULT_H
#define SEALPOST_MAIL_SMTP_RESULT_H

enum smtp_outcome {
    SMTP_DELIVERED = 0,         /* 2xx to the end of data */
    SMTP_DEFERRED,              /* 4xx, network error, timeout: retry later */
    SMTP_FAILED,                /* 5xx, or refused locally (size, SMTPUTF8): bounce */
};

struct smtp_result {
    enum smtp_outcome outcome;
    int code;                   /* SMTP reply code, 0 when none (network, local check) */
    char dsn[16];               /* enhanced status code, e.g. "5.1.1" (synthesized if absent) */
    char text[512];             /* remote reply (lines joined by " ") or local reason */
};

#endif

/*
 * conn_limits.h - connection counts shared by every smtpd worker, so that
 * max_connections and max_connections_per_ip hold for the whole server,
 * not per process. A table in shared memory (a memory file the master
 * creates, its size sealed, and passes to each worker it starts, which
 * maps it): each worker writes only its own row; readers sum the rows.
 * Per-IP counts are kept per hash bucket of the address, so two addresses
 * may share a bucket (then the limit is reached slightly early, never late).
 * When a worker dies, the master clears its row.
 */
#ifndef SEALPOST_SMTP_CONN_LIMITS_H
#define SEALPOST_SMTP_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#define CONN_LIMITS_MAX_SLOTS 64

struct conn_limits;

/* Master: a table of slots rows in a new memory file, its descriptor in
 * *fd (close-on-exec), mapped (fatal on failure). */
struct conn_limits *conn_limits_create(unsigned slots, int *fd);
/* Worker: map the table from fd (the master's, passed on), checking that
 * its size is sealed and fits its row count and that slot is a row.
 * NULL + err. */
struct conn_limits *conn_limits_attach(int fd, unsigned slot, char *err, size_t errsize);
void conn_limits_detach(struct conn_limits *cl);
void conn_limits_reset_slot(struct conn_limits *cl, unsigned slot);

enum conn_verdict { CONN_ADMIT, CONN_TOO_MANY, CONN_TOO_MANY_FROM_IP };

/* Check both limits and, if admitted, count the connection in slot's row. */
enum conn_verdict conn_limits_admit(struct conn_limits *cl, unsigned slot, const char *ip,
                                    unsigned max_total, unsigned max_per_ip);
void conn_limits_release(struct conn_limits *cl, unsigned slot, const char *ip);

#endif

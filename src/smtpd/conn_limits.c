/*
 * conn_limits.c - shared connection counters (see conn_limits.h).
 */
#include "smtpd/conn_limits.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "util/log.h"

#define BUCKETS 4096

struct slot_row {
    atomic_uint total;
    atomic_uint per_ip[BUCKETS];
};

struct conn_limits {
    unsigned slots;
    struct slot_row rows[];
};

struct conn_limits *conn_limits_create(unsigned slots)
{
    size_t size;
    struct conn_limits *cl;

    if (slots == 0 || slots > CONN_LIMITS_MAX_SLOTS)
        fatal("event=start_failed error=\"bad worker count %u\"", slots);
    size = sizeof(*cl) + slots * sizeof(struct slot_row);
    cl = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cl == MAP_FAILED)
        fatal("event=start_failed error=\"cannot map connection table\"");
    memset(cl, 0, size);
    cl->slots = slots;
    return cl;
}

void conn_limits_reset_slot(struct conn_limits *cl, unsigned slot)
{
    if (slot >= cl->slots)
        return;
    atomic_store(&cl->rows[slot].total, 0);
    for (size_t b = 0; b < BUCKETS; b++)
        atomic_store(&cl->rows[slot].per_ip[b], 0);
}

static unsigned bucket(const char *ip)
{
    unsigned h = 2166136261u;

    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % BUCKETS;
}

enum conn_verdict conn_limits_admit(struct conn_limits *cl, unsigned slot, const char *ip,
                                    unsigned max_total, unsigned max_per_ip)
{
    unsigned b = bucket(ip), total = 0, from_ip = 0;

    for (unsigned s = 0; s < cl->slots; s++) {
        total += atomic_load_explicit(&cl->rows[s].total, memory_order_relaxed);
        from_ip += atomic_load_explicit(&cl->rows[s].per_ip[b], memory_order_relaxed);
    }
    if (total >= max_total)
        return CONN_TOO_MANY;
    if (from_ip >= max_per_ip)
        return CONN_TOO_MANY_FROM_IP;
    atomic_fetch_add(&cl->rows[slot].total, 1);
    atomic_fetch_add(&cl->rows[slot].per_ip[b], 1);
    return CONN_ADMIT;
}

void conn_limits_release(struct conn_limits *cl, unsigned slot, const char *ip)
{
    unsigned b = bucket(ip);

    if (atomic_load(&cl->rows[slot].total) > 0)
        atomic_fetch_sub(&cl->rows[slot].total, 1);
    if (atomic_load(&cl->rows[slot].per_ip[b]) > 0)
        atomic_fetch_sub(&cl->rows[slot].per_ip[b], 1);
}

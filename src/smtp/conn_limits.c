/*
 * conn_limits.c - shared connection counters (see conn_limits.h).
 */
#define _GNU_SOURCE 1
#include "smtp/conn_limits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

#define SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

static size_t table_size(unsigned slots)
{
    return sizeof(struct conn_limits) + slots * sizeof(struct slot_row);
}

struct conn_limits *conn_limits_create(unsigned slots, int *fd_out)
{
    size_t size;
    struct conn_limits *cl;
    int fd;

    if (slots == 0 || slots > CONN_LIMITS_MAX_SLOTS)
        fatal("event=start_failed error=\"bad worker count %u\"", slots);
    size = table_size(slots);
    /* Its size sealed: no worker can shrink it under another's mapping. */
    fd = memfd_create("sealpost-conn-limits", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, SEALS) < 0)
        fatal("event=start_failed error=\"connection table: %s\"", strerror(errno));
    cl = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (cl == MAP_FAILED)
        fatal("event=start_failed error=\"cannot map connection table\"");
    memset(cl, 0, size);
    cl->slots = slots;
    *fd_out = fd;
    return cl;
}

struct conn_limits *conn_limits_attach(int fd, unsigned slot, char *err, size_t errsize)
{
    struct stat st;
    struct conn_limits *cl;
    int seals = fcntl(fd, F_GET_SEALS);

    if (seals < 0 || (seals & SEALS) != SEALS || fstat(fd, &st) < 0 ||
        (size_t)st.st_size < table_size(1) || (size_t)st.st_size > table_size(CONN_LIMITS_MAX_SLOTS)) {
        snprintf(err, errsize, "descriptor %d is not a sealed connection table", fd);
        return NULL;
    }
    cl = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (cl == MAP_FAILED) {
        snprintf(err, errsize, "cannot map connection table: %s", strerror(errno));
        return NULL;
    }
    if (table_size(cl->slots) != (size_t)st.st_size || slot >= cl->slots) {
        snprintf(err, errsize, "connection table of %zu bytes has no row %u", (size_t)st.st_size,
                 slot);
        munmap(cl, (size_t)st.st_size);
        return NULL;
    }
    return cl;
}

void conn_limits_detach(struct conn_limits *cl)
{
    if (cl)
        munmap(cl, table_size(cl->slots));
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

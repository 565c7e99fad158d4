/*
 * conn_limits.c - shared connection counters (see conn_limits.h).
 *
 * Each row is an array of entries {state, key}. state packs a generation
 * (high 32 bits) and a count (low 32 bits): count 0 is a free entry,
 * count BUSY an entry whose key is being written. A key is written only
 * while its entry is BUSY, and claiming an entry bumps the generation, so
 * a reader that sees the same generation before and after reading a key
 * has read the key that count belongs to (a seqlock per entry). Every
 * change of a count is a compare-and-swap that includes the generation,
 * so an entry freed and claimed again in between is never miscounted.
 * Entries are claimed from the lowest free index; `used` is the row's
 * high-water mark, so a scan stops where no connection ever was.
 *
 * The table lives in a memory file the master creates with its size
 * sealed; each worker maps it from the descriptor it inherits. Where
 * things are in it (rows, entries, keys) follows from the geometry the
 * master gives every process (slots, capacity), kept in the process's own
 * memory: nothing in the shared table is an offset or a size, so a worker
 * that scribbles on it can skew counts, never make another process read
 * or write outside the mapping.
 *
 * Trusts: nothing it reads from the shared table to be more than a count
 * (row high-water marks are clamped to the capacity); the address text is
 * parsed with inet_pton.
 */
#define _GNU_SOURCE 1
#include "smtpd/conn_limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define BUSY        UINT32_MAX
#define KEY_WORDS   4                   /* 16 octets as 32-bit words */
#define READ_TRIES  4                   /* re-reads of an entry in flux */

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics work across processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics work across processes");

struct row_head {
    atomic_uint total;                  /* connections counted in this row */
    atomic_uint used;                   /* entries [0, used) may be live */
};

/* The shared memory: row heads, then every row's states, then its keys. */
struct table_head {
    struct row_head rows[CONN_LIMITS_MAX_SLOTS];
};

/* This process's view of the table: all geometry is local. */
struct conn_limits {
    unsigned slots, capacity;
    size_t size, states_off, keys_off;  /* from the start of the mapping */
    struct row_head *rows;              /* into the mapping */
    char *base;
};

#define SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

static uint64_t pack(uint32_t gen, uint32_t count)
{
    return (uint64_t)gen << 32 | count;
}

static uint32_t gen_of(uint64_t state)
{
    return (uint32_t)(state >> 32);
}

static uint32_t count_of(uint64_t state)
{
    return (uint32_t)state;
}

static atomic_ullong *state_at(const struct conn_limits *cl, unsigned slot, unsigned i)
{
    atomic_ullong *states = (atomic_ullong *)(cl->base + cl->states_off);

    return &states[(size_t)slot * cl->capacity + i];
}

static atomic_uint *key_at(const struct conn_limits *cl, unsigned slot, unsigned i)
{
    atomic_uint *keys = (atomic_uint *)(cl->base + cl->keys_off);

    return &keys[((size_t)slot * cl->capacity + i) * KEY_WORDS];
}

/* ---- keys ---- */

bool conn_key_from_text(const char *ip, unsigned ipv6_prefix, struct conn_key *out)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    struct in6_addr a6;
    struct in_addr a4;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        memcpy(out->b, mapped, sizeof(mapped));
        memcpy(out->b + 12, &a4, 4);
        return true;
    }
    if (inet_pton(AF_INET6, ip, &a6) != 1) {
        memset(out->b, 0xff, sizeof(out->b));
        return false;
    }
    memcpy(out->b, &a6, 16);
    if (memcmp(out->b, mapped, sizeof(mapped)) == 0)
        return true;                    /* an IPv4 client: the exact address */
    if (ipv6_prefix > 128)
        ipv6_prefix = 128;
    for (unsigned bit = ipv6_prefix; bit < 128; bit++)
        out->b[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    return true;
}

static void key_words(const struct conn_key *key, uint32_t w[KEY_WORDS])
{
    memcpy(w, key->b, sizeof(key->b));
}

/* ---- reading ---- */

/*
 * The count of entry i in slot's row if it holds key, else 0; *state is
 * the state that count was read from (for a compare-and-swap). An entry
 * that keeps being claimed again under the reader (or whose writer died
 * while it was BUSY) counts 0: a transient error of one connection at
 * most. A live entry's generation does not change, so an entry that
 * holds a connection of the caller's is always read.
 */
static uint32_t entry_read(const struct conn_limits *cl, unsigned slot, unsigned i,
                           const uint32_t want[KEY_WORDS], uint64_t *state)
{
    atomic_ullong *st = state_at(cl, slot, i);
    atomic_uint *k = key_at(cl, slot, i);

    for (int tries = 0; tries < READ_TRIES; tries++) {
        uint64_t s1 = atomic_load_explicit(st, memory_order_acquire), s2;
        bool same = true;

        if (count_of(s1) == 0 || count_of(s1) == BUSY)
            return 0;
        for (int w = 0; w < KEY_WORDS; w++)
            same &= atomic_load_explicit(&k[w], memory_order_relaxed) == want[w];
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(st, memory_order_relaxed);
        if (gen_of(s2) == gen_of(s1)) {
            *state = s2;
            return same && count_of(s2) != BUSY ? count_of(s2) : 0;
        }
    }
    return 0;
}

static unsigned row_used(const struct conn_limits *cl, unsigned slot)
{
    unsigned used = atomic_load_explicit(&cl->rows[slot].used, memory_order_acquire);

    return used < cl->capacity ? used : cl->capacity;
}

unsigned conn_limits_count(const struct conn_limits *cl, const struct conn_key *key)
{
    uint32_t want[KEY_WORDS];
    unsigned n = 0;

    key_words(key, want);
    for (unsigned s = 0; s < cl->slots; s++) {
        unsigned used = row_used(cl, s);

        for (unsigned i = 0; i < used; i++) {
            uint64_t state;

            n += entry_read(cl, s, i, want, &state);
        }
    }
    return n;
}

unsigned conn_limits_total(const struct conn_limits *cl)
{
    unsigned n = 0;

    for (unsigned s = 0; s < cl->slots; s++)
        n += atomic_load_explicit(&cl->rows[s].total, memory_order_relaxed);
    return n;
}

/* ---- writing (the slot's own row) ---- */

/* Add delta (+1 or -1) to the live entry of key in slot's row. */
static bool entry_adjust(struct conn_limits *cl, unsigned slot, const uint32_t want[KEY_WORDS],
                         int delta)
{
    unsigned used = row_used(cl, slot);

    for (unsigned i = 0; i < used; i++) {
        for (;;) {
            uint64_t s;
            uint32_t c = entry_read(cl, slot, i, want, &s);

            if (c == 0 || (delta > 0 && c >= BUSY - 1))
                break;
            /* Fails if the entry changed since it was read (the
             * generation is part of s): then read it again. */
            if (atomic_compare_exchange_strong_explicit(
                    state_at(cl, slot, i), &s, pack(gen_of(s), delta > 0 ? c + 1 : c - 1),
                    memory_order_acq_rel, memory_order_acquire))
                return true;
        }
    }
    return false;
}

/* Raise the row's high-water mark to at least n. */
static void raise_used(struct conn_limits *cl, unsigned slot, unsigned n)
{
    unsigned cur = atomic_load_explicit(&cl->rows[slot].used, memory_order_relaxed);

    while (cur < n && !atomic_compare_exchange_weak_explicit(
                          &cl->rows[slot].used, &cur, n, memory_order_acq_rel,
                          memory_order_relaxed))
        ;
}

/* Claim a free entry of slot's row for key with count 1. */
static bool entry_claim(struct conn_limits *cl, unsigned slot, const uint32_t want[KEY_WORDS])
{
    for (unsigned i = 0; i < cl->capacity; i++) {
        atomic_ullong *st = state_at(cl, slot, i);
        atomic_uint *k = key_at(cl, slot, i);
        uint64_t s = atomic_load_explicit(st, memory_order_relaxed);
        uint32_t gen;

        if (count_of(s) != 0)
            continue;
        gen = gen_of(s) + 1;
        if (!atomic_compare_exchange_strong_explicit(st, &s, pack(gen, BUSY),
                                                     memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        raise_used(cl, slot, i + 1);
        /* Readers that see a key word written below also see BUSY. */
        atomic_thread_fence(memory_order_release);
        for (int w = 0; w < KEY_WORDS; w++)
            atomic_store_explicit(&k[w], want[w], memory_order_relaxed);
        atomic_store_explicit(st, pack(gen, 1), memory_order_release);
        return true;
    }
    return false;
}

/* Decrement a counter that is never meant to go below zero. */
static void dec_floor(atomic_uint *v)
{
    unsigned cur = atomic_load_explicit(v, memory_order_relaxed);

    while (cur > 0 && !atomic_compare_exchange_weak_explicit(v, &cur, cur - 1,
                                                             memory_order_acq_rel,
                                                             memory_order_relaxed))
        ;
}

/* ---- the table ---- */

/* The geometry of a table of slots rows of capacity entries. */
static void geometry(struct conn_limits *cl, unsigned slots, unsigned capacity)
{
    size_t head = (sizeof(struct table_head) + 63) & ~(size_t)63;
    size_t entries = (size_t)slots * capacity;

    cl->slots = slots;
    cl->capacity = capacity;
    cl->states_off = head;
    cl->keys_off = head + entries * sizeof(atomic_ullong);
    cl->size = cl->keys_off + entries * KEY_WORDS * sizeof(atomic_uint);
}

unsigned conn_limits_capacity(const struct config *cfg, unsigned workers)
{
    return cfg->max_connections + workers;
}

static struct conn_limits *map_table(int fd, unsigned slots, unsigned capacity)
{
    struct conn_limits *cl = calloc(1, sizeof(*cl));
    void *p;

    if (cl == NULL)
        return NULL;
    geometry(cl, slots, capacity);
    p = mmap(NULL, cl->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
        free(cl);
        return NULL;
    }
    cl->base = p;
    cl->rows = ((struct table_head *)p)->rows;
    return cl;
}

struct conn_limits *conn_limits_create(unsigned slots, unsigned capacity, int *fd_out)
{
    struct conn_limits probe, *cl;
    int fd;

    if (slots == 0 || slots > CONN_LIMITS_MAX_SLOTS || capacity == 0 ||
        capacity > CONN_LIMITS_MAX_CAPACITY)
        fatal("event=start_failed error=\"bad connection table %u x %u\"", slots, capacity);
    geometry(&probe, slots, capacity);
    /* A new memory file reads as zeros: every entry free, generation 0.
     * Its size is sealed: no worker can shrink it under another's mapping. */
    fd = memfd_create("sealpost-conn-limits", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)probe.size) < 0 || fcntl(fd, F_ADD_SEALS, SEALS) < 0)
        fatal("event=start_failed error=\"connection table: %s\"", strerror(errno));
    cl = map_table(fd, slots, capacity);
    if (cl == NULL)
        fatal("event=start_failed error=\"cannot map connection table: %s\"", strerror(errno));
    *fd_out = fd;
    return cl;
}

struct conn_limits *conn_limits_attach(int fd, unsigned slots, unsigned capacity,
                                       unsigned slot, char *err, size_t errsize)
{
    struct conn_limits probe, *cl;
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);

    if (slots == 0 || slots > CONN_LIMITS_MAX_SLOTS || capacity == 0 ||
        capacity > CONN_LIMITS_MAX_CAPACITY || slot >= slots) {
        snprintf(err, errsize, "no row %u in a connection table of %u x %u", slot, slots,
                 capacity);
        return NULL;
    }
    geometry(&probe, slots, capacity);
    if (seals < 0 || (seals & SEALS) != SEALS || fstat(fd, &st) < 0 ||
        (size_t)st.st_size != probe.size) {
        snprintf(err, errsize, "descriptor %d is not a sealed connection table of %zu bytes",
                 fd, probe.size);
        return NULL;
    }
    cl = map_table(fd, slots, capacity);
    if (cl == NULL)
        snprintf(err, errsize, "cannot map connection table: %s", strerror(errno));
    return cl;
}

void conn_limits_detach(struct conn_limits *cl)
{
    if (cl == NULL)
        return;
    munmap(cl->base, cl->size);
    free(cl);
}

void conn_limits_reset_slot(struct conn_limits *cl, unsigned slot)
{
    unsigned used;

    if (slot >= cl->slots)
        return;
    used = row_used(cl, slot);
    for (unsigned i = 0; i < used; i++) {
        atomic_ullong *st = state_at(cl, slot, i);
        uint64_t s = atomic_load_explicit(st, memory_order_relaxed);

        /* A new generation: a reader in the middle of this entry retries. */
        atomic_store_explicit(st, pack(gen_of(s) + 1, 0), memory_order_release);
    }
    atomic_store_explicit(&cl->rows[slot].used, 0, memory_order_release);
    atomic_store_explicit(&cl->rows[slot].total, 0, memory_order_release);
}

enum conn_verdict conn_limits_admit(struct conn_limits *cl, unsigned slot,
                                    const struct conn_key *key, unsigned max_total,
                                    unsigned max_per_ip)
{
    uint32_t want[KEY_WORDS];

    if (slot >= cl->slots)
        return CONN_TOO_MANY;
    if (conn_limits_total(cl) >= max_total)
        return CONN_TOO_MANY;
    if (conn_limits_count(cl, key) >= max_per_ip)
        return CONN_TOO_MANY_FROM_IP;
    key_words(key, want);
    if (!entry_adjust(cl, slot, want, +1) && !entry_claim(cl, slot, want))
        return CONN_TOO_MANY;           /* row full: as many keys as connections */
    atomic_fetch_add_explicit(&cl->rows[slot].total, 1, memory_order_acq_rel);
    return CONN_ADMIT;
}

void conn_limits_release(struct conn_limits *cl, unsigned slot, const struct conn_key *key)
{
    uint32_t want[KEY_WORDS];

    if (slot >= cl->slots)
        return;
    key_words(key, want);
    if (entry_adjust(cl, slot, want, -1))
        dec_floor(&cl->rows[slot].total);
}

/*
 * metrics.c - metric blocks and their writers (see metrics.h).
 *
 * Trusts: nothing in a block it attaches (type, seals, size and header
 * are checked); the writers' arguments are range-checked, so a wrong
 * index counts nothing rather than something else.
 */
#define _GNU_SOURCE 1
#include "util/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE_SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

struct metrics_block *metrics_self;

const char *const metrics_conn_tls_names[METRICS_CONN_TLS_COUNT] = {
    "none", "starttls", "implicit",
};
const char *const metrics_rcpt_names[METRICS_RCPT_COUNT] = {
    "accepted", "tls_required", "unknown_user", "relay_denied", "too_many_recipients",
    "envelope_full",
    "milter", "unknown_relay_user", "alias_loop", "alias_too_many",
};
const char *const metrics_transport_names[METRICS_TRANSPORT_COUNT] = { "smtp", "maildir",
                                                                       "lmtp" };
const char *const metrics_outcome_names[METRICS_OUTCOME_COUNT] = {
    "delivered", "deferred", "bounced",
};
const char *const metrics_direction_names[METRICS_DIR_COUNT] = { "inbound", "outbound" };
const char *const metrics_tls_version_names[METRICS_TLS_VERSION_COUNT] = {
    "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other",
};
/* delivery/tls_decide.h enum host_tls, in order */
const char *const metrics_tls_policy_names[METRICS_TLS_POLICY_COUNT] = {
    "cleartext", "opportunistic", "encrypt", "dane", "pkix", "defer", "fingerprint",
};
const char *const metrics_role_names[METRICS_ROLE_COUNT] = {
    "queue", "smtpd", "delivery", "local", "lmtp", "metrics", "milter",
};

const struct metrics_hist_def metrics_hist_defs[METRICS_HISTS] = {
    [METRICS_H_DELIVERY_SECONDS] = {
        "sealpost_delivery_latency_seconds",
        "Time from arrival in the queue to delivery, per delivered recipient.",
        1.0, { 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000 }, 11 },
    [METRICS_H_COMMIT_GROUP] = {
        "sealpost_queue_commit_group_size",
        "Messages made durable together by one group commit.",
        1.0, { 1, 2, 4, 8, 16, 32, 64, 128, 256 }, 9 },
    [METRICS_H_FSYNC_USEC] = {
        "sealpost_queue_fsync_seconds",
        "Time of the fsync step of one group commit (the files' fsyncs, then the "
        "directory's).",
        1e6, { 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
               5000000 }, 12 },
};

void metrics_connection(size_t listener, enum metrics_conn_tls tls)
{
    if (listener < METRICS_MAX_LISTENERS && (unsigned)tls < METRICS_CONN_TLS_COUNT)
        metrics_add(METRICS_C_CONN + (unsigned)listener * METRICS_CONN_TLS_COUNT + tls, 1);
}

void metrics_rcpt(enum metrics_rcpt verdict)
{
    if ((unsigned)verdict < METRICS_RCPT_COUNT)
        metrics_add(METRICS_C_RCPT + verdict, 1);
}

void metrics_outcome(enum metrics_transport t, enum metrics_outcome o)
{
    if ((unsigned)t < METRICS_TRANSPORT_COUNT && (unsigned)o < METRICS_OUTCOME_COUNT)
        metrics_add(METRICS_C_OUTCOME + t * METRICS_OUTCOME_COUNT + o, 1);
}

void metrics_tls(enum metrics_direction dir, int version)
{
    /* the protocol numbers (OpenSSL's TLS1_VERSION .. TLS1_3_VERSION) */
    enum metrics_tls_version v = version == 0x0301 ? METRICS_TLS_1_0
                               : version == 0x0302 ? METRICS_TLS_1_1
                               : version == 0x0303 ? METRICS_TLS_1_2
                               : version == 0x0304 ? METRICS_TLS_1_3
                               : METRICS_TLS_OTHER;

    if ((unsigned)dir < METRICS_DIR_COUNT)
        metrics_add(METRICS_C_TLS + dir * METRICS_TLS_VERSION_COUNT + v, 1);
}

void metrics_tls_policy(unsigned host_tls_mode)
{
    if (host_tls_mode < METRICS_TLS_POLICY_COUNT)
        metrics_add(METRICS_C_POLICY + host_tls_mode, 1);
}

void metrics_observe(enum metrics_hist_id h, uint64_t raw)
{
    const struct metrics_hist_def *def;
    struct metrics_hist *mh;
    unsigned b = 0;

    if (metrics_self == NULL || (unsigned)h >= METRICS_HISTS)
        return;
    def = &metrics_hist_defs[h];
    while (b < def->nbounds && raw > def->bounds[b])
        b++;
    mh = &metrics_self->hist[h];
    __atomic_fetch_add(&mh->bucket[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mh->sum, raw, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mh->count, 1, __ATOMIC_RELAXED);
}

struct metrics_block *metrics_create(const char *name, int *fd)
{
    struct metrics_block *b;
    int saved;

    *fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*fd < 0)
        return NULL;
    if (ftruncate(*fd, (off_t)sizeof(*b)) < 0 || fcntl(*fd, F_ADD_SEALS, SIZE_SEALS) < 0)
        goto fail;
    b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (b == MAP_FAILED)
        goto fail;
    b->magic = METRICS_MAGIC;
    b->version = METRICS_VERSION;
    b->size = (uint32_t)sizeof(*b);
    return b;
fail:
    saved = errno;
    close(*fd);
    *fd = -1;
    errno = saved;
    return NULL;
}

struct metrics_block *metrics_attach(int fd, bool writable, char *why, size_t whysize)
{
    struct stat st;
    struct metrics_block *b;
    int seals = fcntl(fd, F_GET_SEALS);

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 ||
        (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) != (F_SEAL_GROW | F_SEAL_SHRINK)) {
        snprintf(why, whysize, "descriptor %d is not a sealed metrics block", fd);
        return NULL;
    }
    if ((size_t)st.st_size != sizeof(*b)) {
        snprintf(why, whysize, "metrics block of %lld octets, expected %zu",
                 (long long)st.st_size, sizeof(*b));
        return NULL;
    }
    b = mmap(NULL, sizeof(*b), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd,
             0);
    if (b == MAP_FAILED) {
        snprintf(why, whysize, "mmap: %s", strerror(errno));
        return NULL;
    }
    if (b->magic != METRICS_MAGIC || b->version != METRICS_VERSION || b->size != sizeof(*b)) {
        munmap(b, sizeof(*b));
        snprintf(why, whysize, "metrics block header mismatch (another version?)");
        return NULL;
    }
    return b;
}

void metrics_detach(const struct metrics_block *b)
{
    if (b != NULL)
        munmap((void *)b, sizeof(*b));
}

int metrics_reopen_readonly(int fd)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, O_RDONLY | O_CLOEXEC);
}

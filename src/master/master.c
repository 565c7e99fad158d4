/*
 * master.c - process supervisor (see master.h).
 *
 * Trusts: the config and its own children's exit statuses. Holds root
 * when started as root; never parses network input itself.
 */
#define _GNU_SOURCE 1
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "sandbox/drop.h"
#include "sandbox/role.h"
#include "util/fileio.h"
#include "util/ipc.h"
#include "master/control_socket.h"
#include "master/log_sink.h"
#include "master/master_files.h"
#include "master/spawn.h"
#include "smtpd/conn_limits.h"
#include "smtpd/server.h"
#include "util/log.h"
#include "util/memfd.h"
#include "util/metrics.h"
#include "util/xalloc.h"

#define MAX_BACKOFF 30          /* seconds between restarts of a crashing role */
#define QUICK_DEATH 5           /* a child that dies sooner than this backs off */

enum role { ROLE_QUEUE, ROLE_SMTPD, ROLE_DELIVERY, ROLE_LOCAL, ROLE_LMTP, ROLE_METRICS,
            ROLE_MILTER };
_Static_assert((int)ROLE_MILTER == (int)METRICS_ROLE_MILTER &&
               (int)ROLE_METRICS == (int)METRICS_ROLE_METRICS &&
               (int)ROLE_LMTP == (int)METRICS_ROLE_LMTP &&
               (int)ROLE_LOCAL == (int)METRICS_ROLE_LOCAL, "util/metrics.h role order");

struct child {
    pid_t pid;
    enum role role;
    unsigned slot;
    time_t started;
    bool retired;               /* replaced after a reload, or stopping */
    struct child *next;
};

struct master;

/* A pending restart of one role slot. */
struct restart {
    struct master *m;
    enum role role;
    unsigned slot;
    struct event *ev;
};

#define QUEUE_RESTART CONN_LIMITS_MAX_SLOTS      /* index of the queue's entry */
#define DELIVERY_RESTART (QUEUE_RESTART + 1)    /* and of the delivery process's */
#define LOCAL_RESTART (DELIVERY_RESTART + 1)      /* local process k: LOCAL_RESTART + k */
#define LMTP_RESTART (LOCAL_RESTART + CONFIG_MAX_DOMAINS)  /* the LMTP process */
#define METRICS_RESTART (LMTP_RESTART + 1)
#define MILTER_RESTART (METRICS_RESTART + 1)    /* milter process k: MILTER_RESTART + k */
#define RESTART_ENTRIES (MILTER_RESTART + CONFIG_MAX_MILTER_PROCS)

/* Metric blocks (util/metrics.h): the master's own, the queue's, the
 * delivery process's, the metrics role's, one per worker slot and one
 * per local slot. A restarted role gets its slot's block again: counters
 * run on across restarts (a Prometheus counter resets only when sealpost
 * restarts). */
#define MBLOCK_MASTER 0
#define MBLOCK_QUEUE 1
#define MBLOCK_DELIVERY 2
#define MBLOCK_METRICS 3
#define MBLOCK_SMTPD 4
#define MBLOCK_LOCAL (MBLOCK_SMTPD + CONN_LIMITS_MAX_SLOTS)
#define MBLOCKS (MBLOCK_LOCAL + CONFIG_MAX_DOMAINS)

struct master {
    struct config *cfg;
    struct event_base *base;
    int exe;                    /* the sealpost binary, for every role */
    int config_fd;              /* cfg->text, sealed */
    struct listen_socket socks[SERVER_MAX_SOCKETS];
    size_t sock_count;
    struct master_files files;  /* certificates, keys, mailbox lists */
    struct log_sink *log;       /* [server] log, for every process */
    struct conn_limits *limits;
    int limits_fd;
    unsigned workers;
    int control;                /* to the queue process */
    int queue_control;          /* listening: `sealpost queue` (control_socket.h) */
    struct event *control_ev;   /* a restarted queue's READY on control */
    bool queue_ready;           /* the current queue said READY: mail can be taken */
    struct child *children;
    bool stopping;
    unsigned backoff[RESTART_ENTRIES];
    struct restart restarts[RESTART_ENTRIES];
    char empty_dir[4200];
    struct drop_plan smtpd_plan, queue_plan, delivery_plan, metrics_plan;
    /* [metrics]: blocks (read-write; mro: read-only copies for the
     * metrics role), -1 where none; metrics_listen -1 when off */
    struct metrics_block *mblock[MBLOCKS];
    int mfd[MBLOCKS], mro[MBLOCKS];
    int metrics_listen;
    /* one local delivery process per [domain] owner that is not the
     * queue user (config_local_owners), slot k running as local_plans[k] */
    struct drop_plan local_plans[CONFIG_MAX_DOMAINS];
    size_t local_count;
    /* the LMTP delivery process, when a [domain] delivers over LMTP */
    struct drop_plan lmtp_plan;
    bool lmtp;
    char lmtp_dir[LMTP_TARGET_MAX];     /* its chroot: the unix sockets' folder */
    /* the milter role, when a listener has milters */
    struct drop_plan milter_plan;
    bool milter;
    char milter_dir[LMTP_TARGET_MAX];   /* its chroot: the unix milter sockets' folder */
};

static const char *role_name(enum role r)
{
    return r == ROLE_QUEUE ? "queue" : r == ROLE_DELIVERY ? "delivery"
         : r == ROLE_LOCAL ? "local" : r == ROLE_LMTP ? "lmtp"
         : r == ROLE_METRICS ? "metrics" : r == ROLE_MILTER ? "milter" : "smtpd";
}

static void add_child(struct master *m, pid_t pid, enum role role, unsigned slot)
{
    struct child *c = xcalloc(1, sizeof(*c));

    c->pid = pid;
    c->role = role;
    c->slot = slot;
    c->started = time(NULL);
    c->next = m->children;
    m->children = c;
    log_info("event=child_start role=%s slot=%u pid=%ld", role_name(role), slot, (long)pid);
}

/* --- starting a role (role.h: its command line and descriptors) --- */

#define ROLE_ARGS 24

struct role_cmd {
    char *argv[ROLE_ARGS];
    size_t argc;
    char slot[16], workers[16], uid[24], gid[24], metrics[16];
    int fds[SPAWN_MAX_FDS];
    size_t nfds;
};

static void arg(struct role_cmd *c, const char *a, const char *b)
{
    c->argv[c->argc++] = (char *)a;
    if (b)
        c->argv[c->argc++] = (char *)b;
}

static const struct drop_plan *plan_of(const struct master *m, enum role role, unsigned slot)
{
    return role == ROLE_QUEUE ? &m->queue_plan
         : role == ROLE_DELIVERY ? &m->delivery_plan
         : role == ROLE_LOCAL ? &m->local_plans[slot]
         : role == ROLE_LMTP ? &m->lmtp_plan
         : role == ROLE_METRICS ? &m->metrics_plan
         : role == ROLE_MILTER ? &m->milter_plan : &m->smtpd_plan;
}

/* `sealpost role NAME ...` with the master's path, host name and plan. */
static void role_cmd(const struct master *m, enum role role, unsigned slot, struct role_cmd *c)
{
    const struct drop_plan *plan = plan_of(m, role, slot);

    memset(c, 0, sizeof(*c));
    arg(c, "sealpost", "role");
    arg(c, role_name(role), NULL);
    arg(c, "--config", m->cfg->path);
    arg(c, "--hostname", m->cfg->hostname);
    if (role == ROLE_SMTPD) {
        snprintf(c->slot, sizeof(c->slot), "%u", slot);
        snprintf(c->workers, sizeof(c->workers), "%u", m->workers);
        arg(c, "--slot", c->slot);
        arg(c, "--workers", c->workers);
    } else if (role == ROLE_LOCAL) {
        snprintf(c->slot, sizeof(c->slot), "%u", slot);
        arg(c, "--slot", c->slot);
    }
    if (plan->switch_user) {
        snprintf(c->uid, sizeof(c->uid), "%ld", (long)plan->uid);
        snprintf(c->gid, sizeof(c->gid), "%ld", (long)plan->gid);
        arg(c, "--user", plan->user);
        arg(c, "--uid", c->uid);
        arg(c, "--gid", c->gid);
    }
    if (plan->chroot_dir)
        arg(c, "--chroot", plan->chroot_dir);
    c->argv[c->argc] = NULL;
}

/* The descriptors of role.h, from ROLE_FD_CONFIG on. */
static void role_fds(const struct master *m, enum role role, int channel, struct role_cmd *c)
{
    c->fds[c->nfds++] = m->config_fd;
    c->fds[c->nfds++] = channel;
    /* Workers get keys and mailbox lists, the queue the mailbox lists (it
     * checks every envelope against them) and the users, delivery the
     * smart host's credentials file (if any), local processes nothing. */
    c->fds[c->nfds++] = role == ROLE_SMTPD      ? m->files.worker_fd
                      : role == ROLE_QUEUE    ? m->files.mailbox_fd
                      : role == ROLE_DELIVERY ? m->files.delivery_fd
                                              : m->files.none_fd;
    if (role == ROLE_QUEUE)
        c->fds[c->nfds++] = m->queue_control;       /* ROLE_FD_QUEUE_CONTROL */
    if (role == ROLE_METRICS)
        c->fds[c->nfds++] = m->metrics_listen;      /* ROLE_FD_METRICS_LISTEN */
    if (role != ROLE_SMTPD)
        return;
    c->fds[c->nfds++] = m->limits_fd;
    for (size_t i = 0; i < m->sock_count; i++)
        c->fds[c->nfds++] = m->socks[i].fd;
}

/* -1: the role counts nothing of its own (the LMTP process: the queue
 * counts its deliveries), so it gets no block, and none of another's. */
static int mblock_index(enum role role, unsigned slot)
{
    return role == ROLE_QUEUE ? MBLOCK_QUEUE : role == ROLE_DELIVERY ? MBLOCK_DELIVERY
         : role == ROLE_METRICS ? MBLOCK_METRICS
         : role == ROLE_LMTP || role == ROLE_MILTER ? -1
         : role == ROLE_LOCAL ? MBLOCK_LOCAL + (int)slot : MBLOCK_SMTPD + (int)slot;
}

/* The role's metric block, last, named by --metrics (role_start.c). */
static void role_metrics_fd(const struct master *m, enum role role, unsigned slot,
                            struct role_cmd *c)
{
    int i = mblock_index(role, slot), fd = i < 0 ? -1 : m->mfd[i];

    if (fd < 0)
        return;
    snprintf(c->metrics, sizeof(c->metrics), "%d", ROLE_FD_CONFIG + (int)c->nfds);
    c->fds[c->nfds++] = fd;
    arg(c, "--metrics", c->metrics);
    c->argv[c->argc] = NULL;
}

static pid_t spawn(struct master *m, enum role role, unsigned slot, int channel)
{
    struct role_cmd c;
    pid_t pid;

    role_cmd(m, role, slot, &c);
    role_fds(m, role, channel, &c);
    role_metrics_fd(m, role, slot, &c);
    pid = spawn_role(m->exe, c.argv, c.fds, c.nfds);
    if (pid < 0)
        fatal("event=spawn_failed role=%s error=\"fork: %s\"", role_name(role),
              strerror(errno));
    add_child(m, pid, role, slot);
    return pid;
}

static pid_t spawn_queue(struct master *m)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fatal("event=spawn_failed role=queue error=\"socketpair: %s\"", strerror(errno));
    pid = spawn(m, ROLE_QUEUE, 0, sv[1]);
    close(sv[1]);
    if (m->control >= 0)
        close(m->control);
    m->control = sv[0];
    return pid;
}

/*
 * At start-up: a daemon that cannot queue must not accept mail. Wait for
 * the queue to say it has its spool (IPC_QUEUE_READY); if it exits first
 * (its own log line says why) or stays silent, sealpost does not start.
 */
#define QUEUE_READY_TIMEOUT_MS (60 * 1000)

static void wait_queue_ready(struct master *m, pid_t queue)
{
    struct pollfd pfd = { m->control, POLLIN, 0 };
    enum ipc_type type;
    char payload[16];
    size_t len;
    int fd, status, n;

    do {
        n = poll(&pfd, 1, QUEUE_READY_TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && ipc_recv(m->control, &type, payload, sizeof(payload), &len, false, &fd) ==
                     IPC_OK && type == IPC_QUEUE_READY)
        return;
    if (waitpid(queue, &status, WNOHANG) != queue)
        kill(queue, SIGKILL);               /* silent, or said something else */
    fatal("event=start_failed role=queue error=\"%s\"",
          n > 0 ? "the queue process could not start" : "the queue process did not answer");
}

/*
 * Start a child in role: the queue gets one end of a new channel (an
 * IPC message of type with payload, the end attached), the child the
 * other. While no queue is ready (it died and its restart has not said
 * READY yet) a worker is started with a channel whose other end is
 * closed: it answers 421/451 4.3.0 (server_no_queue) until the ready
 * queue's workers replace it. A delivery process is not started then:
 * the queue's READY starts it.
 */
static void spawn_with_channel(struct master *m, enum role role, unsigned slot,
                               enum ipc_type type, const void *payload, size_t len)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fatal("event=spawn_failed role=%s error=\"socketpair: %s\"", role_name(role),
              strerror(errno));
    if (role == ROLE_SMTPD && !m->queue_ready) {
        close(sv[1]);
        log_info("event=spawn role=smtpd slot=%u queue=none", slot);
        spawn(m, role, slot, sv[0]);
        close(sv[0]);
        return;
    }
    if (!m->queue_ready || m->control < 0 || !ipc_send(m->control, type, payload, len, sv[1])) {
        log_warn("event=spawn_deferred role=%s slot=%u reason=\"queue not running\"",
                 role_name(role), slot);
        close(sv[0]);
        close(sv[1]);
        return;
    }
    close(sv[1]);
    spawn(m, role, slot, sv[0]);
    close(sv[0]);
}

static void spawn_worker(struct master *m, unsigned slot)
{
    int32_t s32 = (int32_t)slot;

    spawn_with_channel(m, ROLE_SMTPD, slot, IPC_CHANNEL, &s32, sizeof(s32));
}

static void spawn_delivery(struct master *m)
{
    spawn_with_channel(m, ROLE_DELIVERY, 0, IPC_DELIVERY_CHANNEL, NULL, 0);
}

static void spawn_local(struct master *m, unsigned slot)
{
    int32_t s32 = (int32_t)slot;

    spawn_with_channel(m, ROLE_LOCAL, slot, IPC_LOCAL_CHANNEL, &s32, sizeof(s32));
}

static void spawn_lmtp(struct master *m)
{
    spawn_with_channel(m, ROLE_LMTP, 0, IPC_LMTP_CHANNEL, NULL, 0);
}

static void spawn_milter(struct master *m, unsigned slot)
{
    int32_t s32 = (int32_t)slot;

    spawn_with_channel(m, ROLE_MILTER, slot, IPC_MILTER_CHANNEL, &s32, sizeof(s32));
}

/* The metrics role: its channel carries every block, read-only, then
 * closes (metrics/metrics_role.c). */
static void spawn_metrics(struct master *m)
{
    int sv[2];

    if (m->metrics_listen < 0)
        return;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fatal("event=spawn_failed role=metrics error=\"socketpair: %s\"", strerror(errno));
    spawn(m, ROLE_METRICS, 0, sv[1]);
    close(sv[1]);
    for (size_t i = 0; i < MBLOCKS; i++) {
        if (m->mro[i] >= 0 && !ipc_send(sv[0], IPC_METRICS_BLOCK, NULL, 0, m->mro[i])) {
            log_error("event=metrics_blocks_failed error=\"%s\"", strerror(errno));
            break;
        }
    }
    close(sv[0]);
}

/* --- supervision --- */

static bool slot_has_worker(const struct master *m, unsigned slot);
static bool delivery_running(const struct master *m);
static bool local_running(const struct master *m, unsigned slot);
static bool lmtp_running(const struct master *m);
static bool milter_running(const struct master *m, unsigned slot);

/* Start every local delivery process that is not running or waiting
 * for its restart. */
static void fill_local_slots(struct master *m)
{
    for (unsigned k = 0; k < m->local_count; k++) {
        if (!local_running(m, k) && !evtimer_pending(m->restarts[LOCAL_RESTART + k].ev, NULL))
            spawn_local(m, k);
    }
    if (m->lmtp && !lmtp_running(m) && !evtimer_pending(m->restarts[LMTP_RESTART].ev, NULL))
        spawn_lmtp(m);
    for (unsigned k = 0; m->milter && k < m->cfg->milter_processes; k++) {
        if (!milter_running(m, k) && !evtimer_pending(m->restarts[MILTER_RESTART + k].ev, NULL))
            spawn_milter(m, k);
    }
}

static void signal_children(struct master *m, enum role role, int sig, bool retire);

/* Start every worker slot that has no current worker. */
static void fill_worker_slots(struct master *m)
{
    for (unsigned s = 0; s < m->workers; s++) {
        if (!slot_has_worker(m, s) && !evtimer_pending(m->restarts[s].ev, NULL))
            spawn_worker(m, s);
    }
}

/*
 * A restarted queue is ready (IPC_QUEUE_READY on control): the workers
 * that have been refusing mail since the old one died are stopped (their
 * idle sessions get 421 4.3.2 at once, sessions in a transaction finish
 * it, as in a graceful stop) and a new set, with channels to this queue,
 * takes the listening sockets; the delivery process starts again.
 */
static void queue_ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    enum ipc_type type;
    char payload[16];
    size_t len;
    int passed = -1;
    enum ipc_status st = ipc_recv(fd, &type, payload, sizeof(payload), &len, false, &passed);

    (void)what;
    if (st == IPC_AGAIN)
        return;
    if (st != IPC_OK || type != IPC_QUEUE_READY) {
        event_del(m->control_ev);   /* it died: its restart watches again */
        return;
    }
    if (m->stopping)
        return;
    m->queue_ready = true;
    log_info("event=queue_ready action=replace_workers");
    signal_children(m, ROLE_SMTPD, ROLE_SIG_STOP, true);
    fill_worker_slots(m);
    if (!delivery_running(m) && !evtimer_pending(m->restarts[DELIVERY_RESTART].ev, NULL))
        spawn_delivery(m);
    fill_local_slots(m);
}

static void watch_queue_ready(struct master *m)
{
    if (m->control_ev)
        event_free(m->control_ev);
    /* Blocking, as for the sends: the event fires only when a message
     * (or the EOF of a queue that died) is there to read. */
    m->control_ev = event_new(m->base, m->control, EV_READ | EV_PERSIST, queue_ready_cb, m);
    event_add(m->control_ev, NULL);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct restart *r = arg;
    struct master *m = r->m;

    (void)fd;
    (void)what;
    if (m->stopping)
        return;
    if (r->role == ROLE_QUEUE) {
        spawn_queue(m);
        watch_queue_ready(m);       /* workers and delivery follow its READY */
    } else if (r->role == ROLE_DELIVERY) {
        if (m->queue_ready && !delivery_running(m))
            spawn_delivery(m);
    } else if (r->role == ROLE_LOCAL) {
        if (m->queue_ready && !local_running(m, r->slot))
            spawn_local(m, r->slot);
    } else if (r->role == ROLE_LMTP) {
        if (m->queue_ready && !lmtp_running(m))
            spawn_lmtp(m);
    } else if (r->role == ROLE_MILTER) {
        if (m->queue_ready && !milter_running(m, r->slot))
            spawn_milter(m, r->slot);
    } else if (r->role == ROLE_METRICS) {
        spawn_metrics(m);
    } else if (!slot_has_worker(m, r->slot)) {
        spawn_worker(m, r->slot);   /* without a ready queue: one that says 421 */
    }
}

static void schedule_restart(struct master *m, enum role role, unsigned slot, time_t lived)
{
    unsigned idx = role == ROLE_QUEUE ? QUEUE_RESTART
                 : role == ROLE_DELIVERY ? DELIVERY_RESTART
                 : role == ROLE_LOCAL ? LOCAL_RESTART + slot
                 : role == ROLE_LMTP ? LMTP_RESTART
                 : role == ROLE_METRICS ? METRICS_RESTART
                 : role == ROLE_MILTER ? MILTER_RESTART + slot : slot;
    unsigned *b = &m->backoff[idx];
    struct restart *r = &m->restarts[idx];
    struct timeval tv = { 0, 0 };

    /* b counts deaths in a row that came soon after a start: the first is
     * restarted at once, then 1 s, 2 s, 4 s ... up to MAX_BACKOFF. */
    *b = lived < QUICK_DEATH ? *b + 1 : 0;
    tv.tv_sec = *b <= 1 ? 0 : (*b - 2 < 5 ? 1 << (*b - 2) : MAX_BACKOFF);
    if (tv.tv_sec > MAX_BACKOFF)
        tv.tv_sec = MAX_BACKOFF;
    r->m = m;
    r->role = role;
    r->slot = slot;
    if (tv.tv_sec)
        log_warn("event=restart_throttled role=%s slot=%u delay=%lds", role_name(role), slot,
                 (long)tv.tv_sec);
    evtimer_add(r->ev, &tv);
}

/* A current (not retired) delivery process exists. */
static bool delivery_running(const struct master *m)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_DELIVERY && !c->retired)
            return true;
    }
    return false;
}

/* A current (not retired) local delivery process holds this slot. */
static bool local_running(const struct master *m, unsigned slot)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_LOCAL && c->slot == slot && !c->retired)
            return true;
    }
    return false;
}

/* A current (not retired) LMTP delivery process exists. */
static bool lmtp_running(const struct master *m)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_LMTP && !c->retired)
            return true;
    }
    return false;
}

/* A current (not retired) milter role holds this slot. */
static bool milter_running(const struct master *m, unsigned slot)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_MILTER && c->slot == slot && !c->retired)
            return true;
    }
    return false;
}

/* A current (not retired) worker holds this slot. */
static bool slot_has_worker(const struct master *m, unsigned slot)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_SMTPD && c->slot == slot && !c->retired)
            return true;
    }
    return false;
}

/* Children that need the queue: it is stopped after the last of them. */
static unsigned live_queue_clients(const struct master *m)
{
    unsigned n = 0;

    for (const struct child *c = m->children; c; c = c->next)
        n += c->role != ROLE_QUEUE;
    return n;
}

static void signal_children(struct master *m, enum role role, int sig, bool retire)
{
    for (struct child *c = m->children; c; c = c->next) {
        if (c->role != role || (retire && c->retired))
            continue;
        if (retire)
            c->retired = true;
        kill(c->pid, sig);
    }
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
        snprintf(out, size, "signal=SIGSYS reason=\"seccomp: forbidden system call\"");
    else if (WIFSIGNALED(status))
        snprintf(out, size, "signal=%s", sigabbrev_np(WTERMSIG(status)) ?
                 sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(out, size, "status=%d", status);
}

static bool slot_in_use(const struct master *m, unsigned slot)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_SMTPD && c->slot == slot)
            return true;
    }
    return false;
}

static void child_exited(struct master *m, pid_t pid, int status)
{
    struct child **p, *c = NULL;
    char how[128];
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    for (p = &m->children; *p; p = &(*p)->next) {
        if ((*p)->pid == pid) {
            c = *p;
            *p = c->next;
            break;
        }
    }
    if (c == NULL)
        return;
    describe_status(status, how, sizeof(how));
    if (clean || m->stopping || c->retired)
        log_info("event=child_exit role=%s slot=%u pid=%ld %s", role_name(c->role), c->slot,
                 (long)pid, how);
    else {
        log_error("event=child_died role=%s slot=%u pid=%ld %s action=restart",
                  role_name(c->role), c->slot, (long)pid, how);
        metrics_add(METRICS_C_RESTART + (unsigned)c->role, 1);     /* same order */
    }
    if (c->role == ROLE_SMTPD && !slot_in_use(m, c->slot))
        conn_limits_reset_slot(m->limits, c->slot);
    if (m->stopping) {
        if (live_queue_clients(m) == 0)
            signal_children(m, ROLE_QUEUE, ROLE_SIG_STOP, false);
        if (m->children == NULL)
            event_base_loopexit(m->base, NULL);
    } else if (c->role == ROLE_QUEUE) {
        /* Every worker's channel died with it, and the delivery
         * process's. The workers stay: they see their channel close and
         * refuse mail with 421/451 4.3.0 (server_no_queue) until the new
         * queue is ready and a new set replaces them (queue_ready_cb).
         * The delivery process stops; the new queue gets a new one. */
        m->queue_ready = false;
        if (m->control_ev)
            event_del(m->control_ev);
        signal_children(m, ROLE_DELIVERY, ROLE_SIG_STOP, true);
        signal_children(m, ROLE_LOCAL, ROLE_SIG_STOP, true);
        signal_children(m, ROLE_LMTP, ROLE_SIG_STOP, true);
        signal_children(m, ROLE_MILTER, ROLE_SIG_STOP, true);
        schedule_restart(m, ROLE_QUEUE, 0, time(NULL) - c->started);
    } else if (c->role == ROLE_DELIVERY) {
        if (!c->retired)
            schedule_restart(m, ROLE_DELIVERY, 0, time(NULL) - c->started);
    } else if (c->role == ROLE_LOCAL) {
        if (!c->retired)
            schedule_restart(m, ROLE_LOCAL, c->slot, time(NULL) - c->started);
    } else if (c->role == ROLE_LMTP) {
        if (!c->retired)
            schedule_restart(m, ROLE_LMTP, 0, time(NULL) - c->started);
    } else if (c->role == ROLE_MILTER) {
        if (!c->retired)
            schedule_restart(m, ROLE_MILTER, c->slot, time(NULL) - c->started);
    } else if (c->role == ROLE_METRICS) {
        schedule_restart(m, ROLE_METRICS, 0, time(NULL) - c->started);
    } else if (!c->retired) {
        schedule_restart(m, ROLE_SMTPD, c->slot, time(NULL) - c->started);
    }
    free(c);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;
    int status;
    pid_t pid;

    (void)sig;
    (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        child_exited(m, pid, status);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;

    (void)what;
    if (m->stopping)
        return;
    log_info("event=signal signal=%s action=stop", sig == SIGTERM ? "TERM" : "INT");
    m->stopping = true;
    /* Refuse new connections at once. The listening socket is shared with
     * the workers: shutdown() stops it for every process that holds it,
     * before each worker gets round to its own graceful stop. */
    for (size_t i = 0; i < m->sock_count; i++) {
        shutdown(m->socks[i].fd, SHUT_RDWR);
        close(m->socks[i].fd);
    }
    m->sock_count = 0;
    signal_children(m, ROLE_SMTPD, ROLE_SIG_STOP, false);
    signal_children(m, ROLE_DELIVERY, ROLE_SIG_STOP, false);
    signal_children(m, ROLE_LOCAL, ROLE_SIG_STOP, false);
    signal_children(m, ROLE_LMTP, ROLE_SIG_STOP, false);
    signal_children(m, ROLE_MILTER, ROLE_SIG_STOP, false);
    signal_children(m, ROLE_METRICS, ROLE_SIG_STOP, false);
    if (live_queue_clients(m) == 0)
        signal_children(m, ROLE_QUEUE, ROLE_SIG_STOP, false);
    if (m->children == NULL)
        event_base_loopexit(m->base, NULL);
}

/* SIGHUP: a changed [relay] relayhost_credentials file reaches a new
 * delivery process; the old one stops at once (the queue defers and
 * retries its jobs in flight, as when a delivery process is replaced). */
static void reload_relay_credentials(struct master *m)
{
    char err[1024];

    switch (master_files_reload_relay(&m->files, m->cfg, err, sizeof(err))) {
    case 1:
        log_info("event=reload what=relayhost_credentials status=ok "
                 "action=\"replace the delivery process\"");
        signal_children(m, ROLE_DELIVERY, ROLE_SIG_STOP, true);
        if (m->queue_ready)
            spawn_delivery(m);
        break;
    case -1:
        log_error("event=reload what=relayhost_credentials status=failed keeping=old "
                  "error=\"%s\"", err);
        break;
    default:
        break;
    }
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;
    struct files_reload r;
    (void)sig;
    (void)what;
    if (m->stopping)
        return;
    char err[512];

    log_info("event=signal signal=HUP action=reload");
    if (!log_sink_reopen(m->log, err, sizeof(err)))
        log_error("event=reload what=log status=failed keeping=old error=\"%s\"", err);
    master_files_reload(&m->files, m->cfg, &r);
    /* New workers carry the new files; old ones stop accepting now and
     * leave when their sessions end. The result is logged only once the
     * new generation exists, so "status=ok" means new connections get it. */
    signal_children(m, ROLE_SMTPD, ROLE_SIG_RETIRE, true);
    /* The queue checks envelopes against the lists the new workers use:
     * it gets them first. */
    if (r.mailboxes_ok && m->control >= 0 &&
        !ipc_send(m->control, IPC_MAILBOXES, NULL, 0, m->files.mailbox_fd))
        log_error("event=reload what=mailboxes role=queue status=failed error=\"%s\"",
                  strerror(errno));
    for (unsigned s = 0; s < m->workers; s++)
        spawn_worker(m, s);
    master_files_log_reload(&m->files, &r);
    reload_relay_credentials(m);
}

/* --- start-up --- */

/* <spool>/maildrop: where `sealpost sendmail` leaves messages as any
 * local user (docs/SECURITY.md). Made here and given to the queue user,
 * who sets its mode (1733) at every start: the unit's capability set has
 * no CAP_FOWNER, so root cannot chmod what the queue user owns. */
static void prepare_maildrop(struct master *m)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof(path), "%s/maildrop", m->cfg->spool);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        fatal("event=start_failed error=\"mkdir %s: %s\"", path, strerror(errno));
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        fatal("event=start_failed error=\"%s: not a folder\"", path);
    if (m->queue_plan.switch_user && lchown(path, m->queue_plan.uid, m->queue_plan.gid) < 0)
        fatal("event=start_failed error=\"chown %s: %s\"", path, strerror(errno));
}

/* The spool belongs to the queue user; workers chroot into spool/empty.
 * Mode 0711 (the queue process sets it at every start): every user must
 * reach spool/maildrop; the queue's own folders in it are 0700. */
static void prepare_spool(struct master *m)
{
    const char *spool = m->cfg->spool;

    if (mkdir(spool, 0711) < 0 && errno != EEXIST)
        fatal("event=start_failed error=\"mkdir %s: %s\"", spool, strerror(errno));
    snprintf(m->empty_dir, sizeof(m->empty_dir), "%s/empty", spool);
    if (mkdir(m->empty_dir, 0555) < 0 && errno != EEXIST)
        fatal("event=start_failed error=\"mkdir %s: %s\"", m->empty_dir, strerror(errno));
    if (m->queue_plan.switch_user &&
        chown(spool, m->queue_plan.uid, m->queue_plan.gid) < 0)
        fatal("event=start_failed error=\"chown %s: %s\"", spool, strerror(errno));
    prepare_maildrop(m);
}

/* Each domain's Maildir root, made when missing and given to the
 * domain's owner (who delivers into it: the queue user, or the user of
 * its local delivery process); parents it needs are made 0755. A root
 * that exists is left as it is (sealpost check says when the owner
 * cannot write it). */
static void prepare_maildir_roots(struct master *m)
{
    for (size_t i = 0; i < m->cfg->domain_count; i++) {
        const struct domain_config *dc = &m->cfg->domains[i];
        int slot = config_owner_slot(m->cfg, dc);
        const struct drop_plan *owner = slot < 0 ? &m->queue_plan : &m->local_plans[slot];
        char root[4096];
        struct stat st;

        config_maildir_root(dc->maildir, root, sizeof(root));
        if (root[0] == '\0' || stat(root, &st) == 0)
            continue;
        if (mkdir_parents(root, 0755) < 0 || chmod(root, 0750) < 0)
            fatal("event=start_failed error=\"mkdir %s: %s\"", root, strerror(errno));
        if (owner->switch_user && chown(root, owner->uid, owner->gid) < 0)
            fatal("event=start_failed error=\"chown %s: %s\"", root, strerror(errno));
        log_info("event=created folder=maildir_root path=\"%s\" owner=%s mode=0750", root,
                 owner->switch_user ? owner->user : "(unchanged)");
    }
}

/* The local delivery processes' plans: each owner's ids, no chroot (they
 * write into the Maildirs; Landlock confines them to the roots). */
static void plan_local(struct master *m)
{
    const char *owners[CONFIG_MAX_DOMAINS];

    m->local_count = config_local_owners(m->cfg, owners);
    for (size_t k = 0; k < m->local_count; k++) {
        m->local_plans[k] = (struct drop_plan){ .role = "local", .user = owners[k] };
        privsep_plan(&m->local_plans[k]);
    }
}

/* The LMTP delivery process (lmtp/lmtp_role.h): the delivery user,
 * chrooted into the folder of the lmtp:unix: sockets (config_finish
 * allows one), or into the empty folder when every target is TCP. */
static void plan_lmtp(struct master *m)
{
    m->lmtp = config_uses_lmtp(m->cfg);
    if (!m->lmtp)
        return;
    config_lmtp_socket_dir(m->cfg, m->lmtp_dir, sizeof(m->lmtp_dir));
    m->lmtp_plan = (struct drop_plan){ .role = "lmtp", .user = m->cfg->delivery_user };
#if !defined(__SANITIZE_ADDRESS__) && !defined(SEALPOST_NO_SANDBOX)
    m->lmtp_plan.chroot_dir = m->lmtp_dir[0] ? m->lmtp_dir : m->empty_dir;
#endif
    privsep_plan(&m->lmtp_plan);
}

/* The milter role (milter/milter_role.h): the delivery user, chrooted
 * into the folder of the unix: milter sockets (config_finish allows one),
 * or into the empty folder when every milter listens on TCP. */
static void plan_milter(struct master *m)
{
    m->milter = config_uses_milters(m->cfg);
    if (!m->milter)
        return;
    config_milter_socket_dir(m->cfg, m->milter_dir, sizeof(m->milter_dir));
    m->milter_plan = (struct drop_plan){ .role = "milter", .user = m->cfg->delivery_user };
#if !defined(__SANITIZE_ADDRESS__) && !defined(SEALPOST_NO_SANDBOX)
    m->milter_plan.chroot_dir = m->milter_dir[0] ? m->milter_dir : m->empty_dir;
#endif
    privsep_plan(&m->milter_plan);
}

/* Every connection is a descriptor: allow as many as the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("event=rlimit_failed error=\"%s\"", strerror(errno));
    }
}

static unsigned worker_count(const struct config *cfg)
{
    long n = cfg->workers ? (long)cfg->workers : sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        n = 1;
    if (n > CONN_LIMITS_MAX_SLOTS)
        n = CONN_LIMITS_MAX_SLOTS;
    return (unsigned)n;
}

/* The drop plans, resolved once here: the roles get them as numbers. */
static void plan_roles(struct master *m)
{
    const struct config *cfg = m->cfg;

    m->smtpd_plan = (struct drop_plan){ .role = "smtpd", .user = cfg->user };
    m->queue_plan = (struct drop_plan){ .role = "queue", .user = cfg->queue_user };
    m->delivery_plan = (struct drop_plan){ .role = "delivery", .user = cfg->delivery_user };
    privsep_plan(&m->queue_plan);
    plan_local(m);
    prepare_spool(m);
    prepare_maildir_roots(m);
#if defined(__SANITIZE_ADDRESS__) || defined(SEALPOST_NO_SANDBOX)
    /* LeakSanitizer reads /proc at exit, which a chroot hides; valgrind
     * (profiling builds) writes its output files at exit. */
    log_warn("event=privsep_limited role=smtpd reason=\"sanitizer build: no chroot\"");
#else
    m->smtpd_plan.chroot_dir = m->empty_dir;
#endif
    privsep_plan(&m->smtpd_plan);
    m->delivery_plan.chroot_dir = m->smtpd_plan.chroot_dir;
    privsep_plan(&m->delivery_plan);
    plan_lmtp(m);
    plan_milter(m);
    /* the metrics role: the workers' user, the same empty chroot */
    m->metrics_plan = (struct drop_plan){ .role = "metrics", .user = cfg->user,
                                          .chroot_dir = m->smtpd_plan.chroot_dir };
    privsep_plan(&m->metrics_plan);
}

/* [metrics] listen: bound here, served by the metrics role. */
static int metrics_socket(const struct listen_address *a)
{
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        fatal("event=start_failed error=\"metrics socket: %s\"", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
    if (bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) < 0 || listen(fd, 16) < 0)
        fatal("event=start_failed error=\"metrics: cannot listen on %s: %s\"", a->text,
              strerror(errno));
    log_info("event=listen listener=metrics address=%s", a->text);
    return fd;
}

/* One block per role instance that can run, and the master's own. */
static void prepare_metrics(struct master *m)
{
    for (size_t i = 0; i < MBLOCKS; i++)
        m->mfd[i] = m->mro[i] = -1;
    m->metrics_listen = -1;
    if (m->cfg->metrics.address_count == 0)
        return;
    for (int i = 0; i < MBLOCKS; i++) {
        bool used = i < MBLOCK_SMTPD ||
                    (i < MBLOCK_LOCAL && i - MBLOCK_SMTPD < (int)m->workers) ||
                    (i >= MBLOCK_LOCAL && i - MBLOCK_LOCAL < (int)m->local_count);

        if (!used)
            continue;
        m->mblock[i] = metrics_create("sealpost-metrics", &m->mfd[i]);
        if (m->mblock[i] == NULL || (m->mro[i] = metrics_reopen_readonly(m->mfd[i])) < 0)
            fatal("event=start_failed error=\"metrics block: %s\"", strerror(errno));
    }
    metrics_self = m->mblock[MBLOCK_MASTER];
    m->metrics_listen = metrics_socket(&m->cfg->metrics.addresses[0]);
}

/* Everything the roles get from the master, before the first starts. */
static void prepare(struct master *m)
{
    char err[1024];

    m->exe = spawn_open_self();
    m->config_fd = memfd_sealed("sealpost-config", m->cfg->text, m->cfg->text_len);
    if (m->config_fd < 0)
        fatal("event=start_failed error=\"config copy: %s\"", strerror(errno));
    master_files_load(&m->files, m->cfg);
    plan_roles(m);
    m->queue_control = control_socket_open(m->cfg->spool, &m->queue_plan, err, sizeof(err));
    if (m->queue_control < 0)
        fatal("event=start_failed error=\"control socket: %s\"", err);
    if (!server_open_sockets(m->cfg, m->socks, SERVER_MAX_SOCKETS, &m->sock_count, err,
                             sizeof(err)))
        fatal("event=start_failed error=\"%s\"", err);
    for (size_t i = 0; i < m->sock_count; i++)
        log_info("event=listen listener=%s address=%s", m->socks[i].listener->name,
                 m->socks[i].text);
    m->workers = worker_count(m->cfg);
    /* A worker may hold every connection, each from its own address; the
     * slack covers admissions that race past the total limit. */
    m->limits = conn_limits_create(m->workers, conn_limits_capacity(m->cfg, m->workers),
                                   &m->limits_fd);
    prepare_metrics(m);
}

static void add_events(struct master *m, struct event *sigs[4])
{
    sigs[0] = evsignal_new(m->base, SIGTERM, on_stop, m);
    sigs[1] = evsignal_new(m->base, SIGINT, on_stop, m);
    sigs[2] = evsignal_new(m->base, SIGHUP, on_reload, m);
    sigs[3] = evsignal_new(m->base, SIGCHLD, on_sigchld, m);
    for (size_t i = 0; i < 4; i++)
        evsignal_add(sigs[i], NULL);
    for (size_t i = 0; i < RESTART_ENTRIES; i++) {
        m->restarts[i].m = m;
        m->restarts[i].ev = evtimer_new(m->base, restart_cb, &m->restarts[i]);
    }
}

static void cleanup(struct master *m, struct event *sigs[4])
{
    for (size_t i = 0; i < m->sock_count; i++)
        close(m->socks[i].fd);
    if (m->control >= 0)
        close(m->control);
    close(m->queue_control);
    for (size_t i = 0; i < 4; i++)
        event_free(sigs[i]);
    if (m->control_ev)
        event_free(m->control_ev);
    for (size_t i = 0; i < RESTART_ENTRIES; i++)
        event_free(m->restarts[i].ev);
    master_files_free(&m->files);
    metrics_self = NULL;
    for (size_t i = 0; i < MBLOCKS; i++) {
        if (m->mfd[i] >= 0) {
            metrics_detach(m->mblock[i]);
            close(m->mfd[i]);
            close(m->mro[i]);
        }
    }
    if (m->metrics_listen >= 0)
        close(m->metrics_listen);
    conn_limits_detach(m->limits);
    close(m->limits_fd);
    close(m->config_fd);
    close(m->exe);
    event_base_free(m->base);
}

int master_run(struct config *cfg)
{
    struct master m;
    struct event *sigs[4];
    char err[512];

    memset(&m, 0, sizeof(m));
    m.cfg = cfg;
    m.control = -1;
    log_set_level((enum log_level)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    tzset();
    raise_fd_limit();
    m.base = event_base_new();
    if (m.base == NULL)
        fatal("event=start_failed error=\"cannot create event base\"");
    m.log = log_sink_open(cfg, m.base, err, sizeof(err));
    if (m.log == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    prepare(&m);
    add_events(&m, sigs);

    wait_queue_ready(&m, spawn_queue(&m));
    m.queue_ready = true;
    spawn_delivery(&m);
    for (unsigned k = 0; k < m.local_count; k++)
        spawn_local(&m, k);
    if (m.lmtp)
        spawn_lmtp(&m);
    for (unsigned k = 0; m.milter && k < m.cfg->milter_processes; k++)
        spawn_milter(&m, k);
    for (unsigned s = 0; s < m.workers; s++)
        spawn_worker(&m, s);
    spawn_metrics(&m);
    log_info("event=start version=%s config=\"%s\" hostname=%s spool=\"%s\" workers=%u",
             SEALPOST_VERSION, cfg->path, cfg->hostname, cfg->spool, m.workers);

    event_base_dispatch(m.base);

    cleanup(&m, sigs);
    log_info("event=stop");
    log_sink_close(m.log);
    return 0;
}

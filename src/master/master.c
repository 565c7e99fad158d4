/*
 * master.c - process supervisor (see master.h).
 *
 * Trusts: the config and its own children's exit statuses. Holds root
 * when started as root; never parses network input itself.
 */
#define _GNU_SOURCE 1
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery/remote_server.h"
#include "queue/scheduler.h"
#include "mail/recipient.h"
#include "sandbox/drop.h"
#include "util/ipc.h"
#include "queue/queue_server.h"
#include "sandbox/sandbox.h"
#include "queue/queue.h"
#include "smtpd/conn_limits.h"
#include "smtpd/server.h"
#include "tls/tls_server.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MAX_BACKOFF 30          /* seconds between restarts of a crashing role */
#define QUICK_DEATH 5           /* a child that dies sooner than this backs off */

enum role { ROLE_QUEUE, ROLE_SMTPD, ROLE_DELIVERY };

struct child {
    pid_t pid;
    enum role role;
    unsigned slot;
    time_t started;
    bool retired;               /* replaced after a reload, or stopping */
    struct child *next;
};

struct master;

/* A pending restart of one role slot (no allocation: a forked child must
 * not inherit anything it would have to free). */
struct restart {
    struct master *m;
    enum role role;
    unsigned slot;
    struct event *ev;
};

#define QUEUE_RESTART CONN_LIMITS_MAX_SLOTS      /* index of the queue's entry */
#define DELIVERY_RESTART (QUEUE_RESTART + 1)    /* and of the delivery process's */
#define RESTART_ENTRIES (DELIVERY_RESTART + 1)

struct master {
    struct config *cfg;
    struct event_base *base;
    struct listen_socket socks[SERVER_MAX_SOCKETS];
    size_t sock_count;
    struct tls_server *tls;
    struct recipient_policy *recipients;
    struct conn_limits *limits;
    unsigned workers;
    int control;                /* to the queue process */
    struct child *children;
    bool stopping;
    unsigned backoff[RESTART_ENTRIES];
    struct restart restarts[RESTART_ENTRIES];
    char empty_dir[4200];
    struct drop_plan smtpd_plan, queue_plan, delivery_plan;
};

static void spawn_worker(struct master *m, unsigned slot);
static void spawn_queue(struct master *m);
static void spawn_delivery(struct master *m);

static const char *role_name(enum role r)
{
    return r == ROLE_QUEUE ? "queue" : r == ROLE_DELIVERY ? "delivery" : "smtpd";
}

/*
 * fork() with every signal blocked, so that nothing sent to the new child
 * before it has its own handlers can run the master's (libevent's handler
 * would write into the signal pipe it shares with the master). In the
 * child: die with the master, at once - two queue processes on one spool
 * would deliver twice, so a dead master must leave nothing running that a
 * restarted one could meet (unacknowledged messages are discarded at the
 * next start, acknowledged ones are on disk) - then drop the master's
 * event loop and take the default signal actions back.
 */
static pid_t fork_child(struct master *m)
{
    static const int handled[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };
    sigset_t all, old;
    pid_t pid;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid != 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return pid;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
        _exit(1);
    /* The epoll instance is shared across fork: reinit first, so that
     * freeing the child's copy cannot unregister the master's events. */
    event_reinit(m->base);
    event_base_free(m->base);
    m->base = NULL;
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        signal(handled[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return 0;
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

/* Only the smtpd workers terminate TLS: every other child frees the
 * server keys it inherited (OpenSSL clears private key material on free),
 * so a memory disclosure there cannot reveal them. */
static void forget_server_keys(struct master *m)
{
    tls_server_free(m->tls);
    m->tls = NULL;
}

/* --- the queue process --- */

static void queue_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static void delivery_channel(int fd, void *sched)
{
    scheduler_set_delivery_channel(sched, fd);
}

static int run_queue(struct master *m, int control)
{
    struct event_base *base;
    struct queue *q;
    struct queue_server *qs;
    struct scheduler *sched;
    struct event *term, *intr;
    char err[512];

    for (size_t i = 0; i < m->sock_count; i++)
        close(m->socks[i].fd);
    forget_server_keys(m);
    privsep_drop(&m->queue_plan);
    base = event_base_new();
    q = queue_open(m->cfg->spool, err, sizeof(err));
    if (base == NULL || q == NULL)
        fatal("event=start_failed role=queue error=\"%s\"", err);
    qs = queue_server_new(base, q, control);
    queue_server_set_policy(qs, m->cfg, m->recipients);
    sched = scheduler_start(m->cfg, q);
    queue_server_on_delivery_channel(qs, delivery_channel, sched);
    queue_set_notify(q, scheduler_enqueue, sched);
    queue_scan(q, scheduler_enqueue, sched);
    signal(SIGHUP, SIG_IGN);
    term = evsignal_new(base, SIGTERM, queue_stop, base);
    intr = evsignal_new(base, SIGINT, queue_stop, base);
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    sandbox_enter(SANDBOX_QUEUE);
    event_base_dispatch(base);
    scheduler_stop(sched);
    queue_server_free(qs);
    queue_close(q);
    event_free(term);
    event_free(intr);
    /* Stopping already: a second TERM (Ctrl-C reaches the whole process
     * group, then the master asks too) must not cut the cleanup short. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    event_base_free(base);
    log_info("event=stop role=queue");
    return 0;
}

static void spawn_queue(struct master *m)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fatal("event=spawn_failed role=queue error=\"socketpair: %s\"", strerror(errno));
    pid = fork_child(m);
    if (pid < 0)
        fatal("event=spawn_failed role=queue error=\"fork: %s\"", strerror(errno));
    if (pid == 0) {
        close(sv[0]);
        exit(run_queue(m, sv[1]));
    }
    close(sv[1]);
    if (m->control >= 0)
        close(m->control);
    m->control = sv[0];
    add_child(m, pid, ROLE_QUEUE, 0);
}

/* --- an smtpd worker --- */

static void worker_term(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    server_shutdown(arg);
}

static void worker_retire(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    server_retire(arg);
}

static void worker_drained(struct server *srv)
{
    event_base_loopexit(srv->base, NULL);
}

/* The queue channel failed: accept no more; the sessions still here end
 * on their own (they cannot queue), then the master starts a new worker. */
static void worker_channel_broken(void *arg)
{
    server_retire(arg);
}

static int run_worker(struct master *m, unsigned slot, int channel)
{
    struct server srv;
    struct event *term, *intr, *usr1;

    close(m->control);
    privsep_drop(&m->smtpd_plan);
    memset(&srv, 0, sizeof(srv));
    srv.cfg = m->cfg;
    srv.base = event_base_new();
    if (srv.base == NULL)
        fatal("event=start_failed role=smtpd error=\"event base\"");
    srv.queue = queue_link_new(channel, srv.base);
    queue_link_on_broken(srv.queue, worker_channel_broken, &srv);
    srv.tls = m->tls;
    srv.recipients = m->recipients;
    srv.limits = m->limits;
    srv.slot = slot;
    srv.on_drained = worker_drained;
    server_listen_sockets(&srv, m->socks, m->sock_count);
    for (size_t i = 0; i < m->sock_count; i++)
        m->socks[i].fd = -1;        /* the listeners own them now */
    signal(SIGHUP, SIG_IGN);
    term = evsignal_new(srv.base, SIGTERM, worker_term, &srv);
    intr = evsignal_new(srv.base, SIGINT, worker_term, &srv);
    usr1 = evsignal_new(srv.base, SIGUSR1, worker_retire, &srv);
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    evsignal_add(usr1, NULL);
    sandbox_enter(SANDBOX_SMTPD);
    event_base_dispatch(srv.base);
    server_free(&srv);
    event_free(term);
    event_free(intr);
    event_free(usr1);
    signal(SIGTERM, SIG_IGN);       /* as in run_queue */
    signal(SIGINT, SIG_IGN);
    queue_link_free(srv.queue);
    event_base_free(srv.base);
    log_info("event=stop role=smtpd slot=%u", slot);
    return 0;
}

/* The body of a child that talks to the queue over `channel`. */
typedef int (*role_main)(struct master *m, unsigned slot, int channel);

/*
 * Start a child in role: the queue gets one end of a new channel (an
 * IPC message of type with payload, the end attached), the child the
 * other. When the queue is not running the child is not started: the
 * queue's restart starts it later.
 */
static void spawn_with_channel(struct master *m, enum role role, unsigned slot,
                               enum ipc_type type, const void *payload, size_t len,
                               role_main run)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fatal("event=spawn_failed role=%s error=\"socketpair: %s\"", role_name(role),
              strerror(errno));
    if (m->control < 0 || !ipc_send(m->control, type, payload, len, sv[1])) {
        log_warn("event=spawn_deferred role=%s slot=%u reason=\"queue not running\"",
                 role_name(role), slot);
        close(sv[0]);
        close(sv[1]);
        return;
    }
    close(sv[1]);
    pid = fork_child(m);
    if (pid < 0)
        fatal("event=spawn_failed role=%s error=\"fork: %s\"", role_name(role), strerror(errno));
    if (pid == 0)
        exit(run(m, slot, sv[0]));
    close(sv[0]);
    add_child(m, pid, role, slot);
}

static void spawn_worker(struct master *m, unsigned slot)
{
    int32_t s32 = (int32_t)slot;

    spawn_with_channel(m, ROLE_SMTPD, slot, IPC_CHANNEL, &s32, sizeof(s32), run_worker);
}

/* --- the delivery process --- */

static void delivery_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static int run_delivery(struct master *m, unsigned slot, int channel)
{
    (void)slot;
    struct event_base *base;
    struct remote_server *rs;
    struct event *term, *intr;
    char err[512];

    close(m->control);
    for (size_t i = 0; i < m->sock_count; i++)
        close(m->socks[i].fd);
    forget_server_keys(m);
    base = event_base_new();
    if (base == NULL)
        fatal("event=start_failed role=delivery error=\"event base\"");
    /* DNS trust anchors and resolver config are read here, before the
     * chroot takes the file system away. */
    rs = remote_server_new(base, m->cfg, err, sizeof(err));
    if (rs == NULL)
        fatal("event=start_failed role=delivery error=\"%s\"", err);
    privsep_drop(&m->delivery_plan);
    remote_server_start(rs, channel);
    signal(SIGHUP, SIG_IGN);
    term = evsignal_new(base, SIGTERM, delivery_stop, base);
    intr = evsignal_new(base, SIGINT, delivery_stop, base);
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    sandbox_enter(SANDBOX_DELIVERY);
    event_base_dispatch(base);
    /* Jobs cut short are retried by the queue. */
    signal(SIGTERM, SIG_IGN);       /* as in run_queue */
    signal(SIGINT, SIG_IGN);
    remote_server_free(rs);
    event_free(term);
    event_free(intr);
    event_base_free(base);
    log_info("event=stop role=delivery");
    return 0;
}

static void spawn_delivery(struct master *m)
{
    spawn_with_channel(m, ROLE_DELIVERY, 0, IPC_DELIVERY_CHANNEL, NULL, 0, run_delivery);
}

/* --- supervision --- */

static bool queue_running(const struct master *m);
static bool slot_has_worker(const struct master *m, unsigned slot);
static bool delivery_running(const struct master *m);

/* Start every worker slot that has no current worker. */
static void fill_worker_slots(struct master *m)
{
    for (unsigned s = 0; s < m->workers; s++) {
        if (!slot_has_worker(m, s) && !evtimer_pending(m->restarts[s].ev, NULL))
            spawn_worker(m, s);
    }
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
        fill_worker_slots(m);       /* workers need the new queue's channels */
        if (!delivery_running(m) && !evtimer_pending(m->restarts[DELIVERY_RESTART].ev, NULL))
            spawn_delivery(m);
    } else if (r->role == ROLE_DELIVERY) {
        if (queue_running(m) && !delivery_running(m))
            spawn_delivery(m);
    } else if (queue_running(m) && !slot_has_worker(m, r->slot)) {
        spawn_worker(m, r->slot);
    }                               /* else the queue's restart fills the slot */
}

static void schedule_restart(struct master *m, enum role role, unsigned slot, time_t lived)
{
    unsigned idx = role == ROLE_QUEUE ? QUEUE_RESTART
                 : role == ROLE_DELIVERY ? DELIVERY_RESTART : slot;
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

static bool queue_running(const struct master *m)
{
    for (const struct child *c = m->children; c; c = c->next) {
        if (c->role == ROLE_QUEUE)
            return true;
    }
    return false;
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
    else
        log_error("event=child_died role=%s slot=%u pid=%ld %s action=restart",
                  role_name(c->role), c->slot, (long)pid, how);
    if (c->role == ROLE_SMTPD && !slot_in_use(m, c->slot))
        conn_limits_reset_slot(m->limits, c->slot);
    if (m->stopping) {
        if (live_queue_clients(m) == 0)
            signal_children(m, ROLE_QUEUE, SIGTERM, false);
        if (m->children == NULL)
            event_base_loopexit(m->base, NULL);
    } else if (c->role == ROLE_QUEUE) {
        /* Every worker's channel died with it, and the delivery
         * process's: retire them all; the queue's restart starts a new
         * set once the new queue runs. */
        signal_children(m, ROLE_SMTPD, SIGTERM, true);
        signal_children(m, ROLE_DELIVERY, SIGTERM, true);
        schedule_restart(m, ROLE_QUEUE, 0, time(NULL) - c->started);
    } else if (c->role == ROLE_DELIVERY) {
        if (!c->retired)
            schedule_restart(m, ROLE_DELIVERY, 0, time(NULL) - c->started);
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
    signal_children(m, ROLE_SMTPD, SIGTERM, false);
    signal_children(m, ROLE_DELIVERY, SIGTERM, false);
    if (live_queue_clients(m) == 0)
        signal_children(m, ROLE_QUEUE, SIGTERM, false);
    if (m->children == NULL)
        event_base_loopexit(m->base, NULL);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;
    struct recipient_policy *rp;
    char tls_err[1024] = "", rp_err[1024] = "";
    bool tls_ok = true;

    (void)sig;
    (void)what;
    if (m->stopping)
        return;
    log_info("event=signal signal=HUP action=reload");
    if (m->tls)
        tls_ok = tls_server_reload(m->tls, tls_err, sizeof(tls_err));
    rp = recipient_policy_new(m->cfg, rp_err, sizeof(rp_err));
    if (rp) {
        recipient_policy_free(m->recipients);
        m->recipients = rp;
    }
    /* New workers carry the new state; old ones stop accepting now and
     * leave when their sessions end. The result is logged only once the
     * new generation exists, so "status=ok" means new connections get it. */
    signal_children(m, ROLE_SMTPD, SIGUSR1, true);
    for (unsigned s = 0; s < m->workers; s++)
        spawn_worker(m, s);
    if (m->tls && tls_ok)
        log_info("event=reload what=tls status=ok");
    else if (m->tls)
        log_error("event=reload what=tls status=failed keeping=old error=\"%s\"", tls_err);
    if (rp)
        log_info("event=reload what=mailboxes status=ok");
    else
        log_error("event=reload what=mailboxes status=failed keeping=old error=\"%s\"", rp_err);
}

/* --- start-up --- */

static struct tls_server *load_tls(const struct config *cfg)
{
    struct tls_server *ts;
    char err[1024];
    bool wanted = false;

    for (size_t i = 0; i < cfg->listener_count; i++)
        wanted |= cfg->listeners[i].tls != LTLS_NONE;
    if (!wanted)
        return NULL;
    ts = tls_server_new(&cfg->tls, err, sizeof(err));
    if (ts == NULL)
        fatal("event=start_failed error=\"TLS: %s\"", err);
    return ts;
}

/* The spool belongs to the queue user; workers chroot into spool/empty. */
static void prepare_spool(struct master *m)
{
    const char *spool = m->cfg->spool;

    if (mkdir(spool, 0700) < 0 && errno != EEXIST)
        fatal("event=start_failed error=\"mkdir %s: %s\"", spool, strerror(errno));
    snprintf(m->empty_dir, sizeof(m->empty_dir), "%s/empty", spool);
    if (mkdir(m->empty_dir, 0555) < 0 && errno != EEXIST)
        fatal("event=start_failed error=\"mkdir %s: %s\"", m->empty_dir, strerror(errno));
    if (m->queue_plan.switch_user &&
        chown(spool, m->queue_plan.uid, m->queue_plan.gid) < 0)
        fatal("event=start_failed error=\"chown %s: %s\"", spool, strerror(errno));
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

int master_run(struct config *cfg)
{
    struct master m;
    struct event *sig_term, *sig_int, *sig_hup, *sig_chld;
    char err[1024];

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
    m.recipients = recipient_policy_new(cfg, err, sizeof(err));
    if (m.recipients == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    m.tls = load_tls(cfg);
    m.smtpd_plan = (struct drop_plan){ .role = "smtpd", .user = cfg->user };
    m.queue_plan = (struct drop_plan){ .role = "queue", .user = cfg->queue_user };
    m.delivery_plan = (struct drop_plan){ .role = "delivery", .user = cfg->delivery_user };
    privsep_plan(&m.queue_plan);
    prepare_spool(&m);
#if defined(__SANITIZE_ADDRESS__) || defined(SEALPOST_NO_SANDBOX)
    /* LeakSanitizer reads /proc at exit, which a chroot hides; valgrind
     * (profiling builds) writes its output files at exit. */
    log_warn("event=privsep_limited role=smtpd reason=\"sanitizer build: no chroot\"");
#else
    m.smtpd_plan.chroot_dir = m.empty_dir;
#endif
    privsep_plan(&m.smtpd_plan);
    m.delivery_plan.chroot_dir = m.smtpd_plan.chroot_dir;
    privsep_plan(&m.delivery_plan);
    if (!server_open_sockets(cfg, m.socks, SERVER_MAX_SOCKETS, &m.sock_count, err, sizeof(err)))
        fatal("event=start_failed error=\"%s\"", err);
    for (size_t i = 0; i < m.sock_count; i++)
        log_info("event=listen listener=%s address=%s", m.socks[i].listener->name,
                 m.socks[i].text);
    m.workers = worker_count(cfg);
    /* A worker may hold every connection, each from its own address; the
     * slack covers admissions that race past the total limit. */
    m.limits = conn_limits_create(m.workers, cfg->max_connections + m.workers);

    sig_term = evsignal_new(m.base, SIGTERM, on_stop, &m);
    sig_int = evsignal_new(m.base, SIGINT, on_stop, &m);
    sig_hup = evsignal_new(m.base, SIGHUP, on_reload, &m);
    sig_chld = evsignal_new(m.base, SIGCHLD, on_sigchld, &m);
    for (size_t i = 0; i < RESTART_ENTRIES; i++) {
        m.restarts[i].m = &m;
        m.restarts[i].ev = evtimer_new(m.base, restart_cb, &m.restarts[i]);
    }
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);
    evsignal_add(sig_hup, NULL);
    evsignal_add(sig_chld, NULL);

    spawn_queue(&m);
    spawn_delivery(&m);
    for (unsigned s = 0; s < m.workers; s++)
        spawn_worker(&m, s);
    log_info("event=start version=%s config=\"%s\" hostname=%s spool=\"%s\" workers=%u",
             SEALPOST_VERSION, cfg->path, cfg->hostname, cfg->spool, m.workers);

    event_base_dispatch(m.base);

    for (size_t i = 0; i < m.sock_count; i++)
        close(m.socks[i].fd);
    if (m.control >= 0)
        close(m.control);
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_hup);
    event_free(sig_chld);
    for (size_t i = 0; i < RESTART_ENTRIES; i++)
        event_free(m.restarts[i].ev);
    tls_server_free(m.tls);
    recipient_policy_free(m.recipients);
    event_base_free(m.base);
    log_info("event=stop");
    return 0;
}

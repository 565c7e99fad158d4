/*
 * role.h - how a role process (queue, smtpd worker, delivery, local
 * delivery) starts and runs.
 *
 * The master forks and executes the sealpost binary again (the file it
 * was started from, held open since: spawn.h), with a hidden subcommand:
 *
 *   sealpost role smtpd --slot 0 --workers 2 --config /etc/sealpost/sealpost.conf
 *            --hostname mx.example.org [--user sealpost --uid 101 --gid 101]
 *            [--chroot /var/spool/sealpost/empty]
 *
 * so every role, and every restart of one, is a fresh program image with
 * its own address-space layout, stack canary and heap: nothing a crash
 * teaches an attacker carries over. What the role needs from the master
 * comes as descriptors at fixed numbers (all others are closed at exec):
 *
 *   3  ROLE_FD_CONFIG   the config bytes the master read (sealed memfd);
 *                       parsed again with the master's path and host name
 *   4  ROLE_FD_CHANNEL  queue: the master's control channel; smtpd,
 *                       delivery and local: their channel to the queue
 *   5  ROLE_FD_FILES    a file snapshot (util/snapshot.h, sealed memfd):
 *                       smtpd gets the certificates, keys and mailbox
 *                       lists the master last loaded; the queue the
 *                       mailbox lists and users; delivery the smart
 *                       host's credentials file (if set); local none
 *   6  ROLE_FD_LIMITS   smtpd: the shared connection-limit table
 *      ROLE_FD_QUEUE_CONTROL  queue: the listening socket of `sealpost queue`
 *   7  ROLE_FD_LISTEN   smtpd: the listening sockets from here on, one per
 *                       configured address in config order
 *
 * and the privilege drop the master planned on the command line (user
 * ids resolved once, by the master). The role trusts these: they come
 * from its parent, root. It still checks what it parses (sealed memory
 * files, lengths, socket types), so a mistake fails loudly at start.
 *
 * role_main() is the one main loop of every role, as Postfix's
 * single_server_main: event base, the role's prepare (what must happen
 * before the drop: reading what the chroot takes away), the privilege
 * drop, the role's start, ROLE_SIG_STOP and for workers ROLE_SIG_RETIRE
 * handlers - the role starts with these signals blocked, so
 * one sent early waits for them - the seccomp sandbox, the event loop,
 * cleanup and an `event=stop role=...` line.
 */
#ifndef SEALPOST_SANDBOX_ROLE_H
#define SEALPOST_SANDBOX_ROLE_H

#include <signal.h>
#include <stdbool.h>

#include <event2/event.h>

#include "config/config.h"
#include "sandbox/drop.h"
#include "sandbox/sandbox.h"

/*
 * How the master tells a role what to do: ROLE_SIG_STOP (finish what is
 * in progress, then exit) and ROLE_SIG_RETIRE (workers: stop accepting,
 * exit when the last session ends). A role ignores SIGTERM, SIGINT and
 * SIGHUP: a terminal's Ctrl-C and systemd's SIGTERM reach the whole
 * process group or cgroup, and only the master may decide how its roles
 * stop (it asks them in the order that loses nothing: workers and
 * delivery first, the queue last).
 */
#define ROLE_SIG_STOP   SIGUSR2
#define ROLE_SIG_RETIRE SIGUSR1

#define ROLE_FD_CONFIG  3
#define ROLE_FD_CHANNEL 4
#define ROLE_FD_FILES   5
#define ROLE_FD_LIMITS  6
#define ROLE_FD_LISTEN  7
/* queue: the listening control socket of `sealpost queue` (the master's
 * master/control_socket.h; served by queue/queue_control.h) */
#define ROLE_FD_QUEUE_CONTROL 6
/* metrics: ROLE_FD_CHANNEL carries every role's metric block
 * (IPC_METRICS_BLOCK, then EOF); this is its listening HTTP socket */
#define ROLE_FD_METRICS_LISTEN 6

struct file_snapshot;

/* What a role process runs with. */
struct role_ctx {
    const char *name;               /* "smtpd", "queue", "delivery", "local" */
    struct event_base *base;
    const struct config *cfg;
    struct file_snapshot *files;    /* the master's snapshot: freed (zeroed)
                                       right after prepare */
    struct drop_plan plan;
    unsigned slot;                  /* smtpd: its row in the shared tables */
    unsigned workers;               /* smtpd: how many rows there are */
    const char *const *fs_paths;    /* local: the only folders Landlock opens
                                       (set by prepare; see sandbox_enter_paths) */
    size_t fs_path_count;
    void *state;                    /* the role's own */
};

/* One role: its hooks into role_main. */
struct role_ops {
    const char *name;
    enum sandbox_role sandbox;
    bool slotted;                   /* several of it, told apart by slot */
    void (*prepare)(struct role_ctx *ctx);   /* before the drop; may be NULL */
    void (*start)(struct role_ctx *ctx);     /* after the drop, before the sandbox */
    void (*stop)(struct role_ctx *ctx);      /* ROLE_SIG_STOP; NULL: leave the loop */
    void (*retire)(struct role_ctx *ctx);    /* ROLE_SIG_RETIRE; NULL: not handled */
    void (*cleanup)(struct role_ctx *ctx);   /* after the loop */
};

/* The signals a role is started with blocked (spawn.h), so that a stop
 * or reload asked for while it starts waits for its handlers instead of
 * killing it halfway: SIGTERM, SIGINT, SIGHUP (ignored from then on) and
 * the two role signals. role_main unblocks them once its handlers are in
 * place. */
void role_signals(sigset_t *set);

/* Run ops in ctx until stopped; returns the exit status. */
int role_main(const struct role_ops *ops, struct role_ctx *ctx);

#endif

/*
 * master_files.h - the files the master reads from disk for the smtpd
 * workers, and keeps: the certificates and private keys of [tls] and the
 * mailbox lists of the domains, each part as the last set that loaded.
 * A part is checked when read (the key modes) and by building from it
 * what a worker will build (an OpenSSL context, the recipient policy);
 * then both parts are sealed into one memory file (util/snapshot.h) that
 * every new worker gets. The queue gets the mailbox lists and the users
 * file, the delivery process the smart host's credentials file, the
 * local processes an empty snapshot: the keys reach no process that does
 * not terminate TLS, the smart host's password no process but the one
 * that logs in with it.
 *
 * Trusts: the config and the files it names (the operator's).
 */
#ifndef SEALPOST_MASTER_MASTER_FILES_H
#define SEALPOST_MASTER_MASTER_FILES_H

#include <stdbool.h>

#include "config/config.h"

struct file_snapshot;

struct master_files {
    struct file_snapshot *tls;          /* NULL when no listener speaks TLS */
    struct file_snapshot *mailboxes;    /* mailbox lists, alias files, the senders map
                                           and the relay_recipients list */
    struct file_snapshot *users;        /* [submission] users: the queue's only */
    struct file_snapshot *relay;        /* [relay] relayhost_credentials: the delivery
                                           process's only (empty without one) */
    int worker_fd;                      /* tls and mailboxes, sealed */
    int mailbox_fd;                     /* mailboxes and users, for the queue */
    int none_fd;                        /* an empty snapshot */
    int delivery_fd;                    /* relay, sealed, for the delivery process */
};

/* The outcome of a reload, for the log. */
struct files_reload {
    bool tls_ok, mailboxes_ok;
    char tls_err[1024], mailboxes_err[1024];
};

/* Read the certificates and keys, or the mailbox lists, and check them by
 * building what a worker builds from them. NULL + err ("PATH: reason"). */
struct file_snapshot *master_files_read_tls(const struct config *cfg, char *err,
                                            size_t errsize);
struct file_snapshot *master_files_read_mailboxes(const struct config *cfg, char *err,
                                                  size_t errsize);
/* The [submission] users file (an empty snapshot without one), checked
 * by parsing it as the queue will. NULL + err. */
struct file_snapshot *master_files_read_users(const struct config *cfg, char *err,
                                              size_t errsize);

/* The [relay] relayhost_credentials file (an empty snapshot without one),
 * checked: a regular file that group and others can neither read nor
 * write (0600 or 0400), owned by root, the user the master runs as, or
 * the queue or delivery user, holding one valid "user:password" line.
 * NULL + err (never quoting the file's contents). */
struct file_snapshot *master_files_read_relay(const struct config *cfg, char *err,
                                              size_t errsize);
/* SIGHUP: read the credentials file again. 1: its bytes changed and the
 * new set is sealed for the next delivery process (the caller replaces
 * the running one); 0: unchanged, or none configured; -1 + err: it
 * failed to load and the old set stays. */
int master_files_reload_relay(struct master_files *mf, const struct config *cfg, char *err,
                              size_t errsize);

/* Read and check every file (fatal on error, as a start failure). */
void master_files_load(struct master_files *mf, const struct config *cfg);
/* SIGHUP: read again; a part that fails to load keeps its last set. */
void master_files_reload(struct master_files *mf, const struct config *cfg,
                         struct files_reload *r);
/* Log r: status=ok, or status=failed keeping=old with the reason. */
void master_files_log_reload(const struct master_files *mf, const struct files_reload *r);
void master_files_free(struct master_files *mf);

#endif

/*
 * master_files.c - the workers' files, as the master last loaded them
 * (see master_files.h).
 */
#include "master/master_files.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/credentials.h"
#include "mail/recipient.h"
#include "mail/relay_credentials.h"
#include "tls/tls_server.h"
#include "util/log.h"
#include "util/snapshot.h"

/* The certificates and keys, read and checked by building a context from
 * them, as a worker will. NULL + err. */
struct file_snapshot *master_files_read_tls(const struct config *cfg, char *err, size_t errsize)
{
    struct file_snapshot *files = tls_server_read_files(&cfg->tls, err, errsize);
    struct tls_server *ts;

    if (files == NULL)
        return NULL;
    ts = tls_server_new(&cfg->tls, files, err, errsize);
    if (ts == NULL) {
        snapshot_free(files);
        return NULL;
    }
    tls_server_free(ts);
    return files;
}

struct file_snapshot *master_files_read_mailboxes(const struct config *cfg, char *err,
                                                  size_t errsize)
{
    struct file_snapshot *files = recipient_read_files(cfg, err, errsize);
    struct recipient_policy *rp;

    if (files == NULL)
        return NULL;
    rp = recipient_policy_new(cfg, files, err, errsize);
    if (rp == NULL) {
        snapshot_free(files);
        return NULL;
    }
    recipient_policy_free(rp);
    return files;
}

struct file_snapshot *master_files_read_users(const struct config *cfg, char *err,
                                              size_t errsize)
{
    struct file_snapshot *files = snapshot_new();
    const char *path = cfg->submission.users;
    const struct snapshot_file *f;
    struct credentials *c;
    char why[256];

    if (path == NULL)
        return files;
    if (!snapshot_read_file(files, path, why, sizeof(why)) ||
        (f = snapshot_find(files, path)) == NULL) {
        snprintf(err, errsize, "%s: %s", path, why);
        snapshot_free(files);
        return NULL;
    }
    c = credentials_parse((const char *)f->data, f->len, why, sizeof(why));
    if (c == NULL) {
        snprintf(err, errsize, "%s: %s", path, why);
        snapshot_free(files);
        return NULL;
    }
    credentials_free(c);
    return files;
}

/* May the file's owner be trusted with it: root, the user the master
 * runs as, or the queue or delivery user? */
static bool relay_owner_ok(const struct config *cfg, uid_t owner)
{
    const char *users[] = { cfg->queue_user, cfg->delivery_user };

    if (owner == 0 || owner == geteuid())
        return true;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct passwd *pw = users[i][0] ? getpwnam(users[i]) : NULL;

        if (pw != NULL && pw->pw_uid == owner)
            return true;
    }
    return false;
}

/* The mode and owner of the credentials file, on the descriptor its
 * bytes are read from. */
static bool relay_file_private(const struct config *cfg, const char *path, int fd,
                               char *err, size_t errsize)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        snprintf(err, errsize, "relayhost_credentials %s: %s", path, strerror(errno));
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errsize, "relayhost_credentials %s is accessible by group or others "
                 "(mode %04o); run: chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
        return false;
    }
    if (!relay_owner_ok(cfg, st.st_uid)) {
        snprintf(err, errsize, "relayhost_credentials %s belongs to uid %u, not to root, "
                 "queue_user or delivery_user; run: chown root %s", path,
                 (unsigned)st.st_uid, path);
        return false;
    }
    return true;
}

struct file_snapshot *master_files_read_relay(const struct config *cfg, char *err,
                                              size_t errsize)
{
    struct file_snapshot *files = snapshot_new();
    const char *path = cfg->relay.relayhost_credentials;
    const struct snapshot_file *f;
    struct relay_credentials rc;
    char why[256];
    int fd;
    bool ok;

    if (path == NULL)
        return files;
    if ((fd = snapshot_open(path, why, sizeof(why))) < 0) {
        snprintf(err, errsize, "relayhost_credentials %s: %s", path, why);
        snapshot_free(files);
        return NULL;
    }
    ok = relay_file_private(cfg, path, fd, err, errsize);
    if (ok && !(ok = snapshot_read_fd(files, path, fd, why, sizeof(why))))
        snprintf(err, errsize, "relayhost_credentials %s: %s", path, why);
    close(fd);
    if (ok && (f = snapshot_find(files, path)) != NULL &&
        !(ok = relay_credentials_parse((const char *)f->data, f->len, &rc, why, sizeof(why))))
        snprintf(err, errsize, "relayhost_credentials %s: %s", path, why);
    relay_credentials_wipe(&rc);
    if (!ok) {
        snapshot_free(files);
        return NULL;
    }
    return files;
}

int master_files_reload_relay(struct master_files *mf, const struct config *cfg, char *err,
                              size_t errsize)
{
    const char *path = cfg->relay.relayhost_credentials;
    const struct file_snapshot *parts[1];
    const struct snapshot_file *now, *before;
    struct file_snapshot *relay;
    int fd;

    if (path == NULL)
        return 0;
    if ((relay = master_files_read_relay(cfg, err, errsize)) == NULL)
        return -1;
    now = snapshot_find(relay, path);
    before = snapshot_find(mf->relay, path);
    if (now && before && now->len == before->len && memcmp(now->data, before->data, now->len) == 0) {
        snapshot_free(relay);
        return 0;
    }
    parts[0] = relay;
    fd = snapshot_seal("sealpost-delivery-files", parts, 1);
    if (fd < 0) {
        snprintf(err, errsize, "delivery snapshot: %s", strerror(errno));
        snapshot_free(relay);
        return -1;
    }
    close(mf->delivery_fd);
    mf->delivery_fd = fd;
    snapshot_free(mf->relay);
    mf->relay = relay;
    return 1;
}

/* Seal the mailbox lists and the users, for the queue; -1 + err. */
static int seal_mailboxes(const struct file_snapshot *mailboxes,
                          const struct file_snapshot *users, char *err, size_t errsize)
{
    const struct file_snapshot *parts[] = { mailboxes, users };
    int fd = snapshot_seal("sealpost-queue-files", parts, 2);

    if (fd < 0)
        snprintf(err, errsize, "cannot keep the mailbox lists: %s", strerror(errno));
    return fd;
}

/* Seal tls and mailboxes for the next workers; -1 + err. */
static int seal(const struct file_snapshot *tls, const struct file_snapshot *mailboxes,
                char *err, size_t errsize)
{
    const struct file_snapshot *parts[] = { tls, mailboxes };
    int fd = snapshot_seal("sealpost-worker-files", parts, 2);

    if (fd < 0)
        snprintf(err, errsize, "cannot keep the files for the workers: %s", strerror(errno));
    return fd;
}

void master_files_load(struct master_files *mf, const struct config *cfg)
{
    char err[1024];

    mf->worker_fd = mf->none_fd = mf->mailbox_fd = mf->delivery_fd = -1;
    mf->tls = NULL;
    mf->mailboxes = master_files_read_mailboxes(cfg, err, sizeof(err));
    if (mf->mailboxes == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    mf->users = master_files_read_users(cfg, err, sizeof(err));
    if (mf->users == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    if (tls_server_wanted(cfg)) {
        mf->tls = master_files_read_tls(cfg, err, sizeof(err));
        if (mf->tls == NULL)
            fatal("event=start_failed error=\"TLS: %s\"", err);
    }
    mf->worker_fd = seal(mf->tls, mf->mailboxes, err, sizeof(err));
    if (mf->worker_fd < 0)
        fatal("event=start_failed error=\"%s\"", err);
    mf->mailbox_fd = seal_mailboxes(mf->mailboxes, mf->users, err, sizeof(err));
    if (mf->mailbox_fd < 0)
        fatal("event=start_failed error=\"%s\"", err);
    mf->none_fd = snapshot_seal("sealpost-no-files", NULL, 0);
    if (mf->none_fd < 0)
        fatal("event=start_failed error=\"empty snapshot: %s\"", strerror(errno));
    mf->relay = master_files_read_relay(cfg, err, sizeof(err));
    if (mf->relay == NULL)
        fatal("event=start_failed error=\"%s\"", err);
    {
        const struct file_snapshot *parts[] = { mf->relay };

        mf->delivery_fd = snapshot_seal("sealpost-delivery-files", parts, 1);
    }
    if (mf->delivery_fd < 0)
        fatal("event=start_failed error=\"delivery snapshot: %s\"", strerror(errno));
}

/* A part is replaced only once the new set is sealed for the workers. */
void master_files_reload(struct master_files *mf, const struct config *cfg,
                         struct files_reload *r)
{
    struct file_snapshot *tls = NULL, *mailboxes, *users = NULL;
    int fd, mfd = -1;

    memset(r, 0, sizeof(*r));
    if (mf->tls)
        tls = master_files_read_tls(cfg, r->tls_err, sizeof(r->tls_err));
    mailboxes = master_files_read_mailboxes(cfg, r->mailboxes_err, sizeof(r->mailboxes_err));
    /* The users reload with the mailbox lists, and fail with them. */
    if (mailboxes && !(users = master_files_read_users(cfg, r->mailboxes_err,
                                                       sizeof(r->mailboxes_err)))) {
        snapshot_free(mailboxes);
        mailboxes = NULL;
    }
    r->tls_ok = mf->tls == NULL || tls != NULL;
    r->mailboxes_ok = mailboxes != NULL;
    if (tls == NULL && mailboxes == NULL)
        return;
    fd = seal(tls ? tls : mf->tls, mailboxes ? mailboxes : mf->mailboxes, r->tls_err,
              sizeof(r->tls_err));
    if (fd >= 0 && mailboxes && (mfd = seal_mailboxes(mailboxes, users, r->tls_err,
                                                      sizeof(r->tls_err))) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        snprintf(r->mailboxes_err, sizeof(r->mailboxes_err), "%s", r->tls_err);
        r->tls_ok = mf->tls == NULL;
        r->mailboxes_ok = false;
        snapshot_free(tls);
        snapshot_free(mailboxes);
        snapshot_free(users);
        return;
    }
    close(mf->worker_fd);
    mf->worker_fd = fd;
    if (tls) {
        snapshot_free(mf->tls);
        mf->tls = tls;
    }
    if (mailboxes) {
        snapshot_free(mf->mailboxes);
        mf->mailboxes = mailboxes;
        snapshot_free(mf->users);
        mf->users = users;
        close(mf->mailbox_fd);
        mf->mailbox_fd = mfd;
    }
}

void master_files_log_reload(const struct master_files *mf, const struct files_reload *r)
{
    if (mf->tls && r->tls_ok)
        log_info("event=reload what=tls status=ok");
    else if (mf->tls)
        log_error("event=reload what=tls status=failed keeping=old error=\"%s\"", r->tls_err);
    if (r->mailboxes_ok)
        log_info("event=reload what=mailboxes status=ok");
    else
        log_error("event=reload what=mailboxes status=failed keeping=old error=\"%s\"",
                  r->mailboxes_err);
}

void master_files_free(struct master_files *mf)
{
    snapshot_free(mf->tls);
    snapshot_free(mf->mailboxes);
    snapshot_free(mf->users);
    mf->users = NULL;
    snapshot_free(mf->relay);
    mf->relay = NULL;
    if (mf->delivery_fd >= 0)
        close(mf->delivery_fd);
    if (mf->worker_fd >= 0)
        close(mf->worker_fd);
    if (mf->none_fd >= 0)
        close(mf->none_fd);
    mf->tls = mf->mailboxes = NULL;
    mf->worker_fd = mf->none_fd = mf->mailbox_fd = mf->delivery_fd = -1;
}

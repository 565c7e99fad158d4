/*
 * control_socket.c - make and reach the queue control socket (see
 * control_socket.h).
 *
 * Paths go through the folder's descriptor (/proc/self/fd/N/queue.sock),
 * so a socket address never depends on the spool path's length and a
 * symbolic link put in place of the folder is never followed.
 *
 * Trusts: the spool path from the config; checks the folder's owner.
 */
#define _GNU_SOURCE 1
#include "master/control_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* SPOOL/control, ours and a folder; -1 + err. */
static int open_dir(const char *spool, const struct drop_plan *plan, char *err,
                    size_t errsize)
{
    int sfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dfd;
    struct stat st;
    mode_t mode = plan->switch_user ? 02750 : 0700;

    if (sfd < 0) {
        snprintf(err, errsize, "open %s: %s", spool, strerror(errno));
        return -1;
    }
    if (mkdirat(sfd, CONTROL_DIR, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsize, "mkdir %s/%s: %s", spool, CONTROL_DIR, strerror(errno));
        close(sfd);
        return -1;
    }
    dfd = openat(sfd, CONTROL_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(sfd);
    if (dfd < 0 || fstat(dfd, &st) < 0) {
        snprintf(err, errsize, "open %s/%s: %s", spool, CONTROL_DIR, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errsize, "%s/%s belongs to uid %ld, not to sealpost's user %ld: "
                 "remove it", spool, CONTROL_DIR, (long)st.st_uid, (long)geteuid());
        close(dfd);
        return -1;
    }
    if ((plan->switch_user && fchown(dfd, (uid_t)-1, plan->gid) < 0) || fchmod(dfd, mode) < 0) {
        snprintf(err, errsize, "chmod %s/%s: %s", spool, CONTROL_DIR, strerror(errno));
        close(dfd);
        return -1;
    }
    return dfd;
}

static void socket_addr(struct sockaddr_un *sa, int dfd)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dfd, CONTROL_SOCKET);
}

int control_socket_open(const char *spool, const struct drop_plan *queue_plan, char *err,
                        size_t errsize)
{
    struct sockaddr_un sa;
    int dfd = open_dir(spool, queue_plan, err, errsize), fd;
    mode_t old;

    if (dfd < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsize, "socket: %s", strerror(errno));
        close(dfd);
        return -1;
    }
    if (unlinkat(dfd, CONTROL_SOCKET, 0) < 0 && errno != ENOENT) {
        /* bind says what is wrong */
    }
    socket_addr(&sa, dfd);
    old = umask(queue_plan->switch_user ? 0117 : 0177);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, CONTROL_BACKLOG) < 0) {
        umask(old);
        snprintf(err, errsize, "bind %s/%s/%s: %s", spool, CONTROL_DIR, CONTROL_SOCKET,
                 strerror(errno));
        close(fd);
        close(dfd);
        return -1;
    }
    umask(old);
    close(dfd);
    return fd;
}

int control_socket_connect(const char *spool, char *err, size_t errsize)
{
    char path[4200];
    struct sockaddr_un sa;
    int dfd, fd, saved;

    snprintf(path, sizeof(path), "%s/%s", spool, CONTROL_DIR);
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        saved = errno;
        snprintf(err, errsize, "%s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socket_addr(&sa, dfd);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        saved = errno;
        snprintf(err, errsize, "%s/%s: %s", path, CONTROL_SOCKET, strerror(saved));
        if (fd >= 0)
            close(fd);
        close(dfd);
        errno = saved;
        return -1;
    }
    close(dfd);
    return fd;
}

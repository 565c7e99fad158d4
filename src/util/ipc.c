/*
 * ipc.c - typed messages over SOCK_SEQPACKET with SCM_RIGHTS (see ipc.h).
 */
#include "util/ipc.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IPC_SEND_TIMEOUT_MS (60 * 1000)

static bool send_message(int sock, enum ipc_type type, const void *payload, size_t len,
                         int fd_to_pass, bool wait)
{
    struct ipc_header h = { (uint32_t)type, (uint32_t)len };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr mh;
    ssize_t n;

    if (len > IPC_MAX_PAYLOAD) {
        errno = EMSGSIZE;
        return false;
    }
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = len ? 2 : 1;
    if (fd_to_pass >= 0) {
        struct cmsghdr *c;

        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof(control.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
    }
    for (;;) {
        struct pollfd pfd = { sock, POLLOUT, 0 };

        n = sendmsg(sock, &mh, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || !wait)
            return false;
        /* A non-blocking channel whose buffer is full: the peer is a
         * local process that reads it promptly; wait for room. */
        if (poll(&pfd, 1, IPC_SEND_TIMEOUT_MS) <= 0) {
            errno = ETIMEDOUT;
            return false;
        }
    }
    return n == (ssize_t)(sizeof(h) + len);
}

bool ipc_send(int sock, enum ipc_type type, const void *payload, size_t len, int fd_to_pass)
{
    return send_message(sock, type, payload, len, fd_to_pass, true);
}

bool ipc_try_send(int sock, enum ipc_type type, const void *payload, size_t len,
                  int fd_to_pass)
{
    return send_message(sock, type, payload, len, fd_to_pass, false);
}

/* Pull an attached descriptor out of the control data, or -1. */
static int take_fd(struct msghdr *mh, bool *garbage)
{
    int fd = -1;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int)) || fd >= 0) {
            *garbage = true;
            continue;
        }
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
    }
    return fd;
}

enum ipc_status ipc_recv(int sock, enum ipc_type *type, void *payload, size_t payload_size,
                         size_t *len, bool allow_fd, int *fd_received)
{
    struct ipc_header h;
    struct iovec iov[2] = { { &h, sizeof(h) }, { payload, payload_size } };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr mh;
    ssize_t n;
    bool garbage = false;
    int fd;

    *fd_received = -1;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof(control.buf);
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return IPC_AGAIN;
    /* A peer that died with our messages unread resets the channel: that
     * is the peer gone, like an orderly close, not a broken channel. */
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return IPC_EOF;
    if (n < 0)
        return IPC_ERROR;
    fd = take_fd(&mh, &garbage);
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(h) ||
        h.len != (size_t)n - sizeof(h) || h.type == IPC_NONE || h.type >= IPC_TYPE_MAX ||
        (fd >= 0 && !allow_fd))
        garbage = true;
    if (garbage) {
        if (fd >= 0)
            close(fd);
        return IPC_GARBAGE;
    }
    *type = (enum ipc_type)h.type;
    *len = h.len;
    *fd_received = fd;
    return IPC_OK;
}

/*
 * ipc.h - typed, length-checked messages between sealpost's processes,
 * over SOCK_SEQPACKET socket pairs (one datagram per message, so a
 * message is never split or merged), with an optional file descriptor
 * attached (SCM_RIGHTS).
 *
 * Trusts nothing: a message whose header, size or type is wrong, or a
 * descriptor where none was expected, is refused; the caller treats a
 * refusal from an internal peer as fatal for that channel.
 */
#ifndef SEALPOST_UTIL_IPC_H
#define SEALPOST_UTIL_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One datagram: well under the default socket buffer (wmem_default,
 * 208 KiB), and enough for the envelope of 100 recipients of the largest
 * size (mail/envelope.h). */
#define IPC_MAX_PAYLOAD (128 * 1024)

enum ipc_type {
    IPC_NONE = 0,
    /* smtpd worker -> queue */
    IPC_MSG_NEW,            /* payload: serialized envelope (envelope.h) */
    IPC_MSG_COMMIT,         /* payload: queue id */
    IPC_MSG_ABORT,          /* payload: queue id */
    IPC_AUTH_CHECK,         /* payload: auth_codec.h request (SMTP AUTH) */
    IPC_MILTER_CHECK,       /* payload: milter_check.h question at CONNECT, MAIL or
                               RCPT; also queue -> milter role, the same form */
    /* queue -> smtpd worker */
    IPC_MSG_NEW_OK,         /* payload: queue id; fd: the message file, for writing */
    IPC_MSG_NEW_FAIL,       /* payload: int32 errno */
    IPC_MSG_COMMIT_OK,      /* payload: queue id */
    IPC_MSG_COMMIT_FAIL,    /* payload: int32 errno, then the queue id */
    IPC_AUTH_RESULT,        /* payload: auth_codec.h answer */
    IPC_MSG_COMMIT_REFUSED, /* payload: the queue id, then a reply line "CODE X.Y.Z
                               text" (a milter refused the message; nothing kept) */
    IPC_MILTER_VERDICT,     /* payload: milter_codec.h result (job = the check's id,
                               verdict, reply) answering an IPC_MILTER_CHECK */
    /* master -> queue */
    IPC_CHANNEL,            /* payload: int32 worker slot; fd: that worker's channel */
    IPC_DELIVERY_CHANNEL,   /* no payload; fd: the channel to a new delivery process */
    IPC_MAILBOXES,          /* no payload; fd: the reloaded mailbox lists (snapshot.h) */
    IPC_LOCAL_CHANNEL,      /* payload: int32 local slot ([domain] owner, config.h
                               config_local_owners); fd: the channel to a new local
                               delivery process, which speaks IPC_REMOTE_JOB/RESULT/BYE */
    IPC_LMTP_CHANNEL,       /* no payload; fd: the channel to a new LMTP delivery process
                               ([domain] deliver = lmtp:...), which speaks
                               IPC_REMOTE_JOB/RESULT/BYE like a local one */
    IPC_MILTER_CHANNEL,     /* payload: int32 slot (< [server] milter_processes); fd: the
                               channel to a new milter role in that slot */
    /* queue -> master */
    IPC_QUEUE_READY,        /* no payload: the spool is open, mail can be taken */
    /* queue -> delivery */
    IPC_REMOTE_JOB,         /* payload: remote_codec.h job; fd: the message file, read-only */
    IPC_STS_CACHE,          /* payload: sts_codec.h record, a cached MTA-STS policy
                               (sent before the first job of a new channel) */
    /* delivery -> queue */
    IPC_REMOTE_RESULT,      /* payload: remote_codec.h result */
    IPC_REMOTE_BYE,         /* no payload: an orderly stop, nothing more follows */
    IPC_STS_STORE,          /* payload: sts_codec.h record, an MTA-STS policy just
                               fetched, for spool/sts/ */
    IPC_TLSRPT_RECORD,      /* payload: tlsrpt_codec.h record, one TLS-RPT session outcome */
    /* queue <-> milter role (mail/milter_codec.h) */
    IPC_MILTER_JOB,         /* payload: milter job; fd: the spool file, read-only */
    IPC_MILTER_RESULT,      /* payload: milter result; fd: the new message (sealed
                               memfd) when the result says "content yes", else none */
    /* master -> metrics role (util/metrics.h), at its start, then EOF */
    IPC_METRICS_BLOCK,      /* no payload; fd: one role's metric block, read-only */
    IPC_TYPE_MAX,
};

struct ipc_header {
    uint32_t type;
    uint32_t len;           /* payload octets after the header */
};

/*
 * Send one message. fd_to_pass is attached when >= 0. Blocks until the
 * datagram is queued (the peer is a local process). Returns false with
 * errno set on failure.
 */
bool ipc_send(int sock, enum ipc_type type, const void *payload, size_t len, int fd_to_pass);

/* The same without waiting: false with errno EAGAIN when the channel is
 * full (for a process that must keep reading while it writes). */
bool ipc_try_send(int sock, enum ipc_type type, const void *payload, size_t len,
                  int fd_to_pass);

enum ipc_status {
    IPC_OK,
    IPC_EOF,                /* the peer closed the channel (or died: reset) */
    IPC_AGAIN,              /* non-blocking socket, nothing to read */
    IPC_ERROR,              /* system error (errno) */
    IPC_GARBAGE,            /* malformed message: close the channel */
};

/*
 * Receive one message into payload (size payload_size). *fd_received is
 * the attached descriptor or -1; a descriptor is accepted only when
 * allow_fd is true (otherwise it is closed and the message is garbage).
 */
enum ipc_status ipc_recv(int sock, enum ipc_type *type, void *payload, size_t payload_size,
                         size_t *len, bool allow_fd, int *fd_received);

#endif

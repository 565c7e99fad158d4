/*
 * fuzz_ipc.c - the internal message codec (src/util/ipc.c) on hostile
 * datagrams: whatever a compromised peer sends on a channel, ipc_recv
 * either refuses it (garbage/EOF) or returns a message whose header
 * agrees with its length and type range, never more payload than the
 * buffer, and never a descriptor the caller did not allow.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "util/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int sv[2] = { -1, -1 };
    char payload[256];
    enum ipc_type type = IPC_NONE;
    size_t len = 0;
    int fd = -1;
    bool allow_fd = size > 0 && (data[0] & 1);
    enum ipc_status st;

    if (sv[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        abort();
    if (size > 60000)
        return 0;
    /* An empty datagram reads as end of channel: send at least a byte. */
    if (send(sv[1], size ? data : (const uint8_t *)"", size ? size : 1, 0) < 0)
        return 0;
    st = ipc_recv(sv[0], &type, payload, sizeof(payload), &len, allow_fd, &fd);
    FUZZ_CHECK(fd < 0);             /* no SCM_RIGHTS was sent */
    if (st == IPC_OK) {
        struct ipc_header h;

        FUZZ_CHECK(size >= sizeof(h));
        memcpy(&h, data, sizeof(h));
        FUZZ_CHECK(h.len == size - sizeof(h) && len == h.len);
        FUZZ_CHECK(len <= sizeof(payload));
        FUZZ_CHECK(type > IPC_NONE && type < IPC_TYPE_MAX);
        FUZZ_CHECK(memcmp(payload, data + sizeof(h), len) == 0);
    } else {
        FUZZ_CHECK(st == IPC_GARBAGE);
    }
    /* And the sending side round-trips what it accepts. */
    if (size >= 1 && size - 1 <= sizeof(payload)) {
        enum ipc_type t = (enum ipc_type)(1 + data[0] % (IPC_TYPE_MAX - 1));

        FUZZ_CHECK(ipc_send(sv[1], t, data + 1, size - 1, -1));
        FUZZ_CHECK(ipc_recv(sv[0], &type, payload, sizeof(payload), &len, false, &fd) ==
                   IPC_OK);
        FUZZ_CHECK(type == t && len == size - 1 && fd < 0);
        FUZZ_CHECK(memcmp(payload, data + 1, len) == 0);
    }
    return 0;
}

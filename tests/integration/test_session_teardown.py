"""Session teardown and reply backpressure (issue 10, items 1 and 2),
against the real daemon over loopback with raw sockets and `ssl`.

1. Clients that pipeline commands without reading their replies and then
   go away (close_notify, close, reset, half-close) - in cleartext, after
   STARTTLS and on an implicit TLS listener: every session is freed
   (one event=disconnect per event=connect) while some of those clients
   still hold their sockets open, their addresses can open
   max_connections_per_ip sessions again, the worker's memory returns
   near its baseline, and SIGTERM stops the daemon (exit 0) within
   shutdown_timeout even with stuck sessions open. A cleartext client
   that half-closes with replies queued it never reads is freed by the
   session's close timer (close_timeout).
2. A client that pipelines 20 MiB and never reads: the worker reads no
   more once max_output_buffer octets of replies are queued, its RSS
   stays within a few MB of the cap, the client is dropped after the
   write timeout (command_timeout), and another client is served
   meanwhile.

Trusts: the conftest fixtures (server processes, test PKI) and Linux
/proc for the worker's pid and RSS. Several source addresses in
127.0.0.0/8 keep each address under the per-IP limit.
"""
import re
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import BIN, TLS_HOSTNAME
from smtpwire import RawSMTP, make_message, wait_until

TIMEOUT = 10
EHLO = b"EHLO a\r\n"
CHUNK = EHLO * 8192                     # 64 KiB of pipelined commands
RST = struct.pack("ii", 1, 0)           # SO_LINGER on, 0 s: close() sends RST
CLIENT_RCVBUF = 8192                    # so that replies pile up at the server
PER_IP = 5
CLOSE_TIMEOUT = 8                       # longer than the shutdown grace, so that
SHUTDOWN_TIMEOUT = 2                    # the shutdown itself must end closing sessions
MiB = 1024 * 1024


def is_asan_build():
    try:
        with open(BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def worker_pid(server):
    """The one smtpd worker (the servers here run workers = 1)."""
    text = server.wait_log("event=child_start role=smtpd")
    return int(re.search(r"event=child_start role=smtpd slot=0 pid=(\d+)", text).group(1))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def counts(server):
    log = server.log()
    return log.count("event=connect "), log.count("event=disconnect ")


def read_reply(sock, timeout=TIMEOUT):
    """One whole reply; the caller reads only when exactly one is due."""
    sock.settimeout(timeout)
    buf = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", buf):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {buf!r}"
        buf += chunk
    return buf


def connect(port, source, rcvbuf=CLIENT_RCVBUF):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((source, 0))
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    return s


def open_session(server, mode, source, rcvbuf=CLIENT_RCVBUF):
    """A session past its greeting (and STARTTLS/TLS handshake)."""
    port = server.implicit_port if mode == "implicit" else server.port
    sock = connect(port, source, rcvbuf)
    if mode != "implicit":
        assert read_reply(sock).startswith(b"220 ")
    if mode == "starttls":
        sock.sendall(b"EHLO c\r\n")
        assert read_reply(sock).startswith(b"250-")
        sock.sendall(b"STARTTLS\r\n")
        assert read_reply(sock).startswith(b"220 ")
    if mode in ("starttls", "implicit"):
        sock = server.pki.client_context().wrap_socket(sock, server_hostname=TLS_HOSTNAME)
        if mode == "implicit":
            assert read_reply(sock).startswith(b"220 ")
    return sock


def warm_up(server, mode, source):
    """A few complete sessions (TLS, allocator) before a memory baseline."""
    for _ in range(3):
        sock = open_session(server, mode, source)
        sock.sendall(b"QUIT\r\n")
        assert read_reply(sock).startswith(b"221 ")
        sock.close()


def flood(sock, limit, stall=0.5):
    """Pipeline EHLO without reading until a send has been blocked for
    `stall` seconds, the server drops us, or `limit` octets are out."""
    sock.settimeout(stall)
    sent = 0
    try:
        while sent < limit:
            sock.sendall(CHUNK)
            sent += len(CHUNK)
    except OSError:                     # blocked (timeout), or dropped by the server
        pass
    return sent


def close_notify(sock):
    """Send close_notify; the server's own goodbye is not waited for."""
    sock.settimeout(0.5)
    try:
        sock.unwrap()
    except (OSError, ValueError):
        pass


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    except OSError:
        pass
    sock.close()


# ---------------------------------------------------------------- 1: teardown

# What each client does once it has pipelined. "burst" clients queue
# replies (under max_output_buffer) that they never read, say goodbye and
# keep their socket open: the server must free the session on its own.
TLS_ENDINGS = ("flood-notify-close", "flood-close", "flood-reset", "burst-notify-hold")
CLEAR_ENDINGS = ("flood-close", "flood-reset", "burst-halfclose-hold", "flood-hold-reset")
BURST = 1500                            # EHLOs: ~200 KiB of replies


def run_client(server, mode, source, ending, held):
    sock = open_session(server, mode, source)
    if ending.startswith("flood"):
        flood(sock, limit=8 * MiB)
    else:
        sock.settimeout(TIMEOUT)
        sock.sendall(EHLO * BURST)
        time.sleep(0.2)
    if ending.endswith("notify-close"):
        close_notify(sock)
        sock.close()
    elif ending == "flood-close":
        sock.close()
    elif ending == "flood-reset":
        reset(sock)
    elif ending == "burst-notify-hold":
        close_notify(sock)
        held.append(sock)
    elif ending == "burst-halfclose-hold":
        sock.shutdown(socket.SHUT_WR)
        held.append(sock)
    elif ending == "flood-hold-reset":
        time.sleep(0.3)
        reset(sock)


def teardown_server(make_tls_server):
    return make_tls_server(
        listeners={"smtps": {"tls": "implicit"}},
        settings={"workers": "1", "max_connections_per_ip": str(PER_IP),
                  "max_connections": "200", "command_timeout": "60s",
                  "close_timeout": f"{CLOSE_TIMEOUT}s",
                  "shutdown_timeout": f"{SHUTDOWN_TIMEOUT}s"})


@pytest.mark.parametrize("mode", ["implicit", "starttls", "cleartext"])
def test_sessions_of_clients_that_go_away_are_freed(make_tls_server, mode):
    """60 clients from 12 addresses pipeline without reading, then close,
    reset or say goodbye: all 60 sessions end (command_timeout is 60 s,
    so no timeout rescues a leak), the addresses get their full per-IP
    quota back, memory returns near baseline, SIGTERM is honoured."""
    server = teardown_server(make_tls_server)
    pid = worker_pid(server)
    endings = TLS_ENDINGS if mode != "cleartext" else CLEAR_ENDINGS
    sources = [f"127.0.0.{10 + i}" for i in range(12)]
    warm_up(server, mode, "127.0.0.9")
    assert wait_until(lambda: counts(server)[0] == counts(server)[1], 10), server.log()
    base = rss_kb(pid)

    held, errors = [], []

    def per_address(i, source):
        try:
            for n in range(60 // len(sources)):
                run_client(server, mode, source, endings[(i + n) % len(endings)], held)
        except Exception as e:          # reported below, with the log
            errors.append(f"{source}: {e!r}")

    threads = [threading.Thread(target=per_address, args=(i, s)) for i, s in enumerate(sources)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == [], (errors, server.log()[-3000:])
        # 60 + warm-up + readiness probe: every session ended, while some
        # clients still hold their sockets open
        connected = counts(server)[0]
        assert connected >= 64, server.log()[-3000:]
        assert wait_until(lambda: counts(server)[1] == connected, CLOSE_TIMEOUT + 10), \
            (counts(server), server.log()[-4000:])
        # each address can open its whole quota again
        for source in sources:
            socks = [connect(server.port, source) for _ in range(PER_IP)]
            try:
                for s in socks:
                    assert read_reply(s).startswith(b"220 "), source
            finally:
                for s in socks:
                    s.close()
        if not is_asan_build():
            # 60 sessions' buffers (up to max_output_buffer each) are
            # given back; a leak of one session's is 0.5 MB
            assert wait_until(lambda: rss_kb(pid) <= base + 4 * 1024, 10), \
                (base, rss_kb(pid))
        # stuck sessions (pipelined, not reading, still open) at SIGTERM
        stuck = [open_session(server, mode, f"127.0.0.{30 + i}") for i in range(4)]
        for s in stuck:
            flood(s, limit=8 * MiB)
        held.extend(stuck)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rc = server.proc.wait(SHUTDOWN_TIMEOUT + 10)
        elapsed = time.monotonic() - start
        assert rc == 0, server.log()[-3000:]
        # within shutdown_timeout (plus the worker's exit and the master's
        # reaping), well before the closing sessions' own timers; before
        # the fix a closing session kept the daemon running
        assert elapsed < SHUTDOWN_TIMEOUT + 4, (elapsed, server.log()[-3000:])
        log = server.log()
        assert log.count("event=connect ") == log.count("event=disconnect "), log[-3000:]
    finally:
        for s in held:
            try:
                s.close()
            except OSError:
                pass


def test_half_closed_client_that_never_reads_is_freed_by_close_timeout(make_tls_server):
    """Cleartext: the client pipelines ~7 MB worth of replies (more than
    the kernel buffers take; under a raised max_output_buffer, so the
    server reads on), half-closes and holds its socket without reading.
    The server starts closing to flush the replies; its close timer frees
    the session and the address's only slot, the socket still open."""
    server = make_tls_server(settings={
        "workers": "1", "max_connections_per_ip": "1", "command_timeout": "60s",
        "close_timeout": "2s", "max_output_buffer": "32M"})
    sock = open_session(server, "cleartext", "127.0.0.50")
    try:
        sock.settimeout(TIMEOUT)
        sock.sendall(EHLO * 40000)
        sock.shutdown(socket.SHUT_WR)
        log = server.wait_log("event=close_timeout", timeout=15)
        assert re.search(r"event=close_timeout session=\S+ client=127\.0\.0\.50 state=\d+ "
                         r"queued=[1-9]", log), log[-2000:]
        assert wait_until(lambda: counts(server)[0] == counts(server)[1], 10), \
            server.log()[-2000:]
        with RawSMTP(server.port, source="127.0.0.50") as c:
            assert c.greeting.code == 220
    finally:
        sock.close()


# ---------------------------------------------------------------- 2: backpressure

class Flooder(threading.Thread):
    """Sends up to `total` octets of pipelined EHLO, blocking, never
    reading; ends when done or when the server drops the connection."""

    def __init__(self, sock, total):
        super().__init__(daemon=True)
        self.sock, self.total = sock, total
        self.sent, self.error = 0, None
        self.started = time.monotonic()

    def run(self):
        self.sock.settimeout(120)
        try:
            while self.sent < self.total:
                self.sock.sendall(CHUNK)
                self.sent += len(CHUNK)
        except OSError as e:
            self.error = e


@pytest.mark.parametrize("mode", ["cleartext", "implicit"])
def test_client_that_never_reads_is_capped_and_dropped(make_tls_server, mode):
    cap = 256 * 1024
    server = make_tls_server(
        listeners={"smtps": {"tls": "implicit"}},
        settings={"workers": "1", "command_timeout": "3s", "max_output_buffer": "256k"})
    pid = worker_pid(server)
    warm_up(server, mode, "127.0.0.40")
    base = rss_kb(pid)

    sock = open_session(server, mode, "127.0.0.41", rcvbuf=65536)
    flooder = Flooder(sock, 20 * MiB)
    flooder.start()
    peak = base
    try:
        # served meanwhile, from another address
        time.sleep(0.5)
        with RawSMTP(server.port, source="127.0.0.42") as c:
            c.ehlo()
            assert c.transaction("s@example.net", ["alice@example.test"],
                                 make_message(msgid="<beside-flood@t>")).code == 250
            assert c.cmd("QUIT").code == 221
        while flooder.is_alive() and time.monotonic() - flooder.started < 60:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)
        assert not flooder.is_alive(), "the client that never reads was never dropped"
    finally:
        sock.close()
    assert len(server.wait_messages("alice", 1)) == 1
    log = server.log()
    # stopped by the server, long before its 20 MiB were read
    assert flooder.error is not None and flooder.sent < 20 * MiB, (flooder.sent, log[-2000:])
    assert "event=backpressure " in log, log[-2000:]
    assert re.search(r"event=timeout session=\S+ client=127\.0\.0\.41 state=\d+ waiting=write",
                     log), log[-2000:]
    assert wait_until(lambda: counts(server)[0] == counts(server)[1], 10), server.log()[-2000:]
    if not is_asan_build():
        growth = (peak - base) * 1024
        assert growth < cap + 2 * MiB, f"worker RSS grew by {growth} octets (cap {cap})"


@pytest.mark.parametrize("mode", ["cleartext", "implicit"])
def test_pipelining_client_that_reads_late_gets_every_reply(make_tls_server, mode):
    """Backpressure loses nothing: 20,000 pipelined EHLOs (3.5 MB of
    replies) read only after a pause, with max_output_buffer at its
    minimum so input stops and resumes hundreds of times: every reply
    arrives, in order, and the session goes on."""
    n = 20000
    server = make_tls_server(listeners={"smtps": {"tls": "implicit"}},
                             settings={"workers": "1", "max_output_buffer": "16k"})
    sock = open_session(server, mode, "127.0.0.60", rcvbuf=65536)
    sender_errors = []

    def send():
        try:
            sock.sendall(EHLO * n + b"NOOP\r\n")
        except OSError as e:
            sender_errors.append(e)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1)
    sock.settimeout(TIMEOUT)
    last = b"\r\n250 CHUNKING\r\n"        # the end of each EHLO reply
    tail, done = b"", 0
    while True:
        chunk = sock.recv(1 << 16)
        assert chunk, f"closed after {done} replies"
        buf = tail + chunk
        done += buf.count(last)
        if buf.endswith(b"\r\n250 2.0.0 Ok\r\n"):
            break
        tail = buf[-(len(last) - 1):]       # never a whole reply end twice
    sender.join(TIMEOUT)
    assert sender_errors == []
    assert done == n
    sock.sendall(b"QUIT\r\n")
    assert read_reply(sock).startswith(b"221 ")
    sock.close()
    log = server.log()
    assert re.search(r"event=backpressure session=\S+ client=127\.0\.0\.60 ", log), log[-2000:]
    assert re.search(r"event=disconnect session=\S+ client=127\.0\.0\.60 \S+ "
                     rf"commands={n + 2} ", server.wait_log("client=127.0.0.60 duration")), \
        server.log()[-2000:]


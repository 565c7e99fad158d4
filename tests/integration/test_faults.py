"""Fault tests (issue 5, item 7) against the real daemon: a spool that
runs out of space, outbound peers that stall or hang up mid-transaction,
a storm of connections dropped abruptly, a flood of garbage commands,
and kill -9 under load (of the whole daemon, and of each child process
once the daemon has them).

The invariant checked throughout is the one of docs/SPOOL.md: a message
acknowledged with 250 is delivered at least once (and, without a crash,
exactly once); a message refused with 4xx is not delivered at all.

Needs root for the full-disk tests (they mount a 2 MB tmpfs); they skip
with a message otherwise. The kill -9 of each child skips on a daemon
without child processes. Server bugs these tests found are marked
xfail(strict=True) with the cause in the reason: when one is fixed its
test passes, and strict mode makes that a failure until the mark goes.
About 15 s in all.
"""
import functools
import os
import random
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN
from smtpwire import (ConnectionClosed, RawSMTP, all_delivered, delivered_ids,
                      dot_stuff, make_message, message_id, new_msgid, wait_until)

HELO = "client.example.net"
RST = struct.pack("ii", 1, 0)           # SO_LINGER on, 0 s: close() sends RST


# ---------------------------------------------------------------- helpers

def _stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children(pid):
    """Live child processes of pid (threads are not counted)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(name))
    return sorted(out)


def process_tree(pid):
    """pid and all its live descendants: the daemon, however many
    processes privilege separation makes of it."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if alive(p):
            tree.append(p)
            todo.extend(children(p))
    return tree


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def nofile_soft_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return 1 << 30 if soft == "unlimited" else int(soft)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


def comm(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip() or Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@functools.lru_cache(maxsize=None)
def is_asan_build():
    try:
        with open(BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def body_of(size, tag=b""):
    """A body of about `size` octets in 78-octet lines."""
    line = (tag + b" " + b"x" * 76)[:76] + b"\r\n"
    return line * max(1, size // len(line))


def run_threads(targets):
    """Run callables in threads; returns the exceptions they raised."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:      # noqa: BLE001 - reported by the caller
            errors.append(repr(e))
    threads = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    return threads, errors


def join_all(threads, timeout=60):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "client threads hung"


def copies_per_mailbox(mail_root: Path):
    """(Message-ID, mailbox dir) -> number of delivered files."""
    out = {}
    for p in all_delivered(mail_root):
        box = p.parent.parent           # mail/DOMAIN/LOCAL/new/FILE
        key = (message_id(p.read_bytes()), f"{box.name}@{box.parent.name}")
        out[key] = out.get(key, 0) + 1
    return out


class Spool:
    """The daemon's spool folder (server.queue_files() assumes ROOT/spool)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _list(self, sub):
        d = self.path / sub
        return sorted(os.listdir(d)) if d.is_dir() else []

    def incoming(self):
        return self._list("incoming")

    def queued(self):
        """Queue ids of committed messages (not their .state files)."""
        return [f for f in self._list("queue") if not f.endswith(".state")]

    def wait_empty(self, timeout=20):
        return wait_until(lambda: not self._list("queue") and not self.incoming(), timeout)


# A real sanitizer finding in a daemon's log. ("LeakSanitizer has
# encountered a fatal error" is not one: LSan cannot read /proc inside the
# smtpd workers' chroot and gives up.)
SANITIZER_REPORT = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected memory leaks|runtime error:")
_checked_logs = set()


def sanitizer_report(log: Path):
    text = log.read_text(errors="replace") if log.exists() else ""
    m = SANITIZER_REPORT.search(text)
    return None if m is None else text[max(0, m.start() - 300):m.start() + 3000]


def assert_no_sanitizer_report(server):
    """Stop the server and check its log now (inside the test, so that an
    xfail mark applies); the fixture below then leaves it alone."""
    server.stop()
    _checked_logs.add(server.log_path)
    report = sanitizer_report(server.log_path)
    assert report is None, report


@pytest.fixture(autouse=True)
def no_sanitizer_reports(tmp_path):
    """With an ASan/UBSan build, a report in any daemon's log (written
    when it exits, so checked after the servers are stopped) is an error."""
    yield
    for log in tmp_path.glob("*/sealpost.log"):
        report = None if log in _checked_logs else sanitizer_report(log)
        if report:
            pytest.fail(f"{log}: sanitizer report\n{report}")


# ---------------------------------------------------------------- 1. full disk

class SpaceHog:
    """Fills a file system and keeps it full: whatever space the daemon
    frees (a delivered message leaving the queue) is taken again at
    once, until release()."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.released = threading.Event()
        self.full = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def fill(self):
        for chunk in (b"\0" * 65536, b"\0" * 4096):
            while True:
                try:
                    os.write(self.fd, chunk)
                except OSError:
                    break
        self.full.set()

    def _run(self):
        while not self.released.is_set():
            self.fill()
            self.released.wait(0.005)

    def start(self):
        self.thread.start()
        assert self.full.wait(10), "could not fill the file system"
        return self

    def release(self):
        self.released.set()
        self.thread.join(10)
        os.close(self.fd)
        self.path.unlink()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards (lazily if something still
    holds it). List it before make_server in a test's arguments so that
    the servers are stopped first."""
    if os.geteuid() != 0:
        pytest.skip("full-disk test: mounting a 2 MB tmpfs for the spool needs root")
    d = tmp_path / "smallfs"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"full-disk test: cannot mount a tmpfs ({res.stderr.strip()})")
    yield d
    if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def full_disk_server(small_tmpfs, make_server, **settings):
    return make_server(settings={"spool": str(small_tmpfs / "spool"), "max_errors": "1000",
                                 "max_message_size": "4M", **settings},
                       extra_sections="\n[queue]\nhold = no\n")


class Sender:
    """A client thread sending messages over one session after another
    until stopped, keeping the outcome of each transaction."""

    SIZES = (1_500, 30_000, 150_000)

    def __init__(self, port, n, stop, rcpt="alice@example.test", gate=None):
        self.port, self.n, self.stop, self.rcpt = port, n, stop, rcpt
        self.gate = gate        # called before each message (flow control)
        self.acked = []         # (Message-ID, start time)
        self.refused = []       # (Message-ID, start time, reply line, size)
        self.unexpected = []

    def __call__(self):
        j = 0
        while not self.stop.is_set():
            try:
                c = RawSMTP(self.port, timeout=15)
            except OSError as e:
                self.unexpected.append(f"connect: {e!r}")
                return
            try:
                c.ehlo(HELO)
                while not self.stop.is_set():
                    self.one(c, j)
                    j += 1
            except (ConnectionClosed, OSError) as e:
                self.unexpected.append(repr(e))
                return
            finally:
                c.close()

    def one(self, c, j):
        if self.gate:
            self.gate()
        mid, size = new_msgid(), self.SIZES[(self.n + j) % len(self.SIZES)]
        t0 = time.monotonic()
        assert c.cmd("MAIL FROM:<fill@example.net>").code == 250
        assert c.cmd(f"RCPT TO:<{self.rcpt}>").code == 250
        r = c.cmd("DATA")
        if r.code == 354:
            c.send(dot_stuff(make_message(msgid=mid, to=self.rcpt,
                                          body=body_of(size, mid.encode()))) + b".\r\n")
            r = c.reply(timeout=15)
        if r.code == 250:
            self.acked.append((mid, t0))
        elif r.code in (451, 452):
            self.refused.append((mid, t0, r.lines[0].decode(errors="replace"), size))
            assert c.cmd("RSET").code == 250
        else:
            raise AssertionError(f"unexpected reply {r!r}")


def test_full_spool_refuses_with_4xx_loses_nothing_and_recovers(small_tmpfs, make_server):
    """Clients keep sending while the spool's file system is filled and
    kept full: they get 4xx (never 5xx, never a hang); every message
    that got a 250 is delivered exactly once and no refused one is; once
    space frees, new mail is accepted again without a restart."""
    server = full_disk_server(small_tmpfs, make_server)
    spool = Spool(small_tmpfs / "spool")
    stop = threading.Event()

    def backlog_small():
        # Flow control: acceptance on tmpfs outruns delivery to the Maildir
        # (which fsyncs on a real disk), and a backlog would fill the 2 MB
        # by itself; keep the queue short so only the hog fills the disk.
        assert wait_until(lambda: len(spool.queued()) <= 3, 15), "queue stuck"
    senders = [Sender(server.port, n, stop, gate=backlog_small) for n in range(4)]
    threads, errors = run_threads(senders)
    hog = None
    try:
        acked = lambda: sum(len(s.acked) for s in senders)       # noqa: E731
        refused = lambda: sum(len(s.refused) for s in senders)   # noqa: E731
        assert wait_until(lambda: acked() >= 12, 15), (acked(), errors, server.log()[-2000:])
        assert refused() == 0, [s.refused[:1] for s in senders]  # the load alone fits
        hog = SpaceHog(small_tmpfs / "filler").start()
        assert wait_until(lambda: refused() >= 12, 20), \
            f"no refusals on a full disk: acked={acked()} refused={refused()}"
        hog.release()
        released_at = time.monotonic()
        hog = None
        # service resumes: transactions that start now succeed
        assert wait_until(lambda: sum(1 for s in senders for _, t in s.acked
                                      if t > released_at) >= 12, 15), "no 250 after space freed"
    finally:
        stop.set()
        if hog:
            hog.release()
        join_all(threads)
    assert errors == [] and all(s.unexpected == [] for s in senders), \
        (errors, [s.unexpected for s in senders])

    refusals = [r for s in senders for r in s.refused]
    late = [r for r in refusals if r[1] > released_at]
    assert late == [], f"refused after space was freed: {late[:3]}"
    for mid, _, line, size in refusals:
        assert line.startswith(("452 4.3.1", "451 4.3.0")), line
    # no partial message left behind by a failed write
    assert wait_until(lambda: spool.incoming() == [], 5), spool.incoming()

    acked_ids = {mid for s in senders for mid, _ in s.acked}
    refused_ids = {mid for mid, *_ in refusals}
    assert wait_until(lambda: acked_ids <= set(delivered_ids(server.mail)), 30), \
        f"acknowledged but not delivered: {sorted(acked_ids - set(delivered_ids(server.mail)))[:5]}"
    assert spool.wait_empty(20), (spool.queued(), spool.incoming())
    counts = delivered_ids(server.mail)
    assert not refused_ids & set(counts), "a refused message was delivered"
    assert counts == {m: 1 for m in acked_ids}
    assert server.proc.poll() is None


@pytest.mark.parametrize("size, leave", [
    pytest.param(30_000, 12_288, id="medium-nearly-full"),
    pytest.param(200_000, 0, id="large-full"),
    pytest.param(200_000, 12_288, id="large-nearly-full"),
])
def test_full_spool_reply_is_452_4_3_1(small_tmpfs, make_server, size, leave):
    """docs/SMTP.md: disk full -> `452 4.3.1 Error: insufficient system
    storage` (at DATA or after the final dot), whatever the size of the
    message and wherever the write fails; nothing is left behind."""
    server = full_disk_server(small_tmpfs, make_server)
    spool = Spool(small_tmpfs / "spool")
    filler = small_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError:
                    break
        os.ftruncate(fd, os.fstat(fd).st_size - leave)     # leave a little room
        with RawSMTP(server.port) as c:
            c.ehlo(HELO)
            assert c.cmd("MAIL FROM:<fill@example.net>").code == 250
            assert c.cmd("RCPT TO:<alice@example.test>").code == 250
            r = c.cmd("DATA")
            if r.code == 354:
                c.send(dot_stuff(make_message(body=body_of(size))) + b".\r\n")
                r = c.reply()
            assert r.startswith("452 4.3.1"), r
            assert c.cmd("NOOP").code == 250                # the session goes on
            # the queue drops the file when the worker's ABORT arrives,
            # which may come just after the client's reply
            assert wait_until(lambda: spool.incoming() == [], 5), spool.incoming()
            assert spool.queued() == []
    finally:
        os.close(fd)
        filler.unlink()
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.transaction("fill@example.net", ["alice@example.test"],
                             make_message(msgid="<after-full@t>", body=body_of(size))).code == 250
    assert len(server.wait_messages("alice", 1)) == 1
    assert list(delivered_ids(server.mail)) == ["<after-full@t>"]


# ---------------------------------------------------------------- 2. faulty peers

class ScriptedPeer:
    """A receiving SMTP server on raw sockets, one thread per connection,
    that misbehaves on purpose. plan(rcpt, attempt) names what to do in
    the transaction where `rcpt` is seen for the attempt-th time:

    ok           behave (250 after the final dot)
    hangup_rcpt  close the connection instead of answering RCPT
    hangup_data  read part of the message after 354, then reset (RST)
    stall_data   read part of the message, then stop reading for good
    hangup_dot   read the whole message, close without a final reply
    stall_dot    read the whole message, never answer

    `accepted` lists the messages answered with 250; `unanswered` the
    ones read completely but never answered (a real MTA may have
    committed those: they are the only legitimate duplicates)."""

    PARTIAL = 16384

    def __init__(self, addr, port, plan):
        self.plan = plan
        self.lock = threading.Lock()
        self.attempts = {}
        self.accepted = []          # (rcpt, data)
        self.unanswered = []        # (rcpt, data, behaviour)
        self.faults = []            # (rcpt, behaviour, bytes of data read)
        self.stop_ev = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # small receive buffer (inherited by accepted sockets) so a peer
        # that stops reading blocks the sender soon
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def stop(self):
        self.stop_ev.set()
        self.sock.close()
        self.thread.join(5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def count(self, rcpt):
        with self.lock:
            return (sum(1 for r, _ in self.accepted if r == rcpt),
                    sum(1 for r, *_ in self.unanswered if r == rcpt),
                    self.attempts.get(rcpt, 0))

    def _session(self, conn):
        buf = bytearray()
        conn.settimeout(30)

        def fill():
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionClosed(bytes(buf))
            buf.extend(chunk)

        def line():
            while b"\r\n" not in buf:
                fill()
            i = buf.index(b"\r\n")
            out = bytes(buf[:i])
            del buf[:i + 2]
            return out

        def hang():                 # keep the socket, read nothing more
            self.stop_ev.wait(60)

        rcpt = behaviour = None
        try:
            conn.sendall(b"220 peer.test ESMTP scripted\r\n")
            while True:
                cmd = line()
                verb = cmd[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-peer.test\r\n250 8BITMIME\r\n" if verb == b"EHLO"
                                 else b"250 peer.test\r\n")
                elif verb == b"MAIL":
                    rcpt = behaviour = None
                    conn.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpt = cmd.split(b"<", 1)[1].split(b">", 1)[0].decode().lower()
                    with self.lock:
                        n = self.attempts[rcpt] = self.attempts.get(rcpt, 0) + 1
                    behaviour = self.plan(rcpt, n)
                    if behaviour == "hangup_rcpt":
                        with self.lock:
                            self.faults.append((rcpt, behaviour, 0))
                        return
                    conn.sendall(b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    if behaviour in ("hangup_data", "stall_data"):
                        while len(buf) < self.PARTIAL:
                            fill()
                        with self.lock:
                            self.faults.append((rcpt, behaviour, len(buf)))
                        if behaviour == "stall_data":
                            hang()
                        else:
                            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
                        return
                    while b"\r\n.\r\n" not in buf:
                        fill()
                    i = buf.index(b"\r\n.\r\n")
                    data = bytes(buf[:i + 2])
                    del buf[:i + 5]
                    if behaviour in ("hangup_dot", "stall_dot"):
                        with self.lock:
                            self.unanswered.append((rcpt, data, behaviour))
                            self.faults.append((rcpt, behaviour, len(data)))
                        if behaviour == "stall_dot":
                            hang()
                        return
                    with self.lock:
                        self.accepted.append((rcpt, data))
                    conn.sendall(b"250 2.0.0 accepted\r\n")
                elif verb == b"RSET" or verb == b"NOOP":
                    conn.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    conn.sendall(b"500 5.5.2 what\r\n")
        except (ConnectionClosed, OSError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


def free_port_on(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


FAULTS = ("hangup_rcpt", "hangup_data", "stall_data", "hangup_dot", "stall_dot")


def test_peer_stalls_or_hangs_up_mid_transaction_message_is_retried(make_server):
    """Each fault on the first attempt, then a well-behaved peer: every
    message is delivered on a later attempt, accepted (250) exactly once,
    and the only extra copies are those the peer read completely but
    never answered (at-least-once: at most two copies in all)."""
    peer_addr = "127.0.0.31"
    port = free_port_on(peer_addr)

    def plan(rcpt, attempt):
        """FAULT@remote.test meets FAULT on its first attempt; control never."""
        name = rcpt.split("@")[0]
        return name if attempt == 1 and name in FAULTS else "ok"
    peer = ScriptedPeer(peer_addr, port, plan)
    try:
        server = make_server(settings={"max_message_size": "16M"}, extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [{peer_addr}]:{port}
retry = 1s
connect_timeout = 2s
smtp_timeout = 2s
max_queue_lifetime = 1h
""")
        big = body_of(3 * 1024 * 1024, b"stall")      # far more than the socket buffers hold
        sent = {}
        with RawSMTP(server.port, timeout=30) as c:
            c.ehlo(HELO)
            for name in FAULTS + ("control",):
                rcpt = f"{name}@remote.test"
                mid = f"<{name}@faults.test>"
                body = big if name == "stall_data" else body_of(40_000, name.encode())
                data = make_message(msgid=mid, to=rcpt, sender="alice@example.test", body=body)
                r = c.transaction("alice@example.test", [rcpt], data)
                assert r.code == 250, r
                sent[rcpt] = data

        def settled():
            return all(peer.count(r)[0] >= 1 for r in sent)
        assert wait_until(settled, 40), {r: peer.count(r) for r in sent}
        # once the queue is empty no further attempt can come
        queue = Spool(server.root / "spool")
        assert queue.wait_empty(10), queue.queued()
        for rcpt, data in sent.items():
            accepted, unanswered, attempts = peer.count(rcpt)
            name = rcpt.split("@")[0]
            assert accepted == 1, (rcpt, accepted, "accepted more than once")
            assert accepted + unanswered <= 2, (rcpt, accepted, unanswered)
            if name == "control":
                assert attempts == 1
            else:
                assert attempts >= 2, (rcpt, attempts)
                assert (rcpt, name) in [(r, b) for r, b, _ in peer.faults]
            got = [d for r, d in peer.accepted if r == rcpt][0]
            # what arrived is the message after sealpost's Received header
            assert got.endswith(data), (rcpt, len(got), len(data))
        log = server.log()
        for name in FAULTS:
            why = "timed out" if name.startswith("stall") else "lost connection"
            pattern = rf'to=<{name}@remote\.test>.*status=deferred reply="[^"]*{why}'
            assert re.search(pattern, log), (name, [ln for ln in log.splitlines() if name in ln])
        assert server.messages("alice") == [], "a DSN was sent for a retried message"
    finally:
        peer.stop()


# ---------------------------------------------------------------- 3. connection storm

STORM = 2000
STORM_THREADS = 10
# A TLS 1.2 record header and the start of a ClientHello: a handshake
# the client never finishes.
PARTIAL_HELLO = bytes.fromhex("16030100dc010000d80303") + bytes(range(32))
STORM_KINDS = ("rst_at_once", "fin_at_once", "rst_mid_command", "fin_mid_command",
               "rst_mid_data", "fin_mid_data", "rst_mid_tls", "fin_mid_starttls")


def _read_until(sock, needle, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionClosed(data)
        data += chunk
    return data


def storm_open(kind, port, tls_port):
    """One connection left in the state `kind` names."""
    s = socket.create_connection(("127.0.0.1", tls_port if kind == "rst_mid_tls" else port),
                                 timeout=10)
    if kind.endswith("mid_command"):
        s.sendall(b"EHLO storm.example.net\r\nMAIL FROM:<storm@exam")
    elif kind.endswith("mid_data"):
        s.sendall(b"EHLO storm.example.net\r\nMAIL FROM:<storm@example.net>\r\n"
                  b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
        _read_until(s, b"\r\n354 ")
        s.sendall(b"Subject: storm\r\n\r\n" + b"z" * 3000)
    elif kind == "rst_mid_tls":
        s.sendall(PARTIAL_HELLO)
    elif kind == "fin_mid_starttls":
        s.sendall(b"EHLO storm.example.net\r\nSTARTTLS\r\n")
        _read_until(s, b"\r\n220 ")
        s.sendall(PARTIAL_HELLO)
    return s


def storm_drop(kind, s):
    if kind.startswith("rst"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    s.close()


OPEN_LIMIT_BUG = (  # fixed; kept to explain the signature below
    "was a server bug: the queue process allows a worker at most MAX_OPEN_PER_CHANNEL (64) "
    "messages open at once, and handle_new() in src/queue/queue_server.c treats the "
    "65th IPC_MSG_NEW as garbage: it closes the worker's channel, the worker exits, and "
    "every session on it (up to max_connections) is cut. 65 clients in DATA at once - "
    "a legitimate load, or one attacker - kill a worker each time. Fix: answer "
    "IPC_MSG_NEW_FAIL (the worker then says 451 4.3.0 / 452 4.3.1 to that one client) "
    "or size the table by max_connections")
# the queue process's log line when it drops a worker's channel over IPC_MSG_NEW
OPEN_LIMIT_SIGNATURE = re.compile(r"event=ipc_garbage slot=\S+ type=1 ")


class Storm:
    """A TLS-capable server (STARTTLS on the main port, an implicit-TLS
    listener) warmed up, with its baseline descriptors and memory, and
    a storm of connections to run against it."""

    def __init__(self, make_tls_server):
        self.server = make_tls_server(listeners={"smtps": {"tls": "implicit"}},
                                      settings={"max_connections": "5000",
                                                "max_connections_per_ip": "5000"})
        self.tls_port = self.server.ports["smtps"]
        self.master = self.server.proc.pid
        self.size = STORM
        self.daemon_limit = min(nofile_soft_limit(p) for p in self.tree())
        if self.daemon_limit < STORM + 64:
            # keep under the daemon's limit; said in every message below
            self.size = self.daemon_limit - 64
        have = raise_nofile(self.size + 512)
        assert have >= self.size + 256, f"test process: RLIMIT_NOFILE {have} too low"
        self.note = f"(storm of {self.size} connections; daemon RLIMIT_NOFILE {self.daemon_limit})"
        # every child up first (the greeting needs only one worker), then
        # warm up (a TLS handshake, a delivery) before the baseline
        wait_until(lambda: len(children(self.master)) >= 3, 5)
        ctx = self.server.pki.client_context()
        with socket.create_connection(("127.0.0.1", self.tls_port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="mx.example.test") as t:
                assert t.recv(512).startswith(b"220 ")
        self.send("<before-storm@t>")
        assert len(self.server.wait_messages("alice", 1)) == 1
        # the delivery process connected to the queue, and the tree's
        # descriptors settled (two equal counts in a row), before the baseline
        assert wait_until(lambda: "event=delivery_channel_ready" in self.server.log(), 20)

        def settled():
            before = self.fds()
            time.sleep(0.2)
            return self.fds() == before
        assert wait_until(settled, 20)
        self.base_fds = self.fds()
        self.base_rss = self.rss()
        self.kids = len(children(self.master))

    def tree(self):
        return process_tree(self.master)

    def fds(self):
        return fd_count(self.tree())

    def rss(self):
        return rss_kb(self.tree())

    def rss_by_process(self):
        return {p: (rss_kb([p]), fd_count([p])) for p in self.tree()}

    def send(self, mid):
        with RawSMTP(self.server.port) as c:
            assert c.greeting.code == 220
            c.ehlo(HELO)
            assert c.transaction("s@example.net", ["alice@example.test"],
                                 make_message(msgid=mid)).code == 250
            assert c.cmd("QUIT").code == 221

    def run(self):
        """Open every connection (from threads), check the daemon holds
        them all at once, drop them all; returns the peak RSS."""
        per_thread = [[] for _ in range(STORM_THREADS)]
        opened = threading.Barrier(STORM_THREADS + 1, timeout=60)
        drop = threading.Event()

        failures = []

        def worker(t):
            try:
                for i in range(t, self.size, STORM_THREADS):
                    kind = STORM_KINDS[i % len(STORM_KINDS)]
                    per_thread[t].append((kind, storm_open(kind, self.server.port,
                                                           self.tls_port)))
            except (OSError, ConnectionClosed) as e:
                failures.append(f"connection {i} ({kind}): {e!r}")
            finally:
                opened.wait()
                drop.wait(60)
                for kind, s in per_thread[t]:
                    storm_drop(kind, s)

        threads, errors = run_threads([lambda t=t: worker(t) for t in range(STORM_THREADS)])
        try:
            opened.wait()
            # a worker must never be cut (it once was, at 65 messages open)
            assert not OPEN_LIMIT_SIGNATURE.search(self.server.log())
            assert failures == [], (len(failures), failures[:3], self.note)
            assert sum(len(p) for p in per_thread) == self.size
            # every connection is open at the daemon at the same time
            assert wait_until(lambda: self.fds() >= self.base_fds + self.size, 20), \
                f"daemon never held every connection: {self.fds()} fds {self.note}"
            peak = self.rss()
        finally:
            drop.set()
            join_all(threads)
        assert errors == [], errors[:3]
        # every session is torn down: descriptors back to the baseline
        assert wait_until(lambda: self.fds() <= self.base_fds, 20), \
            f"descriptors: baseline {self.base_fds}, now {self.fds()} {self.note}"
        return peak


def test_2000_connections_dropped_abruptly(make_tls_server):
    """2,000 connections open at the same time, in every state a client
    can abandon (before the greeting, mid-command, mid-DATA, mid-TLS
    handshake), then all dropped with RST or FIN: the daemon stays up,
    frees every descriptor and partial message, its memory stays bounded,
    and the next client is served normally."""
    storm = Storm(make_tls_server)
    server = storm.server
    peak = storm.run()
    assert server.proc.poll() is None, "daemon died: " + server.log()[-2000:]
    spool = Spool(server.root / "spool")
    assert wait_until(lambda: spool.incoming() == [], 10), \
        f"{len(spool.incoming())} partial messages left in incoming/"
    if not is_asan_build():
        # no runaway growth (a leak of one 64 KiB write buffer per
        # abandoned DATA would be > 30 MB here); see the next test for
        # the return to the baseline
        assert storm.rss() < storm.base_rss + 64 * 1024, \
            f"RSS {storm.base_rss} -> peak {peak} -> {storm.rss()} kB {storm.note}"
    storm.send("<after-storm@t>")
    assert len(server.wait_messages("alice", 2)) == 2
    assert delivered_ids(server.mail) == {"<before-storm@t>": 1, "<after-storm@t>": 1}
    assert server.proc.poll() is None


def test_memory_returns_near_baseline_after_storm(make_tls_server):
    if is_asan_build():
        pytest.skip("RSS says nothing under AddressSanitizer (quarantine, shadow memory)")
    storm = Storm(make_tls_server)
    peak = storm.run()
    slack = 20 * 1024
    # a closing session is freed within close_timeout (5 s) whatever its
    # client does; give a loaded machine twice that
    assert wait_until(lambda: storm.rss() <= storm.base_rss + slack, 12), \
        (f"RSS did not return near its baseline: {storm.base_rss} kB -> peak {peak} kB -> "
         f"{storm.rss()} kB after every connection closed {storm.note}; "
         f"per process (RSS kB, open descriptors): {storm.rss_by_process()}")


def test_300_sessions_in_data_at_once_do_not_cut_other_sessions(make_server):
    """Many clients in the middle of DATA at the same time: each either
    proceeds (354, then 250) or is refused with a 4xx at DATA; no other
    session is cut and no daemon process dies."""
    server = make_server(settings={"max_connections": "1000",
                                   "max_connections_per_ip": "1000"})
    raise_nofile(1024)
    # every child is up (the greeting needs only one worker)
    wait_until(lambda: len(children(server.proc.pid)) >= 3, 5)
    kids = children(server.proc.pid)
    bystander = RawSMTP(server.port)
    sessions = []
    try:
        bystander.ehlo(HELO)
        assert bystander.cmd("MAIL FROM:<by@example.net>").code == 250
        assert bystander.cmd("RCPT TO:<bob@example.test>").code == 250
        refused = 0
        for n in range(300):
            c = RawSMTP(server.port)
            c.send(b"EHLO many.example.net\r\nMAIL FROM:<many@example.net>\r\n"
                   b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
            r = c.replies(4)[-1]
            if r.code == 354:
                sessions.append((n, c))
            else:
                assert r.code in (451, 452), r
                refused += 1
                c.close()
        for n, c in sessions:
            c.send(dot_stuff(make_message(msgid=f"<many{n}@t>")) + b".\r\n")
        for n, c in sessions:
            assert c.reply().code == 250, n
        assert bystander.cmd("DATA").code == 354
        bystander.send(dot_stuff(make_message(msgid="<bystander@t>", to="bob@example.test"))
                       + b".\r\n")
        assert bystander.reply().code == 250
    finally:
        bystander.close()
        for _, c in sessions:
            c.close()
    assert children(server.proc.pid) == kids, "a daemon process died"
    assert len(server.wait_messages("alice", len(sessions), timeout=30)) == len(sessions)
    assert len(server.wait_messages("bob", 1)) == 1


# ---------------------------------------------------------------- 4. garbage flood

GARBAGE_SEED = 0x5EA1


def garbage_lines(rng, n):
    """Lines of random bytes (no CR or LF, so each is exactly one
    command line), unknown verbs, and lines over max_line_length."""
    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            line = bytes(rng.choice([b for b in range(256) if b not in (10, 13)])
                         for _ in range(rng.randint(1, 300)))
            if line[:4].upper() in (b"QUIT", b"NOOP", b"RSET", b"HELP", b"VRFY", b"HELO",
                                    b"EHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"STAR"):
                line = b"\xff" + line
        elif k == 1:
            line = rng.choice([b"XYZZY", b"HELLO", b"GET / HTTP/1.1", b"\x00\x01\x02",
                               b"MAILFROM:<x@y>", b"RCPT", b"DATAX"]) + b" %d" % i
        elif k == 2:
            line = b"A" * rng.randint(2100, 5000)       # over max_line_length (2048)
        else:
            line = b"\x16\x03\x01" + bytes(rng.randrange(32, 127) for _ in range(40))
        out.append(line + b"\r\n")
    return out


def test_garbage_flood_closes_each_session_and_spares_others(make_server):
    """Several clients send garbage, some one line at a time, some all
    at once: each session ends after exactly max_errors errors with
    `421 4.7.0` and a close; meanwhile a well-behaved client completes
    its transactions unaffected.

    A client that wrote its whole flood at once may not get to read
    every reply: the server closes with that client's unread input in
    its socket, so the kernel answers with a reset that can discard
    replies still in transit. For those, what did arrive must be a
    prefix of the expected replies, and the server's log must show the
    session ended at max_errors."""
    max_errors = 10
    server = make_server(settings={"max_errors": str(max_errors)})
    rng = random.Random(GARBAGE_SEED)
    scripts = [garbage_lines(rng, 60) for _ in range(12)]
    outcomes = [None] * len(scripts)
    go = threading.Event()

    def garbage(i):
        with RawSMTP(server.port, timeout=15, check_codes=False) as c:
            go.wait(10)
            replies, end = [], None
            if i % 2:                       # the whole flood in one write
                try:
                    c.send(b"".join(scripts[i]))
                except OSError:
                    pass                    # closed while we were still writing
                try:
                    while True:
                        replies.append(c.reply())
                except ConnectionClosed:
                    end = "eof"
                except ConnectionResetError:
                    end = "reset"
            else:                           # one line at a time
                for line in scripts[i]:
                    c.send(line)
                    replies.append(c.reply())
                    if replies[-1].code == 421:
                        break
                end = "eof" if c.is_closed() else "open"
            outcomes[i] = (replies, end)

    good = []

    def well_behaved():
        go.wait(10)
        for n in range(5):
            t0 = time.monotonic()
            with RawSMTP(server.port, timeout=10) as c:
                c.ehlo(HELO)
                r = c.transaction("good@example.net", ["bob@example.test"],
                                  make_message(msgid=f"<good{n}@t>", to="bob@example.test"))
                assert r.code == 250, r
                assert c.cmd("QUIT").code == 221
            good.append(time.monotonic() - t0)

    threads, errors = run_threads([lambda i=i: garbage(i) for i in range(len(scripts))]
                                  + [well_behaved])
    go.set()
    join_all(threads, 60)
    assert errors == [], errors
    for i, (replies, end) in enumerate(outcomes):
        why = (i, f"seed {GARBAGE_SEED}", end, replies)
        assert all(500 <= r.code < 600 for r in replies[:max_errors]), why
        assert len(replies) <= max_errors + 1, why
        if len(replies) == max_errors + 1:
            assert replies[-1].startswith("421 4.7.0"), why
        if i % 2 == 0:                      # line by line: everything arrives
            assert len(replies) == max_errors + 1 and end == "eof", why
        else:
            assert end in ("eof", "reset"), why
    cut = re.findall(r"event=too_many_errors session=\S+ client=\S+ errors=(\d+)", server.log())
    assert cut == [str(max_errors)] * len(scripts), cut
    assert len(good) == 5 and max(good) < 5, good
    assert len(server.wait_messages("bob", 5)) == 5
    assert delivered_ids(server.mail) == {f"<good{n}@t>": 1 for n in range(5)}
    assert server.proc.poll() is None


def test_pipelined_garbage_client_receives_the_421(make_server):
    server = make_server(settings={"max_errors": "10"})
    lines = garbage_lines(random.Random(GARBAGE_SEED), 30)
    with RawSMTP(server.port, timeout=10, check_codes=False) as c:
        c.send(b"".join(lines))
        replies, end = [], None
        try:
            while True:
                replies.append(c.reply())
        except ConnectionClosed:
            end = "eof"         # the FIN after the 421: what should happen
        except ConnectionResetError:
            end = "reset"
        assert len(replies) == 11 and replies[-1].startswith("421 4.7.0"), (end, replies)
        assert all(500 <= r.code < 600 for r in replies[:10]), replies
        assert end == "eof", end


# ---------------------------------------------------------------- 5. kill -9 under load
#
# test_load.py already kills the daemon once under open-ended load and
# checks every acknowledged message arrives. Added here: a fixed workload
# (10 clients x 30 messages) whose clients reconnect and finish after the
# restart, the at-most-one-duplicate bound of docs/SPOOL.md, messages
# whose fate the client never learnt, that the master's children die
# with it, and kill -9 of each child process (privilege separation).

LOAD_RCPTS = ("alice@example.test", "bob@example.test", "carol@example.test")


class Load:
    """Clients that each get `per_client` messages acknowledged (or run
    until stopped when per_client is None), reconnecting whenever the
    daemon goes away. Every message has a fresh Message-ID and two
    recipients; `acked` has those that got a 250, `unsure` those whose
    final reply never came."""

    def __init__(self, server, clients, per_client=None, deadline=60, max_backlog=None):
        self.server = server
        self.per_client = per_client
        self.spool = Spool(server.root / "spool")
        self.max_backlog = max_backlog      # flow control: queued messages at most
        self.lock = threading.Lock()
        self.acked, self.unsure = {}, {}
        self.stop = threading.Event()
        self.deadline = time.monotonic() + deadline
        self.threads, self.errors = run_threads(
            [lambda i=i: self.client(i) for i in range(clients)])

    def count(self):
        with self.lock:
            return len(self.acked)

    def client(self, i):
        done = j = 0
        while not self.stop.is_set() and (self.per_client is None or done < self.per_client):
            assert time.monotonic() < self.deadline, f"client {i}: only {done} messages acked"
            try:
                c = RawSMTP(self.server.port, timeout=10)
            except (OSError, ConnectionClosed):
                time.sleep(0.02)            # daemon down: retry soon
                continue
            try:
                c.ehlo(HELO)
                while not self.stop.is_set() and (self.per_client is None
                                                  or done < self.per_client):
                    if self.max_backlog is not None:
                        wait_until(lambda: len(self.spool.queued()) <= self.max_backlog, 10)
                    mid, j = new_msgid(), j + 1
                    rcpts = [LOAD_RCPTS[(i + j) % 3], f"c{i}@other.test"]
                    with self.lock:
                        self.unsure[mid] = rcpts
                    if not self.transaction(c, mid, rcpts, b"client %d message %d" % (i, j)):
                        break                   # a 4xx: start a new session
                    with self.lock:
                        self.acked[mid] = self.unsure.pop(mid)
                    done += 1
            except (ConnectionClosed, OSError):
                pass                            # the daemon (or its worker) died under us
            finally:
                c.close()

    @staticmethod
    def transaction(c, mid, rcpts, text):
        """True on 250; False on a 4xx (the daemon or one of its processes
        going away may legitimately say 421 or 451); 5xx is a failure.
        A message refused with 4xx stays `unsure`: a process that dies
        between its commit and the reply cannot tell."""
        steps = ["MAIL FROM:<load@example.net>"] + [f"RCPT TO:<{r}>" for r in rcpts]
        for line, want in zip(steps + ["DATA"], [250] * len(steps) + [354]):
            r = c.cmd(line)
            if r.code != want:
                assert 400 <= r.code < 500, (line, r)
                return False
        c.send(dot_stuff(make_message(msgid=mid, to=rcpts[0], body=text + b"\r\n")) + b".\r\n")
        r = c.reply()
        assert r.code == 250 or 400 <= r.code < 500, r
        return r.code == 250

    def finish(self, timeout=60):
        if self.per_client is None:
            self.stop.set()
        join_all(self.threads, timeout)
        assert self.errors == [], self.errors[:3]


def check_delivery(server, load, timeout=60):
    """Every acknowledged message reached each of its recipients at least
    once and at most twice (at-least-once, docs/SPOOL.md); messages whose
    250 never arrived were delivered at most twice; nothing else."""
    def missing():
        got = copies_per_mailbox(server.mail)
        return [(m, r) for m, rcpts in load.acked.items() for r in rcpts if got.get((m, r), 0) < 1]
    assert wait_until(lambda: not missing(), timeout), \
        f"{len(missing())} acknowledged deliveries missing, e.g. {missing()[:3]}"
    spool = Spool(server.root / "spool")
    assert spool.wait_empty(30), (spool.queued()[:5], spool.incoming()[:5])
    got = copies_per_mailbox(server.mail)
    known = set(load.acked) | set(load.unsure)
    assert {m for m, _ in got} <= known, "delivered a message nobody sent"
    over = {k: n for k, n in got.items() if n > 2}
    assert over == {}, f"more than one duplicate: {list(over.items())[:3]}"
    for (m, r) in got:
        assert r in (load.acked.get(m) or load.unsure.get(m)), (m, r)
    return sum(n - 1 for n in got.values())


def test_kill9_master_under_load_10_clients_x_30(make_server):
    server = make_server()
    load = Load(server, clients=10, per_client=30)
    try:
        assert wait_until(lambda: load.count() >= 100, 30), load.count()
        family = process_tree(server.proc.pid)
        server.kill9()                      # the master: Server.proc is the process we started
        # its children must not outlive it (an orphaned worker would keep
        # the port or deliver from the spool beside the new daemon)
        assert wait_until(lambda: not [p for p in family if alive(p)], 5), \
            [(p, comm(p)) for p in family if alive(p)]
        at_kill = load.count()
        server.start()
    finally:
        load.finish()
    assert len(load.acked) == 300, len(load.acked)
    assert at_kill < 300, "the kill came after the load"
    duplicates = check_delivery(server, load)
    print(f"kill -9 after {at_kill} acks; {len(load.unsure)} messages unanswered; "
          f"{duplicates} duplicate deliveries")


CHILD_START = re.compile(r"event=child_start role=(\S+) slot=(\S+) pid=(\d+)")


def child_roles(server):
    """{(role, slot): pid} of the master's live children, from the master's
    `event=child_start role=R slot=S pid=P` log lines (the newest live
    process of each role and slot: a replaced worker may still be
    finishing its sessions), or by position when the log names none."""
    kids = children(server.proc.pid)
    named = {}
    for role, slot, pid in CHILD_START.findall(server.log()):
        if int(pid) in kids:
            named[(role, slot)] = int(pid)
    if named:
        return named
    return {("child", str(i)): p for i, p in enumerate(kids)}


QUEUE_DEATH_RACE = (  # fixed; kept to explain the signature below
    "was a server bug (a race, about 1 run in 15): killing the queue can take the whole daemon "
    "down. The workers see their queue channel close and exit; when the master reaps "
    "such a worker before the queue (src/master/master.c, child_exited) it schedules "
    "that worker's restart first, and then either (a) restart_cb -> spawn_worker() "
    "sends the new channel over the dead queue's control socket, gets EPIPE and calls "
    "fatal(\"event=spawn_failed role=smtpd error=queue control: Broken pipe\"): the "
    "master exits and every child dies with it; or (b) the worker restarted at once is "
    "SIGTERMed by the queue-death path (signal_children) before child_setup()'s "
    "event_reinit(): the child still runs libevent's inherited handler, which writes "
    "SIGTERM into the evsignal socketpair it shares with the master, so the master logs "
    "`event=signal signal=TERM action=stop`, stops, and hangs in `stopping` with a worker "
    "left. Fix: handle a queue death before worker deaths reaped in the same batch, "
    "restart workers only once the new queue runs (never fatal on a failed control "
    "send), and block the handled signals around fork() (reset to SIG_DFL in the child "
    "before unblocking)")
# what the master (pid {}) logs in the two outcomes above
QUEUE_DEATH_RACE_SIGN = (r'sealpost\[{}\]: level=\w+ event=(signal signal=TERM|'
                         r'spawn_failed role=smtpd error="queue control)')


def test_kill9_each_child_under_load(make_server):
    """Privilege separation: kill -9 each child process in turn (each
    smtpd worker, the queue) while clients send; the master restarts
    it, mail keeps flowing, and no acknowledged message is lost."""
    server = make_server()
    master = server.proc.pid
    if not wait_until(lambda: children(master), 0.5):
        pytest.skip("needs privilege separation: the daemon has no child processes")
    roles = child_roles(server)
    # a bounded backlog, so the final delivery check is quick
    load = Load(server, clients=6, max_backlog=30)
    try:
        assert wait_until(lambda: load.count() >= 30, 20), load.count()
        for key in sorted(roles):
            # the current process in that role (an earlier kill may have
            # made the master replace others too)
            pid = wait_until(lambda: child_roles(server).get(key), 15)
            assert pid, f"{key} is not running: {child_roles(server)}"
            before = load.count()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            assert wait_until(lambda: not alive(pid), 5), f"{key} survived SIGKILL"

            def replaced():
                now = child_roles(server)
                return len(now) >= len(roles) and now.get(key) not in (None, pid)
            # every role back and this one new: a queue's restart stops and
            # replaces the workers and the delivery process once it is
            # ready, so the count can dip again after it first looked whole
            wait_until(lambda: (replaced() and time.sleep(0.3) is None and replaced())
                       or server.proc.poll() is not None, 15)
            # the master once stopped itself here (a signal race at fork)
            assert not re.search(QUEUE_DEATH_RACE_SIGN.format(master), server.log())
            assert wait_until(replaced, 15), \
                f"master did not restart {key}: children now {child_roles(server)}"
            assert server.proc.poll() is None, f"master died when {key} was killed"
            assert wait_until(lambda: load.count() >= before + 10, 20), \
                f"no mail accepted after killing {key} (pid {pid})"
    finally:
        load.finish()
    assert server.proc.poll() is None
    check_delivery(server, load)
    assert_no_sanitizer_report(server)

#!/usr/bin/python3
"""smtpload.py - a small SMTP load client for the benchmarks (standard library).

smtp-source sends mail fast but reports no latency and has no TLS, so the
harness uses this client for two things:

  load   SESSIONS threads send COUNT messages of SIZE octets, one new
         connection per message like smtp-source (or --reuse: one
         connection per thread), optionally with STARTTLS. For each
         message it records the latency of the reply to the final "."
         (--procs spreads the sessions over processes, past the GIL):
         the time from the moment the last octet of the message text was
         handed to the kernel to the moment the reply line was read.
         Prints one JSON object (rate, errors, latency percentiles in ms).
         --acked FILE: also write the queue id of every message that got
         its 250 (the last word of the reply), one per line (the
         durability check after kill -9 uses it, with --stop-on-refused:
         each session ends when the server refuses a connection).

  sink   A minimal receiving SMTP server on --port that accepts every
         message and prints "mesg=N" after each one (the format of
         smtp-sink -c); the harness uses it only where Postfix's
         smtp-sink is not installed (the bench_smoke test).

  idle   Opens CONNECTIONS connections, reads the greeting, sends EHLO and
         parks each one after the EHLO reply. Prints "READY {json}" when
         all are parked or the deadline passed, then holds them until its
         standard input closes (or --hold seconds), and closes them all.

Loopback only: the host must be in 127.0.0.0/8 (or ::1).
"""
import argparse
import ipaddress
import json
import os
import selectors
import socket
import ssl
import sys
import threading
import time


def loopback_only(host):
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"smtpload: {host} is not a loopback address")


class SMTPError(Exception):
    pass


class Conn:
    """A blocking SMTP client connection with a simple reply reader."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        """Read one (possibly multi-line) reply; return (code, last line)."""
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise SMTPError("connection closed by server")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            try:
                return int(line[:3]), line.rstrip(b"\r")
            except ValueError:
                raise SMTPError(f"bad reply {line[:80]!r}")

    def cmd(self, text, expect):
        self.sock.sendall(text)
        code, line = self.reply()
        if code // 100 != expect:
            raise SMTPError(f"{text.strip()[:20]!r}: {line[:120]!r}")
        return code

    def starttls(self, ctx, helo):
        self.cmd(b"STARTTLS\r\n", 2)
        if self.buf:
            raise SMTPError("data after STARTTLS reply")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)
        self.cmd(b"EHLO " + helo + b"\r\n", 2)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_body(size, mail_from, rcpt_to, seq):
    head = (f"From: <{mail_from}>\r\nTo: <{rcpt_to}>\r\n"
            f"Subject: smtpload {seq}\r\nMessage-ID: <{seq}.{os.getpid()}@smtpload.test>\r\n"
            "\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    n, rest = divmod(size, len(line))
    body = line * n
    if rest:
        body += b"x" * max(rest - 2, 0) + b"\r\n"
    return head + body + b".\r\n"


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def load_part(a, sessions, count, start_barrier=None):
    """SESSIONS threads of this process send COUNT messages.
    Returns (ok, failed, errors, latencies in seconds)."""
    ctx = None
    if a.starttls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE      # a benchmark, not a security test
    helo = a.helo.encode()
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "fail": 0, "errors": {}}
    lat = []
    acked = []
    deadline = time.monotonic() + a.timeout

    def take():
        with lock:
            if state["next"] >= count or time.monotonic() > deadline:
                return None
            state["next"] += 1
            return state["next"]

    def note_error(e):
        with lock:
            state["fail"] += 1
            key = str(e)[:100]
            state["errors"][key] = state["errors"].get(key, 0) + 1

    def session():
        body = make_body(a.size, a.mail_from, a.rcpt_to, 0)
        mine = []
        conn = None
        while True:
            seq = take()
            if seq is None:
                break
            try:
                if conn is None:
                    conn = Conn(a.host, a.port, a.io_timeout)
                    code, line = conn.reply()
                    if code != 220:
                        raise SMTPError(f"greeting {line[:80]!r}")
                    conn.cmd(b"EHLO " + helo + b"\r\n", 2)
                    if ctx is not None:
                        conn.starttls(ctx, helo)
                conn.cmd(b"MAIL FROM:<" + a.mail_from.encode() + b">\r\n", 2)
                conn.cmd(b"RCPT TO:<" + a.rcpt_to.encode() + b">\r\n", 2)
                conn.cmd(b"DATA\r\n", 3)
                conn.sock.sendall(body)
                t0 = time.perf_counter()
                code, line = conn.reply()
                t1 = time.perf_counter()
                if code // 100 != 2:
                    raise SMTPError(f"end of data: {line[:120]!r}")
                mine.append(t1 - t0)
                if a.acked:
                    with lock:
                        acked.append(line.split()[-1].decode("ascii", "replace"))
                if not a.reuse:
                    try:
                        conn.sock.sendall(b"QUIT\r\n")
                        conn.reply()
                    except (OSError, SMTPError):
                        pass
                    conn.close()
                    conn = None
            except (OSError, SMTPError, ssl.SSLError) as e:
                note_error(e)
                if conn is not None:
                    conn.close()
                    conn = None
                if a.stop_on_refused and isinstance(e, ConnectionRefusedError):
                    break                   # the server is gone (kill -9 check)
        if conn is not None:
            try:
                conn.sock.sendall(b"QUIT\r\n")
            except OSError:
                pass
            conn.close()
        with lock:
            lat.extend(mine)
            state["ok"] += len(mine)

    threads = [threading.Thread(target=session, daemon=True) for _ in range(sessions)]
    if start_barrier is not None:
        start_barrier.wait()
    deadline = time.monotonic() + a.timeout
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic() + a.io_timeout))
    with lock:
        if a.acked:
            with open(a.acked, "a") as f:
                f.write("".join(q + "\n" for q in acked))
        return state["ok"], state["fail"], dict(state["errors"]), list(lat)


def _part_main(a, sessions, count, barrier, queue):
    queue.put(load_part(a, sessions, count, barrier))


def run_load(a):
    """--procs processes (the GIL would otherwise make a single Python
    process the bottleneck), each with its share of the sessions and
    messages; the clock starts when all are ready."""
    procs = max(1, min(a.procs, a.sessions))
    if procs == 1:
        t_start = time.perf_counter()
        ok, fail, errors, lat = load_part(a, a.sessions, a.count)
        elapsed = time.perf_counter() - t_start
    else:
        import multiprocessing as mp
        mpc = mp.get_context("fork")
        barrier = mpc.Barrier(procs + 1)
        queue = mpc.Queue()
        workers = []
        for i in range(procs):
            n_sess = a.sessions // procs + (1 if i < a.sessions % procs else 0)
            n_msgs = a.count // procs + (1 if i < a.count % procs else 0)
            w = mpc.Process(target=_part_main, args=(a, n_sess, n_msgs, barrier, queue), daemon=True)
            w.start()
            workers.append(w)
        barrier.wait()
        t_start = time.perf_counter()
        ok = fail = 0
        errors, lat = {}, []
        for _ in workers:
            p_ok, p_fail, p_err, p_lat = queue.get(timeout=a.timeout + a.io_timeout + 30)
            ok += p_ok
            fail += p_fail
            lat.extend(p_lat)
            for k, v in p_err.items():
                errors[k] = errors.get(k, 0) + v
        elapsed = time.perf_counter() - t_start
        for w in workers:
            w.join(10)
    lat.sort()
    ms = lambda v: None if v is None else round(v * 1000.0, 3)  # noqa: E731
    out = {
        "sent": ok, "failed": fail, "requested": a.count, "procs": procs,
        "sessions": a.sessions, "size": a.size, "starttls": a.starttls,
        "elapsed_s": round(elapsed, 4),
        "msgs_per_s": round(ok / elapsed, 2) if elapsed > 0 else None,
        "lat_p50_ms": ms(percentile(lat, 50)), "lat_p90_ms": ms(percentile(lat, 90)),
        "lat_p99_ms": ms(percentile(lat, 99)), "lat_max_ms": ms(lat[-1] if lat else None),
        "errors": errors,
    }
    print(json.dumps(out), flush=True)
    return 0 if fail == 0 and ok == a.count else 1


def run_idle(a):
    """Park CONNECTIONS sessions after EHLO, non-blocking, one thread."""
    sel = selectors.DefaultSelector()
    helo = b"EHLO " + a.helo.encode() + b"\r\n"
    started = greeted = parked = failed = 0
    inflight = 0
    conns = []
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    t_last_parked = None
    errors = {}

    def fail(sock, why):
        nonlocal failed, inflight
        failed += 1
        inflight -= 1
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    while time.monotonic() < deadline and (started < a.connections or inflight > 0):
        while started < a.connections and inflight < a.batch:
            s = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
            s.setblocking(False)
            try:
                s.connect((a.host, a.port))
            except BlockingIOError:
                pass
            except OSError as e:
                s.close()
                started += 1
                failed += 1
                errors[str(e)[:80]] = errors.get(str(e)[:80], 0) + 1
                continue
            started += 1
            inflight += 1
            sel.register(s, selectors.EVENT_READ, {"state": "greet", "buf": b""})
        for key, _ in sel.select(timeout=0.2):
            s, st = key.fileobj, key.data
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(s, str(e)[:80])
                continue
            if not chunk:
                fail(s, "closed by server")
                continue
            st["buf"] += chunk
            while b"\n" in st["buf"]:
                line, st["buf"] = st["buf"].split(b"\n", 1)
                if line[3:4] == b"-":
                    continue
                if st["state"] == "greet":
                    if not line.startswith(b"220"):
                        fail(s, "greeting " + line[:40].decode("ascii", "replace"))
                        break
                    greeted += 1
                    st["state"] = "ehlo"
                    try:
                        s.send(helo)
                    except OSError as e:
                        fail(s, str(e)[:80])
                        break
                elif st["state"] == "ehlo":
                    if not line.startswith(b"250"):
                        fail(s, "ehlo " + line[:40].decode("ascii", "replace"))
                        break
                    sel.unregister(s)
                    conns.append(s)
                    parked += 1
                    inflight -= 1
                    t_last_parked = time.monotonic()
                    break
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    res = {"requested": a.connections, "started": started, "greeted": greeted,
           "parked": parked, "failed": failed,
           "seconds_to_last_parked": round(t_last_parked - t0, 3) if t_last_parked else None,
           "errors": errors}
    print("READY " + json.dumps(res), flush=True)
    # Hold until the harness closes our stdin (or --hold seconds).
    end = time.monotonic() + a.hold
    sel2 = selectors.DefaultSelector()
    try:
        sel2.register(sys.stdin, selectors.EVENT_READ)
        while time.monotonic() < end:
            if sel2.select(timeout=min(1.0, max(0.0, end - time.monotonic()))):
                if not sys.stdin.buffer.read1(4096):
                    break
    except (ValueError, OSError):
        time.sleep(max(0.0, end - time.monotonic()))
    alive = 0
    for s in conns:
        # A parked connection the server closed (idle timeout) reads EOF.
        try:
            s.setblocking(False)
            if s.recv(1) != b"":
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    print(json.dumps({"alive_at_end": alive}), flush=True)
    return 0


def run_sink(a):
    import socketserver
    lock = threading.Lock()
    count = [0]

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            w = self.wfile
            w.write(b"220 sink.test ESMTP\r\n")
            w.flush()
            while True:
                line = self.rfile.readline(4096)
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"DATA":
                    w.write(b"354 go ahead\r\n")
                    w.flush()
                    while True:
                        dl = self.rfile.readline(65536)
                        if not dl or dl in (b".\r\n", b".\n"):
                            break
                    if not dl:
                        return
                    with lock:
                        count[0] += 1
                        n = count[0]
                    w.write(b"250 2.0.0 queued\r\n")
                    w.flush()
                    sys.stdout.write(f"mesg={n}\n")
                    sys.stdout.flush()
                elif verb in (b"EHLO", b"HELO"):
                    w.write(b"250-sink.test\r\n250 PIPELINING\r\n")
                elif verb == b"QUIT":
                    w.write(b"221 bye\r\n")
                    w.flush()
                    return
                else:
                    w.write(b"250 ok\r\n")
                w.flush()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server((a.host, a.port), Handler) as srv:
        threading.Timer(a.hold, srv.shutdown).start()
        srv.serve_forever()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["load", "idle", "sink"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--reuse", action="store_true", help="one connection per session")
    p.add_argument("--procs", type=int, default=1,
                   help="load: processes to spread the sessions over (default 1)")
    p.add_argument("--from", dest="mail_from", default="load@client.test")
    p.add_argument("--to", dest="rcpt_to", default="bench@bench.test")
    p.add_argument("--helo", default="client.test")
    p.add_argument("--timeout", type=float, default=300.0, help="whole run, seconds")
    p.add_argument("--io-timeout", type=float, default=60.0, help="one reply, seconds")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--batch", type=int, default=200, help="idle: connections in progress at once")
    p.add_argument("--hold", type=float, default=600.0, help="idle, sink: longest run, seconds")
    p.add_argument("--acked", help="load: append the queue id of each 250 to this file")
    p.add_argument("--stop-on-refused", action="store_true",
                   help="load: a session stops at its first refused connection")
    a = p.parse_args()
    loopback_only(a.host)
    if a.mode == "sink":
        return run_sink(a)
    return run_load(a) if a.mode == "load" else run_idle(a)


if __name__ == "__main__":
    sys.exit(main())

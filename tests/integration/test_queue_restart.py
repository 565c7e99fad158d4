"""The queue process dies under running sessions (issue 13, item 3):
every client gets a precise reply, never a silent close, and mail flows
again once the queue is back, without restarting sealpost.

The queue is killed with SIGKILL (its pid from the master's
`event=child_start role=queue ... pid=N` line). To hold the "no queue"
time open for as long as the test needs, never for a guessed time, the
spool's queue/ folder is first moved aside and a plain file put in its
place: every restarted queue then fails to open its spool and exits,
and the master keeps restarting it (throttled) until the folder is put
back. Meanwhile the workers refuse mail with 4.3.0:

    new connection                  421 4.3.0 (instead of the greeting), closed
    session between commands        MAIL -> 451 4.3.0, and it may go on
    session with a recipient        DATA -> 451 4.3.0, and it may go on
    session in the middle of DATA   the final dot -> 451 4.3.0, and it may go on
    session between BDAT chunks     BDAT ... LAST -> 451 4.3.0, and it may go on

and a worker killed meanwhile is replaced by one that answers the same.

Once a queue is ready again the master stops those workers (their idle
sessions get 421 4.3.2, as in a graceful stop) and starts new ones: new
connections get 220 and mail is delivered. A message acknowledged with
250 before the kill is delivered afterwards; none of the refused ones is.

Trusts: the sealpost binary under test, aiosmtpd (the relay's next hop).
"""
import os
import re
import signal
import socket

from conftest import free_port
from peers import Peer
from smtpwire import ConnectionClosed, RawSMTP, make_message, message_id, wait_until

QUEUE_START = re.compile(r"event=child_start role=queue slot=0 pid=(\d+)")
WORKERS = 2


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def queue_pid(server):
    pids = QUEUE_START.findall(server.log())
    return int(pids[-1]) if pids else None


def session(server, rcpt=True):
    c = RawSMTP(server.port)
    assert c.greeting.code == 220, c.greeting
    c.ehlo("client.example.net")
    if rcpt:
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    return c


def slot_of(server, c):
    """The worker slot serving RawSMTP session c (from event=connect)."""
    port = c.sock.getsockname()[1]
    m = re.search(rf"event=connect session=(\d+)\.\w+ client=127\.0\.0\.1 port={port} ",
                  server.log())
    assert m, f"no connect line for port {port}"
    return int(m.group(1))


def greeting(server):
    """The first reply of a new connection, or None when it was closed
    without one."""
    try:
        with RawSMTP(server.port, greet=False) as c:
            return c.reply()
    except (ConnectionClosed, ConnectionResetError, socket.timeout):
        return None


def test_queue_killed_clients_get_421_451_and_mail_flows_again(make_server):
    hop_port = free_port()          # the relay's next hop: down until the end
    server = make_server(settings={"workers": str(WORKERS)}, extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [127.0.0.1]:{hop_port}
retry = 1s
""")
    spool = server.root / "spool"
    # Acknowledged before the kill, still queued: the next hop is down.
    acked = make_message(to="remote@elsewhere.example", subject="acked before the kill")
    with session(server, rcpt=False) as c:
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<remote@elsewhere.example>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(acked + b".\r\n")
        assert c.reply().code == 250
    assert wait_until(lambda: "status=deferred" in server.log()), server.log()[-2000:]

    idle = session(server, rcpt=False)
    in_tx = session(server)
    in_data = session(server)
    assert in_data.cmd("DATA").code == 354
    in_data.send(make_message(subject="cut by the kill")[:40])
    in_bdat = session(server)
    in_bdat.send(b"BDAT 20\r\n" + b"Subject: chunked\r\n\r\n")
    assert in_bdat.reply().code == 250

    # The next queues cannot start until queue/ is back.
    os.rename(spool / "queue", spool / "queue.held")
    (spool / "queue").write_text("not a folder\n")
    pid = queue_pid(server)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(pid), 5)
    assert wait_until(lambda: server.log().count("event=no_queue sessions=") >= WORKERS), \
        server.log()[-3000:]
    assert wait_until(lambda: "event=start_failed role=queue" in server.log()), \
        server.log()[-3000:]

    # New connections: 421 4.3.0 instead of the greeting, then closed.
    for _ in range(3):
        r = greeting(server)
        assert r is not None, "closed without a reply"
        assert r.code == 421 and r.lines[0].startswith(b"421 4.3.0 "), r
    # Sessions in progress: 451 4.3.0 where a transaction cannot be queued.
    r = idle.cmd("MAIL FROM:<sender@example.net>")
    assert r.lines[0].startswith(b"451 4.3.0 "), r
    assert idle.cmd("NOOP").code == 250            # and it goes on
    r = in_tx.cmd("DATA")
    assert r.lines[0].startswith(b"451 4.3.0 "), r
    assert in_tx.cmd("RSET").code == 250
    in_data.send(b"rest of the body\r\n.\r\n")
    r = in_data.reply()
    assert r.lines[0].startswith(b"451 4.3.0 "), r
    assert in_data.cmd("NOOP").code == 250
    in_bdat.send(b"BDAT 7 LAST\r\nHello\r\n")
    r = in_bdat.reply()
    assert r.lines[0].startswith(b"451 4.3.0 "), r
    assert in_bdat.cmd("NOOP").code == 250
    # A worker that dies meanwhile is replaced by one that says the same.
    # (Its own sessions die with it: the one holding fewer of ours.)
    sessions = [idle, in_tx, in_data, in_bdat]
    slots = {c: slot_of(server, c) for c in sessions}
    victim = min(range(WORKERS), key=lambda n: list(slots.values()).count(n))
    kept = [c for c in sessions if slots[c] != victim]
    assert len(kept) >= 2
    worker = int(re.findall(rf"event=child_start role=smtpd slot={victim} pid=(\d+)",
                            server.log())[-1])
    os.kill(worker, signal.SIGKILL)
    assert wait_until(lambda: f"event=spawn role=smtpd slot={victim} queue=none"
                      in server.log()), server.log()[-3000:]
    for _ in range(4):
        r = greeting(server)
        assert r is not None and r.lines[0].startswith(b"421 4.3.0 "), r
    assert server.proc.poll() is None

    # The queue comes back: sealpost was not restarted.
    (spool / "queue").unlink()
    os.rename(spool / "queue.held", spool / "queue")
    assert wait_until(lambda: "event=queue_ready" in server.log(), 60), server.log()[-3000:]
    # The old workers stop: their idle sessions are told so, none is cut.
    for c in kept:
        r = c.reply(timeout=15)
        assert r.lines[0].startswith(b"421 4.3.2 "), r
        assert c.is_closed()
        c.close()

    def greets():
        r = greeting(server)
        assert r is not None, "closed without a reply"
        assert r.code in (220, 421), r              # 421: an old worker, still stopping
        return r.code == 220
    assert wait_until(greets, 15)
    fresh = make_message(subject="after the restart")
    with session(server) as c:
        assert c.cmd("DATA").code == 354
        c.send(fresh + b".\r\n")
        assert c.reply().code == 250
    delivered = server.wait_messages("alice", 1)
    assert [message_id(p.read_bytes()) for p in delivered] == [message_id(fresh)]

    # What was acknowledged before the kill reaches the next hop.
    hop = Peer("127.0.0.1", hop_port).start()
    try:
        got = hop.wait_messages(1, timeout=30)
        assert [message_id(m["data"]) for m in got] == [message_id(acked)], server.log()[-3000:]
    finally:
        hop.stop()
    # None of the refused transactions was delivered.
    assert len(server.messages("alice")) == 1
    assert server.proc.poll() is None
    for c in sessions:
        c.close()
    assert "AddressSanitizer" not in server.log() and "runtime error:" not in server.log()

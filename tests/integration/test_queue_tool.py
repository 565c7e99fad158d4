"""`sealpost queue` (issue 14, item 6) against a running daemon: list,
show, flush, delete, hold and release, carried out by the queue process
over its control socket (spool/control/queue.sock).

Mail defers because the next hop (`relayhost = [127.0.0.1]:PORT`, an
aiosmtpd peer from peers.py) answers every RCPT with 451 until a test
tells it to accept; the retry schedule is an hour, so nothing but the
queue tool (or a restart) makes another attempt, unless a test wants
attempts every second (hold). The peer counts the attempts per
recipient, so "no attempt" and "an attempt now" are observed where they
happen.
"""
import os
import pwd
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, free_port
from peers import Peer
from smtpwire import wait_until
from test_privsep import privsep_server  # noqa: F401  (a fixture; skips without root)

SENDER = "alice@example.test"
RCPT = "bob@remote.test"
TEMPFAIL = "451 4.3.0 Try again later, says the test"


@pytest.fixture
def hop():
    p = Peer("127.0.0.1", free_port()).start()
    p.script.rcpt_reply("*", TEMPFAIL)
    yield p
    p.stop()


def accept_all(peer):
    with peer.script.lock:
        peer.script.rcpt.clear()


def relay_server(make_server, peer, retry="1h"):
    return make_server(extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [127.0.0.1]:{peer.port}
retry = {retry}
connect_timeout = 2s
smtp_timeout = 10s
max_queue_lifetime = 1h
bounce_after_warning = 0
""")


def queue(server, *args, conf=None):
    return subprocess.run([BIN, "queue", "-c", str(conf or server.conf), *args],
                          capture_output=True, text=True, timeout=60)


def send(server, subject="queue tool", rcpts=(RCPT,)):
    data = (f"From: {SENDER}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n\r\nHello.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.sendmail(SENDER, list(rcpts), data) == {}


def queued_ids(server):
    return [n for n in server.queue_files() if not n.endswith(".state")]


def list_lines(server):
    r = queue(server, "list")
    assert r.returncode == 0, r.stderr
    return {ln.split()[0]: ln for ln in r.stdout.splitlines() if not ln.startswith("messages=")}


def deferred_message(server, peer, subject="queue tool"):
    """One message to RCPT, attempted once and deferred; its id."""
    send(server, subject)
    assert wait_until(lambda: peer.attempts(RCPT) >= 1)
    ids = wait_until(lambda: queued_ids(server))
    assert len(ids) == 1
    qid = ids[0]
    assert wait_until(lambda: "status=deferred" in list_lines(server).get(qid, "")), \
        list_lines(server)
    return qid


def test_list_and_show_a_deferred_message(make_server, hop):
    server = relay_server(make_server, hop)
    qid = deferred_message(server, hop)
    line = list_lines(server)[qid]
    assert f"from=<{SENDER}>" in line
    assert f"to=<{RCPT}>" in line
    assert "rcpts=1/1" in line
    assert "next=59m" in line or "next=1h" in line, line
    summary = queue(server, "list").stdout.splitlines()[-1]
    assert summary.startswith("messages=1 active=0 deferred=1 held=0 bytes=")

    r = queue(server, "show", qid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"id: {qid}\n" in out
    assert "status: deferred\n" in out
    assert f"from: <{SENDER}>\n" in out
    assert "client: 127.0.0.1 helo=client.test" in out
    assert "options: body=unspecified smtputf8=0 requiretls=0 ret=unspecified envid=- " in out
    assert f"rcpt: <{RCPT}> status=pending attempts=1 next=" in out
    assert f"  last error: {TEMPFAIL}\n" in out
    assert "headers:\n" in out
    assert "  Subject: queue tool\n" in out
    assert "  Received: from client.test" in out
    assert "Hello." not in out                      # headers only, no body


def test_flush_attempts_now_and_delivers(make_server, hop):
    server = relay_server(make_server, hop)
    qid = deferred_message(server, hop)
    accept_all(hop)
    assert hop.attempts(RCPT) == 1                  # the hour-long retry is not due
    r = queue(server, "flush", qid)
    assert r.returncode == 0, r.stderr
    assert f"{qid}: attempted now" in r.stdout
    assert len(hop.wait_messages(1)) == 1
    assert server.wait_queue_empty()
    assert f"event=queue_admin action=flush id={qid} uid={os.getuid()} result=ok" in server.log()


def test_flush_all(make_server, hop):
    server = relay_server(make_server, hop)
    deferred_message(server, hop)
    accept_all(hop)
    r = queue(server, "flush")
    assert r.returncode == 0, r.stderr
    assert "1 messages to be attempted now, 0 held left alone" in r.stdout
    assert len(hop.wait_messages(1)) == 1
    assert server.wait_queue_empty()
    assert "event=queue_admin action=flush id=all" in server.log()


def test_delete_removes_without_bounce(make_server, hop):
    server = relay_server(make_server, hop)
    qid = deferred_message(server, hop)
    r = queue(server, "delete", qid)
    assert r.returncode == 0, r.stderr
    assert f"{qid}: deleted" in r.stdout
    assert qid not in list_lines(server)
    assert server.queue_files() == []               # message and its state file
    accept_all(hop)
    assert queue(server, "flush").returncode == 0
    assert f"event=queue_admin action=delete id={qid}" in server.log()
    assert f"from=<{SENDER}> rcpts=1" in server.log()
    # Nothing was delivered and no bounce went to the sender.
    assert hop.received() == []
    assert server.messages("alice") == []
    r = queue(server, "show", qid)
    assert r.returncode == 1
    assert f"no such message: {qid}" in r.stderr


def test_hold_stops_attempts_survives_restart_and_release_delivers(make_server, hop):
    server = relay_server(make_server, hop, retry="1s")
    send(server, "held mail")
    assert wait_until(lambda: hop.attempts(RCPT) >= 2)   # retried every second
    qid = queued_ids(server)[0]
    # The same error every round is kept once in ID.state, not per round.
    state = server.root / "spool" / "queue" / f"{qid}.state"
    assert wait_until(lambda: state.read_text().count("\n0 0 ") >= 1)
    assert state.read_text().count("error 0 ") == 1, state.read_text()
    r = queue(server, "hold", qid)
    assert r.returncode == 0, r.stderr
    assert f"{qid}: on hold" in r.stdout
    assert "status=held" in list_lines(server)[qid]
    # An attempt in progress when hold arrived may still end; then none.
    assert wait_until(lambda: f"event=deferred id={qid}" in server.log())
    time.sleep(1.5)
    before = hop.attempts(RCPT)
    time.sleep(3)                                   # three retry periods
    assert hop.attempts(RCPT) == before
    assert "status=held" in list_lines(server)[qid]
    assert "already on hold" in queue(server, "hold", qid).stdout
    r = queue(server, "flush", qid)
    assert r.returncode == 1
    assert "on hold" in r.stderr

    # The hold is in the spool: a restart keeps it.
    server.stop()
    server.start()
    time.sleep(2)                                   # a non-held message would be tried at once
    assert hop.attempts(RCPT) == before
    assert "status=held" in list_lines(server)[qid]

    accept_all(hop)
    r = queue(server, "release", qid)
    assert r.returncode == 0, r.stderr
    assert f"{qid}: released, attempted now" in r.stdout
    assert len(hop.wait_messages(1)) == 1
    assert server.wait_queue_empty()
    log = server.log()
    assert f"event=queue_admin action=hold id={qid}" in log
    assert f"event=queue_admin action=release id={qid}" in log


def test_delete_of_a_message_in_delivery_is_refused(make_server, hop):
    server = relay_server(make_server, hop)
    accept_all(hop)
    hop.data_delay = 4.0                            # the final reply waits
    send(server, "slow")
    qid = wait_until(lambda: queued_ids(server))[0]
    assert wait_until(lambda: hop.attempts(RCPT) >= 1)
    r = queue(server, "delete", qid)
    assert r.returncode == 1
    assert "in delivery now, try again" in r.stderr
    assert "(in delivery now)" in queue(server, "show", qid).stdout
    assert len(hop.wait_messages(1)) == 1
    assert server.wait_queue_empty()
    assert f"action=delete id={qid} uid={os.getuid()} result=refused" in server.log()


def test_unknown_id_and_usage(make_server, hop):
    server = relay_server(make_server, hop)
    for verb in ("show", "flush", "delete", "hold", "release"):
        r = queue(server, verb, "0123456789ABCDEF")
        assert r.returncode == 1, (verb, r)
        assert "no such message: 0123456789ABCDEF" in r.stderr
    for args in ((), ("frobnicate",), ("show",), ("show", "nothex"), ("list", "x"),
                 ("hold", "0123456789abcdef")):
        r = queue(server, *args)
        assert r.returncode == 2, (args, r)
        assert "usage: sealpost queue" in r.stderr
    r = queue(server, "list")
    assert r.returncode == 0
    assert r.stdout == "messages=0 active=0 deferred=0 held=0 bytes=0\n"


def test_daemon_not_running(make_server, hop, tmp_path):
    server = relay_server(make_server, hop)
    server.stop()
    r = queue(server, "list")                       # a socket nobody listens on
    assert r.returncode == 75, r
    assert "sealpost is not running" in r.stderr
    never = make_server(start=False)                # never started: no socket at all
    r = queue(never, "list")
    assert r.returncode == 75, r
    assert "sealpost is not running" in r.stderr


def control(server, data, timeout=10):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(server.root / "spool" / "control" / "queue.sock"))
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


def test_garbage_on_the_control_socket(make_server, hop):
    server = relay_server(make_server, hop)
    sock = server.root / "spool" / "control" / "queue.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    assert oct(sock.parent.stat().st_mode & 0o7777) == "0o700"
    assert control(server, b"\x00\xff\x1b[2J rm -rf /\n").startswith(b"fail ")
    assert control(server, b"list extra\n") == b"fail list takes no argument\n.\n"
    assert control(server, b"x" * 5000) == b"fail command line too long\n.\n"
    assert control(server, b"list\r\n").startswith(b"ok\nmessages=0 ")
    # Clients that connect and say nothing hold only their own slots.
    idle = []
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        idle.append(s)
    answer = []
    waiting = threading.Thread(target=lambda: answer.append(control(server, b"list\n", 30)))
    waiting.start()
    waiting.join(1.0)
    assert answer == []                             # waits in the backlog
    for s in idle:
        s.close()
    waiting.join(30)
    assert answer and answer[0].startswith(b"ok\n")
    qid = deferred_message(server, hop)             # the queue keeps working
    assert qid in list_lines(server)
    assert "event=queue_admin_refused" in server.log()



def test_only_root_and_the_queue_user_may_use_the_socket(privsep_server):
    """With the real users (root master, queue under sealpost-queue): the
    control folder and socket are root's, in the queue user's group; root
    and the queue user get answers, the smtpd user is refused."""
    srv = privsep_server
    folder = srv.root / "spool" / "control"
    qgid = pwd.getpwnam("sealpost-queue").pw_gid
    st = folder.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, qgid, 0o2750)
    st = (folder / "queue.sock").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, qgid, 0o660)
    r = queue(srv, "list")
    assert r.returncode == 0, r.stderr

    def as_user(user):
        return subprocess.run(["runuser", "-u", user, "--", BIN, "queue", "-c",
                               str(srv.conf), "list"], capture_output=True, text=True,
                              timeout=60)
    r = as_user("sealpost-queue")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("messages=0 ")
    r = as_user("sealpost")
    assert r.returncode == 1, r
    assert "Permission denied" in r.stderr
    assert "run it as root or as the queue user" in r.stderr


def test_list_and_flush_walk_a_large_queue_in_steps(make_server, hop):
    """list and flush (all) read every envelope: they do it in steps of
    200 on the scheduler's loop, with its other work in between.
    Every message is listed exactly once and counted, flush reaches all
    of them, and mail is accepted while a client sits on a list answer
    it never reads."""
    server = relay_server(make_server, hop)
    count = 450                                     # three steps
    data = b"From: alice@example.test\r\nSubject: many\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo("client.test")
        for _ in range(count):
            assert c.sendmail(SENDER, [RCPT], data) == {}
    assert wait_until(lambda: hop.attempts(RCPT) >= count, 60)
    lines = list_lines(server)
    assert len(lines) == count and len(set(lines)) == count
    summary = queue(server, "list").stdout.splitlines()
    assert summary[-1].startswith(f"messages={count} ") and summary.count(summary[-1]) == 1
    # a client that asks for the list and never reads it holds only its
    # own connection
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(server.root / "spool" / "control" / "queue.sock"))
        idle.sendall(b"list\n")
        send(server, "while listing")
        assert wait_until(lambda: len(queued_ids(server)) == count + 1)
        before = hop.attempts(RCPT)
        r = queue(server, "flush")
        assert r.returncode == 0 and f"{count + 1} messages to be attempted now" in r.stdout, r
        assert wait_until(lambda: hop.attempts(RCPT) >= before + count + 1, 60)

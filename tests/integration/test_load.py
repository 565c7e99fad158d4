"""Concurrency, durability across kill -9, and graceful shutdown."""
import signal
import smtplib
import socket
import threading
import time

import pytest

from smtpwire import (RawSMTP, all_delivered, delivered_ids, dot_stuff,
                      make_message, new_msgid, wait_until)

HELO = "client.example.net"
RCPTS = ["alice@example.test", "bob@example.test", "carol@example.test"]


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    return errors


def test_concurrent_clients(server):
    clients, per_client = 50, 20
    sent = [[] for _ in range(clients)]
    start = threading.Barrier(clients)

    def client(i):
        # spread over five client addresses (the per-IP limit is 50)
        src = f"127.0.0.{1 + i % 5}"
        with smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=60,
                          source_address=(src, 0)) as c:
            start.wait(30)
            for j in range(per_client):
                mid = new_msgid()
                rcpt = RCPTS[(i + j) % 3]
                msg = make_message(msgid=mid, to=rcpt,
                                   body=b"client %d message %d\r\n" % (i, j) + b"z" * (j * 50) + b"\r\n")
                assert c.sendmail("load@example.net", [rcpt], msg) == {}
                sent[i].append((mid, rcpt))

    errors = run_threads(clients, client)
    assert errors == []
    expected = {mid: rcpt for s in sent for mid, rcpt in s}
    assert len(expected) == clients * per_client
    assert wait_until(lambda: len(all_delivered(server.mail)) >= len(expected), 60)
    assert server.wait_queue_empty(30)
    counts = delivered_ids(server.mail)
    assert counts == {mid: 1 for mid in expected}
    # and each went to its own recipient
    for local in ("alice", "bob", "carol"):
        for f in server.messages(local):
            data = f.read_bytes()
            assert data.split(b"\r\n")[1] == f"Delivered-To: {local}@example.test".encode()
    assert not list((server.root / "spool" / "incoming").iterdir())


def test_kill9_while_clients_send_loses_no_acknowledged_message(make_server):
    server = make_server()
    acked, stop = [], threading.Event()
    lock = threading.Lock()

    def client(i):
        try:
            c = smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=10)
        except OSError:
            return
        try:
            j = 0
            while not stop.is_set():
                mid = new_msgid()
                rcpt = RCPTS[(i + j) % 3]
                msg = make_message(msgid=mid, to=rcpt, body=b"m %d %d\r\n" % (i, j))
                c.sendmail("durable@example.net", [rcpt, "x%d@other.test" % i], msg)
                with lock:
                    acked.append(mid)       # only after the 250 to DATA
                j += 1
        except (smtplib.SMTPException, OSError):
            pass                            # the server died under us

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: len(acked) >= 150, 30), len(acked)
        server.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    n_acked = len(acked)
    server.start()
    ids = set(acked)
    assert len(ids) == n_acked

    def all_there():
        got = delivered_ids(server.mail)
        return all(got.get(m, 0) >= 2 for m in ids)   # both recipients
    assert wait_until(all_there, 60), [m for m in ids if delivered_ids(server.mail).get(m, 0) < 2][:5]
    assert server.wait_queue_empty(30)


def test_kill9_with_undeliverable_backlog_then_restart(make_server):
    """Messages acknowledged while delivery is impossible must survive a
    kill -9 in the queue and be delivered after the restart."""
    server = make_server()
    blocker = server.mail / "example.test" / "alice"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a maildir")                  # delivery defers
    mids = []
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=20) as c:
        for i in range(10):
            mid = new_msgid()
            assert c.sendmail("s@example.net", ["alice@example.test", "bob@example.test"],
                              make_message(msgid=mid)) == {}
            mids.append(mid)
    assert len(server.wait_messages("bob", 10)) == 10
    assert len(server.queue_files()) >= 10             # the alice copies wait
    server.kill9()
    blocker.unlink()
    server.start()
    assert len(server.wait_messages("alice", 10)) == 10
    assert server.wait_queue_empty()
    counts = delivered_ids(server.mail)
    assert counts == {m: 2 for m in mids}               # bob not delivered twice


# ---------------------------------------------------------------- graceful stop

def test_sigterm_lets_a_transaction_finish(make_server):
    server = make_server(settings={"shutdown_timeout": "10s"})
    idle = RawSMTP(server.port)
    busy = RawSMTP(server.port)
    in_data = RawSMTP(server.port)
    try:
        idle.ehlo()
        busy.ehlo()
        assert busy.cmd("MAIL FROM:<s@example.net>").code == 250
        assert busy.cmd("RCPT TO:<alice@example.test>").code == 250
        in_data.ehlo()
        assert in_data.cmd("MAIL FROM:<s@example.net>").code == 250
        assert in_data.cmd("RCPT TO:<bob@example.test>").code == 250
        assert in_data.cmd("DATA").code == 354
        in_data.send(b"Subject: half\r\n\r\nfirst half\r\n")

        server.proc.send_signal(signal.SIGTERM)
        r = idle.reply(timeout=5)
        assert r.startswith("421 4.3.2"), r
        assert idle.expect_closed()
        # no new sessions once shutting down: the connection is refused, or
        # (if it raced the listener's close) closed or answered 421, never 220
        try:
            late = RawSMTP(server.port, timeout=2)
        except OSError:
            late = None
        if late is not None:
            try:
                greeting = late.reply(timeout=5)
            except (OSError, EOFError, AssertionError):
                greeting = ""
            assert not greeting.startswith("220"), greeting

        # the client in the middle of a transaction may complete it
        assert busy.cmd("RCPT TO:<carol@example.test>").code == 250
        assert busy.cmd("DATA").code == 354
        busy.send(dot_stuff(make_message(msgid="<busy@t>")) + b".\r\n")
        assert busy.reply().startswith("250 2.0.0 Ok: queued as")
        r = busy.reply(timeout=5)
        assert r.startswith("421 4.3.2"), r
        assert busy.expect_closed()

        in_data.send(b"second half\r\n.\r\n")
        assert in_data.reply().startswith("250 2.0.0 Ok: queued as")
        assert in_data.reply(timeout=5).startswith("421 4.3.2")
        assert in_data.expect_closed()
    finally:
        for c in (idle, busy, in_data):
            c.close()
    assert server.proc.wait(10) == 0
    server.start()                      # whatever was not delivered yet goes now
    for local in ("alice", "carol", "bob"):
        assert len(server.wait_messages(local, 1)) == 1
    assert server.wait_queue_empty()


def test_sigterm_grace_period_ends_stuck_transactions(make_server):
    server = make_server(settings={"shutdown_timeout": "1s"})
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: never finished\r\n\r\n")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        r = c.reply(timeout=10)
        assert r.startswith("421 4.3.2"), r
        assert 0.5 <= time.monotonic() - t0 <= 5
        assert c.expect_closed()
    assert server.proc.wait(10) == 0
    assert server.queue_files() == []
    assert not list((server.root / "spool" / "incoming").iterdir())


# ---------------------------------------------------------------- lost clients

def test_client_vanishing_mid_message_leaves_nothing(server):
    for mode in ("data", "bdat"):
        c = RawSMTP(server.port)
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        if mode == "data":
            assert c.cmd("DATA").code == 354
            c.send(b"Subject: cut\r\n\r\n" + b"x" * 5000)
        else:
            c.send(b"BDAT 100\r\nSubject: cut\r\n\r\n" + b"x" * 40)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()                                   # RST, mid-message
    incoming = server.root / "spool" / "incoming"
    assert wait_until(lambda: not list(incoming.iterdir()), 5)
    # the server is fine and delivers the next message
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.transaction("s@example.net", ["alice@example.test"],
                             make_message(msgid="<after@t>")).code == 250
    assert len(server.wait_messages("alice", 1)) == 1
    assert server.wait_queue_empty()
    assert list(delivered_ids(server.mail)) == ["<after@t>"]


def test_kill9_mid_message_then_restart(make_server):
    server = make_server()
    c = RawSMTP(server.port)
    try:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: never acknowledged\r\n\r\n" + b"y" * 100000 + b"\r\n")
        incoming = server.root / "spool" / "incoming"
        assert wait_until(lambda: list(incoming.iterdir()), 5)
        server.kill9()
    finally:
        c.close()
    server.start()
    # the new queue process discards it as it opens the spool; a worker
    # (its own process) may greet a moment before that
    incoming = server.root / "spool" / "incoming"
    assert wait_until(lambda: not list(incoming.iterdir()), 5), list(incoming.iterdir())
    assert server.queue_files() == []
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.transaction("s@example.net", ["alice@example.test"],
                             make_message(msgid="<restart@t>")).code == 250
    assert len(server.wait_messages("alice", 1)) == 1
    assert list(delivered_ids(server.mail)) == ["<restart@t>"]


def test_sigterm_under_load_delivers_every_acknowledged_message_once(make_server):
    server = make_server(settings={"shutdown_timeout": "5s"})
    acked, lock, stop = [], threading.Lock(), threading.Event()
    goodbyes = []

    def client(i):
        c = smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=20)
        j = 0
        try:
            while not stop.is_set():
                mid = new_msgid()
                c.sendmail("s@example.net", [RCPTS[(i + j) % 3]],
                           make_message(msgid=mid, body=b"%d %d\r\n" % (i, j)))
                with lock:
                    acked.append(mid)
                j += 1
        except smtplib.SMTPSenderRefused as e:
            goodbyes.append(e.smtp_code)    # the 421 after the last 250
        except (smtplib.SMTPServerDisconnected, OSError):
            goodbyes.append(None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: len(acked) >= 100, 30)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
        assert time.monotonic() - t0 < 4, "sessions did not end at their next idle point"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert goodbyes.count(421) == len(threads), goodbyes
    server.start()
    assert wait_until(lambda: len(all_delivered(server.mail)) >= len(acked), 30)
    assert server.wait_queue_empty()
    assert delivered_ids(server.mail) == {m: 1 for m in acked}

"""The channel from an smtpd worker to the queue carries the envelope in
one message: no client may build an envelope it cannot carry (issue 11).
A trusted client sends recipients with the largest ORCPT and NOTIFY the
grammar allows until the server refuses: the refusal is 452 4.5.3, the
session goes on and queues what was accepted, the worker lives on, and
a second session on the same worker never notices."""
import re
import time
import socket

from conftest import free_port
from smtpwire import RawSMTP, make_message

LONG_DOMAIN = ".".join(["d" * 60, "e" * 60, "f" * 58, "test"])      # 183 octets
ORCPT = "rfc822;" + "o" * 40 + "+2B" + "p" * 393                      # 443 octets, xtext


def worker_pids(log):
    return re.findall(r"event=child_start role=smtpd slot=\d+ pid=(\d+)", log)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_envelope_past_the_channel_gets_452_and_worker_lives(make_server):
    closed = free_port()            # a relayhost that answers nothing: mail stays queued
    server = make_server(settings={"max_recipients": "1000", "workers": "1",
                                   "max_line_length": "2048"},
                         extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [127.0.0.1]:{closed}
""")
    [pid] = worker_pids(server.log())
    with RawSMTP(server.port) as c, RawSMTP(server.port) as other:
        c.ehlo("client.test")
        other.ehlo("other.test")
        assert c.cmd("MAIL FROM:<alice@example.test> RET=HDRS ENVID=" + "e" * 100).code == 250
        accepted = 0
        for i in range(1000):
            local = f"r{i:03d}" + "l" * 60
            r = c.cmd(f"RCPT TO:<{local}@{LONG_DOMAIN}> "
                      f"NOTIFY=SUCCESS,FAILURE,DELAY ORCPT={ORCPT}")
            if r.code != 250:
                break
            accepted += 1
            if i % 10 == 0:         # the other session is served meanwhile
                assert other.cmd("NOOP").code == 250
        assert r.startswith("452 4.5.3"), r
        # the limit is the channel, not max_recipients, and it is generous
        assert 60 <= accepted < 1000, accepted
        # refused again, not a crash: the session is still usable
        assert c.cmd(f"RCPT TO:<again@{LONG_DOMAIN}> ORCPT={ORCPT}").code == 452
        assert c.cmd("NOOP").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message(msgid="<big-envelope@t>") + b".\r\n")
        r = c.reply()
        assert r.startswith("250 2.0.0 Ok: queued as"), r
        assert other.cmd("NOOP").code == 250
    log = server.log()
    assert "child_died" not in log, log
    assert "ipc_failed" not in log, log
    assert worker_pids(log) == [pid] and alive(int(pid))
    assert f"verdict=envelope_full rcpts={accepted}" in log
    # the queued envelope holds exactly the accepted recipients
    files = [f for f in server.queue_files() if "." not in f]
    assert len(files) == 1, files
    head = (server.root / "spool" / "queue" / files[0]).read_bytes().split(b"\n\n", 1)[0]
    assert head.count(b"\nrcpt ") == accepted


def role_pid(log, role):
    pids = re.findall(rf"event=child_start role={role} slot=\d+ pid=(\d+)", log)
    return int(pids[-1])


def test_slow_queue_stalls_only_the_sessions_waiting_for_it(make_server):
    """A queue that does not answer (stopped with SIGSTOP) holds the
    session waiting for its message file, and nothing else: another
    session on the same worker is answered meanwhile; once the queue runs
    again the waiting session goes on and its message is delivered."""
    import os
    import signal

    server = make_server(settings={"workers": "1"})
    queue = role_pid(server.log(), "queue")
    with RawSMTP(server.port) as waiting, RawSMTP(server.port, timeout=10) as other:
        waiting.ehlo("waiting.test")
        other.ehlo("other.test")
        assert waiting.cmd("MAIL FROM:<a@example.net>").code == 250
        assert waiting.cmd("RCPT TO:<alice@example.test>").code == 250
        os.kill(queue, signal.SIGSTOP)
        try:
            waiting.send(b"DATA\r\n")
            assert waiting.pending(0.5) == b""          # it waits for the queue
            # the worker's event loop is free: the other session is served
            for _ in range(20):
                assert other.cmd("NOOP").code == 250
            assert other.cmd("MAIL FROM:<b@example.net>").code == 250
            assert other.cmd("RCPT TO:<bob@example.test>").code == 250
            assert other.cmd("RSET").code == 250
        finally:
            os.kill(queue, signal.SIGCONT)
        assert waiting.reply().code == 354
        waiting.send(make_message(msgid="<after-stall@t>") + b".\r\n")
        r = waiting.reply()
        assert r.startswith("250 2.0.0 Ok: queued as"), r
    assert len(server.wait_messages("alice", 1)) == 1
    assert "child_died" not in server.log()


def test_client_gone_while_waiting_for_the_queue(make_server):
    """A client that resets while its session waits for the queue's answer
    (queue stopped): once the queue answers, the session is freed
    (disconnect logged) and the message file the queue made is dropped."""
    import os
    import signal
    import socket

    from smtpwire import wait_until

    server = make_server(settings={"workers": "1"})
    queue = role_pid(server.log(), "queue")
    for verb in (b"DATA\r\n", b"BDAT 100\r\nSubject: cut\r\n\r\n"):
        c = RawSMTP(server.port)
        c.ehlo("gone.test")
        assert c.cmd("MAIL FROM:<a@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        os.kill(queue, signal.SIGSTOP)
        try:
            c.send(verb)
            time.sleep(0.3)                     # the worker has asked the queue
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            c.close()                           # RST
            time.sleep(0.3)
        finally:
            os.kill(queue, signal.SIGCONT)
    incoming = server.root / "spool" / "incoming"
    assert wait_until(lambda: not list(incoming.iterdir()), 10), list(incoming.iterdir())
    log = server.log()
    assert wait_until(lambda: server.log().count("event=disconnect") ==
                      server.log().count("event=connect"), 10), log

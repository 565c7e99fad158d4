"""Outbound delivery end to end: sealpost relays mail from a trusted
client to MX hosts found through a real DNSSEC-signed DNS world (nsd on
loopback), talking SMTP to real receiving peers (aiosmtpd) on 127.0.0.2x,
with retries and delivery status notifications."""
import email
import email.policy
import os
import re
import signal
import smtplib
import socket
import threading
import time

import pytest

from peers import Peer
from smtpwire import wait_until

PEER_ADDRS = [f"127.0.0.{n}" for n in range(20, 30)]


def free_port_on_all(addrs):
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ok = True
        for a in addrs:
            with socket.socket() as s:
                try:
                    s.bind((a, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no common free port")


class World:
    """DNS world + peers + a sealpost that relays for 127.0.0.1."""

    def __init__(self, dns_world, make_server, tmp_path):
        self.dns = dns_world
        self.make_server = make_server
        self.tmp = tmp_path
        self.port = free_port_on_all(PEER_ADDRS)
        self.peers = {}
        self.server = None

    def mx(self, domain, *targets):
        """targets: (preference, host name, address) tuples."""
        for pref, host, addr in targets:
            self.dns.add(domain, "MX", f"{pref} {host}.")
            if addr:
                self.dns.add(host, "A", addr)

    def peer(self, addr, **kw):
        p = Peer(addr, self.port, **kw).start()
        self.peers[addr] = p
        return p

    def start(self, retry="1s", lifetime="1h", extra_relay="", unbound_extra="",
              anchor=None):
        """anchor: a trust anchor file to use instead of the world's own."""
        self.dns.start()
        if anchor is not None:
            unbound_extra = f'    trust-anchor-file: "{anchor}"\n' + unbound_extra
        conf = self.dns.write_unbound_conf(self.tmp / "sealpost-unbound.conf",
                                           trust_anchor=anchor is None, extra=unbound_extra)
        self.server = self.make_server(extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
smtp_port = {self.port}
unbound_config = {conf}
retry = {retry}
max_queue_lifetime = {lifetime}
dns_timeout = 3s
connect_timeout = 2s
smtp_timeout = 10s
{extra_relay}
""")
        return self.server

    def stop(self):
        for p in self.peers.values():
            p.stop()


@pytest.fixture
def world(dns_world, make_server, tmp_path):
    w = World(dns_world, make_server, tmp_path)
    yield w
    w.stop()


def message(msgid, to="someone@elsewhere", subject="test"):
    return (f"From: alice@example.test\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\n\r\nHello.\r\n").encode()


def send(server, sender, rcpts, data):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        refused = c.sendmail(sender, rcpts, data)
        assert refused == {}


def wait_log(server, needle, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in server.log():
            return True
        time.sleep(0.05)
    return False


def dsn_messages(server, local="alice"):
    out = []
    for path in server.messages(local):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def dsn_fields(msg):
    """Per-recipient field dicts of the message/delivery-status part."""
    status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    blocks = status[0].get_payload()
    return [dict((k.lower(), str(v)) for k, v in b.items()) for b in blocks[1:]]


def test_mx_preference_fallback(world):
    """The preferred MX is down: delivery goes to the next one."""
    world.mx("d1.example.test", (10, "mx1.example.test", "127.0.0.21"),
             (20, "mx2.example.test", "127.0.0.22"))
    peer2 = world.peer("127.0.0.22")
    server = world.start()
    send(server, "alice@example.test", ["bob@d1.example.test"], message("<pref@t>"))
    got = peer2.wait_messages(1)
    assert len(got) == 1
    assert got[0]["rcpts"] == ["bob@d1.example.test"]
    assert got[0]["from"] == "alice@example.test"
    assert b"Message-ID: <pref@t>" in got[0]["data"]
    assert wait_log(server, "status=sent")
    assert "mx2.example.test[127.0.0.22]" in server.log()
    assert server.wait_queue_empty()


def test_null_mx_bounces_at_once(world):
    world.dns.add("nomail.example.test", "MX", "0 .")
    server = world.start()
    send(server, "alice@example.test", ["x@nomail.example.test"], message("<nullmx@t>"))
    assert server.wait_messages("alice", 1)
    dsns = dsn_messages(server)
    assert len(dsns) == 1
    fields = dsn_fields(dsns[0])
    assert fields[0]["action"] == "failed"
    assert fields[0]["status"] == "5.1.10"
    assert "x@nomail.example.test" in fields[0]["final-recipient"]
    assert server.wait_queue_empty()


def test_nxdomain_bounces(world):
    server = world.start()
    send(server, "alice@example.test", ["x@nowhere.example.test"], message("<nx@t>"))
    assert server.wait_messages("alice", 1)
    fields = dsn_fields(dsn_messages(server)[0])
    assert fields[0]["status"] == "5.1.2"


def test_bogus_dns_defers_then_delivers_when_fixed(world):
    """A DNSSEC-bogus MX answer (like SERVFAIL) defers; once the zone is
    fixed the next retry delivers."""
    world.mx("d3.example.test", (10, "mx3.example.test", "127.0.0.23"))
    world.dns.tamper("d3.example.test", "MX", "10 mx3.example.test.",
                     "10 mx9.example.test.")
    peer = world.peer("127.0.0.23")
    server = world.start(unbound_extra="    val-bogus-ttl: 1\n")
    send(server, "alice@example.test", ["u@d3.example.test"], message("<bogus@t>"))
    assert wait_log(server, "status=deferred")
    assert "bogus" in server.log().lower()
    assert peer.received() == []
    world.dns.tampered.clear()
    world.dns.reload()
    got = peer.wait_messages(1, timeout=30)
    assert len(got) == 1
    assert server.wait_queue_empty()


def test_servfail_defers(world):
    """A name server that refuses (the resolver answers SERVFAIL) defers:
    the message stays queued, no DSN."""
    server = world.start()
    send(server, "alice@example.test", ["u@mail.refused.example"], message("<sf@t>"))
    assert wait_log(server, "status=deferred")
    assert "Temporary DNS failure" in server.log()
    assert len(server.queue_files()) >= 1
    assert dsn_messages(server) == []


def test_4xx_then_success_on_retry(world):
    world.mx("d4.example.test", (10, "mx4.example.test", "127.0.0.24"))
    peer = world.peer("127.0.0.24")
    peer.script.rcpt_reply("u@d4.example.test", "450 4.2.0 mailbox busy", times=1)
    server = world.start()
    send(server, "alice@example.test", ["u@d4.example.test"], message("<retry@t>"))
    assert wait_log(server, "status=deferred")
    got = peer.wait_messages(1, timeout=30)
    assert len(got) == 1
    assert peer.attempts("u@d4.example.test") == 2
    assert server.wait_queue_empty()
    assert dsn_messages(server) == []


def test_5xx_sends_exactly_one_dsn(world):
    world.mx("d5.example.test", (10, "mx5.example.test", "127.0.0.25"))
    peer = world.peer("127.0.0.25")
    peer.script.rcpt_reply("gone@d5.example.test", "550 5.1.1 no such user")
    server = world.start()
    send(server, "alice@example.test", ["gone@d5.example.test", "ok@d5.example.test"],
          message("<five@t>", subject="five hundred"))
    got = peer.wait_messages(1)
    assert got[0]["rcpts"] == ["ok@d5.example.test"]
    assert server.wait_messages("alice", 1)
    assert server.wait_queue_empty()
    time.sleep(0.5)                         # a second DSN would show up now
    dsns = dsn_messages(server)
    assert len(dsns) == 1
    dsn = dsns[0]
    assert dsn["From"].addresses[0].username.upper() == "MAILER-DAEMON"
    assert "Return-Path: <>" in server.messages("alice")[0].read_text(errors="replace")
    fields = dsn_fields(dsn)
    assert len(fields) == 1
    assert fields[0]["final-recipient"].endswith("gone@d5.example.test")
    assert fields[0]["action"] == "failed"
    assert fields[0]["status"] == "5.1.1"
    assert "550" in fields[0]["diagnostic-code"]
    assert "mx5.example.test" in fields[0]["remote-mta"]
    headers = [p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers"]
    assert headers and "five hundred" in headers[0].get_content()


def test_null_sender_failure_sends_no_dsn(world):
    world.mx("d6.example.test", (10, "mx6.example.test", "127.0.0.26"))
    peer = world.peer("127.0.0.26")
    peer.script.rcpt_reply("*", "550 5.1.1 no such user")
    server = world.start()
    send(server, "", ["gone@d6.example.test"], message("<nullsender@t>"))
    assert wait_log(server, "status=bounced")
    assert server.wait_queue_empty()
    assert "event=dsn_skipped" in server.log()
    assert server.messages("alice") == []
    assert server.messages("postmaster") == []


def test_restart_keeps_retry_schedule(world):
    world.mx("d7.example.test", (10, "mx7.example.test", "127.0.0.27"))
    peer = world.peer("127.0.0.27")
    peer.script.rcpt_reply("u@d7.example.test", "451 4.3.0 later", times=1)
    server = world.start(retry="6s")
    send(server, "alice@example.test", ["u@d7.example.test"], message("<sched@t>"))
    assert wait_log(server, "status=deferred")
    deferred_at = time.monotonic()
    server.stop()
    server.start()
    time.sleep(max(0.0, deferred_at + 3.5 - time.monotonic()))
    assert peer.attempts("u@d7.example.test") == 1     # not retried at restart
    got = peer.wait_messages(1, timeout=20)
    assert len(got) == 1
    assert time.monotonic() - deferred_at >= 4.5       # waited for its time (6s -10%)
    assert peer.attempts("u@d7.example.test") == 2
    assert server.wait_queue_empty()


def test_200_messages_to_10_destinations_exactly_once(world):
    for d in range(10):
        world.mx(f"dest{d}.example.test",
                 (10, f"mxa{d}.example.test", PEER_ADDRS[d % 2]))
    peers = [world.peer(PEER_ADDRS[0]), world.peer(PEER_ADDRS[1])]
    server = world.start()

    def client(n):
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
            for i in range(n * 40, n * 40 + 40):
                c.sendmail("alice@example.test", [f"user{i}@dest{i % 10}.example.test"],
                           message(f"<m{i}@bulk>"))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(len(p.received()) for p in peers) >= 200:
            break
        time.sleep(0.1)
    ids = []
    for p in peers:
        for m in p.received():
            for line in m["data"].split(b"\r\n"):
                if line.startswith(b"Message-ID: "):
                    ids.append(line[12:].decode())
    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert server.wait_queue_empty(timeout=30)


def test_round_results_survive_a_restart_delivered_copy_not_repeated(world):
    """One local and one remote recipient; the remote one is deferred. The
    round's results are written when it ends (one append to ID.state):
    after a restart the local copy is not delivered again, the remote
    recipient is retried and delivered, and the message leaves the queue."""
    world.mx("d8.example.test", (10, "mx8.example.test", "127.0.0.28"))
    peer = world.peer("127.0.0.28")
    peer.script.rcpt_reply("u@d8.example.test", "451 4.3.0 later", times=1)
    server = world.start(retry="2s")
    send(server, "bob@example.net", ["alice@example.test", "u@d8.example.test"],
         message("<round@t>"))
    assert wait_log(server, "status=deferred")
    assert len(server.wait_messages("alice", 1)) == 1
    # The delivery line is logged as each result arrives; the round's
    # append to ID.state follows when the round ends, so wait for it.
    def state_files():
        return [n for n in server.queue_files() if n.endswith(".state")]
    assert wait_until(lambda: len(state_files()) == 1), server.queue_files()
    state_path = server.root / "spool" / "queue" / state_files()[0]
    # (an "error" line, the deferred recipient's last error, goes with it)
    def state_lines():
        return [ln for ln in state_path.read_text().splitlines() if not ln.startswith("error ")]
    assert wait_until(lambda: len(state_lines()) == 2)
    lines = state_lines()
    assert len(lines) == 2, lines           # both recipients' results, one round
    assert state_path.read_text().startswith(lines[0])      # in one append
    server.stop()
    server.start()
    got = peer.wait_messages(1, timeout=20)
    assert len(got) == 1 and got[0]["rcpts"] == ["u@d8.example.test"]
    assert server.wait_queue_empty()
    time.sleep(0.3)
    assert len(server.messages("alice")) == 1       # not delivered twice


def test_relay_from_untrusted_address_is_refused(world):
    server = world.start()
    with smtplib.SMTP("127.0.0.1", server.port, source_address=("127.0.0.2", 0)) as c:
        c.ehlo("client.test")
        c.mail("alice@example.test")
        code, text = c.rcpt("x@d1.example.test")
        assert code == 554 and text.startswith(b"5.7.1"), (code, text)
        code, _ = c.rcpt("bob@example.test")       # local mail is fine
        assert code == 250
    assert "verdict=relay_denied" in server.log()


def delivery_pids(server):
    """pids the master logged for the delivery role, oldest first."""
    return [int(p) for p in re.findall(r"event=child_start role=delivery slot=\d+ pid=(\d+)",
                                       server.log())]


def test_remote_delivery_runs_in_its_own_process(world):
    world.mx("far.example.test", (10, "mx.far.example.test", PEER_ADDRS[0]))
    peer = world.peer(PEER_ADDRS[0])
    server = world.start()
    assert wait_log(server, "event=child_start role=delivery")
    pid = delivery_pids(server)[-1]
    send(server, "alice@example.test", ["bob@far.example.test"], message("<own@proc>"))
    assert len(peer.wait_messages(1)) == 1
    # the peer has the message before the queue logs the result: wait for it
    assert wait_log(server, "event=delivered id=")
    log = server.log()
    # the SMTP conversation was held by the delivery process, not the queue
    assert re.search(rf"sealpost\[{pid}\]: .*event=smtp_connected peer=mx\.far\.example\.test\[",
                     log), log[-2000:]
    assert not re.search(rf"sealpost\[(?!{pid}\])\d+\]: .*event=smtp_connected", log)
    assert "event=delivered id=" in log and "relay=mx.far.example.test[" in log


def test_killed_delivery_process_is_restarted_and_jobs_are_retried(world):
    """kill -9 of the delivery process while it holds jobs: the master
    starts a new one, the queue defers what the dead one had not reported
    and retries it; every acknowledged message arrives, at most twice."""
    for d in range(4):
        world.mx(f"k{d}.example.test", (10, f"mxk{d}.example.test", PEER_ADDRS[d % 2]))
    peers = [world.peer(PEER_ADDRS[0]), world.peer(PEER_ADDRS[1])]
    for p in peers:
        p.data_delay = 0.3          # jobs stay in flight long enough to be cut
    # one connection per destination: about 3 s of work, so the kill below
    # always finds jobs the delivery process has not reported yet
    server = world.start(retry="1s", extra_relay="destination_concurrency = 1")
    assert wait_log(server, "event=child_start role=delivery")
    first = delivery_pids(server)[-1]
    total = 40
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        for i in range(total):
            c.sendmail("alice@example.test", [f"u{i}@k{i % 4}.example.test"],
                       message(f"<k{i}@kill>"))
    assert wait_until(lambda: sum(len(p.received()) for p in peers) >= 3, 20)
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: delivery_pids(server)[-1] != first, 15), "no new delivery process"
    assert wait_log(server, "event=child_died role=delivery")
    assert wait_log(server, "event=delivery_channel_closed")
    cut = re.search(r"event=delivery_channel_closed .*jobs_deferred=(\d+)", server.log())
    assert cut and int(cut.group(1)) > 0, "the kill cut no job short: the test proves nothing"

    def ids():
        out = []
        for p in peers:
            for m in p.received():
                for line in m["data"].split(b"\r\n"):
                    if line.startswith(b"Message-ID: "):
                        out.append(line[12:].decode())
        return out
    assert wait_until(lambda: len(set(ids())) == total, 60), len(set(ids()))
    assert server.wait_queue_empty(timeout=30)
    got = ids()
    assert set(got) == {f"<k{i}@kill>" for i in range(total)}
    assert all(got.count(i) <= 2 for i in set(got)), "more than one duplicate"
    assert server.proc.poll() is None

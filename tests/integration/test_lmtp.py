"""LMTP delivery (RFC 2033, [domain] deliver = lmtp:...) into a real
Dovecot started by the test (dovecot.py): mail arrives byte-exact and is
read back over IMAP; Dovecot's per-recipient replies after DATA become
per-recipient results (4xx deferred and retried, 5xx bounced with its
text); both the unix socket and the TCP form; a stopped Dovecot defers
and the retry delivers once it is back; one connection carries several
transactions."""
import re
import shutil
import smtplib
import socket
import tempfile
import threading
from pathlib import Path

import pytest


from dovecot import Dovecot
from smtpwire import make_message, wait_until

HELO = "client.example.net"
SENDER = "alice@example.test"       # a Maildir mailbox of the test server: DSNs land there
# multipart/mixed: 8-bit UTF-8 text with lines starting with dots, HTML,
# a base64 attachment (made once with Python's email package)
MULTIPART = Path(__file__).resolve().parent / "fixtures" / "lmtp-multipart.eml"


@pytest.fixture
def dovecot():
    d = Dovecot()
    d.set_users({"alice@lmtp.test": "", "bob@lmtp.test": ""})
    yield d
    d.cleanup()


def lmtp_server(make_server, target, start=True):
    return make_server(start=start, extra_sections=f"""
[domain lmtp.test]
deliver = {target}
lmtp_timeout = 20s
""")


def send(server, rcpts, msg, sender=SENDER, options=()):
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=20) as c:
        assert c.sendmail(sender, rcpts, msg, mail_options=list(options)) == {}


def stored_original(data):
    """The message as sent, from what Dovecot stored: it prepends
    Return-Path, Delivered-To and its own Received (with LMTP) before
    sealpost's Received."""
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <"), lines[0]
    assert lines[1].startswith(b"Delivered-To: "), lines[1]
    i = 2
    for marker in (b"with LMTP", b"(sealpost)"):
        assert lines[i].startswith(b"Received: "), lines[i]
        start = i
        i += 1
        while lines[i].startswith((b"\t", b" ")):
            i += 1
        assert marker in b" ".join(lines[start:i]), lines[start:i]
    return b"\r\n".join(lines[i:])


def log_lines(server, event, to):
    return [l for l in server.log().splitlines()
            if f"event={event} " in l and f" to=<{to}> " in l]


def test_unix_socket_delivery_readable_over_imap_byte_exact(make_server, dovecot):
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    msg = MULTIPART.read_bytes()
    assert b"Content-Type: multipart/mixed" in msg and b"\r\n.a line" in msg
    send(server, ["alice@lmtp.test"], msg, options=["BODY=8BITMIME"])
    assert wait_until(lambda: log_lines(server, "delivered", "alice@lmtp.test")), server.log()
    line = log_lines(server, "delivered", "alice@lmtp.test")[0]
    assert f"relay=lmtp:unix:{dovecot.socket}" in line, line
    assert server.wait_queue_empty()
    # the lmtp process is confined (sanitizer builds skip the sandbox)
    log = server.log()
    if "event=sandbox role=lmtp status=disabled" not in log:
        assert "event=sandbox role=lmtp status=active" in log
        assert f"event=privsep role=lmtp user=(unchanged) uid=0 chroot={dovecot.socket.parent}" \
            in log or "role=lmtp reason=\"not started as root" in log, log
    got = dovecot.fetch_all("alice@lmtp.test")
    assert len(got) == 1
    # Dovecot adds Return-Path and Delivered-To, sealpost its Received:
    assert got[0].startswith(b"Return-Path: <alice@example.test>\r\n"
                             b"Delivered-To: alice@lmtp.test\r\n")
    assert stored_original(got[0]) == msg


def test_postmaster_of_an_lmtp_domain_reaches_the_servers_postmaster(make_server, dovecot):
    """RFC 5321 4.5.1: postmaster@ must reach someone; Dovecot has no such
    user here, so postmaster@lmtp.test goes to [server] postmaster (a
    Maildir mailbox), as postmaster@ a Maildir domain does, with the
    original address kept as ORCPT for a DSN."""
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    send(server, ["postmaster@lmtp.test"], make_message(msgid="<pm-lmtp@t>"))
    got = server.wait_messages("postmaster", 1)
    assert len(got) == 1 and b"<pm-lmtp@t>" in got[0].read_bytes()
    assert server.wait_queue_empty()
    assert "event=bounced" not in server.log()


def test_tcp_form_delivers(make_server, dovecot):
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:[127.0.0.1]:{dovecot.lmtp_port}")
    msg = make_message(to="bob@lmtp.test", body=b".leading dot\r\n..two\r\nend\r\n")
    send(server, ["bob@lmtp.test"], msg)
    assert wait_until(lambda: log_lines(server, "delivered", "bob@lmtp.test")), server.log()
    assert f"relay=lmtp:[127.0.0.1]:{dovecot.lmtp_port}" in \
        log_lines(server, "delivered", "bob@lmtp.test")[0]
    got = dovecot.fetch_all("bob@lmtp.test")
    assert [stored_original(g) for g in got] == [msg]     # dot-stuffing undone


def test_tcp_form_with_localhost(make_server, dovecot):
    """lmtp:[localhost]:port is 127.0.0.1 (no name lookup in the lmtp
    process), as for milter sockets."""
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:[localhost]:{dovecot.lmtp_port}")
    send(server, ["bob@lmtp.test"], make_message(msgid="<lmtp-localhost@t>"))
    assert wait_until(lambda: log_lines(server, "delivered", "bob@lmtp.test")), server.log()
    assert f"relay=lmtp:[127.0.0.1]:{dovecot.lmtp_port}" in \
        log_lines(server, "delivered", "bob@lmtp.test")[0]


def test_4xx_for_one_recipient_defers_only_it_and_the_retry_delivers(make_server, dovecot):
    """bob's mailbox is over quota: Dovecot answers 250 for alice and
    452 4.2.2 for bob after DATA (RFC 2033 4.2). Then the quota goes."""
    dovecot.set_users({"alice@lmtp.test": "",
                       "bob@lmtp.test": "userdb_quota_rule=*:storage=1K"})
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    msg = make_message(to="alice@lmtp.test", body=(b"x" * 70 + b"\r\n") * 60)
    send(server, ["alice@lmtp.test", "bob@lmtp.test"], msg)
    assert wait_until(lambda: log_lines(server, "deferred", "bob@lmtp.test")), server.log()
    deferred = log_lines(server, "deferred", "bob@lmtp.test")[0]
    assert "dsn=4.2.2" in deferred and "Quota exceeded" in deferred, deferred
    assert len(log_lines(server, "delivered", "alice@lmtp.test")) == 1
    assert not log_lines(server, "delivered", "bob@lmtp.test")
    assert len(dovecot.fetch_all("alice@lmtp.test")) == 1
    # bob's retries keep being deferred while the quota is there
    assert wait_until(lambda: len(log_lines(server, "deferred", "bob@lmtp.test")) >= 2)
    assert not dovecot.fetch_all("bob@lmtp.test")
    # (a raised limit, not none: Maildir++ keeps the old one in maildirsize)
    dovecot.set_users({"alice@lmtp.test": "",
                       "bob@lmtp.test": "userdb_quota_rule=*:storage=100M"})
    assert wait_until(lambda: log_lines(server, "delivered", "bob@lmtp.test")), server.log()
    assert server.wait_queue_empty()
    assert [stored_original(g) for g in dovecot.fetch_all("bob@lmtp.test")] == [msg]
    # alice got it exactly once
    assert len(dovecot.fetch_all("alice@lmtp.test")) == 1


def test_unknown_user_bounces_with_dovecots_reply(make_server, dovecot):
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    msg = make_message(to="nobody@lmtp.test")
    send(server, ["nobody@lmtp.test", "alice@lmtp.test"], msg)
    assert wait_until(lambda: log_lines(server, "bounced", "nobody@lmtp.test")), server.log()
    assert "dsn=5.1.1" in log_lines(server, "bounced", "nobody@lmtp.test")[0]
    assert wait_until(lambda: log_lines(server, "delivered", "alice@lmtp.test"))
    dsns = server.wait_messages("alice", 1)
    assert len(dsns) == 1, server.log()
    dsn = dsns[0].read_bytes()
    assert b"multipart/report" in dsn
    assert re.search(rb"Final-Recipient: rfc822; ?nobody@lmtp.test", dsn), dsn
    assert b"Status: 5.1.1" in dsn
    assert re.search(rb"Diagnostic-Code: smtp; ?550 5\.1\.1 <nobody@lmtp\.test> "
                     rb"User doesn't exist", dsn), dsn
    assert server.wait_queue_empty()


def test_stopped_server_defers_then_delivers_when_it_starts(make_server, dovecot):
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    msg = make_message(to="alice@lmtp.test")
    send(server, ["alice@lmtp.test"], msg)
    assert wait_until(lambda: log_lines(server, "deferred", "alice@lmtp.test")), server.log()
    line = log_lines(server, "deferred", "alice@lmtp.test")[0]
    assert "dsn=4.4.1" in line and "cannot connect to the LMTP server" in line, line
    assert server.queue_files()
    dovecot.start()
    assert wait_until(lambda: log_lines(server, "delivered", "alice@lmtp.test")), server.log()
    assert [stored_original(g) for g in dovecot.fetch_all("alice@lmtp.test")] == [msg]
    assert server.wait_queue_empty()


def test_one_connection_carries_several_messages(make_server, dovecot):
    """The second message goes over the cached connection after RSET:
    Dovecot logs one connection for both."""
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")
    for n in range(3):
        send(server, ["alice@lmtp.test"], make_message(to="alice@lmtp.test",
                                                        subject=f"n{n}"))
        assert wait_until(lambda: len(log_lines(server, "delivered", "alice@lmtp.test"))
                          == n + 1), server.log()
    assert len(dovecot.fetch_all("alice@lmtp.test")) == 3
    # Dovecot numbers the transactions of one session <ID>, <ID:T2>, <ID:T3>
    saved = re.findall(r"lmtp\(alice@lmtp\.test\)<\d+><([^>:]+)(:T\d+)?>: .*saved mail",
                       dovecot.log())
    assert len(saved) == 3 and len({s for s, _ in saved}) == 1, dovecot.log()
    assert [t for _, t in saved] == ["", ":T2", ":T3"], saved


def test_config_refuses_bad_targets(make_server, tmp_path):
    import subprocess
    from conftest import BIN
    for target, why in (("lmtp:unix:relative/lmtp", "absolute path"),
                        ("lmtp:[127.0.0.1]", "needs a port"),
                        ("smtp:[127.0.0.1]:25", "expected maildir")):
        server = lmtp_server(make_server, target, start=False)
        r = subprocess.run([BIN, "check", "-c", str(server.conf)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and why in r.stderr + r.stdout, (target, r)


class HostileLMTP:
    """A stdlib LMTP peer on a unix socket that follows the protocol up to
    the end of the data and then misbehaves: `after_data` is what it sends
    then (and it keeps the connection open, silent, afterwards)."""

    def __init__(self, after_data):
        self.dir = Path(tempfile.mkdtemp(prefix="lm", dir="/tmp"))
        self.path = self.dir / "lmtp"
        self.after_data = after_data
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(self.path))
        self.sock.listen(8)
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                self._session(c.makefile("rwb"))
            except OSError:
                pass

    def _session(self, f):
        def say(line):
            f.write(line + b"\r\n")
            f.flush()
        say(b"220 hostile LMTP")
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"LHLO":
                say(b"250-hostile\r\n250 8BITMIME")
            elif verb == b"DATA":
                say(b"354 go")
                while f.readline() not in (b".\r\n", b""):
                    pass
                f.write(self.after_data)
                f.flush()
                return          # then silence: the connection stays open
            else:
                say(b"250 ok")

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("after_data, why", [
    # one reply for two accepted recipients, then silence: a timeout
    (b"250 2.0.0 first saved\r\n", "did not answer within 2s"),
    # a reply line over 512 octets: refused by the bounded parser
    (b"250 2.0.0 first saved\r\n" + b"250 " + b"x" * 3000 + b"\r\n", "bad reply"),
    # not a reply at all
    (b"250 2.0.0 first saved\r\nhello there\r\n", "bad reply"),
])
def test_hostile_lmtp_server_defers_what_has_no_reply(make_server, after_data, why):
    peer = HostileLMTP(after_data)
    try:
        server = make_server(extra_sections=f"""
[domain lmtp.test]
deliver = lmtp:unix:{peer.path}
lmtp_timeout = 2s
""")
        send(server, ["a@lmtp.test", "b@lmtp.test"], make_message(to="a@lmtp.test"))
        assert wait_until(lambda: log_lines(server, "deferred", "b@lmtp.test")), server.log()
        line = log_lines(server, "deferred", "b@lmtp.test")[0]
        assert "dsn=4.4.2" in line and why in line, line
        delivered = log_lines(server, "delivered", "a@lmtp.test")
        assert len(delivered) == 1 and "first saved" in delivered[0], server.log()
        assert "event=child_died" not in server.log()
        assert "event=lmtp_connection_lost" in server.log()
    finally:
        peer.close()


def test_killed_lmtp_process_is_restarted_and_delivers(make_server, dovecot):
    import os
    import signal as sig
    dovecot.start()
    server = lmtp_server(make_server, f"lmtp:unix:{dovecot.socket}")

    def lmtp_pids():
        return re.findall(r"event=child_start role=lmtp slot=0 pid=(\d+)", server.log())
    assert wait_until(lambda: len(lmtp_pids()) == 1), server.log()
    os.kill(int(lmtp_pids()[0]), sig.SIGKILL)
    assert wait_until(lambda: len(lmtp_pids()) == 2), server.log()
    assert "event=child_died role=lmtp" in server.log()
    msg = make_message(to="alice@lmtp.test")
    send(server, ["alice@lmtp.test"], msg)
    assert wait_until(lambda: log_lines(server, "delivered", "alice@lmtp.test")), server.log()
    assert [stored_original(g) for g in dovecot.fetch_all("alice@lmtp.test")] == [msg]

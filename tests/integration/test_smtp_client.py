"""The outbound SMTP client (src/deliver/smtp_client*.c) end to end,
through the tests/tools/smtp_send driver, against real peers on
loopback:

* a `sealpost serve` instance: byte-exact delivery including
  dot-stuffing, STARTTLS, PIPELINING with per-recipient replies,
  connection reuse;
* an aiosmtpd server in a thread with scripted replies (4xx / 5xx per
  RCPT, MAIL refused, 5xx after the data, SIZE and SMTPUTF8 checks, a
  slow final reply);
* a tiny scripted socket server for what aiosmtpd cannot do: a 4xx
  greeting, silence, an over-long reply line, a broken or refused
  STARTTLS.
"""
import asyncio
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, strip_added_headers

SMTP_SEND = os.environ.get("SMTP_SEND_BIN") or str(
    Path(__file__).resolve().parents[2] / "build" / "tests" / "smtp_send")

pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402


# ---------------------------------------------------------------- driver

class Sent:
    """Parsed smtp_send output."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.peer = self.tls = self.open_failed = None
        self.rcpts = []             # [(addr, {outcome, code, dsn, text})] in order
        self.connection_ok = []
        for line in self.out.splitlines():
            key, _, value = line.partition(": ")
            if key == "peer":
                self.peer = value
            elif key == "tls":
                self.tls = value
            elif key == "connection_ok":
                self.connection_ok.append(value == "1")
            elif key == "open_failed":
                self.open_failed = fields(value)
            elif key == "rcpt":
                m = re.match(r"<([^>]*)> (.*)", value)
                self.rcpts.append((m.group(1), fields(m.group(2))))

    def rcpt(self, addr, n=0):
        found = [r for a, r in self.rcpts if a == addr]
        assert len(found) > n, self.dump()
        return found[n]

    def dump(self):
        return f"rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def fields(text):
    """'outcome=x code=250 dsn=2.0.0 text=the rest' -> dict."""
    m = re.match(r"outcome=(\S+) code=(\d+) dsn=(\S*) text=(.*)", text)
    assert m, text
    return {"outcome": m.group(1), "code": int(m.group(2)), "dsn": m.group(3),
            "text": m.group(4)}


def smtp_send(msg_file, hosts, rcpts, sender="sender@example.net", port=None,
              timeout=None, extra=(), wall=60):
    """hosts: [(name, [addr, ...])]; addr may be "IP" or "IP:PORT"."""
    args = [SMTP_SEND]
    for name, addrs in hosts:
        args += ["--host", name]
        for a in addrs:
            args += ["--addr", a]
    if port is not None:
        args += ["--port", str(port)]
    args += ["--from", sender]
    for r in rcpts:
        args += ["--to", r]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    args += list(extra) + [str(msg_file)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=wall)
    # with an ASan build (SMTP_SEND_BIN) any report fails the test
    assert "Sanitizer" not in proc.stderr, proc.stderr
    return Sent(proc)


def wait_log(srv, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while needle not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv.log()


def write_msg(tmp_path, data: bytes, name="msg.eml"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


DOTTY = (b"From: sender@example.net\r\n"
         b"To: someone@other.test\r\n"
         b"Subject: dots\r\n"
         b"\r\n"
         b".a line starting with a dot\r\n"
         b"..two dots\r\n"
         b".\r\n"
         b"a lone dot above, not the end\r\n"
         b"...\r\n"
         b"end.\r\n")


def big_dotty(size=600 * 1024):
    """Larger than several spool chunks (64 KiB) and the output high water
    mark, with '.' lines landing on and around the chunk boundaries."""
    head = b"From: sender@example.net\r\nSubject: big\r\n\r\n"
    body = bytearray()
    i = 0
    while len(head) + len(body) < size:
        line = (b"." if i % 3 == 0 else b"") + b"line %06d " % i + b"x" * (i % 97) + b"\r\n"
        body += line
        i += 1
    data = bytearray(head + body)
    # a dot exactly at each 64 KiB boundary of the file
    for k in range(1, len(data) // 65536 + 1):
        pos = k * 65536
        if pos + 2 < len(data) and data[pos - 2:pos] == b"\r\n":
            data[pos] = ord(".")
    return bytes(data)


# ---------------------------------------------------------------- aiosmtpd

class ScriptedHandler:
    """Replies by recipient local part: tempfail* -> 450, reject* -> 550,
    datafail* (accepted) -> 554 after the data, slow* -> the final reply
    only after 5 s. A sender deferme@ -> MAIL gets 451."""

    def __init__(self):
        self.mails = []
        self.messages = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mails.append((address, list(mail_options)))
        if address.startswith("deferme@"):
            return "451 4.3.0 Sender deferred, try later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("tempfail"):
            return "450 4.2.1 Mailbox busy, try again"
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient ok"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(5)
        if any(r.startswith("datafail") for r in envelope.rcpt_tos):
            return "554 5.6.0 Content rejected"
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              bytes(envelope.original_content)))
        return "250 2.0.0 Queued as 1234"


@pytest.fixture
def aio():
    """Factory: aio(**Controller kwargs) -> (handler, port); stopped after."""
    started = []

    def factory(**kw):
        handler = ScriptedHandler()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False, **kw)
        ctl.start()
        started.append(ctl)
        return handler, port

    yield factory
    for ctl in started:
        ctl.stop()


# ---------------------------------------------------------------- raw script

class LineReader:
    """Lines from a socket, with the unread bytes visible in self.buf."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def fill_nowait(self):
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self.buf += chunk
        except (BlockingIOError, InterruptedError):
            return
        finally:
            self.sock.settimeout(timeout)


class RawServer:
    """A minimal scripted SMTP server on loopback, one thread per
    connection. greeting: the first reply (None: stay silent). ehlo: the
    EHLO reply lines. starttls: "garbage" (220 then non-TLS bytes),
    a reply such as "454 4.7.0 TLS not available", or None (not
    offered). Everything else is answered like a permissive MTA and the
    messages are kept in self.messages."""

    def __init__(self, greeting=b"220 raw.test ESMTP", starttls=None, ehlo_extra=(),
                 first_greeting=None, ehlo_reply=None, stall_data=False,
                 family=socket.AF_INET):
        self.greeting = greeting
        self.stall_data = stall_data
        self.ehlo_reply = ehlo_reply
        self.first_greeting = first_greeting
        self.starttls = starttls
        self.ehlo_extra = list(ehlo_extra)
        self.messages = []
        self.connections = 0
        self.commands = []
        self.pipelined = []         # per MAIL: was DATA already sent with it?
        self.sock = socket.socket(family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        t = threading.Thread(target=self.accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self.serve, args=(conn, self.connections), daemon=True)
            t.start()
            self.threads.append(t)

    def serve(self, conn, number):
        conn.settimeout(30)
        f = LineReader(conn)
        try:
            greeting = self.greeting
            if self.first_greeting is not None and number == 1:
                greeting = self.first_greeting
            if greeting is None:
                time.sleep(30)
                return
            conn.sendall(greeting + b"\r\n")
            data_mode = False
            msg = b""
            while True:
                line = f.readline()
                if not line:
                    return
                if data_mode:
                    if line == b".\r\n":
                        data_mode = False
                        self.messages.append(msg)
                        conn.sendall(b"250 2.0.0 Ok queued\r\n")
                    else:
                        msg += line[1:] if line.startswith(b".") else line
                    continue
                cmd = line.rstrip(b"\r\n")
                self.commands.append((number, cmd))
                verb = cmd[:4].upper()
                if verb == b"EHLO" and self.ehlo_reply is not None:
                    conn.sendall(self.ehlo_reply + b"\r\n")
                elif verb == b"EHLO":
                    lines = [b"raw.test"] + self.ehlo_extra
                    if self.starttls is not None:
                        lines.append(b"STARTTLS")
                    out = b"".join(b"250-" + ln + b"\r\n" for ln in lines[:-1])
                    conn.sendall(out + b"250 " + lines[-1] + b"\r\n")
                elif verb == b"STAR":
                    if self.starttls == "garbage":
                        conn.sendall(b"220 2.0.0 Go ahead\r\nthis is not a TLS server hello\r\n")
                        time.sleep(0.5)
                        return
                    conn.sendall(self.starttls + b"\r\n")
                elif verb == b"MAIL":
                    # Was the rest of the group sent without waiting for
                    # this reply (RFC 2920)? Give it time to arrive first.
                    time.sleep(0.2)
                    f.fill_nowait()
                    self.pipelined.append(b"DATA\r\n" in f.buf)
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"DATA":
                    data_mode = True
                    msg = b""
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    if self.stall_data:
                        time.sleep(20)      # read nothing: the client's writes stall
                        return
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def raw_server():
    servers = []

    def factory(**kw):
        srv = RawServer(**kw)
        servers.append(srv)
        return srv

    yield factory
    for srv in servers:
        srv.stop()


# ======================================================= against sealpost

def test_starttls_and_byte_exact_dot_stuffing(make_tls_server, tmp_path):
    srv = make_tls_server()
    msg = write_msg(tmp_path, DOTTY)
    res = smtp_send(msg, [("mx.example.test", ["127.0.0.1"])], ["dots@other.test"],
                    port=srv.port)
    assert res.rc == 0, res.dump()
    assert res.peer == f"mx.example.test[127.0.0.1]:{srv.port}"
    assert res.tls and re.match(r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)", res.tls), \
        res.dump()
    assert "server-signature ECDSA (P-256)" in res.tls, res.tls
    r = res.rcpt("dots@other.test")
    assert r["outcome"] == "delivered" and r["code"] == 250, res.dump()
    assert r["dsn"].startswith("2."), r
    files = srv.wait_messages("dots", 1, domain="other.test")
    assert len(files) == 1, srv.log()
    assert strip_added_headers(files[0].read_bytes()) == DOTTY
    srv.wait_log("event=tls")


def test_large_message_streams_byte_exact(make_tls_server, tmp_path):
    data = big_dotty()
    srv = make_tls_server(settings={"max_message_size": "2M"})
    msg = write_msg(tmp_path, data)
    res = smtp_send(msg, [("mx.example.test", ["127.0.0.1"])], ["big@other.test"],
                    port=srv.port)
    assert res.rc == 0, res.dump()
    assert res.tls and res.tls.startswith("TLSv1."), res.dump()
    files = srv.wait_messages("big", 1, domain="other.test")
    assert len(files) == 1, srv.log()
    assert strip_added_headers(files[0].read_bytes()) == data


def test_message_without_final_crlf_is_terminated(make_server, tmp_path):
    srv = make_server()
    data = b"Subject: no newline\r\n\r\n.last line without CRLF"
    res = smtp_send(write_msg(tmp_path, data), [("mx.example.test", ["127.0.0.1"])],
                    ["eol@other.test"], port=srv.port)
    assert res.rc == 0, res.dump()
    assert res.tls == "none"
    files = srv.wait_messages("eol", 1, domain="other.test")
    assert strip_added_headers(files[0].read_bytes()) == data + b"\r\n"


def test_pipelined_per_recipient_replies_and_reuse(make_server, tmp_path):
    srv = make_server()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx.example.test", ["127.0.0.1"])],
                    ["alice@example.test", "nobody@example.test", "bob@example.test"],
                    port=srv.port, extra=["--count", "2"])
    assert res.rc == 3, res.dump()
    assert res.connection_ok == [True, True], res.dump()
    for n in range(2):
        assert res.rcpt("alice@example.test", n)["outcome"] == "delivered"
        assert res.rcpt("bob@example.test", n)["outcome"] == "delivered"
        bad = res.rcpt("nobody@example.test", n)
        assert bad["outcome"] == "failed" and bad["code"] == 550, res.dump()
        assert bad["dsn"] == "5.1.1" and "nobody@example.test" in bad["text"], bad
    assert len(srv.wait_messages("alice", 2)) == 2
    assert len(srv.wait_messages("bob", 2)) == 2
    # both transactions went over one connection, which ended with QUIT
    log = wait_log(srv, "messages=2 ")
    assert re.search(r"event=disconnect session=\S+ client=127.0.0.1 \S+ commands=12 "
                     r"messages=2 rcpts=4 rejected=2", log), log


def test_no_recipient_accepted_leaves_connection_usable(make_server, tmp_path):
    srv = make_server()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx.example.test", ["127.0.0.1"])],
                    ["nobody@example.test", "noone@example.test"], port=srv.port,
                    extra=["--count", "2"])
    assert res.rc == 3
    assert res.connection_ok == [True, True], res.dump()
    assert [r["outcome"] for _, r in res.rcpts] == ["failed"] * 4, res.dump()


def test_require_tls_without_starttls_defers(make_server, tmp_path):
    srv = make_server()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx.example.test", ["127.0.0.1"])],
                    ["x@other.test"], port=srv.port, extra=["--require-tls"])
    assert res.rc == 4, res.dump()
    assert res.open_failed["outcome"] == "deferred"
    assert res.open_failed["text"].startswith("TLS is required but"), res.dump()
    assert "does not offer STARTTLS" in res.open_failed["text"]
    assert not srv.messages("x", "other.test")


def test_require_tls_with_starttls_delivers(make_tls_server, tmp_path):
    srv = make_tls_server()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx.example.test", ["127.0.0.1"])],
                    ["y@other.test"], port=srv.port, extra=["--require-tls"])
    assert res.rc == 0, res.dump()
    assert res.tls.startswith("TLSv1.")


# ======================================================= against aiosmtpd

def test_rcpt_4xx_and_5xx_decide_each_recipient(aio, tmp_path):
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["ok@aio.test", "tempfail@aio.test", "reject@aio.test"], port=port)
    assert res.rc == 3, res.dump()
    assert res.rcpt("ok@aio.test")["outcome"] == "delivered"
    t = res.rcpt("tempfail@aio.test")
    assert (t["outcome"], t["code"], t["dsn"]) == ("deferred", 450, "4.2.1"), t
    assert t["text"] == "450 4.2.1 Mailbox busy, try again"
    r = res.rcpt("reject@aio.test")
    assert (r["outcome"], r["code"], r["dsn"]) == ("failed", 550, "5.1.1"), r
    assert res.connection_ok == [True]
    assert len(handler.messages) == 1
    assert handler.messages[0][1] == ["ok@aio.test"]
    assert handler.messages[0][2] == DOTTY


def test_all_rcpts_refused_sends_no_data(aio, tmp_path):
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["reject1@aio.test", "tempfail@aio.test"], port=port,
                    extra=["--count", "2"])
    assert res.connection_ok == [True, True], res.dump()
    assert res.rcpt("reject1@aio.test")["outcome"] == "failed"
    assert res.rcpt("tempfail@aio.test")["outcome"] == "deferred"
    assert handler.messages == []
    assert len(handler.mails) == 2      # the second transaction ran on the same connection


def test_mail_refused_applies_to_every_rcpt(aio, tmp_path):
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["a@aio.test", "b@aio.test"], sender="deferme@example.net", port=port)
    for addr in ("a@aio.test", "b@aio.test"):
        r = res.rcpt(addr)
        assert (r["outcome"], r["code"], r["dsn"]) == ("deferred", 451, "4.3.0"), res.dump()
    assert res.connection_ok == [True]
    assert handler.messages == []


def test_5xx_after_data_fails_every_accepted_rcpt(aio, tmp_path):
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["datafail@aio.test", "other@aio.test", "reject@aio.test"], port=port)
    for addr in ("datafail@aio.test", "other@aio.test"):
        r = res.rcpt(addr)
        assert (r["outcome"], r["code"], r["dsn"]) == ("failed", 554, "5.6.0"), res.dump()
        assert r["text"] == "554 5.6.0 Content rejected"
    assert res.rcpt("reject@aio.test")["code"] == 550
    assert res.connection_ok == [True]


def test_mail_parameters(aio, tmp_path):
    handler, port = aio(enable_SMTPUTF8=True)
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["ok@aio.test"], port=port, extra=["--8bitmime", "--smtputf8"])
    assert res.rc == 0, res.dump()
    _, opts = handler.mails[0]
    assert f"SIZE={len(DOTTY)}" in opts, opts
    assert "BODY=8BITMIME" in opts and "SMTPUTF8" in opts, opts


def test_size_limit_fails_without_sending(aio, tmp_path):
    handler, port = aio(data_size_limit=100)
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["ok@aio.test", "ok2@aio.test"], port=port)
    assert res.rc == 3
    for addr in ("ok@aio.test", "ok2@aio.test"):
        r = res.rcpt(addr)
        assert (r["outcome"], r["dsn"]) == ("failed", "5.3.4"), res.dump()
        assert "exceeds size limit 100" in r["text"]
    assert res.connection_ok == [True]
    assert handler.mails == []          # refused before MAIL


def test_smtputf8_required_but_not_offered(aio, tmp_path):
    handler, port = aio(enable_SMTPUTF8=False)
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["ok@aio.test"], port=port, extra=["--smtputf8"])
    r = res.rcpt("ok@aio.test")
    assert (r["outcome"], r["dsn"]) == ("failed", "5.6.7"), res.dump()
    assert handler.mails == []


def test_requiretls_without_tls_fails(aio, tmp_path):
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["ok@aio.test"], port=port, extra=["--requiretls"])
    r = res.rcpt("ok@aio.test")
    # RFC 8689 4.2: no (authenticated) TLS is a TLS failure, 5.7.10 (the
    # peer's missing REQUIRETLS, 5.7.30, is tested in test_dane.py)
    assert (r["outcome"], r["dsn"]) == ("failed", "5.7.10"), res.dump()
    assert handler.mails == []


def test_final_reply_timeout_defers(aio, tmp_path):
    handler, port = aio()
    start = time.monotonic()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("aio.test", ["127.0.0.1"])],
                    ["slow@aio.test"], port=port, timeout=2)
    assert time.monotonic() - start < 15
    r = res.rcpt("slow@aio.test")
    assert r["outcome"] == "deferred" and r["code"] == 0, res.dump()
    assert "timed out while sending end of data" in r["text"], r
    assert res.connection_ok == [False]


# ======================================================= scripted peers

def test_4xx_greeting_then_next_host(raw_server, aio, tmp_path):
    busy = raw_server(greeting=b"421 4.3.2 raw.test busy, come back later")
    handler, port = aio()
    res = smtp_send(write_msg(tmp_path, DOTTY),
                    [("mx1.example.test", [f"127.0.0.1:{busy.port}"]),
                     ("mx2.example.test", [f"127.0.0.1:{port}"])],
                    ["ok@aio.test"])
    assert res.rc == 0, res.dump()
    assert res.peer == f"mx2.example.test[127.0.0.1]:{port}"
    assert busy.connections == 1
    assert len(handler.messages) == 1
    assert "refused to talk to me: 421 4.3.2 raw.test busy" in res.err, res.dump()


def test_every_host_fails_reports_last_error(raw_server, tmp_path):
    closed = free_port()
    busy = raw_server(greeting=b"554 5.3.2 no service")
    res = smtp_send(write_msg(tmp_path, DOTTY),
                    [("mx1.example.test", [f"127.0.0.1:{closed}"]),
                     ("mx2.example.test", [f"127.0.0.1:{busy.port}"])],
                    ["x@example.net"])
    assert res.rc == 4, res.dump()
    f = res.open_failed
    assert f["outcome"] == "deferred" and f["code"] == 554, f
    assert f["dsn"] == "4.3.2", f          # a deferral: class 4
    assert f["text"] == (f"host mx2.example.test[127.0.0.1]:{busy.port} refused to talk "
                         f"to me: 554 5.3.2 no service")
    assert (f"connect to mx1.example.test[127.0.0.1]:{closed}: Connection refused"
            in res.err), res.dump()


def test_connection_refused_text(tmp_path):
    closed = free_port()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=closed)
    assert res.open_failed == {
        "outcome": "deferred", "code": 0, "dsn": "4.4.1",
        "text": f"connect to mx1.example.test[127.0.0.1]:{closed}: Connection refused"}, \
        res.dump()


def test_silent_server_times_out(raw_server, tmp_path):
    silent = raw_server(greeting=None)
    start = time.monotonic()
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=silent.port, timeout=1)
    assert time.monotonic() - start < 10
    assert res.rc == 4, res.dump()
    assert res.open_failed["outcome"] == "deferred"
    assert res.open_failed["text"] == (
        f"conversation with mx1.example.test[127.0.0.1]:{silent.port} timed out while "
        f"receiving the initial greeting"), res.dump()


def test_overlong_reply_line_is_a_protocol_error(raw_server, tmp_path):
    srv = raw_server(greeting=b"220 " + b"x" * 600)
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5)
    assert res.rc == 4, res.dump()
    assert "protocol error" in res.open_failed["text"]
    assert "reply line too long" in res.open_failed["text"]


def test_failed_handshake_falls_back_to_cleartext(raw_server, tmp_path):
    srv = raw_server(starttls="garbage")
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5)
    assert res.rc == 0, res.dump()
    assert res.tls == "none"
    assert srv.connections == 2          # reconnected to the same address
    assert srv.messages == [DOTTY]
    assert not any(c == 2 and cmd.upper() == b"STARTTLS" for c, cmd in srv.commands)
    assert "retry without STARTTLS" in res.err


def test_failed_handshake_with_require_tls_defers(raw_server, tmp_path):
    srv = raw_server(starttls="garbage")
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5, extra=["--require-tls"])
    assert res.rc == 4, res.dump()
    assert res.open_failed["text"].startswith(
        "TLS is required but the TLS handshake with mx1.example.test"), res.dump()
    assert srv.messages == []


def test_refused_starttls_continues_in_cleartext(raw_server, tmp_path):
    srv = raw_server(starttls=b"454 4.7.0 TLS not available")
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5)
    assert res.rc == 0, res.dump()
    assert res.tls == "none"
    assert srv.connections == 1
    assert srv.messages == [DOTTY]

    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5, extra=["--require-tls"])
    assert res.rc == 4, res.dump()
    assert "refused STARTTLS: 454 4.7.0 TLS not available" in res.open_failed["text"]
    assert len(srv.messages) == 1


def test_ehlo_refused_falls_back_to_helo(raw_server, tmp_path):
    srv = raw_server(ehlo_reply=b"502 5.5.1 EHLO not implemented")
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["x@example.net"], port=srv.port, timeout=5)
    assert res.rc == 0, res.dump()
    verbs = [cmd.split(b" ")[0].upper() for _, cmd in srv.commands]
    assert verbs[:3] == [b"EHLO", b"HELO", b"MAIL"], srv.commands
    assert srv.commands[2][1] == b"MAIL FROM:<sender@example.net>"    # no SIZE without EHLO
    assert srv.messages == [DOTTY]


def test_stalled_data_times_out(raw_server, tmp_path):
    """A server that stops reading after 354: the output stays bounded and
    the data_block timeout defers."""
    srv = raw_server(stall_data=True)
    line = b"x" * 998 + b"\r\n"
    msg = write_msg(tmp_path, b"Subject: big\r\n\r\n" + line * (40 * 1024))   # 40 MB
    start = time.monotonic()
    res = smtp_send(msg, [("mx1.example.test", ["127.0.0.1"])], ["x@example.net"],
                    port=srv.port, timeout=2)
    assert time.monotonic() - start < 15
    r = res.rcpt("x@example.net")
    assert r["outcome"] == "deferred" and r["code"] == 0, res.dump()
    assert "timed out while sending message body" in r["text"], r
    assert res.connection_ok == [False]


def test_ipv6_peer(raw_server, tmp_path):
    try:
        srv = raw_server(family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx6.example.test", [f"[::1]:{srv.port}"])],
                    ["x@example.net"], timeout=5)
    assert res.rc == 0, res.dump()
    assert res.peer == f"mx6.example.test[::1]:{srv.port}"
    assert srv.messages == [DOTTY]


def test_pipelining_and_dsn_parameters(raw_server, tmp_path):
    srv = raw_server(ehlo_extra=[b"PIPELINING", b"SIZE 1000000", b"DSN", b"8BITMIME"])
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["a@example.net", "b@example.net"], port=srv.port, timeout=5,
                    extra=["--ret", "HDRS", "--envid", "QQ314159", "--8bitmime",
                           "--notify", "SUCCESS,FAILURE", "--orcpt", "rfc822;x+2Bo@example.net",
                           "--to", "c@example.net"])
    assert res.rc == 0, res.dump()
    cmds = [cmd for _, cmd in srv.commands]
    assert cmds[1:6] == [
        f"MAIL FROM:<sender@example.net> SIZE={len(DOTTY)} BODY=8BITMIME RET=HDRS "
        f"ENVID=QQ314159".encode(),
        b"RCPT TO:<a@example.net>",
        b"RCPT TO:<b@example.net>",
        b"RCPT TO:<c@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2Bo@example.net",
        b"DATA"], cmds
    assert srv.pipelined == [True]
    assert srv.messages == [DOTTY]


def test_no_pipelining_no_dsn_one_command_at_a_time(raw_server, tmp_path):
    srv = raw_server(ehlo_extra=[b"SIZE"])
    res = smtp_send(write_msg(tmp_path, DOTTY), [("mx1.example.test", ["127.0.0.1"])],
                    ["a@example.net"], port=srv.port, timeout=5,
                    extra=["--ret", "FULL", "--envid", "X", "--8bitmime",
                           "--notify", "NEVER", "--to", "b@example.net"])
    assert res.rc == 0, res.dump()
    cmds = [cmd for _, cmd in srv.commands]
    # no DSN, no 8BITMIME offered: plain MAIL/RCPT (SIZE without a limit still gets SIZE=)
    assert cmds[1:5] == [f"MAIL FROM:<sender@example.net> SIZE={len(DOTTY)}".encode(),
                         b"RCPT TO:<a@example.net>", b"RCPT TO:<b@example.net>", b"DATA"], cmds
    assert srv.pipelined == [False]
    assert srv.messages == [DOTTY]

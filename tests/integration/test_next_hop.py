"""A hostile or broken next hop against sealpost's outbound SMTP client
(issue 10, items 7-9), end to end: sealpost relays through
`relayhost = [127.0.0.1]:PORT` to a next hop written here with plain
sockets, which can answer out of turn, die while idle, or put forged
log fields and raw 8-bit bytes into its replies.

What must hold: a message is counted delivered only after the final
reply to the end of its body, any reply that belongs to no command is
a protocol error (the recipients are deferred with 4.5.0, the
connection is dropped, the message is delivered on a later attempt to
a sane server); a connection that dies while idle is never handed the
next message; and the log lines that carry remote text have exactly
their own fields.
"""
import re
import smtplib
import socket
import threading
import time

import pytest

from smtpwire import wait_until

SENDER = "alice@example.test"


class Hop:
    """A next hop on 127.0.0.1, one thread per connection.

    mode (read when a connection is accepted, so a test can switch it
    between attempts):
      "sane"        a well-behaved MTA;
      "data250"     answers DATA with 250 and never reads a body;
      "mail_extra"  sends a second 250 after the reply to MAIL;
      "rcpt_dup"    sends every RCPT reply twice (in one write);
      "greet"       greets with self.greeting and hangs up after QUIT.
    after_dot: what happens 0.5 s after the reply to the end of data of
    a connection's first message: None (nothing), "close", "421"
    (unsolicited 421, then close) or "stray" (an extra 250, the socket
    stays open).
    rcpt_reply(addr, attempt) and final_reply(attempt) may return the
    reply line to use (bytes, without CRLF), or None for the default.
    """

    def __init__(self, mode="sane", pipelining=False, after_dot=None):
        self.mode = mode
        self.pipelining = pipelining
        self.after_dot = after_dot
        self.greeting = b"220 hop.test ESMTP"
        self.rcpt_reply = lambda addr, attempt: None
        self.final_reply = lambda attempt: None
        self.lock = threading.Lock()
        self.bodies = []            # (connection number, rcpts, data)
        self.connections = 0
        self.rcpt_attempts = {}
        self.data_attempts = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def stop(self):
        self.stopping = True
        self.sock.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self.serve_safely, args=(conn, number, self.mode),
                             daemon=True).start()

    def serve_safely(self, conn, number, mode):
        try:
            self.serve(conn, number, mode)
        except OSError:
            pass                    # the client hung up: that is its right
        finally:
            conn.close()

    def ehlo_reply(self):
        lines = [b"hop.test"] + ([b"PIPELINING"] if self.pipelining else []) + [b"8BITMIME"]
        return (b"".join(b"250-" + ln + b"\r\n" for ln in lines[:-1]) +
                b"250 " + lines[-1] + b"\r\n")

    def serve(self, conn, number, mode):
        conn.settimeout(30)
        reader = conn.makefile("rb")
        conn.sendall((self.greeting if mode == "greet" else b"220 hop.test ESMTP") + b"\r\n")
        rcpts, messages = [], 0
        while True:
            line = reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(self.ehlo_reply())
            elif verb == b"MAIL":
                rcpts = []
                conn.sendall(b"250 2.1.0 ok\r\n" * (2 if mode == "mail_extra" else 1))
            elif verb == b"RCPT":
                addr = re.search(rb"<([^>]*)>", line).group(1).decode()
                with self.lock:
                    attempt = self.rcpt_attempts[addr] = self.rcpt_attempts.get(addr, 0) + 1
                reply = self.rcpt_reply(addr, attempt) or b"250 2.1.5 ok"
                if reply.startswith(b"2"):
                    rcpts.append(addr)
                conn.sendall((reply + b"\r\n") * (2 if mode == "rcpt_dup" else 1))
            elif verb == b"DATA":
                if not rcpts or mode == "data250":
                    conn.sendall(b"554 5.5.1 no valid recipients\r\n" if not rcpts
                                 else b"250 2.0.0 ok thanks\r\n")
                    continue
                conn.sendall(b"354 go ahead\r\n")
                data = self.read_body(reader)
                if data is None:
                    return
                with self.lock:
                    self.data_attempts += 1
                    attempt = self.data_attempts
                    self.bodies.append((number, list(rcpts), data))
                messages += 1
                conn.sendall((self.final_reply(attempt) or b"250 2.0.0 queued") + b"\r\n")
                if messages == 1 and self.after_dot:
                    time.sleep(0.5)
                    if self.after_dot == "close":
                        return
                    if self.after_dot == "421":
                        conn.sendall(b"421 4.4.2 hop.test idle timeout\r\n")
                        return
                    conn.sendall(b"250 2.0.0 stray\r\n")
            elif verb == b"RSET" or verb == b"NOOP":
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 what\r\n")

    @staticmethod
    def read_body(reader):
        data = b""
        while True:
            line = reader.readline()
            if not line:
                return None
            if line == b".\r\n":
                return data
            data += line[1:] if line.startswith(b".") else line


@pytest.fixture
def hop():
    made = []

    def factory(**kw):
        h = Hop(**kw)
        made.append(h)
        return h
    yield factory
    for h in made:
        h.stop()


def relay_server(make_server, hop, retry="1s"):
    return make_server(extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [127.0.0.1]:{hop.port}
retry = {retry}
connect_timeout = 2s
smtp_timeout = 5s
max_queue_lifetime = 1h
""")


def message(msgid, to):
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: next hop\r\n"
            f"Message-ID: {msgid}\r\n\r\nHello from the test.\r\n").encode()


def send(server, rcpts, data, notify=None):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        opts = [f"NOTIFY={notify}"] if notify else []
        assert c.sendmail(SENDER, rcpts, data, rcpt_options=opts) == {}


def lines_with(server, needle, rcpt_domain="@remote.test>"):
    """Log lines with needle about a recipient at remote.test (DSNs to
    the local sender are delivered too)."""
    return [ln for ln in server.log().splitlines() if needle in ln and rcpt_domain in ln]


# ------------------------------------------------------------ 7. strict replies

@pytest.mark.parametrize("mode,pipelining", [
    ("data250", False),         # 250 in answer to DATA
    ("data250", True),
    ("mail_extra", True),       # a stray extra reply after MAIL, PIPELINING advertised
    ("rcpt_dup", False),        # a duplicated RCPT reply without PIPELINING
])
def test_reply_out_of_turn_defers_and_the_next_attempt_delivers(make_server, hop, mode,
                                                                pipelining):
    h = hop(mode=mode, pipelining=pipelining)
    server = relay_server(make_server, h)
    data = message(f"<{mode}-{int(pipelining)}@next.hop>", "bob@remote.test")
    send(server, ["bob@remote.test"], data, notify="SUCCESS,FAILURE")

    assert wait_until(lambda: lines_with(server, "event=deferred"), 20), server.log()[-3000:]
    deferred = lines_with(server, "event=deferred")[0]
    assert "to=<bob@remote.test>" in deferred and "dsn=4.5.0" in deferred, deferred
    assert "protocol error" in deferred, deferred
    log = server.log()
    assert "event=delivered" not in log, log[-3000:]
    assert "event=removed" not in log and "event=success_dsn" not in log
    assert any(not n.endswith(".state") for n in server.queue_files())   # still queued
    assert server.messages("alice") == []       # no DSN of any kind
    assert h.bodies == []                       # no body ever went out

    h.mode = "sane"                             # the next attempt meets a sane server
    assert wait_until(lambda: h.bodies, 20), server.log()[-3000:]
    assert server.wait_queue_empty()
    time.sleep(0.3)
    assert len(h.bodies) == 1
    assert h.bodies[0][1] == ["bob@remote.test"] and h.bodies[0][2].endswith(data)
    delivered = lines_with(server, "event=delivered")
    assert len(delivered) == 1, delivered
    log = server.log()
    assert log.index("event=deferred") < log.index("event=delivered id=")
    assert "dsn=4.5.0" not in delivered[0]


# ------------------------------------------------------------ 8. idle connection dies

@pytest.mark.parametrize("after_dot", ["close", "421", "stray"])
def test_idle_connection_that_dies_is_not_handed_the_next_message(make_server, hop,
                                                                  after_dot):
    """The next hop ends (or breaks) the idle connection 0.5 s after the
    250 of the first message; the second message, 2 s later (well within
    the 5 s idle window), goes out at once on a new connection instead of
    being deferred until the retry (5 minutes here)."""
    h = hop(pipelining=True, after_dot=after_dot)
    server = relay_server(make_server, h, retry="5m")
    first = message("<first@idle>", "bob@remote.test")
    send(server, ["bob@remote.test"], first)
    assert wait_until(lambda: lines_with(server, "event=delivered"), 20), server.log()[-3000:]
    time.sleep(2)
    second = message("<second@idle>", "carol@remote.test")
    send(server, ["carol@remote.test"], second)
    assert wait_until(lambda: len(h.bodies) == 2, 20), server.log()[-3000:]
    assert server.wait_queue_empty()
    log = server.log()
    assert "event=deferred" not in log, log[-3000:]
    assert len(lines_with(server, "event=delivered")) == 2
    assert [b[0] for b in h.bodies] == [1, 2]   # the second on a new connection
    assert h.bodies[1][2].endswith(second)


# ------------------------------------------------------------ 9. remote text in logs

FORGE = b'" status=bounced dsn=5.1.1 to=<x@y> forged="1 \xff\xfe end'


def log_fields(line):
    """key=value fields of one log line, with the logger's quoting: a
    value is bare (no blank, '"' or '\\') or "quoted" with \\" \\\\ \\xNN
    escapes. Values come back as bytes; any other shape fails."""
    rest = line.split("]: ", 1)[1]
    fields, i = {}, 0
    while i < len(rest):
        m = re.compile(r"([a-z_]+)=").match(rest, i)
        assert m, (rest, i)
        key, i = m.group(1), m.end()
        if rest.startswith('"', i):
            i += 1
            value = bytearray()
            while rest[i] != '"':
                if rest[i] == "\\" and rest[i + 1] == "x":
                    value.append(int(rest[i + 2:i + 4], 16))
                    i += 4
                elif rest[i] == "\\":
                    assert rest[i + 1] in '"\\', rest
                    value.append(ord(rest[i + 1]))
                    i += 2
                else:
                    value.append(ord(rest[i]))
                    i += 1
            i += 1
        else:
            end = rest.find(" ", i)
            end = len(rest) if end < 0 else end
            value = rest[i:end].encode()
            assert b'"' not in value and b"\\" not in value, rest
            i = end
        assert key not in fields, (key, rest)
        fields[key] = bytes(value)
        assert i == len(rest) or rest[i] == " ", rest
        i += 1
    return fields


def raw_log(server):
    raw = server.log_path.read_bytes()
    assert max(raw) < 0x80, [ln for ln in raw.splitlines() if max(ln, default=0) >= 0x80]
    return raw.decode("ascii")


def test_reply_text_cannot_forge_log_fields(make_server, hop):
    h = hop(pipelining=True)
    h.rcpt_reply = lambda addr, attempt: (
        b"550 5.1.1 gone" + FORGE if addr.startswith("gone")
        else b"451 4.3.0 later" + FORGE if attempt == 1 else None)
    h.final_reply = lambda attempt: b"250 2.0.0 ok" + FORGE
    server = relay_server(make_server, h)
    send(server, ["gone@remote.test", "later@remote.test"],
         message("<forge@next.hop>", "later@remote.test"))
    assert wait_until(lambda: h.bodies, 20), server.log()[-3000:]
    assert server.wait_queue_empty()
    log = raw_log(server)
    want = {
        "bounced": ({"level", "event", "id", "to", "relay", "dsn", "status", "reply"},
                    b"550 5.1.1 gone", b"bounced"),
        "deferred": ({"level", "event", "id", "to", "relay", "dsn", "attempts", "retry_in",
                      "status", "reply"}, b"451 4.3.0 later", b"deferred"),
        "delivered": ({"level", "event", "id", "to", "relay", "delay", "attempts", "tls",
                       "status", "reply"}, b"250 2.0.0 ok", b"sent"),
    }
    for event, (keys, code, status) in want.items():
        lines = [ln for ln in log.splitlines()
                 if f" event={event} " in ln and "@remote.test>" in ln]
        assert len(lines) == 1, (event, lines)
        f = log_fields(lines[0])
        assert set(f) == keys, (event, lines[0])
        assert f["status"] == status and f["reply"] == code + FORGE, (event, f)
        assert f["to"] in (b"<gone@remote.test>", b"<later@remote.test>")
    for line in log.splitlines():
        if "forged" in line and "event=smtp_reply" not in line:
            assert "forged" not in log_fields(line), line


def test_refusing_greeting_cannot_forge_log_fields(make_server, hop):
    """A next hop that refuses in its greeting: the delivery process's
    attempt and connection failure lines and the queue's deferral line
    all keep their own fields."""
    h = hop(mode="greet")
    h.greeting = b"554 5.7.1 go away" + FORGE
    server = relay_server(make_server, h)
    send(server, ["bob@remote.test"], message("<greet@next.hop>", "bob@remote.test"))
    assert wait_until(lambda: lines_with(server, "event=deferred"), 20), server.log()[-3000:]
    assert wait_until(lambda: lines_with(server, "event=connect_failed", ""), 5)
    log = raw_log(server)
    checked = set()
    for line in log.splitlines():
        if "go away" not in line:
            continue
        f = log_fields(line)
        assert "forged" not in f, line
        assert f.get("status", b"deferred") == b"deferred", line
        checked.add(f["event"])
    assert {b"smtp_attempt_failed", b"connect_failed", b"deferred"} <= checked, checked

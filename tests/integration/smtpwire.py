"""Helpers for the end-to-end tests: a raw SMTP client that sends exact
bytes and reads replies one by one, message builders, and Maildir
inspection across all mailboxes. Standard library only."""
import email
import email.policy
import re
import socket
import time
import uuid
from pathlib import Path

CRLF = b"\r\n"
# Replies that must carry an enhanced status code (RFC 2034): every one
# except the greeting, the EHLO/HELO 250 lines and 354.
ENHANCED = re.compile(rb"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")


def check_enhanced(reply, hostname=b"mx.example.test"):
    """Every reply except the greeting, 354 and the EHLO/HELO 250 lines
    carries an enhanced status code on each of its lines."""
    if reply.code in (220, 354):
        return
    if reply.code == 250 and reply.lines[0][4:] == hostname:
        return
    for line in reply.lines:
        assert ENHANCED.match(line), f"no enhanced status code: {reply.lines!r}"


class Reply:
    """One complete (possibly multi-line) SMTP reply."""

    def __init__(self, lines):
        self.lines = lines                  # raw lines without CRLF
        self.code = int(lines[-1][:3])

    @property
    def text(self):
        return b"\n".join(self.lines).decode("utf-8", "replace")

    def startswith(self, prefix):
        if isinstance(prefix, str):
            prefix = prefix.encode()
        return self.lines[0].startswith(prefix)

    def __repr__(self):
        return f"Reply({self.text!r})"


class ConnectionClosed(Exception):
    pass


class RawSMTP:
    """A client that writes exactly the bytes it is given and parses
    replies strictly (each line must end in CRLF, code consistent)."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10,
                 greet=True, check_codes=True):
        self.check_codes = check_codes
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        self.timeout = timeout
        self.greeting = self.reply() if greet else None

    # -- low level -------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed(self.buf)
        self.buf += chunk

    def line(self, timeout=None):
        while CRLF not in self.buf:
            self._fill(timeout or self.timeout)
        line, self.buf = self.buf.split(CRLF, 1)
        return line

    def reply(self, timeout=None):
        lines = []
        while True:
            line = self.line(timeout)
            assert re.match(rb"^\d{3}[ -]", line), f"malformed reply line {line!r}"
            if lines:
                assert line[:3] == lines[0][:3], f"code changed in reply {lines + [line]!r}"
            lines.append(line)
            if line[3:4] == b" ":
                reply = Reply(lines)
                if self.check_codes:
                    check_enhanced(reply)
                return reply

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and return its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.reply(timeout)

    def pending(self, wait=0.3):
        """Whatever the server sends within `wait` seconds (b"" if nothing);
        used to prove that no extra reply is on its way."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def expect_closed(self, timeout=5):
        """The server closes the connection with nothing more to say."""
        self.sock.settimeout(timeout)
        data = self.buf
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        self.buf = b""
        assert data == b"", f"unexpected data before close: {data!r}"
        return True

    def is_closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- conveniences ----------------------------------------------------
    def ehlo(self, name="client.example.net"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        return r

    def transaction(self, sender, rcpts, body, mail_params=""):
        """MAIL, RCPTs, DATA with a dot-stuffed body; returns the final reply."""
        r = self.cmd(f"MAIL FROM:<{sender}>{(' ' + mail_params) if mail_params else ''}")
        assert r.code == 250, r
        for rc in rcpts:
            r = self.cmd(b"RCPT TO:<" + (rc.encode() if isinstance(rc, str) else rc) + b">")
            assert r.code == 250, r
        r = self.cmd("DATA")
        assert r.code == 354, r
        self.send(dot_stuff(body) + b".\r\n")
        return self.reply()


def dot_stuff(body: bytes) -> bytes:
    """Transparency (RFC 5321 4.5.2); also ends the body with CRLF."""
    if not body.endswith(CRLF):
        body += CRLF
    return re.sub(rb"(?m)^\.", b"..", body)


def make_message(msgid=None, subject="test", body=b"Hello.\r\n", sender="sender@example.net",
                 to="alice@example.test", extra_headers=b""):
    msgid = msgid or new_msgid()
    head = (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n").encode()
    return head + extra_headers + b"\r\n" + body


def new_msgid():
    return f"<{uuid.uuid4().hex}@test.example.net>"


def message_id(data: bytes):
    m = re.search(rb"(?im)^Message-ID:\s*(<[^>\r\n]*>)", data)
    return m.group(1).decode() if m else None


def all_delivered(mail_root: Path):
    """Every delivered file under mail_root (any domain, any mailbox)."""
    if not mail_root.is_dir():
        return []
    return sorted(p for p in mail_root.glob("*/*/new/*") if p.is_file())


def delivered_ids(mail_root: Path):
    """Message-ID -> number of files holding it, across all mailboxes."""
    counts = {}
    for p in all_delivered(mail_root):
        mid = message_id(p.read_bytes())
        counts[mid] = counts.get(mid, 0) + 1
    return counts


def wait_until(predicate, timeout=20, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.compat32)

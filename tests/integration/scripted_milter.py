"""A scripted milter (the Sendmail milter protocol, version 6, server
side) for the actions no milter in Debian can be made to send on demand:
discard, quarantine, recipient and sender changes, a replaced body, and
the hostile answers a broken or subverted milter could give (garbage,
silence, a body with bare LFs, one larger than the message size limit).
rspamd and OpenDKIM themselves are tested in test_milter.py.

Each connection answers OPTNEG (all actions, every step answered), says
"continue" to every event (or what `on` scripts for that event: CONNECT
"C", HELO "H", MAIL "M", RCPT "R"), and at the end of the message
(SMFIC_BODYEOB) sends the packets the test scripted, then closes at QUIT. Everything the
client sent is kept (`events`) so a test can check what a milter hears.

Trusts: the client under test only as far as it parses its packets.
"""
import socket
import struct
import threading

SMFIC_OPTNEG, SMFIC_MACRO, SMFIC_BODYEOB, SMFIC_QUIT, SMFIC_ABORT = b"O", b"D", b"E", b"Q", b"A"
ALL_ACTIONS = 0x1FF


def packet(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + cmd + data


def add_header(name: str, value: str) -> bytes:
    return packet(b"h", name.encode() + b"\0" + value.encode() + b"\0")


def change_header(index: int, name: str, value: str) -> bytes:
    return packet(b"m", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def add_rcpt(addr: str) -> bytes:
    return packet(b"+", f"<{addr}>".encode() + b"\0")


def delete_rcpt(addr: str) -> bytes:
    return packet(b"-", f"<{addr}>".encode() + b"\0")


def change_from(addr: str) -> bytes:
    return packet(b"e", f"<{addr}>".encode() + b"\0")


def replace_body(data: bytes) -> bytes:
    out = b""
    for i in range(0, len(data), 65535):
        out += packet(b"b", data[i:i + 65535])
    return out or packet(b"b", b"")


def quarantine(reason: str) -> bytes:
    return packet(b"q", reason.encode() + b"\0")


def reply(text: str) -> bytes:
    return packet(b"y", text.encode() + b"\0")


ACCEPT, CONTINUE, DISCARD, REJECT, TEMPFAIL = (packet(c) for c in (b"a", b"c", b"d", b"r", b"t"))


class ScriptedMilter:
    """Listens on 127.0.0.1:port; `eom` is the bytes sent at the end of
    the message (edits, then a verdict), a function giving them, or None:
    say nothing at all."""

    def __init__(self, eom: bytes | None = ACCEPT, on=None):
        """on: {event letter: bytes, or a function of the event's data
        giving bytes} - the answer to that event instead of CONTINUE."""
        self.eom = eom
        self.on = on or {}
        self.events = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.spec = f"inet:127.0.0.1:{self.port}"
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conversation, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _conversation(self, conn):
        with conn:
            try:
                while True:
                    (length,) = struct.unpack(">I", self._read(conn, 4))
                    body = self._read(conn, length)
                    cmd, data = body[:1], body[1:]
                    self.events.append((cmd, data))
                    if cmd == SMFIC_OPTNEG:
                        conn.sendall(packet(b"O", struct.pack(">III", 6, ALL_ACTIONS, 0)))
                    elif cmd in (SMFIC_MACRO, SMFIC_ABORT):
                        continue
                    elif cmd == SMFIC_QUIT:
                        return
                    elif cmd == SMFIC_BODYEOB:
                        if self.eom is None:
                            self._read(conn, 1)     # silent until the client gives up
                        conn.sendall(self.eom(data) if callable(self.eom) else self.eom)
                    elif cmd in self.on:
                        answer = self.on[cmd]
                        conn.sendall(answer(data) if callable(answer) else answer)
                    else:
                        conn.sendall(CONTINUE)
            except (EOFError, OSError):
                return

    def heard(self, cmd: bytes):
        return [d for c, d in self.events if c == cmd]

    def commands(self):
        """The event letters heard, in order, macros left out."""
        return b"".join(c for c, _ in self.events if c != SMFIC_MACRO)

    def stop(self):
        self.stopped = True
        self.sock.close()


def started_milters():
    """Body of a pytest fixture (`milter = pytest.fixture(started_milters,
    name="milter")`): yields a factory taking ScriptedMilter's arguments;
    every milter it started is stopped when the test ends."""
    started = []

    def factory(*args, **kw):
        m = ScriptedMilter(*args, **kw)
        started.append(m)
        return m

    yield factory
    for m in started:
        m.stop()

"""Shared fixtures for sealpost's end-to-end tests.

Every test talks to a real `sealpost serve` process over loopback TCP.
The `server` fixture writes a private config, spool and mail folder into
a temporary directory, starts the daemon on a free port, waits until it
greets, and stops it afterwards (SIGTERM, then SIGKILL if it hangs).
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = os.environ.get("SEALPOST_BIN") or str(
    Path(__file__).resolve().parents[2] / "build" / "sealpost")
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_message():
    """The real list message used as a byte-exact fixture."""
    for candidate in (SAMPLES / "emailcore-last-call.eml",
                      FIXTURES / "emailcore-last-call.eml"):
        if candidate.exists():
            return candidate.read_bytes()
    raise FileNotFoundError("emailcore-last-call.eml")


class Server:
    """A sealpost instance under test."""

    # [server] keys every test server gets unless `settings` overrides them.
    DEFAULT_SETTINGS = {
        "hostname": "mx.example.test",
        "spool": "spool",
        "max_message_size": "1M",
        "max_recipients": "20",
        "max_errors": "10",
        "command_timeout": "30s",
        "data_timeout": "30s",
        "shutdown_timeout": "3s",
        "delivery_retry": "1s",
    }

    def __init__(self, root: Path, extra_server="", extra_sections="",
                 listener_extra="", mailboxes=("alice", "bob", "carol"),
                 settings=None):
        """settings: {key: value} for [server], replacing a default of the
        same key (the config loader refuses a key given twice) or adding a
        new one; extra_server is raw text appended after them."""
        self.root = root
        self.port = free_port()
        self.conf = root / "sealpost.conf"
        self.log_path = root / "sealpost.log"
        self.mail = root / "mail"
        (root / "users").write_text("\n".join(mailboxes) + "\n")
        server_keys = dict(self.DEFAULT_SETTINGS)
        server_keys.update(settings or {})
        server_text = "".join(f"{k} = {v}\n" for k, v in server_keys.items())
        self.conf.write_text(f"""
[server]
{server_text}{extra_server}

[listener mx]
address = 127.0.0.1:{self.port}
role = mx
{listener_extra}

[domain example.test]
mailboxes = users
maildir = mail/{{domain}}/{{local}}

[domain other.test]
maildir = mail/{{domain}}/{{local}}
{extra_sections}
""")
        self.proc = None

    # -- process control -------------------------------------------------
    def start(self, wait=True):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve", "-c", str(self.conf)],
                                     stdout=self.log_file, stderr=self.log_file)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sealpost exited: " + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("sealpost did not greet: " + self.log())

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_file.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log_file.close()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- mail inspection -------------------------------------------------
    def maildir(self, local, domain="example.test"):
        return self.mail / domain / local

    def messages(self, local, domain="example.test"):
        new = self.maildir(local, domain) / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir())

    def wait_messages(self, local, count, domain="example.test", timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(local, domain)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.messages(local, domain)

    def queue_files(self):
        q = self.root / "spool" / "queue"
        return sorted(p.name for p in q.iterdir()) if q.is_dir() else []

    def wait_queue_empty(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.queue_files():
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(**options) -> started Server; all are stopped."""
    servers = []

    def factory(start=True, **kw):
        root = tmp_path / f"s{len(servers)}"
        root.mkdir()
        srv = Server(root, **kw)
        servers.append(srv)
        return srv.start() if start else srv

    yield factory
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(make_server):
    return make_server()


def strip_added_headers(data: bytes) -> bytes:
    """Remove the headers sealpost adds (Return-Path, Delivered-To and its
    own Received, which may be folded over several lines)."""
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <"), lines[0]
    assert lines[1].startswith(b"Delivered-To: "), lines[1]
    assert lines[2].startswith(b"Received: from "), lines[2]
    i = 3
    while lines[i].startswith((b"\t", b" ")):
        i += 1
    return b"\r\n".join(lines[i:])

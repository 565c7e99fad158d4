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
        # Test folders live under pytest's private (0700) tmp: no user
        # switch there. test_privsep.py runs the real users.
        "user": "",
        "queue_user": "",
        "delivery_user": "",
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


# ---------------------------------------------------------------- TLS
#
# A throw-away PKI made with the `openssl` command once per test session,
# and servers with a [tls] section and extra listeners (each on its own
# free port). Standard library only; the TLS tests live in test_tls_*.py.

import shutil  # noqa: E402  (kept beside the TLS helpers it serves)
import ssl  # noqa: E402

TLS_HOSTNAME = "mx.example.test"


def _openssl(*args, cwd):
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {res.stderr}")
    return res.stdout


def free_ports(n):
    """n distinct free loopback ports."""
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


class PKI:
    """A test CA and server certificates for mx.example.test (and
    127.0.0.1): "ec" (ECDSA P-256), "rsa" (RSA 2048), "ec2" (a second
    ECDSA key, for reloads). Certificate files hold leaf + CA; every key
    file is mode 600."""

    KINDS = {"ec": ("ec", ["-pkeyopt", "ec_paramgen_curve:P-256"]),
             "rsa": ("rsa", ["-pkeyopt", "rsa_keygen_bits:2048"]),
             "ec2": ("ec", ["-pkeyopt", "ec_paramgen_curve:P-256"])}

    def __init__(self, d: Path):
        self.dir = d
        self.ca_cert = d / "ca.pem"
        self.ca_key = d / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-noenc", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                 "-subj", "/CN=sealpost test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        (d / "leaf.ext").write_text(
            f"subjectAltName=DNS:{TLS_HOSTNAME},IP:127.0.0.1\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n")
        for serial, (kind, (alg, opts)) in enumerate(self.KINDS.items(), start=2):
            _openssl("req", "-new", "-newkey", alg, *opts, "-noenc",
                     "-keyout", f"{kind}.key", "-out", f"{kind}.csr",
                     "-subj", f"/CN={TLS_HOSTNAME}/O=sealpost test {kind}", cwd=d)
            _openssl("x509", "-req", "-in", f"{kind}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", str(serial), "-days", "30", "-extfile", "leaf.ext",
                     "-out", f"{kind}.leaf.pem", cwd=d)
            (d / f"{kind}.pem").write_text((d / f"{kind}.leaf.pem").read_text() +
                                           self.ca_cert.read_text())
            os.chmod(d / f"{kind}.key", 0o600)
        for k in ("ca.key",):
            os.chmod(d / k, 0o600)

    def cert(self, kind):
        return self.dir / f"{kind}.pem"

    def key(self, kind):
        return self.dir / f"{kind}.key"

    def der(self, kind):
        """DER of the leaf certificate, as getpeercert(binary_form=True) gives it."""
        return ssl.PEM_cert_to_DER_cert((self.dir / f"{kind}.leaf.pem").read_text())

    def install(self, dest: Path, kind, name=None):
        """Copy a certificate and key into dest (key mode 600); returns the paths."""
        name = name or kind
        cert, key = dest / f"{name}.pem", dest / f"{name}.key"
        shutil.copyfile(self.cert(kind), cert)
        shutil.copyfile(self.key(kind), key)
        os.chmod(key, 0o600)
        return cert, key

    def client_context(self, minimum=None, maximum=None, ciphers=None):
        """A verifying client context that trusts only the test CA."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        return ctx


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


class TLSServer(Server):
    """A Server with a [tls] section. The main listener (self.port) gets
    `tls`, `require_tls` and `cleartext_recipients`; `listeners` adds more
    listeners, {name: {key: value}}, each on its own free port
    (self.ports[name]); self.implicit_port is the first implicit one.
    certs: kinds from PKI, installed as ROOT/<kind>.pem/.key
    (self.cert_files / self.key_files, in [tls] order)."""

    def __init__(self, root: Path, pki: PKI, certs=("ec",), min_version=None,
                 tls="starttls", require_tls=None, cleartext_recipients=None,
                 listeners=None, extra_sections="", listener_extra="", tls_extra="",
                 **kw):
        self.pki = pki
        self.cert_files, self.key_files = [], []
        for kind in certs:
            cert, key = pki.install(root, kind)
            self.cert_files.append(cert)
            self.key_files.append(key)
        tls_text = "\n[tls]\n"
        tls_text += "".join(f"certificate = {c}\n" for c in self.cert_files)
        tls_text += "".join(f"private_key = {k}\n" for k in self.key_files)
        if min_version:
            tls_text += f"min_version = {min_version}\n"
        tls_text += tls_extra
        main = ""
        if tls is not None:
            main += f"tls = {tls}\n"
        if require_tls is not None:
            main += f"require_tls = {require_tls}\n"
        if cleartext_recipients is not None:
            main += f"cleartext_recipients = {cleartext_recipients}\n"
        listeners = dict(listeners or {})
        self.ports = {}
        self.implicit_port = None
        extra_text = ""
        for name, keys in listeners.items():
            port = free_port()
            self.ports[name] = port
            if keys.get("tls") == "implicit" and self.implicit_port is None:
                self.implicit_port = port
            extra_text += f"\n[listener {name}]\naddress = 127.0.0.1:{port}\n"
            extra_text += "".join(f"{k} = {v}\n" for k, v in keys.items())
        super().__init__(root, extra_sections=tls_text + extra_text + extra_sections,
                         listener_extra=main + listener_extra, **kw)
        # distinct ports (free_port() may hand out the same one twice)
        while self.port in self.ports.values():
            old = self.port
            self.port = free_port()
            self.conf.write_text(self.conf.read_text().replace(
                f"127.0.0.1:{old}\n", f"127.0.0.1:{self.port}\n", 1))
        assert len(set(self.ports.values())) == len(self.ports), "port clash, rerun"

    ready = False

    def wait_ready(self, timeout=10):
        super().wait_ready(timeout)
        self.ready = True

    def wait_log(self, needle, timeout=10, count=1):
        """Poll the log until `needle` appears `count` times; returns the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count(needle) >= count:
                return text
            if time.monotonic() >= deadline:
                raise AssertionError(f"log lacks {needle!r} x{count}:\n{text}")
            time.sleep(0.02)

    def wait_exit(self, timeout=10):
        """For a server expected to refuse to start: its exit status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


@pytest.fixture
def make_tls_server(tmp_path, tls_pki):
    """Factory: make_tls_server(**options) -> started TLSServer (see its
    docstring for the options); all are stopped at the end."""
    servers = []

    def factory(start=True, **kw):
        root = tmp_path / f"tls{len(servers)}"
        root.mkdir()
        srv = TLSServer(root, tls_pki, **kw)
        servers.append(srv)
        return srv.start() if start else srv

    yield factory
    problems = []
    for srv in servers:
        rc = srv.stop()
        log = srv.log()
        if srv.ready and rc != 0:
            problems.append(f"{srv.root.name}: exit status {rc} after SIGTERM")
        if "AddressSanitizer" in log or "runtime error:" in log:
            problems.append(f"{srv.root.name}: sanitizer report in the log")
    if problems:
        pytest.fail("; ".join(problems) + "\n" + "\n".join(s.log()[-3000:] for s in servers))


# ---------------------------------------------------------------- DNS
#
# A DNSSEC-signed DNS world served by nsd on loopback (dnsworld.py). The
# fixture gives an unstarted world: add records, call start(), and point
# the code under test at world.unbound_conf (or world.forwarder plus
# world.trust_anchor). It is stopped after the test.

from dnsworld import DNSWorld  # noqa: E402


@pytest.fixture
def dns_world(tmp_path):
    for tool in ("nsd", "ldns-keygen", "ldns-signzone"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    world = DNSWorld(tmp_path / "dns")
    yield world
    world.stop()

"""`sealpost check` finds what `sealpost serve` would refuse, judged as
the user each role runs as (issue 13), and `serve` refuses the same cases
before it opens any listener, with the same message and a non-zero exit."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import BIN, Server
from smtpwire import wait_until
from test_privsep import PRIVSEP_USERS, ensure_users

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="role users need root")


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)


def assert_refused(server, needle):
    """check and serve both fail, naming the problem; serve listened on nothing."""
    r = run("check", "-c", str(server.conf))
    assert r.returncode == 1, r
    assert needle in r.stderr, r.stderr
    r = run("serve", "-c", str(server.conf))
    assert r.returncode != 0, r
    assert needle in r.stderr, r.stderr
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0     # never listened


def test_good_config_passes(tmp_path):
    server = Server(tmp_path)
    r = run("check", "-c", str(server.conf))
    assert r.returncode == 0, r.stderr
    assert "[server]" in r.stdout


def test_missing_certificate(tmp_path, tls_pki):
    cert, key = tls_pki.install(tmp_path, "ec")
    server = Server(tmp_path, extra_sections=f"""
[tls]
certificate = {tmp_path}/nowhere/cert.pem
private_key = {key}
""", listener_extra="tls = starttls")
    assert_refused(server, f"TLS: certificate {tmp_path}/nowhere/cert.pem: No such file")


def test_key_that_does_not_match(tmp_path, tls_pki):
    cert, _ = tls_pki.install(tmp_path, "ec")
    _, key = tls_pki.install(tmp_path, "ec2")
    server = Server(tmp_path, extra_sections=f"""
[tls]
certificate = {cert}
private_key = {key}
""", listener_extra="tls = starttls")
    assert_refused(server, "TLS: ")


def test_spool_whose_parent_does_not_exist(tmp_path):
    server = Server(tmp_path, settings={"spool": str(tmp_path / "no" / "such" / "spool")})
    assert_refused(server, f"{tmp_path / 'no'} does not exist")


@pytest.fixture
def user_root():
    """A folder the role users can reach (pytest's own tmp is 0700)."""
    ensure_users()
    root = Path(tempfile.mkdtemp(prefix="sealpost-check-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", "sealpost-queue")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_privsep_config_passes(user_root):
    server = Server(user_root, settings=PRIVSEP_USERS)
    r = run("check", "-c", str(server.conf))
    assert r.returncode == 0, r.stderr


@needs_root
def test_spool_under_a_folder_the_queue_user_cannot_enter(user_root):
    locked = user_root / "locked"
    locked.mkdir(mode=0o700)
    settings = dict(PRIVSEP_USERS, spool=str(locked / "spool"))
    server = Server(user_root, settings=settings)
    assert_refused(server, f"cannot enter {locked} (mode 0700)")


@needs_root
def test_maildir_root_the_queue_user_cannot_write(user_root):
    (user_root / "mail").chmod(0o755)
    shutil.chown(user_root / "mail", "root")
    server = Server(user_root, settings=PRIVSEP_USERS)
    assert_refused(server, f"maildir root {user_root / 'mail'}: the queue process "
                           f"(user sealpost-queue) cannot write it")


@needs_root
def test_missing_role_user(user_root):
    settings = dict(PRIVSEP_USERS, delivery_user="sealpost-nobody")
    server = Server(user_root, settings=settings)
    assert_refused(server, "delivery_user = sealpost-nobody: no such user")


def test_queue_that_cannot_start_stops_the_start(tmp_path):
    """A daemon that cannot queue must not take mail: when the queue
    process fails at start-up (here its spool's incoming/ is a file), serve
    exits non-zero with the queue's reason instead of accepting
    connections it would drop at DATA."""
    server = Server(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "incoming").write_text("not a folder\n")
    server.log_file = open(server.log_path, "ab")
    proc = subprocess.Popen([BIN, "serve", "-c", str(server.conf)],
                            stdout=server.log_file, stderr=server.log_file)
    assert proc.wait(30) == 1
    server.log_file.close()
    log = server.log()
    assert "role=queue" in log and "incoming" in log, log
    assert "event=start_failed role=queue" in log, log
    assert "child_start role=smtpd" not in log, log        # no worker was started


@needs_root
def test_master_makes_missing_maildir_roots_for_the_queue_user(user_root):
    """Ownership done for the operator (issue 13): a Maildir root that does
    not exist yet is made at start, with its missing parents, and given to
    the queue user, who then delivers into it."""
    import pwd
    import smtplib

    root = user_root / "vmail" / "vhosts"
    server = Server(user_root, settings=PRIVSEP_USERS)
    text = server.conf.read_text().replace("maildir = mail/{domain}/{local}",
                                           f"maildir = {root}/{{domain}}/{{local}}", 1)
    server.conf.write_text(text)
    assert run("check", "-c", str(server.conf)).returncode == 0
    server.start()
    try:
        st = root.stat()
        assert st.st_uid == pwd.getpwnam("sealpost-queue").pw_uid
        assert st.st_mode & 0o777 == 0o750
        assert "event=created folder=maildir_root" in server.log()
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
            c.sendmail("x@example.net", ["alice@example.test"], b"Subject: root\r\n\r\nhi\r\n")
        new = root / "example.test" / "alice" / "new"
        assert wait_until(lambda: new.exists() and list(new.iterdir()), 20), server.log()
    finally:
        server.stop()


class DenyEverythingResolver:
    """A UDP resolver that answers NXDOMAIN to every question, as the
    resolver of a machine without internet access does. Standard library."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.questions = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(query) < 12:
                continue
            self.questions += 1
            qd_end = 12
            while qd_end < len(query) and query[qd_end] != 0:
                qd_end += 1 + query[qd_end]
            question = query[12:qd_end + 5]
            # id, QR|RD|RA, rcode 3; one question, no records
            header = query[:2] + bytes([0x81 | (query[2] & 0x01), 0x83]) + \
                b"\x00\x01\x00\x00\x00\x00\x00\x00"
            self.sock.sendto(header + question, peer)

    def close(self):
        self.sock.close()


@pytest.mark.skipif(not os.path.exists("/usr/share/dns/root.key"),
                    reason="needs Debian's dns-root-data trust anchor")
def test_resolver_that_denies_the_root_is_not_a_dnssec_failure(tmp_path):
    """A resolver that says the root zone does not exist (a sandbox or
    captive resolver, no internet DNS) tells nothing about DNSSEC on the
    path: `check` notes it and passes, where a resolver that answers
    without signatures fails it (test_dane.py). `make run` on such a
    machine depends on this."""
    resolver = DenyEverythingResolver()
    try:
        server = Server(tmp_path, extra_sections=f"[relay]\nresolver = 127.0.0.1@{resolver.port}\n")
        r = run("check", "-c", str(server.conf))
        assert r.returncode == 0, r.stderr
        assert resolver.questions >= 1                  # the probe did ask it
        assert "cannot tell whether the resolver path delivers DNSSEC" in r.stderr
        assert "does not exist" in r.stderr
    finally:
        resolver.close()

"""Privilege separation as an operator would check it: a root master, one
queue process under its own user, smtpd workers under another user and
a delivery process under a third, both chrooted into an empty folder,
every child under a seccomp filter and a fresh execution of the sealpost
binary (its own address-space layout); dead children are restarted and
no acknowledged message is lost.

Needs root (to create the users and switch to them); skipped otherwise.
"""
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, Server
from peers import Peer
from smtpwire import wait_until
from roles import cmdline

USERS = ("sealpost", "sealpost-queue", "sealpost-delivery")


def peer_port():
    with socket.socket() as s:
        s.bind(("127.0.0.21", 0))
        return s.getsockname()[1]


def ensure_users():
    for name in USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", "/usr/sbin/nologin", name], check=True)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def status_field(pid, field):
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None                         # the process just exited
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].split()
    return None


def uid_of(pid):
    uid = status_field(pid, "Uid")
    return int(uid[0]) if uid else None


def roles(master):
    """{'queue': [pids], 'smtpd': [pids], 'delivery': [pids]} by the user
    each child runs as."""
    q = pwd.getpwnam("sealpost-queue").pw_uid
    w = pwd.getpwnam("sealpost").pw_uid
    d = pwd.getpwnam("sealpost-delivery").pw_uid
    out = {"queue": [], "smtpd": [], "delivery": []}
    for c in children(master):
        u = uid_of(c)
        if u == q:
            out["queue"].append(c)
        elif u == w:
            out["smtpd"].append(c)
        elif u == d:
            out["delivery"].append(c)
    return out


def wait_roles(master, workers, timeout=10, exclude=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = roles(master)
        if len(r["queue"]) == 1 and len(r["smtpd"]) == workers and \
                len(r["delivery"]) == 1 and \
                not set(r["queue"] + r["smtpd"] + r["delivery"]) & set(exclude):
            return r
        time.sleep(0.05)
    return roles(master)


PRIVSEP_USERS = {"user": "sealpost", "queue_user": "sealpost-queue",
                 "delivery_user": "sealpost-delivery", "workers": "2"}


@pytest.fixture
def privsep_server():
    if os.geteuid() != 0:
        pytest.skip("privilege separation needs root")
    ensure_users()
    root = Path(tempfile.mkdtemp(prefix="sealpost-privsep-"))
    root.chmod(0o755)                       # the queue user must reach its folders
    (root / "mail").mkdir()
    shutil.chown(root / "mail", "sealpost-queue")
    srv = Server(root, settings=PRIVSEP_USERS)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


def send(srv, msgid):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("x@example.net", ["alice@example.test"],
                   f"Subject: t\r\nMessage-ID: {msgid}\r\n\r\nhi\r\n".encode())


def fd_targets(pid):
    """What pid's descriptors point at; one closed between the listing and
    the readlink (the delivery process's DNS sockets come and go) is skipped."""
    out = []
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{f}"))
        except FileNotFoundError:
            pass
    return out


def test_roles_users_chroot_and_seccomp(privsep_server):
    srv = privsep_server
    master = srv.proc.pid
    r = wait_roles(master, 2)
    assert uid_of(master) == 0
    assert status_field(master, "Seccomp") == ["0"]
    assert len(r["queue"]) == 1 and len(r["smtpd"]) == 2 and len(r["delivery"]) == 1, r
    st = (srv.root / "spool").stat()
    assert st.st_uid == pwd.getpwnam("sealpost-queue").pw_uid
    # The queue process sets these modes as it starts (it owns them):
    # searchable spool for sendmail's maildrop.
    spool_dir = srv.root / "spool"
    assert wait_until(lambda: (spool_dir / "maildrop-rejected").exists() and
                      spool_dir.stat().st_mode & 0o777 == 0o711), oct(spool_dir.stat().st_mode)
    md = (spool_dir / "maildrop").stat()
    assert md.st_uid == st.st_uid and oct(md.st_mode & 0o7777) == "0o1733"
    for sub in ("queue", "incoming", "maildrop-rejected"):
        assert oct((srv.root / "spool" / sub).stat().st_mode & 0o777) == "0o700", sub
    for pid in r["smtpd"] + r["delivery"]:
        assert status_field(pid, "CapEff") == ["0000000000000000"]
    # the server's private keys and the spool are out of the delivery
    # process's reach: no descriptor into the spool while it is idle
    spool = os.path.realpath(srv.root / "spool")
    dfds = fd_targets(r["delivery"][0])
    assert not [f for f in dfds if f.startswith(spool + "/") and "/empty" not in f], dfds
    if "sanitizer build" in srv.log():
        # ASan/UBSan builds run without chroot and seccomp (docs/SECURITY.md)
        return
    empty = os.path.realpath(srv.root / "spool" / "empty")
    # a role found running may still be on its way into its sandbox
    for pid in r["smtpd"] + r["delivery"]:
        assert wait_until(lambda: os.readlink(f"/proc/{pid}/root") == empty and
                          status_field(pid, "Seccomp") == ["2"]), pid   # filter mode
    q = r["queue"][0]
    assert os.readlink(f"/proc/{q}/root") == "/"
    assert wait_until(lambda: status_field(q, "Seccomp") == ["2"])
    # the filter is loaded a moment before its log line is written
    assert wait_until(lambda: "event=sandbox role=smtpd status=active mode=allow-list"
                      in srv.log() and "event=sandbox role=delivery status=active "
                      "mode=allow-list" in srv.log()), srv.log()
    assert "event=privsep role=smtpd user=sealpost" in srv.log()
    # Landlock where the kernel has it (tests/unit/test_landlock.c checks
    # that it really denies files)
    for role in ("smtpd", "delivery"):
        assert (f"event=landlock role={role} status=active" in srv.log() or
                f"event=landlock role={role} status=unavailable" in srv.log()), role
    assert "event=privsep role=delivery user=sealpost-delivery" in srv.log()


def libc_base(pid):
    """Where the C library's first mapping starts in pid's address space."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and os.path.basename(fields[5]).startswith("libc.so"):
            return int(fields[0].split("-")[0], 16)
    raise AssertionError(f"no libc mapping in /proc/{pid}/maps")


def test_each_role_is_a_fresh_program_image(privsep_server):
    """Every role is the sealpost binary executed again (`sealpost role
    NAME`), not a fork of the master: two workers, and a worker and its
    replacement, do not share an address-space layout (a fork would copy
    the master's, libc base and stack canary included)."""
    srv = privsep_server
    master = srv.proc.pid
    r = wait_roles(master, 2)
    exe = os.path.realpath(BIN)
    assert os.readlink(f"/proc/{master}/exe") == exe
    for role, pids in r.items():
        for pid in pids:
            assert os.readlink(f"/proc/{pid}/exe") == exe, (role, pid)
            assert cmdline(pid)[1:3] == [b"role", role.encode()], cmdline(pid)
            # what the master passed in memory files (config, certificates,
            # keys, mailbox lists) is read and closed before the drop
            fds = fd_targets(pid)
            assert not [f for f in fds if f.startswith("/memfd:")], (role, fds)
    a, b = r["smtpd"]
    bases = {libc_base(master), libc_base(a), libc_base(b)}
    assert len(bases) == 3, bases
    slot = cmdline(a)[cmdline(a).index(b"--slot") + 1]
    old = libc_base(a)
    os.kill(a, signal.SIGKILL)
    r2 = wait_roles(master, 2, exclude=[a])
    new = (set(r2["smtpd"]) - {b}).pop()
    assert cmdline(new)[1:3] == [b"role", b"smtpd"]
    assert cmdline(new)[cmdline(new).index(b"--slot") + 1] == slot
    assert libc_base(new) not in (old, libc_base(b), libc_base(master))
    send(srv, "<fresh@t>")
    assert srv.wait_messages("alice", 1)


def test_mail_flows_through_the_roles(privsep_server):
    srv = privsep_server
    send(srv, "<ps1@t>")
    msgs = srv.wait_messages("alice", 1)
    assert len(msgs) == 1
    assert msgs[0].stat().st_uid == pwd.getpwnam("sealpost-queue").pw_uid


def test_killed_children_are_restarted_and_nothing_acknowledged_is_lost(privsep_server):
    srv = privsep_server
    master = srv.proc.pid
    r = wait_roles(master, 2)
    send(srv, "<before@t>")
    os.kill(r["smtpd"][0], signal.SIGKILL)
    r2 = wait_roles(master, 2, exclude=r["smtpd"][:1])
    assert r["smtpd"][0] not in r2["smtpd"] and len(r2["smtpd"]) == 2
    send(srv, "<after-worker@t>")
    os.kill(r2["queue"][0], signal.SIGKILL)
    # the new queue gets a new delivery process too (once it is READY)
    r3 = wait_roles(master, 2, exclude=r2["queue"] + r2["delivery"])
    assert len(r3["queue"]) == 1 and r3["queue"] != r2["queue"]
    os.kill(r3["delivery"][0], signal.SIGKILL)
    r4 = wait_roles(master, 2, exclude=r3["delivery"])
    assert len(r4["delivery"]) == 1 and r4["delivery"] != r3["delivery"], r4
    deadline = time.monotonic() + 10
    while True:                 # the workers are replaced too; wait until one greets
        try:
            send(srv, "<after-queue@t>")
            break
        except (OSError, smtplib.SMTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    want = {b"Message-ID: <after-queue@t>", b"Message-ID: <after-worker@t>",
            b"Message-ID: <before@t>"}

    def delivered():
        return [b for m in srv.messages("alice") for b in m.read_bytes().split(b"\r\n")
                if b.startswith(b"Message-ID:")]
    deadline = time.monotonic() + 20
    while not want <= set(delivered()) and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = delivered()
    assert set(ids) == want, ids
    # at least once; a queue killed between a delivery and its record may
    # deliver that message once more after its restart (docs/SPOOL.md)
    assert all(ids.count(i) <= 2 for i in want), ids
    assert "event=child_died role=smtpd" in srv.log()
    assert "event=child_died role=queue" in srv.log()
    assert "event=child_died role=delivery" in srv.log()


def test_sighup_replaces_workers_and_open_sessions_continue(privsep_server):
    srv = privsep_server
    master = srv.proc.pid
    before = wait_roles(master, 2)["smtpd"]
    c = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
    c.ehlo("client.test")
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = roles(master)["smtpd"]
        if len(set(now) - set(before)) == 2:
            break
        time.sleep(0.05)
    assert len(set(roles(master)["smtpd"]) - set(before)) == 2
    # the session opened before the reload still works, in its old worker
    c.sendmail("x@example.net", ["alice@example.test"],
               b"Subject: t\r\nMessage-ID: <open@t>\r\n\r\nhi\r\n")
    c.quit()
    assert srv.wait_messages("alice", 1)
    # the old workers leave once their sessions are over
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(before) & set(children(master)):
        time.sleep(0.05)
    assert not set(before) & set(children(master))


def test_remote_delivery_from_the_chrooted_delivery_process(dns_world, tmp_path):
    """As root: the delivery process resolves MX through a DNSSEC-validating
    libunbound and relays over SMTP from inside its empty chroot, as
    sealpost-delivery, under its seccomp filter."""
    if os.geteuid() != 0:
        pytest.skip("privilege separation needs root")
    ensure_users()
    port = peer_port()
    dns_world.add("far.example.test", "MX", "10 mx.far.example.test.")
    dns_world.add("mx.far.example.test", "A", "127.0.0.21")
    dns_world.start()
    conf = dns_world.write_unbound_conf(tmp_path / "unbound.conf")
    peer = Peer("127.0.0.21", port).start()
    root = Path(tempfile.mkdtemp(prefix="sealpost-privsep-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", "sealpost-queue")
    srv = Server(root, settings=PRIVSEP_USERS, extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
smtp_port = {port}
unbound_config = {conf}
dns_timeout = 3s
connect_timeout = 2s
""")
    try:
        srv.start()
        r = wait_roles(srv.proc.pid, 2)
        assert len(r["delivery"]) == 1, r
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
            c.sendmail("alice@example.test", ["bob@far.example.test"],
                       b"Subject: t\r\nMessage-ID: <far@t>\r\n\r\nhi\r\n")
        got = peer.wait_messages(1)
        assert len(got) == 1 and b"Message-ID: <far@t>" in got[0]["data"]
        assert got[0]["rcpts"] == ["bob@far.example.test"]
        assert "event=delivered id=" in srv.log()
        assert "event=seccomp_violation" not in srv.log()
        assert srv.wait_queue_empty(timeout=10)
    finally:
        srv.stop()
        peer.stop()
        shutil.rmtree(root, ignore_errors=True)

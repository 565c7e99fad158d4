"""[domain] owner = USER (issue 13): the Maildirs of a domain belong to the
account that reads them (Debian's usual `vmail` for Dovecot), and a local
delivery process running as that account writes them. The queue keeps
delivering the domains without an owner as before, a broken owner is
found by `sealpost check` (and refused by `serve`), and a local process
killed with mail in flight costs a deferral, never the message.

Needs root (to create the owner and switch to it); skipped otherwise.
"""
import os
import pwd
import shutil
import signal
import smtplib
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Server
from roles import role_pids
from smtpwire import wait_until
from test_check import assert_refused, run
from test_privsep import PRIVSEP_USERS, ensure_users

OWNER = "sealpost-test-vmail"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners need root")


def ensure_owner():
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", OWNER], check=True)
    return pwd.getpwnam(OWNER)


@pytest.fixture
def owner_root():
    """A folder the role users and the owner can reach (pytest's own tmp
    is 0700), with the queue user's Maildir root in mail/."""
    ensure_users()
    ensure_owner()
    root = Path(tempfile.mkdtemp(prefix="sealpost-owner-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", "sealpost-queue")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def owned_server(root, vmail_root, owner=OWNER, settings=None):
    """The usual example.test and other.test (queue user), plus vmail.test
    whose Maildirs are under vmail_root and belong to owner."""
    return Server(root, settings=dict(PRIVSEP_USERS, **(settings or {})),
                  extra_sections=f"""
[domain vmail.test]
maildir = {vmail_root}/{{domain}}/{{local}}
owner = {owner}
""")


def send(srv, rcpts, subject="t"):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("x@example.net", rcpts,
                   f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\nhi\r\n".encode())


def new_files(maildir):
    new = maildir / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def uid_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def status(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].split()
    return None


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_owned_domain_is_delivered_as_its_owner(owner_root):
    vmail = owner_root / "vmail"                        # missing: the master makes it
    pw = pwd.getpwnam(OWNER)
    srv = owned_server(owner_root, vmail)
    assert run("check", "-c", str(srv.conf)).returncode == 0
    srv.start()
    try:
        local = wait_until(lambda: role_pids(srv.proc.pid, "local"))
        assert len(local) == 1, srv.log()
        # The role starts as root and drops at once: wait for the drop.
        assert wait_until(lambda: uid_of(local[0]) == pw.pw_uid), uid_of(local[0])
        assert wait_until(lambda: "event=local_channel_ready" in srv.log()), srv.log()
        assert status(local[0], "Groups") in ([], [str(pw.pw_gid)])   # no other group
        assert status(local[0], "CapEff") == ["0000000000000000"]
        send(srv, ["dan@vmail.test", "alice@example.test"], "both")
        box = vmail / "vmail.test" / "dan"
        files = wait_until(lambda: new_files(box))
        assert len(files) == 1, srv.log()
        assert b"Delivered-To: dan@vmail.test" in files[0].read_bytes()
        # the Maildir as Dovecot reads it: everything the owner's, private
        assert vmail.stat().st_uid == pw.pw_uid and mode(vmail) == 0o750
        for folder in (vmail / "vmail.test", box, box / "tmp", box / "new", box / "cur"):
            assert folder.stat().st_uid == pw.pw_uid, folder
            assert folder.stat().st_gid == pw.pw_gid, folder
            assert mode(folder) == 0o700, folder
        assert files[0].stat().st_uid == pw.pw_uid and mode(files[0]) == 0o600
        # the domain without an owner: the queue user's, as before
        queue_uid = pwd.getpwnam("sealpost-queue").pw_uid
        alice = srv.wait_messages("alice", 1)
        assert len(alice) == 1 and alice[0].stat().st_uid == queue_uid
        assert srv.wait_queue_empty(), srv.log()
        log = srv.log()
        assert 'event=created folder=maildir_root path="%s" owner=%s mode=0750' % (
            vmail, OWNER) in log, log
        assert "event=delivered" in log and 'to=<dan@vmail.test> relay=maildir' in log, log
        if "sanitizer build" not in log:
            assert "event=landlock role=local status=active" in log, log
            assert status(local[0], "Seccomp") == ["2"]
    finally:
        srv.stop()
    errors = [line for line in srv.log().splitlines()
              if "level=error" in line and "event=dns_config" not in line]
    assert not errors, errors


DOVECOT_IMAP = Path("/usr/lib/dovecot/imap")


@pytest.mark.skipif(not DOVECOT_IMAP.exists(), reason="dovecot-imapd not installed")
def test_dovecot_reads_what_the_owner_got(owner_root):
    """Done when "mail lands in Maildirs that Dovecot can read": Dovecot's
    IMAP server, run as the owner with its own config (mail_location =
    maildir:...), finds the message sealpost delivered, returns it byte
    for byte, and can mark it seen (it writes the Maildir: new/ -> cur/,
    its index files)."""
    vmail = owner_root / "vmail"
    srv = owned_server(owner_root, vmail)
    srv.start()
    try:
        body = "Subject: read by dovecot\r\nMessage-ID: <dovecot@t>\r\n\r\nfor dan\r\n"
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
            c.sendmail("x@example.net", ["dan@vmail.test"], body.encode())
        box = vmail / "vmail.test" / "dan"
        files = wait_until(lambda: new_files(box))
        assert len(files) == 1, srv.log()
        stored = files[0].read_bytes()
    finally:
        srv.stop()
    conf = owner_root / "dovecot.conf"
    conf.write_text(f"mail_location = maildir:{vmail}/vmail.test/%n\n"
                    f"base_dir = {owner_root}/dovecot-run\nlog_path = /dev/stderr\nssl = no\n")
    conf.chmod(0o644)
    r = subprocess.run(
        ["setpriv", "--reuid", OWNER, "--regid", OWNER, "--clear-groups",
         "env", "-i", "USER=dan", f"HOME={box}", "PATH=/usr/bin:/bin",
         str(DOVECOT_IMAP), "-c", str(conf)],
        input=b"a SELECT INBOX\r\nb FETCH 1 BODY[]\r\nc STORE 1 +FLAGS (\\Seen)\r\n"
              b"d LOGOUT\r\n",
        capture_output=True, timeout=30)
    out = r.stdout
    assert b"* 1 EXISTS" in out and b"b OK Fetch completed" in out, (out, r.stderr)
    assert b"BODY[] {%d}\r\n" % len(stored) + stored in out, out
    assert b"c OK Store completed" in out, (out, r.stderr)
    assert not new_files(box)                           # Dovecot moved it to cur/
    assert len(list((box / "cur").iterdir())) == 1


def test_check_refuses_an_unknown_owner(owner_root):
    srv = owned_server(owner_root, owner_root / "vmail", owner="sealpost-nobody")
    assert_refused(srv, "owner in [domain vmail.test] = sealpost-nobody: no such user")


def test_check_refuses_a_root_the_owner_cannot_reach(owner_root):
    locked = owner_root / "locked"
    locked.mkdir(mode=0o700)                # root's, and no one else may enter
    srv = owned_server(owner_root, locked / "vmail")
    assert_refused(srv, f"[domain vmail.test] maildir root {locked / 'vmail'}: the local "
                        f"delivery process (user {OWNER}) cannot enter {locked} (mode 0700)")


def test_check_refuses_one_root_for_two_owners(owner_root):
    srv = owned_server(owner_root, owner_root / "mail")   # the queue user's root
    assert_refused(srv, f"its Maildir root {owner_root / 'mail'} is also that of "
                        f"[domain example.test]")


def test_killed_local_process_defers_then_delivers(owner_root):
    """SIGKILL with a job in flight: the queue defers it with 4.3.0, the
    master starts a new local process, and the retry delivers it."""
    vmail = owner_root / "vmail"
    srv = owned_server(owner_root, vmail, settings={"log_level": "debug"})
    srv.start()
    try:
        old = wait_until(lambda: role_pids(srv.proc.pid, "local"))
        assert len(old) == 1, srv.log()
        assert wait_until(lambda: "event=local_channel_ready" in srv.log()), srv.log()
        os.kill(old[0], signal.SIGSTOP)         # the job waits in its channel
        send(srv, ["erin@vmail.test"], "killed")
        assert wait_until(lambda: "event=local_job_sent" in srv.log()), srv.log()
        os.kill(old[0], signal.SIGKILL)
        assert wait_until(lambda: "event=deferred" in srv.log()), srv.log()
        log = srv.log()
        deferred = [line for line in log.splitlines() if "event=deferred" in line]
        assert "to=<erin@vmail.test>" in deferred[0] and "dsn=4.3.0" in deferred[0], log
        # the master logs the death when it reaps the child, which may come
        # a moment after the queue saw the channel close
        assert wait_until(lambda: "event=child_died role=local" in srv.log()), srv.log()
        files = wait_until(lambda: new_files(vmail / "vmail.test" / "erin"))
        assert len(files) == 1, srv.log()
        new = role_pids(srv.proc.pid, "local")
        assert len(new) == 1 and new[0] != old[0]
        assert srv.wait_queue_empty(), srv.log()
    finally:
        srv.stop()


def test_local_process_follows_a_restarted_queue(owner_root):
    """The queue dies (SIGKILL): its local processes lose their channel and
    stop; once the new queue is ready a new local process starts with a
    channel to it, and owned mail is delivered again."""
    vmail = owner_root / "vmail"
    srv = owned_server(owner_root, vmail)
    srv.start()
    try:
        old_local = wait_until(lambda: role_pids(srv.proc.pid, "local"))
        assert wait_until(lambda: "event=local_channel_ready" in srv.log()), srv.log()
        old_queue = wait_until(lambda: role_pids(srv.proc.pid, "queue"))
        assert len(old_local) == 1 and len(old_queue) == 1, srv.log()
        os.kill(old_queue[0], signal.SIGKILL)
        assert wait_until(lambda: "event=queue_ready" in srv.log()), srv.log()
        new_local = wait_until(lambda: [p for p in role_pids(srv.proc.pid, "local")
                                        if p != old_local[0]])
        assert len(new_local) == 1, srv.log()
        send(srv, ["erin@vmail.test"], "after the queue died")
        files = wait_until(lambda: new_files(vmail / "vmail.test" / "erin"))
        assert len(files) == 1, srv.log()
        assert os.stat(files[0]).st_uid == pwd.getpwnam(OWNER).pw_uid
    finally:
        srv.stop()

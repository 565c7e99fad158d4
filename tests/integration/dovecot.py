"""A real Dovecot (Debian's dovecot-lmtpd and dovecot-imapd) started by a
test as its own process: `dovecot -F -c <tmp>/dovecot.conf`, with its own
config, users (a passwd-file), Maildirs and sockets in a private folder
under /tmp (short: a unix socket path must fit 107 octets), an LMTP unix
listener and TCP listener and IMAP on loopback ports. No system service
is touched. docs/INTEGRATION.md shows the same config.

Trusts: the dovecot binary on PATH (/usr/sbin); a missing one fails the
test (scripts/deps.sh installs it), it never skips.
"""
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "secret"

# Exactly the snippet of docs/INTEGRATION.md, "Dovecot (LMTP, IMAP)"; the
# {placeholders} are the test's folder, ports and mail user.
CONFIG = """\
protocols = lmtp imap
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
first_valid_uid = {uid}
mail_location = maildir:{d}/mail/%n
# a full mailbox answers 452 4.2.2 (retry later), not 552
mail_plugins = quota
quota_full_tempfail = yes
lmtp_rcpt_check_quota = yes
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{unprivileged}"""

# Only when the tests do not run as root: Dovecot's own users and its
# login chroot need root, so everything runs as the current user.
UNPRIVILEGED = """\
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
service imap-login {{
  chroot =
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
"""


class Dovecot:
    def __init__(self):
        if not os.path.exists(DOVECOT):
            raise FileNotFoundError("dovecot is not installed (scripts/deps.sh)")
        self.dir = Path(tempfile.mkdtemp(prefix="dv", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.lmtp_port = free_port()
        self.imap_port = free_port()
        self.socket = self.dir / "run" / "lmtp"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")     # mail may not belong to root
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            unprivileged = ""
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            import grp
            unprivileged = UNPRIVILEGED.format(user=pwd.getpwuid(self.uid).pw_name,
                                               group=grp.getgrgid(self.gid).gr_name)
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(self.dir / sub, self.uid, self.gid)
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(CONFIG.format(d=self.dir, uid=self.uid,
                                           lmtp_port=self.lmtp_port,
                                           imap_port=self.imap_port,
                                           unprivileged=unprivileged))
        self.users = {}
        self.proc = None

    def set_users(self, users):
        """users: {address: extra userdb fields ("" or "userdb_quota_rule=...")}."""
        self.users = dict(users)
        lines = [f"{a}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::"
                 f"{self.dir}/home/{a}::{extra}" for a, extra in self.users.items()]
        tmp = self.dir / "passwd.new"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.dir / "passwd")

    def start(self, timeout=20):
        out = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + self.log())
            if self._greets():
                return self
            time.sleep(0.05)
        raise TimeoutError("dovecot did not start: " + self.log())

    def _greets(self):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                if not s.recv(512).startswith(b"220"):
                    return False
            with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
                return s.recv(512).startswith(b"* OK")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # its listeners are gone with it: nothing may still answer
        assert not self.socket.exists() or not self._greets()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fetch_all(self, user):
        """Every message in user's INBOX, over IMAP (LOGIN, FETCH BODY[])."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=20) as m:
            m.login(user, PASSWORD)
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK", data
            count = int(data[0])
            out = []
            for n in range(1, count + 1):
                typ, data = m.fetch(str(n), "(BODY.PEEK[])")
                assert typ == "OK", data
                out.append(data[0][1])
            return out

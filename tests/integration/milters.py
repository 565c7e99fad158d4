"""Real milters started by a test as its own processes: rspamd (Debian's
rspamd, its rspamd_proxy worker in milter mode, scanning by itself) and
OpenDKIM (Debian's opendkim + opendkim-tools), each with its own config,
logs, pid file and sockets in a private short folder under /tmp, on free
loopback ports (or a unix socket in that folder). No system service is
touched. docs/INTEGRATION.md shows the same config text: the CONFIG
strings here are its snippets with {placeholders}.

Readiness is a real milter handshake (SMFIC_OPTNEG answered by an
OPTNEG), not a sleep. stop() ends the process and checks that nothing
answers any more; the logs are printed on teardown, so pytest shows them
for a failed test.

Trusts: the rspamd, opendkim and opendkim-genkey binaries and the
package's /etc/rspamd tree; a missing one fails the test (scripts/deps.sh
installs them), it never skips.
"""
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import free_port

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
RSPAMD_MAIN_CONF = Path("/etc/rspamd/rspamd.conf")     # the package's
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
OPENDKIM_GENKEY = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"

# rspamd's hyperscan/TLD caches survive between runs here: a cold start
# compiles ~10000 TLD suffixes (20-60 s on a loaded 2-core machine), a warm
# one takes 1-3 s. rspamd checks the cache against its expressions, so a
# stale one is only rebuilt. One folder per test user; a folder someone
# else owns or may write to is not used (a fresh one is, cold).
RSPAMD_CACHE = Path(f"/tmp/sealpost-rspamd-cache-{os.geteuid()}")


def _rspamd_cache(owner_uid):
    try:
        RSPAMD_CACHE.mkdir(mode=0o755)
        os.chown(RSPAMD_CACHE, owner_uid, -1)
    except FileExistsError:
        pass
    st = os.lstat(RSPAMD_CACHE)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != owner_uid
            or st.st_mode & 0o022):
        return Path(tempfile.mkdtemp(prefix="rscache", dir="/tmp"))
    return RSPAMD_CACHE


def _milter_packet(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + cmd + data


def milter_handshake(target, timeout=5):
    """True when a milter at target ("host", port) or "/unix/path"
    answers SMFIC_OPTNEG (protocol version 6) with an OPTNEG."""
    try:
        if isinstance(target, (str, Path)):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(timeout)
            s.connect(str(target))
        else:
            s = socket.create_connection(target, timeout=timeout)
        with s:
            s.sendall(_milter_packet(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF)))
            head = b""
            while len(head) < 5:
                chunk = s.recv(5 - len(head))
                if not chunk:
                    return False
                head += chunk
            ok = head[4:5] == b"O"
            s.sendall(_milter_packet(b"Q"))
            return ok
    except OSError:
        return False


def _wait_ready(proc, target, what, log, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log()}")
        if milter_handshake(target):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not answer a milter handshake: {log()}")


def _stop(proc, timeout=20):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_as():
    """(user, group) the milters run as: the packages' own users when the
    tests run as root (CI), else the current user."""
    if os.geteuid() == 0:
        return None
    return (pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name)


# ------------------------------------------------------------------ rspamd
#
# The package's /etc/rspamd/rspamd.conf, with $LOCAL_CONFDIR pointing at
# the test's folder: these are the files an operator puts in
# /etc/rspamd/local.d and /etc/rspamd/override.d (docs/INTEGRATION.md,
# "rspamd (milter)"), file name -> text.
RSPAMD_LOCAL = {
    # the milter worker: scans by itself, no separate normal worker
    "local.d/worker-proxy.inc": """\
bind_socket = "{bind}";
milter = yes;
timeout = 120s;
upstream "local" {{
  default = yes;
  self_scan = yes;
}}
""",
    # headers the milter adds to every message, also to mail from
    # localhost and from authenticated users
    "local.d/milter_headers.conf": """\
use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id",
       "x-spam-level", "x-spam-status", "authentication-results"];
skip_local = false;
skip_authenticated = false;
""",
    # with self_scan the normal worker is not needed; the web controller
    # is left out here (an operator may keep it)
    # OpenDKIM signs (below); rspamd's own signer would look for keys
    "local.d/dkim_signing.conf": "enabled = false;\n",
    "override.d/worker-normal.inc": "enabled = false;\n",
    "override.d/worker-controller.inc": "enabled = false;\n",
}

# Only the test adds these: its own paths, a DNS server that does not
# exist (no lookup may leave the machine or wait on one), no DNS
# blocklists and fuzzy hashes (network only), and two rules that let a
# test ask for a reject or a tempfail by the Subject.
RSPAMD_TEST_ONLY = {
    "local.d/options.inc": """\
hs_cache_dir = "{cache}/";
dns {{
  nameserver = ["127.0.0.1:{dead_port}"];
  timeout = 0.5s;
  retransmits = 1;
}}
""",
    "local.d/logging.inc": """\
type = "file";
filename = "{d}/rspamd.log";
level = "info";
""",
    "local.d/rbl.conf": "enabled = false;\n",
    "local.d/fuzzy_check.conf": "enabled = false;\n",
    "local.d/regexp.conf": """\
SEALPOST_TEST_REJECT {{
  re = "Subject=/sealpost-test-reject/H";
  score = 0.0;
  description = "a message the sealpost tests want rejected";
}}
SEALPOST_TEST_SOFTREJECT {{
  re = "Subject=/sealpost-test-softreject/H";
  score = 0.0;
  description = "a message the sealpost tests want deferred";
}}
""",
    "local.d/force_actions.conf": """\
rules {{
  SEALPOST_TEST_REJECT {{
    action = "reject";
    expression = "SEALPOST_TEST_REJECT";
    message = "Rejected by the sealpost test rule";
  }}
  SEALPOST_TEST_SOFTREJECT {{
    action = "soft reject";
    expression = "SEALPOST_TEST_SOFTREJECT";
    message = "Deferred by the sealpost test rule";
  }}
}}
""",
}

# What rspamd answers (measured with rspamd 3.4, Debian 12): the milter
# reply to a GTUBE message and to the test rules.
RSPAMD_GTUBE_REPLY = (554, b"5.7.1 Gtube pattern")
RSPAMD_RULE_REJECT_REPLY = (554, b"5.7.1 Rejected by the sealpost test rule")
RSPAMD_RULE_SOFTREJECT_REPLY = (451, b"4.7.1 Deferred by the sealpost test rule")
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class Rspamd:
    """rspamd -f -c /etc/rspamd/rspamd.conf with LOCAL_CONFDIR, DBDIR,
    RUNDIR and LOGDIR in a private folder; only the rspamd_proxy worker
    (milter = yes, self_scan = yes) on 127.0.0.1:self.port."""

    def __init__(self):
        for path in (RSPAMD, RSPAMD_MAIN_CONF):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} missing: rspamd is not installed "
                                        "(scripts/deps.sh)")
        self.dir = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.socket = f"inet:127.0.0.1:{self.port}"     # sealpost's spelling
        run_as = _run_as()
        if run_as is None:                  # root: the package's user
            run_as = ("_rspamd", "_rspamd")
        self.user, self.group = run_as
        uid, gid = pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid
        self.cache = _rspamd_cache(uid)
        os.chown(self.cache, uid, gid)
        values = {"d": self.dir, "bind": f"127.0.0.1:{self.port}",
                  "cache": self.cache, "dead_port": free_port()}
        for sub in ("local.d", "override.d", "db", "run"):
            (self.dir / sub).mkdir()
        for name, text in {**RSPAMD_LOCAL, **RSPAMD_TEST_ONLY}.items():
            (self.dir / name).write_text(text.format(**values))
        for p in [self.dir, *self.dir.rglob("*")]:
            os.chown(p, uid, gid)
        self.proc = None

    def command(self):
        d = self.dir
        return [RSPAMD, "-f", "-u", self.user, "-g", self.group,
                "-c", str(RSPAMD_MAIN_CONF),
                "--var", f"LOCAL_CONFDIR={d}", "--var", f"DBDIR={d}/db",
                "--var", f"RUNDIR={d}/run", "--var", f"LOGDIR={d}"]

    def start(self, timeout=180):
        t0 = time.monotonic()
        out = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=out,
                                     start_new_session=True)
        out.close()
        _wait_ready(self.proc, ("127.0.0.1", self.port), "rspamd", self.log, timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self):
        _stop(self.proc)
        assert not milter_handshake(("127.0.0.1", self.port), timeout=1)

    def cleanup(self):
        self.stop()
        print(f"--- rspamd log ({self.dir}):\n{self.log()[-20000:]}")
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.cache != RSPAMD_CACHE:
            shutil.rmtree(self.cache, ignore_errors=True)

    def log(self):
        text = ""
        for name in ("stdout.log", "rspamd.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text


# ---------------------------------------------------------------- OpenDKIM
#
# Exactly the snippet of docs/INTEGRATION.md, "OpenDKIM (signing)"; the
# {placeholders} are the test's folder, socket, domain and user.
OPENDKIM_CONFIG = """\
Syslog no
Socket {socket}
PidFile {d}/opendkim.pid
UserID {user}
UMask 007
Mode sv
Canonicalization relaxed/simple
Domain {domain}
Selector {selector}
KeyFile {d}/{selector}.private
InternalHosts 127.0.0.1
{test_only}"""

# The test's key lives under /tmp, which OpenDKIM calls unsafe (others
# may write there) and refuses; a key under /etc/dkimkeys needs no such line.
OPENDKIM_TEST_ONLY = "RequireSafeKeys no\n"


class OpenDKIM:
    """opendkim -f -x CONF, signing (and verifying) for `domain` with a
    key made by opendkim-genkey in a private folder. kind "inet" listens
    on 127.0.0.1:self.port, "unix" on DIR/opendkim.sock."""

    def __init__(self, domain="example.test", selector="sel1", kind="inet"):
        for path in (OPENDKIM, OPENDKIM_GENKEY):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} missing: opendkim / opendkim-tools "
                                        "are not installed (scripts/deps.sh)")
        self.domain, self.selector = domain, selector
        self.dir = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        subprocess.run([OPENDKIM_GENKEY, "-D", str(self.dir), "-d", domain,
                        "-s", selector], check=True, capture_output=True)
        run_as = _run_as()
        user = run_as[0] if run_as else "opendkim"
        if run_as is None:          # root: the key and socket folder go to opendkim
            pw = pwd.getpwnam("opendkim")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir / f"{selector}.private", pw.pw_uid, pw.pw_gid)
        if kind == "unix":
            self.address = self.dir / "opendkim.sock"
            self.port = None
            self.socket = f"unix:{self.address}"
            spec = f"local:{self.address}"
        else:
            self.port = free_port()
            self.address = ("127.0.0.1", self.port)
            self.socket = f"inet:127.0.0.1:{self.port}"
            spec = f"inet:{self.port}@127.0.0.1"
        self.conf = self.dir / "opendkim.conf"
        self.conf.write_text(OPENDKIM_CONFIG.format(
            d=self.dir, socket=spec, user=user, domain=domain, selector=selector,
            test_only=OPENDKIM_TEST_ONLY))
        self.proc = None

    def public_record(self) -> bytes:
        """The TXT record opendkim-genkey wrote (SELECTOR.txt), joined."""
        text = (self.dir / f"{self.selector}.txt").read_text()
        return "".join(re.findall(r'"([^"]*)"', text)).encode()

    def dnsfunc(self, name, timeout=5):
        """For dkim.verify(): the test's key, no DNS."""
        want = f"{self.selector}._domainkey.{self.domain}."
        name = name.decode() if isinstance(name, bytes) else name
        return self.public_record() if name.rstrip(".") + "." == want else None

    def start(self, timeout=30):
        out = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(self.conf)],
                                     stdout=out, stderr=out, start_new_session=True)
        out.close()
        _wait_ready(self.proc, self.address, "opendkim", self.log, timeout)
        return self

    def stop(self):
        _stop(self.proc)
        assert not milter_handshake(self.address, timeout=1)

    def cleanup(self):
        self.stop()
        print(f"--- opendkim log ({self.dir}):\n{self.log()}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            return (self.dir / "stdout.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

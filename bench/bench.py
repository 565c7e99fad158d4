#!/usr/bin/python3
"""bench.py - sealpost and Postfix side by side (see docs/BENCHMARKS.md).

Started by bench/run.sh (`make bench`), which installs Postfix and
gnuplot, raises the open-file limit and stops any system Postfix first.

Both MTAs run on this machine, on loopback high ports, from a private
work folder (BENCH_DIR, removed at the end unless BENCH_KEEP=1):

  Postfix   a private instance: its own config_directory and
            queue_directory, `postfix -c DIR start` / `stop`, master.cf
            written here (one smtpd inet service on 127.0.0.1:PORT, no
            chroot), main.cf per scenario.
  sealpost  `build/sealpost serve -c FILE` with a config written here.

Every scenario runs Postfix and sealpost alternately (A B, B A, A B, ...)
with a fresh start and an empty queue per run, and reports medians.
Environment (all optional):

  BENCH_QUICK=1        a much shorter run (fewer messages and levels)
  BENCH_SMOKE=1        a few seconds end to end (the ctest bench_smoke)
  BENCH_RUNS=N         runs per MTA and scenario (default 3)
  BENCH_ONLY=a,b       only these scenarios: a full name (accept-1k-s50) or
                       a prefix up to a dash (accept-1k, accept, relay,
                       maildir, idle, tls, fsync)
  BENCH_MTAS=...       postfix,sealpost (default both; sealpost alone
                       when Postfix is not installed and BENCH_SMOKE=1)
  BENCH_IDLE=...       idle levels, default "1000 5000 10000"
  BENCH_POSTFIX_IDLE_MAX=N  largest idle level tried with Postfix (5000)
  BENCH_OUT=DIR        where BENCHMARKS.md's table and the PNGs go
                       (default: docs/ for a full run, build/bench/ else)
  BENCH_QUIET_WAIT=S   before each measured run, wait up to S seconds
                       (default 15) for the rest of the machine to go quiet
  SEALPOST_BIN=PATH    the binary (default build/sealpost)
  BENCH_FS=journal     set by run.sh when it put the work folder on a fresh
                       journaled ext4 image (loop mount): the report goes
                       between the bench-journal markers of BENCHMARKS.md
                       and the plots to bench/journal/
"""
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
SENDER = "load@client.test"
LOCAL_RCPT = "bench@bench.test"
RELAY_RCPT = "bench@relay.test"


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0", "no")


QUICK = env_flag("BENCH_QUICK")
FS_LABEL = "journal" if os.environ.get("BENCH_FS") == "journal" else ""
SMOKE = env_flag("BENCH_SMOKE")
RUNS = int(os.environ.get("BENCH_RUNS") or (1 if SMOKE else 3))


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_greeting(port, timeout=20.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no 220 greeting on port {port} within {timeout}s")


# ------------------------------------------------------------------ /proc

def proc_table():
    """{pid: ppid} for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2:].split()
        table[int(d)] = int(rest[1])
    return table


def tree(root):
    """root and all its descendants (pids)."""
    if root is None:
        return []
    table = proc_table()
    if root not in table:
        return []
    children = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_ticks(pids):
    """utime+stime+cutime+cstime summed over pids. The children's fields
    hold every reaped descendant, so a worker that exits during a run
    still counts (in its parent)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2:].split()
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total


def memory_kb(pids):
    """(PSS, RSS) in kB summed over pids, from smaps_rollup."""
    pss = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith(b"Rss:"):
                        rss += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return pss, rss


def cpu_busy_ticks():
    """Busy CPU ticks of the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]          # minus idle and iowait


class Sampler:
    """Peak PSS of an MTA's process tree, sampled in the background."""

    def __init__(self, root_fn, interval=0.25):
        self.root_fn, self.interval = root_fn, interval
        self.peak_pss = self.peak_rss = self.peak_procs = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        pids = tree(self.root_fn())
        pss, rss = memory_kb(pids)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, len(pids))

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()


# ------------------------------------------------------------------ peers

class Sink:
    """Postfix's smtp-sink as the next hop; counts completed DATA. Without
    Postfix installed (only allowed for the smoke run) smtpload.py's sink."""

    def __init__(self, work):
        self.port = free_port()
        self.count = 0
        if shutil.which("smtp-sink"):
            cmd = ["smtp-sink", "-u", "nobody", "-c", f"{HOST}:{self.port}", "1024"]
        else:
            cmd = [PY, str(HERE / "smtpload.py"), "sink", "--port", str(self.port),
                   "--hold", "3600"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=open(work / "smtp-sink.err", "ab"),
            cwd=work)
        threading.Thread(target=self._read, daemon=True).start()
        wait_greeting(self.port, proc=self.proc)

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            buf += chunk
            m = list(re.finditer(rb"mesg=(\d+)", buf))
            if m:
                self.count = int(m[-1].group(1))
                buf = buf[m[-1].end():]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------ PKI

def make_pki(d: Path):
    """One ECDSA P-256 certificate for both MTAs."""
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-noenc", "-keyout", "key.pem",
                    "-out", "cert.pem", "-days", "30", "-subj", "/CN=bench.test",
                    "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                   cwd=d, check=True, capture_output=True)
    os.chmod(d / "key.pem", 0o600)
    return d / "cert.pem", d / "key.pem"


# ------------------------------------------------------------------ MTAs

class Postfix:
    name = "postfix"

    MASTER_CF = """\
# written by bench/bench.py: one smtpd on loopback, no chroot anywhere
{listen} inet n - n - {smtpd_max} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    def __init__(self, work: Path, pki):
        self.base = work / "postfix"
        self.conf = self.base / "etc"
        self.queue = self.base / "queue"
        self.vmail = self.base / "vmail"
        self.pki = pki
        self.port = None
        self.master_pid = None
        self.started = False

    def write_config(self, scen, sink_port):
        if self.base.exists():
            shutil.rmtree(self.base)
        for d in (self.conf, self.queue, self.base / "data", self.vmail):
            d.mkdir(parents=True)
        shutil.chown(self.base / "data", "postfix")
        nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True,
                                    text=True).stdout.strip() or 65534)
        os.chown(self.vmail, nobody, nobody)
        self.port = free_port()
        kind = scen["kind"]
        smtpd_max = max(200, scen.get("connections", 0) + 100)
        main = f"""\
# written by bench/bench.py for scenario {scen['name']}
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.base / 'data'}
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.base / 'maillog'}
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP
default_process_limit = {smtpd_max}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {self.vmail}
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
virtual_minimum_uid = 100
"""
        if kind in ("accept", "tls", "idle"):
            # Durable accept without delivery: every message is put on the
            # hold queue by cleanup (the HOLD action), qmgr never sees it.
            main += "smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject\n"
        if kind == "relay":
            main += f"relayhost = [{HOST}]:{sink_port}\n"
        if scen.get("milter"):
            main += f"smtpd_milters = inet:{HOST}:{MILTER.port}\nmilter_default_action = tempfail\n"
        if kind == "tls":
            cert, key = self.pki
            main += f"""\
smtpd_tls_security_level = may
smtpd_tls_chain_files = {key}, {cert}
smtpd_tls_session_cache_database = btree:${{data_directory}}/smtpd_scache
"""
        (self.conf / "main.cf").write_text(main)
        (self.conf / "master.cf").write_text(self.MASTER_CF.format(
            listen=f"{HOST}:{self.port}", smtpd_max=smtpd_max))

    def start(self, scen, sink_port=None):
        self.write_config(scen, sink_port)
        r = subprocess.run(["postfix", "-c", str(self.conf), "start"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: " + r.stderr + r.stdout)
        self.started = True
        pidfile = self.queue / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.master_pid = int(pidfile.read_text().split()[0])
                break
            except (OSError, ValueError, IndexError):
                time.sleep(0.05)
        record_pid("postfix-conf", str(self.conf))
        wait_greeting(self.port)

    def root(self):
        return self.master_pid

    def delivered(self):
        new = self.vmail / "bench" / "new"
        try:
            return len(os.listdir(new))
        except FileNotFoundError:
            return 0

    def queued(self):
        n = 0
        for sub in ("hold", "incoming", "active", "deferred", "maildrop"):
            for _, _, files in os.walk(self.queue / sub):
                n += len(files)
        return n

    def stop(self):
        if not self.started:
            return
        pids = tree(self.master_pid)
        subprocess.run(["postfix", "-c", str(self.conf), "stop"],
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            time.sleep(0.05)
        if any(os.path.exists(f"/proc/{p}") for p in pids):
            subprocess.run(["postfix", "-c", str(self.conf), "abort"], capture_output=True)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started = False
        self.master_pid = None

    @staticmethod
    def version():
        r = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True)
        return r.stdout.strip()


class Sealpost:
    name = "sealpost"

    def __init__(self, work: Path, pki, binary):
        self.base = work / "sealpost"
        self.pki = pki
        self.bin = binary
        self.proc = None
        self.port = None

    def _spawn(self, timeout=20.0):
        """Run sealpost on the config in self.base until it greets."""
        self.log = open(self.base / "sealpost.log", "ab")
        self.proc = subprocess.Popen([str(self.bin), "serve", "-c", str(self.base / "sealpost.conf")],
                                     stdout=self.log, stderr=self.log, cwd=self.base)
        record_pid("sealpost", str(self.proc.pid))
        try:
            wait_greeting(self.port, timeout=timeout, proc=self.proc)
        except Exception as e:
            raise RuntimeError(f"sealpost: {e}: " + (self.base / "sealpost.log").read_text()[-2000:])

    def restart(self):
        """Start again on the same spool and config (after a kill -9)."""
        self._spawn(timeout=30.0)

    def start(self, scen, sink_port=None):
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir(parents=True)
        self.port = free_port()
        kind = scen["kind"]
        conns = max(1000, scen.get("connections", 0) + 100)
        conf = f"""\
# written by bench/bench.py for scenario {scen['name']}
[server]
hostname = sealpost.bench.test
spool = spool
user =
queue_user =
delivery_user =
max_message_size = 10M
max_connections = {conns}
max_connections_per_ip = {conns}
shutdown_timeout = 2s

[listener mx]
address = {HOST}:{self.port}
role = mx
{"tls = starttls" if kind == "tls" else ""}
{"milters = dkim" if scen.get("milter") else ""}

[domain bench.test]
maildir = mail/{{domain}}/{{local}}

[queue]
hold = {"yes" if kind in ("accept", "tls", "idle") else "no"}
"""
        if kind == "relay":
            conf += f"""
[relay]
trusted_networks = 127.0.0.0/8
relayhost = [{HOST}]:{sink_port}
"""
        if scen.get("milter"):
            conf += f"\n[milter dkim]\nsocket = inet:{HOST}:{MILTER.port}\n"
        if kind == "tls":
            cert, key = self.pki
            conf += f"\n[tls]\ncertificate = {cert}\nprivate_key = {key}\n"
        (self.base / "sealpost.conf").write_text(conf)
        self._spawn()

    def root(self):
        return self.proc.pid if self.proc else None

    def delivered(self):
        new = self.base / "mail" / "bench.test" / "bench" / "new"
        try:
            return len(os.listdir(new))
        except FileNotFoundError:
            return 0

    def queued(self):
        q = self.base / "spool" / "queue"
        return len(os.listdir(q)) if q.is_dir() else 0

    def stop(self):
        if self.proc is None:
            return
        pids = tree(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in pids:              # any child left behind
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        self.proc = None

    def version(self):
        r = subprocess.run([str(self.bin), "version"], capture_output=True, text=True)
        return r.stdout.strip()


STATE_FILE = None
MILTER = None       # the OpenDKIM both MTAs ask in the milter scenarios


def start_milter():
    """OpenDKIM signing for bench.test, as the integration tests run it
    (tests/integration/milters.py)."""
    global MILTER
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from milters import OpenDKIM     # noqa: E402 - test helper, loaded on demand
    MILTER = OpenDKIM(domain="bench.test", selector="bench").start()
    record_pid("opendkim", str(MILTER.proc.pid))


def record_pid(kind, value):
    """Leave what must be stopped where run.sh's EXIT trap can find it."""
    if STATE_FILE:
        with open(STATE_FILE, "a") as f:
            f.write(f"{kind} {value}\n")


# ------------------------------------------------------------------ load

def smtp_source(port, sessions, count, size, rcpt, timeout):
    if not shutil.which("smtp-source"):     # smoke run without Postfix
        el, rc, out = smtpload(port, sessions, count, size, rcpt, timeout)
        return el, rc, json.dumps(out.get("errors"))[:300]
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-c", "-f", SENDER, "-t", rcpt, f"{HOST}:{port}"]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout)
        rc, err = r.returncode, r.stderr.decode(errors="replace")[-300:]
    except subprocess.TimeoutExpired:
        rc, err = -1, f"timeout after {timeout}s"
    return time.perf_counter() - t0, rc, err


def smtpload(port, sessions, count, size, rcpt, timeout, starttls=False):
    # Two processes from 10 sessions on: one Python process's GIL would
    # add its own queueing to the latencies.
    cmd = [PY, str(HERE / "smtpload.py"), "load", "--port", str(port),
           "--sessions", str(sessions), "--count", str(count), "--size", str(size),
           "--to", rcpt, "--from", SENDER, "--timeout", str(timeout),
           "--procs", "2" if sessions >= 10 else "1"]
    if starttls:
        cmd.append("--starttls")
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        rc = r.returncode
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        out, rc = {"errors": {str(e)[:100]: 1}}, -1
    return time.perf_counter() - t0, rc, out


def wait_until(pred, timeout, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------ scenarios

def plan():
    """The scenario list for this mode. count: messages per measured run;
    lat_count: messages of the smtpload run that measures latency."""
    if SMOKE:
        return [
            dict(name="fsync-start", kind="fsync", seconds=1),
            dict(name="accept-1k-s5", kind="accept", size=1024, sessions=5, count=100, lat_count=50),
            # Postfix takes seconds to start and stop: only the first
            # scenario runs it, to keep the smoke under 20 s.
            dict(name="relay-4k-s5", kind="relay", size=4096, sessions=5, count=100,
                 lat_count=20, mtas=["sealpost"]),
            dict(name="maildir-4k-s5", kind="maildir", size=4096, sessions=5, count=50,
                 lat_count=20, mtas=["sealpost"]),
            dict(name="tls-1k-s5", kind="tls", size=1024, sessions=5, count=50, mtas=["sealpost"]),
            dict(name="idle-100", kind="idle", connections=100, mtas=["sealpost"]),
            dict(name="kill9-1k-s10", kind="kill9", size=1024, sessions=10, count=1000000,
                 kill_after=0.5, mtas=["sealpost"]),
            dict(name="fsync-end", kind="fsync", seconds=1),
        ]
    if QUICK:
        return [
            dict(name="fsync-start", kind="fsync", seconds=2),
            dict(name="accept-1k-s50", kind="accept", size=1024, sessions=50, count=1000, lat_count=300),
            dict(name="accept-100k-s10", kind="accept", size=102400, sessions=10, count=300, lat_count=100),
            dict(name="relay-4k-s50", kind="relay", size=4096, sessions=50, count=1000, lat_count=300),
            dict(name="maildir-4k-s10", kind="maildir", size=4096, sessions=10, count=300, lat_count=100),
            dict(name="tls-1k-s50", kind="tls", size=1024, sessions=50, count=600),
            dict(name="milter-4k-s50", kind="accept", milter=True, size=4096, sessions=50,
                 count=600, lat_count=200),
            dict(name="idle-1000", kind="idle", connections=1000),
            dict(name="kill9-1k-s50", kind="kill9", size=1024, sessions=50, count=1000000,
                 kill_after=2.0, mtas=["sealpost"]),
            dict(name="fsync-end", kind="fsync", seconds=2),
        ]
    out = [dict(name="fsync-start", kind="fsync", seconds=3)]
    for size, tag in ((1024, "1k"), (102400, "100k")):
        for s in (1, 10, 50):
            out.append(dict(name=f"accept-{tag}-s{s}", kind="accept", size=size, sessions=s,
                            count=2000, lat_count=200))
    for s in (10, 50):
        out.append(dict(name=f"relay-4k-s{s}", kind="relay", size=4096, sessions=s,
                        count=5000, lat_count=300))
    out.append(dict(name="maildir-4k-s10", kind="maildir", size=4096, sessions=10,
                    count=2000, lat_count=200))
    # 50 sessions: every STARTTLS session waits ~40 ms for a delayed ACK
    # after the handshake (see BENCHMARKS.md), so 10 sessions would measure
    # that wait, not the MTA.
    out.append(dict(name="tls-1k-s50", kind="tls", size=1024, sessions=50, count=1500))
    # Every message through one real milter (OpenDKIM signing), as a
    # Postfix + OpenDKIM host runs: Postfix's smtpd processes talk to it
    # concurrently, sealpost's milter processes ([server] milter_processes,
    # its default of 2) one message each at a time.
    out.append(dict(name="milter-4k-s50", kind="accept", milter=True, size=4096, sessions=50,
                    count=1500, lat_count=200))
    levels = [int(x) for x in os.environ.get("BENCH_IDLE", "1000 5000 10000").split()]
    for n in levels:
        out.append(dict(name=f"idle-{n}", kind="idle", connections=n))
    # Durability under the benchmark load (sealpost only: it is the
    # guarantee being checked, not a comparison).
    # count: more than can be sent before the kill; the load client's
    # sessions end at their first refused connection after it.
    out.append(dict(name="kill9-1k-s50", kind="kill9", size=1024, sessions=50, count=1000000,
                    kill_after=4.0, mtas=["sealpost"]))
    out.append(dict(name="fsync-end", kind="fsync", seconds=3))
    return out


QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT") or (0 if SMOKE else 15))


def wait_quiet(limit=0.3, sample=0.5):
    """On a shared machine: wait (at most BENCH_QUIET_WAIT seconds, default
    15) until the rest of the machine uses less than `limit` cores, so a
    run does not start in the middle of someone else's burst. Returns the
    seconds waited. The noise during the run is recorded anyway."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < QUIET_WAIT:
        b0 = cpu_busy_ticks()
        time.sleep(sample)
        if (cpu_busy_ticks() - b0) / CLK_TCK / sample < limit:
            break
    return round(time.monotonic() - t0, 1)


def one_run(mta, scen, sink, run_no):
    """Start mta, warm it up, measure one run, stop it. Returns a record."""
    kind = scen["kind"]
    rec = {"scenario": scen["name"], "mta": mta.name, "run": run_no, "kind": kind,
           "size": scen.get("size"), "sessions": scen.get("sessions"),
           "load_before": os.getloadavg()[0]}
    mta.start(scen, sink.port if sink else None)
    try:
        rcpt = RELAY_RCPT if kind == "relay" else LOCAL_RCPT
        sessions, count, size = scen["sessions"], scen["count"], scen["size"]
        timeout = max(120.0, count / 10.0)

        def done_count():
            if kind == "relay":
                return sink.count
            if kind == "maildir":
                return mta.delivered()
            return None

        # Warm-up: one message per session (Postfix forks its smtpd and
        # cleanup processes, sealpost's workers fault their memory in).
        if kind == "tls":
            smtpload(mta.port, sessions, sessions, size, rcpt, 60, starttls=True)
        else:
            smtp_source(mta.port, sessions, sessions, size, rcpt, 60)
        base = 0
        if kind in ("relay", "maildir"):
            wait_until(lambda: done_count() >= sessions, 60)
            base = done_count()
        time.sleep(0.3)

        rec["quiet_wait_s"] = wait_quiet()
        pids_before = tree(mta.root())
        cpu0 = cpu_ticks(pids_before)
        busy0 = cpu_busy_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with Sampler(mta.root) as samp:
            t0 = time.perf_counter()
            if kind == "tls":
                el, rc, out = smtpload(mta.port, sessions, count, size, rcpt, timeout, starttls=True)
                rec.update({k: out.get(k) for k in ("lat_p50_ms", "lat_p99_ms", "sent", "failed")})
                err = json.dumps(out.get("errors") or {})[:300]
                ok = rc == 0
            else:
                el, rc, err = smtp_source(mta.port, sessions, count, size, rcpt, timeout)
                ok = rc == 0
            rec["client_elapsed_s"] = round(el, 3)
            if kind in ("relay", "maildir") and ok:
                ok = wait_until(lambda: done_count() >= base + count, timeout, step=0.005)
                if not ok:
                    err = f"only {done_count() - base} of {count} arrived within {timeout:.0f}s"
            elapsed = time.perf_counter() - t0
            cpu1 = cpu_ticks(tree(mta.root()))
            busy1 = cpu_busy_ticks()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        mta_cpu = (cpu1 - cpu0) / CLK_TCK
        busy = (busy1 - busy0) / CLK_TCK
        # CPU the rest of the machine used meanwhile (other users' work,
        # the sink, this script), in cores: the noise indicator.
        rec["other_cores"] = round(max(0.0, busy - mta_cpu - client_cpu) / elapsed, 2)
        rec["mta_cores"] = round(mta_cpu / elapsed, 2)
        rec.update({
            "ok": ok, "error": None if ok else err, "count": count,
            "elapsed_s": round(elapsed, 3),
            "msgs_per_s": round(count / elapsed, 1) if ok else None,
            "cpu_ms_per_msg": round((cpu1 - cpu0) * 1000.0 / CLK_TCK / count, 3),
            "client_cpu_s": round(client_cpu, 2),
            "peak_pss_mb": round(samp.peak_pss / 1024.0, 1),
            "peak_procs": samp.peak_procs,
        })
        if kind in ("accept",):
            rec["queued_after"] = mta.queued()
        # Latency: a separate smtpload run against the same instance.
        lat_n = scen.get("lat_count", 0)
        if ok and lat_n and kind != "tls":
            _, lrc, out = smtpload(mta.port, sessions, lat_n, size, rcpt, max(60.0, lat_n / 5.0))
            rec["lat_p50_ms"] = out.get("lat_p50_ms")
            rec["lat_p99_ms"] = out.get("lat_p99_ms")
            rec["lat_msgs_per_s"] = out.get("msgs_per_s")
            if lrc != 0:
                rec["lat_error"] = json.dumps(out.get("errors"))[:300]
    finally:
        mta.stop()
    return rec


QUEUE_ID_IN_RECEIVED = re.compile(rb"\(sealpost\) with \S+ id ([0-9A-F]{16})")


KILL9_FLOWING = 20     # delivered messages that show the load is on before the kill


def kill9_run(mta, scen, work):
    """Durability under load: smtpload sends 1 KB messages from 50 sessions
    to sealpost delivering into Maildir; once mail flows and `kill_after`
    seconds more have passed, the master is killed with SIGKILL (its
    children die with it), then sealpost is started again on the same
    spool. Every message whose 250 the client
    saw must end up in the Maildir (found by the queue id in its Received
    line); a message may arrive twice (at-least-once), none may be lost."""
    rec = {"scenario": scen["name"], "mta": mta.name, "kind": "kill9", "run": 0,
           "sessions": scen["sessions"], "size": scen["size"],
           "load_before": os.getloadavg()[0]}
    acked_file = work / "acked.txt"
    acked_file.unlink(missing_ok=True)
    mta.start(dict(scen, kind="maildir"))
    try:
        load = subprocess.Popen(
            [PY, str(HERE / "smtpload.py"), "load", "--port", str(mta.port),
             "--sessions", str(scen["sessions"]), "--count", str(scen["count"]),
             "--size", str(scen["size"]), "--to", LOCAL_RCPT, "--procs", "2",
             "--io-timeout", "5", "--timeout", "120", "--acked", str(acked_file),
             "--stop-on-refused"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # The kill must come during the load: wait until mail flows (a
        # loaded machine may take longer than kill_after to get going).
        wait_until(lambda: mta.delivered() >= KILL9_FLOWING or load.poll() is not None, 60,
                   step=0.05)
        time.sleep(scen["kill_after"])
        family = tree(mta.proc.pid)
        os.kill(mta.proc.pid, signal.SIGKILL)
        mta.proc.wait()
        wait_until(lambda: not [p for p in family if os.path.exists(f"/proc/{p}")], 10)
        rec["delivered_at_kill"] = mta.delivered()
        mta.log.close()
        out, _ = load.communicate(timeout=300)
        mta.restart()
        acked = [q for q in acked_file.read_text().split() if q]
        rec["acked"] = len(acked)
        ok = wait_until(lambda: mta.queued() == 0, 120, step=0.1)
        new = mta.base / "mail" / "bench.test" / "bench" / "new"
        seen = {}
        for f in (new.iterdir() if new.is_dir() else []):
            m = QUEUE_ID_IN_RECEIVED.search(f.read_bytes()[:2048])
            if m:
                seen[m.group(1).decode()] = seen.get(m.group(1).decode(), 0) + 1
        missing = [q for q in acked if q not in seen]
        rec.update({
            "delivered": sum(seen.values()),
            "missing": len(missing), "missing_examples": missing[:5],
            "duplicates": sum(n - 1 for n in seen.values()),
            "unacknowledged_delivered": len(set(seen) - set(acked)),
            "ok": ok and not missing and 0 < len(acked) < scen["count"],
        })
        if not ok:
            rec["error"] = f"queue not empty after restart: {mta.queued()} left"
        elif missing:
            rec["error"] = f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
        elif not 0 < len(acked) < scen["count"]:
            rec["error"] = f"the kill did not come during the load ({len(acked)} acked)"
    finally:
        mta.stop()
    return rec


def idle_run(mta, scen):
    n = scen["connections"]
    rec = {"scenario": scen["name"], "mta": mta.name, "kind": "idle", "connections": n,
           "run": 0, "load_before": os.getloadavg()[0]}
    limit = int(os.environ.get("BENCH_POSTFIX_IDLE_MAX", "5000"))
    if mta.name == "postfix" and n > limit:
        rec.update(ok=False, error=f"skipped: above BENCH_POSTFIX_IDLE_MAX={limit}")
        return rec
    budget = 20.0 if SMOKE else (60.0 if QUICK else 120.0)
    mta.start(scen)
    client = None
    try:
        time.sleep(0.5)
        pss0, rss0 = memory_kb(tree(mta.root()))
        client = subprocess.Popen([PY, str(HERE / "smtpload.py"), "idle", "--port", str(mta.port),
                                   "--connections", str(n), "--timeout", str(budget),
                                   "--hold", str(budget + 120)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        record_pid("client", str(client.pid))
        line = client.stdout.readline()
        res = json.loads(line.split(" ", 1)[1]) if line.startswith("READY ") else {}
        time.sleep(1.0)
        pids = tree(mta.root())
        pss1, rss1 = memory_kb(pids)
        parked = res.get("parked") or 0
        rec.update({
            "ok": parked == n, "parked": parked, "failed": res.get("failed"),
            "seconds_to_all": res.get("seconds_to_last_parked"),
            "pss_idle_mb": round(pss0 / 1024.0, 1), "pss_mb": round(pss1 / 1024.0, 1),
            "rss_mb": round(rss1 / 1024.0, 1), "procs": len(pids),
            "kb_per_conn": round((pss1 - pss0) / parked, 1) if parked else None,
            "error": None if parked == n else f"{parked} of {n} parked within {budget:.0f}s: {res.get('errors')}",
        })
    finally:
        if client is not None:
            try:
                client.stdin.close()
                client.wait(60)
            except (subprocess.TimeoutExpired, OSError):
                client.kill()
                client.wait()
        mta.stop()
    return rec


def fsync_run(work, scen):
    r = subprocess.run([PY, str(HERE / "fsync_rate.py"), str(work), "--seconds",
                        str(scen["seconds"])], capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout)
    return {"scenario": scen["name"], "mta": "disk", "kind": "fsync", "run": 0, "ok": True,
            "load_before": os.getloadavg()[0], **out}


# ------------------------------------------------------------------ report

def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def machine_info(work):
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory_gib"] = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    r = subprocess.run(["df", "-PT", str(work)], capture_output=True, text=True)
    try:
        dev, fstype = r.stdout.splitlines()[1].split()[:2]
        info["disk"] = f"{dev} ({fstype}"
        if fstype.startswith("ext"):
            journal = any(os.path.basename(dev) in n for n in
                          (os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []))
            info["disk"] += ", with a journal" if journal else ", without a journal"
        info["disk"] += ")"
        if dev.startswith("/dev/loop"):
            back = Path(f"/sys/block/{os.path.basename(dev)}/loop/backing_file")
            if back.exists():
                info["disk"] += f", a loop device on {back.read_text().strip()}"
        blk = os.path.basename(dev)
        rot = Path(f"/sys/block/{blk}/queue/rotational")
        if rot.exists():
            info["disk"] += ", rotational" if rot.read_text().strip() == "1" else ", non-rotational"
    except (IndexError, ValueError):
        pass
    return info


def git_describe():
    """The commit the binary was presumably built from, and whether src/
    had uncommitted changes."""
    r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    d = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "CMakeLists.txt"],
                       capture_output=True, text=True)
    return r.stdout.strip() + (" + uncommitted changes in src/" if d.stdout.strip() else ", src/ unmodified")


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def ratio(a, b, nd=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{nd}f}×"


TARGETS = {  # from issue 6: sealpost / Postfix
    "accept-1k-s50": "≥ 4× msgs/s, ≤ 1/8 CPU",
    "accept-100k-s10": "≥ 2× msgs/s",
    "relay-4k-s50": "≥ 3× msgs/s",
    "tls-1k-s50": "≥ 3× msgs/s",
}


def summarize(records):
    """{scenario: {mta: {metric: median}}} for the throughput scenarios."""
    out = {}
    for r in records:
        if r["kind"] in ("idle", "fsync", "kill9"):
            continue
        out.setdefault(r["scenario"], {}).setdefault(r["mta"], []).append(r)
    summary = {}
    for scen, per in out.items():
        summary[scen] = {}
        for mta, rs in per.items():
            good = [r for r in rs if r.get("ok")]
            summary[scen][mta] = {
                "runs": len(rs), "ok_runs": len(good),
                "msgs_per_s": median([r.get("msgs_per_s") for r in good]),
                "cpu_ms_per_msg": median([r.get("cpu_ms_per_msg") for r in good]),
                "peak_pss_mb": median([r.get("peak_pss_mb") for r in good]),
                "lat_p50_ms": median([r.get("lat_p50_ms") for r in good]),
                "lat_p99_ms": median([r.get("lat_p99_ms") for r in good]),
                "other_cores": median([r.get("other_cores") for r in good]),
                "errors": sorted({r["error"] for r in rs if r.get("error")})[:3],
            }
    return summary


def write_report(records, meta, out_dir: Path, docs_md: Path):
    summary = summarize(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "records": records}, indent=1) + "\n")
    lines = []
    m = meta
    lines.append(f"Run: {m['date']}, mode **{m['mode']}**, {m['runs']} run(s) per MTA and "
                 f"scenario, alternating A/B, medians. Took {m['duration_min']} min.")
    lines.append("")
    mi = m["machine"]
    lines.append(f"- Machine: {mi.get('nproc')} CPUs ({mi.get('cpu', '?')}), "
                 f"{mi.get('memory_gib')} GiB memory, kernel {mi.get('kernel')}, "
                 f"disk {mi.get('disk', '?')}; 1-minute load average before/after: "
                 f"{m['load_start']:.2f} / {m['load_end']:.2f}")
    lines.append(f"- Versions: Postfix {m['postfix_version'] or '(not run)'}, {m['sealpost_version']} "
                 f"(commit {m.get('git') or '?'})")
    lines.append("- Durability: Postfix fsyncs the queue file (after renaming it into place; no "
                 "directory fsync) before its 250; sealpost fsyncs the message file and, after the "
                 "rename, the queue directory before its 250.")
    lines.append("")
    lines.append("| scenario | Postfix msgs/s | sealpost msgs/s | ratio | Postfix CPU ms/msg | "
                 "sealpost CPU ms/msg | ratio | Postfix peak PSS MB | sealpost peak PSS MB | "
                 "Postfix p50 / p99 ms | sealpost p50 / p99 ms | target |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for scen, per in summary.items():
        p, s = per.get("postfix", {}), per.get("sealpost", {})
        lines.append(
            f"| {scen} | {fmt(p.get('msgs_per_s'))} | {fmt(s.get('msgs_per_s'))} | "
            f"{ratio(s.get('msgs_per_s'), p.get('msgs_per_s'))} | "
            f"{fmt(p.get('cpu_ms_per_msg'), 2)} | {fmt(s.get('cpu_ms_per_msg'), 2)} | "
            f"{ratio(s.get('cpu_ms_per_msg'), p.get('cpu_ms_per_msg'))} | "
            f"{fmt(p.get('peak_pss_mb'))} | {fmt(s.get('peak_pss_mb'))} | "
            f"{fmt(p.get('lat_p50_ms'), 1)} / {fmt(p.get('lat_p99_ms'), 1)} | "
            f"{fmt(s.get('lat_p50_ms'), 1)} / {fmt(s.get('lat_p99_ms'), 1)} | "
            f"{TARGETS.get(scen, '')} |")
    errs = [(scen, mta, v["errors"], v["runs"] - v["ok_runs"])
            for scen, per in summary.items() for mta, v in per.items() if v["errors"]]
    if errs:
        lines.append("")
        lines.append("Failed runs (left out of the medians):")
        for scen, mta, e, n in errs:
            lines.append(f"- {scen} {mta}: {n} failed: " + "; ".join(x.replace('|', '/') for x in e))
    idle = [r for r in records if r["kind"] == "idle"]
    if idle:
        lines.append("")
        lines.append("Idle connections parked after EHLO (one run each; memory is the "
                     "PSS of the MTA's whole process tree with every connection parked):")
        lines.append("")
        lines.append("| connections | MTA | parked | seconds until the last was parked | "
                     "processes | PSS MB | RSS MB | PSS before MB | KB per connection | note |")
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in idle:
            lines.append(f"| {r['connections']} | {r['mta']} | {fmt(r.get('parked'))} | "
                         f"{fmt(r.get('seconds_to_all'), 2)} | {fmt(r.get('procs'))} | "
                         f"{fmt(r.get('pss_mb'))} | {fmt(r.get('rss_mb'))} | {fmt(r.get('pss_idle_mb'))} | "
                         f"{fmt(r.get('kb_per_conn'))} | "
                         f"{(r.get('error') or '').replace('|', '/')[:160]} |")
    k9 = [r for r in records if r["kind"] == "kill9"]
    if k9:
        lines.append("")
        lines.append("Durability under load (sealpost, delivering into Maildir while smtpload "
                     "sends 1 KB messages; `kill -9` of the master mid-load, its children die "
                     "with it; then a restart on the same spool):")
        lines.append("")
        lines.append("| scenario | sessions | 250s seen by the client | delivered in Maildir "
                     "at the kill | acknowledged and lost | duplicates | unacknowledged but "
                     "delivered | result |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in k9:
            lines.append(f"| {r['scenario']} | {fmt(r.get('sessions'))} | {fmt(r.get('acked'))} | "
                         f"{fmt(r.get('delivered_at_kill'))} | {fmt(r.get('missing'))} | "
                         f"{fmt(r.get('duplicates'))} | {fmt(r.get('unacknowledged_delivered'))} | "
                         f"{'ok' if r.get('ok') else (r.get('error') or 'failed').replace('|', '/')[:160]} |")
    fs = [r for r in records if r["kind"] == "fsync"]
    if fs:
        lines.append("")
        lines.append("Disk reference (bench/fsync_rate.py, one thread, same file system as "
                     "both queues), write + fsync(file) + fsync(directory) cycles per second "
                     f"({fs[0]['size']}-octet files): "
                     + ", ".join(f"**{r['cycles_per_s']}** ({r['scenario'].replace('fsync-', 'at the ')}"
                                 f" of the run, load {r.get('load_before', 0):.1f})" for r in fs) + ".")
    runs = [r for r in records if r["kind"] not in ("idle", "fsync", "kill9")]
    if runs:
        lines.append("")
        lines.append("Every run, in the order run (msgs/s; `other` = CPU cores used meanwhile "
                     "by everything on the machine except the MTA under test and the load client, "
                     "i.e. the noise; 2 cores in all):")
        lines.append("")
        lines.append("| scenario | runs: MTA msgs/s (other cores) |")
        lines.append("|---|---|")
        by = {}
        for r in runs:
            by.setdefault(r["scenario"], []).append(
                f"{r['mta']} {fmt(r.get('msgs_per_s'))} ({fmt(r.get('other_cores'), 2)})")
        for scen, items in by.items():
            lines.append(f"| {scen} | {', '.join(items)} |")
    png = make_plot(summary, out_dir)
    if png:
        rel = os.path.relpath(png, docs_md.parent)
        lines.append("")
        lines.append(f"![msgs/s and CPU per message, Postfix vs sealpost]({rel})")
    ipng = make_idle_plot(records, out_dir)
    if ipng:
        lines.append("")
        lines.append(f"![memory with idle connections]({os.path.relpath(ipng, docs_md.parent)})")
    text = "\n".join(lines) + "\n"
    tag = f"bench-{FS_LABEL}" if FS_LABEL else "bench"
    begin, end = f"<!-- {tag}:begin (generated by bench/bench.py) -->", f"<!-- {tag}:end -->"
    if docs_md.exists():
        old = docs_md.read_text()
    else:
        old = ("# Benchmarks\n\nGenerated by `make bench` (bench/run.sh); "
               "see bench/bench.py.\n\n" + begin + "\n" + end + "\n")
    if begin in old and end in old:
        new = old[:old.index(begin) + len(begin)] + "\n" + text + old[old.index(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + begin + "\n" + text + end + "\n"
    docs_md.parent.mkdir(parents=True, exist_ok=True)
    docs_md.write_text(new)
    log(f"wrote {docs_md}" + (f" and {png}" if png else ""))
    print(text)


def make_idle_plot(records, out_dir: Path):
    """PSS of the whole MTA against parked connections (log scale)."""
    idle = [r for r in records if r["kind"] == "idle" and r.get("pss_mb")]
    if not idle or not shutil.which("gnuplot"):
        return None
    levels = sorted({r["connections"] for r in idle})
    dat = out_dir / "idle.dat"
    with open(dat, "w") as f:
        f.write("# connections postfix_pss_mb sealpost_pss_mb\n")
        for n in levels:
            vals = []
            for mta in ("postfix", "sealpost"):
                v = [r for r in idle if r["connections"] == n and r["mta"] == mta
                     and r.get("parked") == n]
                vals.append(str(v[0]["pss_mb"]) if v else "NaN")
            f.write(f"{n} {' '.join(vals)}\n")
    png = out_dir / "idle.png"
    gp = f"""
set terminal pngcairo size 800,450 font "sans,10"
set output "{png}"
set title "Memory with N idle connections parked after EHLO (PSS of all the MTA's processes)"
set logscale y
set xlabel "connections"
set ylabel "MB (log scale)"
set grid
set key top left
set datafile missing "NaN"
plot "{dat}" using 1:2 with linespoints lw 2 pt 7 lc rgb "#7f7f7f" title "Postfix", \\
     "" using 1:3 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "sealpost"
"""
    r = subprocess.run(["gnuplot"], input=gp, capture_output=True, text=True)
    dat.unlink()
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-500:])
        return None
    return png


def make_plot(summary, out_dir: Path):
    if not shutil.which("gnuplot"):
        log("gnuplot not installed: no plot")
        return None
    rows = []
    for scen, per in summary.items():
        p, s = per.get("postfix", {}), per.get("sealpost", {})
        rows.append((scen, p.get("msgs_per_s"), s.get("msgs_per_s"),
                     p.get("cpu_ms_per_msg"), s.get("cpu_ms_per_msg")))
    if not rows:
        return None
    dat = out_dir / "throughput.dat"
    with open(dat, "w") as f:
        f.write("# scenario postfix_msgs sealpost_msgs postfix_cpu sealpost_cpu\n")
        for r in rows:
            f.write(" ".join(["\"%s\"" % r[0]] + ["NaN" if v is None else str(v) for v in r[1:]]) + "\n")
    png = out_dir / "throughput.png"
    have_p = any(r[1] is not None for r in rows)
    have_s = any(r[2] is not None for r in rows)

    def series(pcol, scol):
        parts = []
        if have_p:
            parts.append(f'"{dat}" using {pcol}:xtic(1) title "Postfix" lc rgb "#7f7f7f"')
        if have_s:
            parts.append(f'"{dat}" using {scol}' + ("" if have_p else ":xtic(1)")
                         + ' title "sealpost" lc rgb "#1f77b4"')
        return ", ".join(parts)

    if not (have_p or have_s):
        return None
    gp = f"""
set terminal pngcairo size 1100,800 font "sans,10"
set output "{png}"
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set grid ytics
set key top right
set xtics rotate by -25
set title "Messages per second (median; higher is better)"
set ylabel "msgs/s"
plot {series(2, 3)}
set title "CPU milliseconds per message, all the MTA's processes (median; lower is better)"
set ylabel "CPU ms / msg"
plot {series(4, 5)}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=gp, capture_output=True, text=True)
    dat.unlink()
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-500:])
        return None
    return png


# ------------------------------------------------------------------ main

def main():
    global STATE_FILE
    t_start = time.time()
    binary = Path(os.environ.get("SEALPOST_BIN") or REPO / "build" / "sealpost")
    if not binary.exists():
        sys.exit(f"bench: {binary} not built (make build)")
    have_postfix = all(shutil.which(t) for t in ("postfix", "smtp-source", "smtp-sink"))
    mtas = os.environ.get("BENCH_MTAS", "postfix,sealpost").split(",")
    if have_postfix and os.geteuid() != 0 and "postfix" in mtas:
        if not SMOKE:
            sys.exit("bench: must run as root (a private Postfix instance needs it)")
        have_postfix = False
    if not have_postfix:
        if not SMOKE:
            sys.exit("bench: postfix (smtp-source, smtp-sink) is not installed; run bench/run.sh")
        mtas = [m for m in mtas if m != "postfix"]
        log("Postfix not installed (or not root): smoke run with sealpost and smtpload only")
    work = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="sealpost-bench.", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)       # Postfix's virtual(8) runs as nobody under it
    STATE_FILE = os.environ.get("BENCH_STATE") or str(work / "state")
    if not env_flag("BENCH_KEEP") and not os.environ.get("BENCH_DIR"):
        record_pid("workdir", str(work))
    if SMOKE:
        mode = "smoke"
    elif QUICK:
        mode = "quick"
    else:
        mode = "full"
    default_out = REPO / "docs" if mode == "full" else REPO / "build" / "bench"
    out_base = Path(os.environ.get("BENCH_OUT") or default_out)
    docs_md = out_base / "BENCHMARKS.md"
    out_dir = out_base / "bench" / FS_LABEL if FS_LABEL else out_base / "bench"
    only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]

    # One binary for the whole run, even if build/ is rebuilt meanwhile.
    shutil.copy2(binary, work / "sealpost.bin")
    binary = work / "sealpost.bin"
    pki = make_pki(work / "pki")
    objs = {}
    if "postfix" in mtas:
        objs["postfix"] = Postfix(work, pki)
    if "sealpost" in mtas:
        objs["sealpost"] = Sealpost(work, pki, binary)
    order = [objs[m] for m in ("postfix", "sealpost") if m in objs]
    records = []
    sink = None
    stopping = {"now": False}

    def on_signal(signum, frame):
        stopping["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "mode": mode, "runs": RUNS,
            "machine": machine_info(work), "load_start": os.getloadavg()[0],
            "postfix_version": Postfix.version() if "postfix" in objs else None,
            "sealpost_version": Sealpost(work, pki, binary).version(),
            "git": git_describe()}
    log(f"mode {mode}, {RUNS} run(s), work folder {work}, MTAs {', '.join(objs)}")
    try:
        if any(s["kind"] == "relay" for s in plan()):
            sink = Sink(work)
            record_pid("sink", str(sink.proc.pid))
        if any(s.get("milter") and (not only or any(s["name"].startswith(o) for o in only))
               for s in plan()):
            start_milter()
        for scen in plan():
            if only and not any(scen["name"] == o or scen["name"].startswith(o + "-")
                                for o in only):
                continue
            if scen["kind"] == "fsync":
                rec = fsync_run(work, scen)
                records.append(rec)
                log(f"{scen['name']}: {rec['cycles_per_s']} cycles/s")
                continue
            mta_order = [m for m in order if m.name in scen.get("mtas", [m.name])]
            if scen["kind"] == "kill9":
                for mta in mta_order:
                    try:
                        rec = kill9_run(mta, scen, work)
                    except (RuntimeError, TimeoutError, OSError,
                            subprocess.TimeoutExpired) as e:
                        rec = {"scenario": scen["name"], "mta": mta.name, "kind": "kill9",
                               "run": 0, "ok": False, "error": str(e)[:300]}
                    records.append(rec)
                    log(f"{scen['name']} {mta.name}: {rec.get('acked')} acked before and "
                        f"around the kill, {rec.get('missing')} lost, "
                        f"{rec.get('duplicates')} duplicates {rec.get('error') or ''}")
                continue
            if scen["kind"] == "idle":
                for mta in mta_order:
                    rec = idle_run(mta, scen)
                    records.append(rec)
                    log(f"{scen['name']} {mta.name}: parked {rec.get('parked')} in "
                        f"{rec.get('seconds_to_all')}s, PSS {rec.get('pss_mb')} MB, "
                        f"{rec.get('procs')} procs {rec.get('error') or ''}")
                continue
            for run in range(RUNS):
                seq = mta_order if run % 2 == 0 else list(reversed(mta_order))
                for mta in seq:
                    try:
                        rec = one_run(mta, scen, sink if scen["kind"] == "relay" else None, run)
                    except (RuntimeError, TimeoutError, OSError) as e:
                        rec = {"scenario": scen["name"], "mta": mta.name, "run": run,
                               "kind": scen["kind"], "ok": False, "error": str(e)[:300]}
                    records.append(rec)
                    log(f"{scen['name']} run {run} {mta.name}: {rec.get('msgs_per_s')} msgs/s, "
                        f"{rec.get('cpu_ms_per_msg')} CPU ms/msg, PSS {rec.get('peak_pss_mb')} MB, "
                        f"p50/p99 {rec.get('lat_p50_ms')}/{rec.get('lat_p99_ms')} ms"
                        + ("" if rec.get("ok") else f"  FAILED: {rec.get('error')}"))
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
    finally:
        for mta in order:
            try:
                mta.stop()
            except Exception as e:  # noqa: BLE001 - best effort at teardown
                log(f"stopping {mta.name}: {e}")
        if sink:
            sink.stop()
        if MILTER:
            MILTER.cleanup()
    meta["load_end"] = os.getloadavg()[0]
    meta["duration_min"] = round((time.time() - t_start) / 60.0, 1)
    if records and not stopping["now"]:
        write_report(records, meta, out_dir, docs_md)
    if not env_flag("BENCH_KEEP") and not os.environ.get("BENCH_DIR"):
        shutil.rmtree(work, ignore_errors=True)
    bad = [r for r in records if not r.get("ok") and not str(r.get("error", "")).startswith("skipped")]
    if SMOKE:
        # The smoke asserts only that the harness ran end to end.
        if bad or not records:
            log(f"smoke: {len(bad)} failed record(s)")
            return 1
        log(f"smoke: {len(records)} records, all ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())

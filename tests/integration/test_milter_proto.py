"""The milter client (src/milter/milter_conv.c) against the real milters,
through its test driver tests/tools/milter_run.c: a real rspamd (its
rspamd_proxy worker in milter mode, self_scan) and a real OpenDKIM, each
started by the test as its own process with its own config in a temporary
folder, on loopback or a unix socket there. No system service is touched.

What is checked: rspamd rejects GTUBE with its own text and adds its
headers (X-Spamd-Result folded, X-Rspamd-Queue-Id = our queue id: the "i"
macro arrived) to a clean message, and skips them for an authenticated
sender ({auth_authen} arrived); OpenDKIM signs a message from its domain
and the DKIM-Signature it inserts verifies (python3-dkim) over the message
as we sent it, folded Subject included: the header fields and the body
reached it exactly. Both in a row: rspamd's ACCEPT does not keep OpenDKIM
from signing.

Trusts: rspamd, opendkim and opendkim-genkey on PATH (/usr/sbin, /usr/bin);
a missing one fails the test (scripts/deps.sh installs them).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, free_port
from smtpwire import wait_until

import socket

MILTER_RUN = os.environ.get("MILTER_RUN_BIN") or str(
    Path(BIN).resolve().parent / "tests" / "milter_run")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
QUEUE_ID = "4F3A2B1C0D9E8F70"

RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "{d}/run/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns {{ nameserver = ["127.0.0.1:{dead_port}"]; timeout = 0.2s; retransmits = 1; }}
}}
logging {{
    type = "file";
    filename = "{d}/rspamd.log";
    level = "info";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 120s;
    upstream "local" {{ default = yes; self_scan = yes; }}
    count = 1;
    reject_message = "Spam message rejected";
}}
"""

MILTER_HEADERS = """\
use = ["x-spamd-result", "x-rspamd-queue-id", "authentication-results"];
skip_local = false;
"""

OPENDKIM_CONF = """\
Syslog no
Mode sv
Domain example.com
Selector sel
KeyFile {d}/sel.private
RequireSafeKeys no
Socket local:{d}/dkim.sock
PidFile {d}/opendkim.pid
Canonicalization relaxed/simple
"""


def need(program):
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    assert path, f"{program} is not installed (scripts/deps.sh installs it)"
    return path


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def rspamd():
    exe = need("rspamd")
    d = tempfile.mkdtemp(prefix="sp-rspamd-")
    for sub in ("db", "run", "local/local.d"):
        os.makedirs(os.path.join(d, sub))
    port = free_port()
    Path(d, "rspamd.conf").write_text(
        RSPAMD_CONF.format(d=d, port=port, dead_port=free_port()))
    Path(d, "local/local.d/milter_headers.conf").write_text(MILTER_HEADERS)
    cmd = [exe, "-f", "-c", f"{d}/rspamd.conf", f"--var=DBDIR={d}/db",
           f"--var=RUNDIR={d}/run", f"--var=LOCAL_CONFDIR={d}/local"]
    if os.geteuid() == 0:           # rspamd will not run as root unasked
        cmd += ["-u", "root", "-g", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Loading (TLD list, regexp compilation) takes a while on a busy machine.
        assert wait_until(lambda: listening(port) or proc.poll() is not None,
                          timeout=180) and proc.poll() is None, \
            "rspamd did not start: " + Path(d, "rspamd.log").read_text()[-2000:]
        yield f"inet:127.0.0.1:{port}"
    finally:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def opendkim():
    exe = need("opendkim")
    d = tempfile.mkdtemp(prefix="sp-dkim-")
    os.chmod(d, 0o700)
    subprocess.run([need("opendkim-genkey"), "-D", d, "-d", "example.com", "-s", "sel"],
                   check=True)
    Path(d, "opendkim.conf").write_text(OPENDKIM_CONF.format(d=d))
    cmd = [exe, "-f", "-x", f"{d}/opendkim.conf"]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: os.path.exists(f"{d}/dkim.sock") or proc.poll() is not None,
                          timeout=30) and proc.poll() is None, "opendkim did not start"
        txt = Path(d, "sel.txt").read_text()
        key = "".join(re.findall(r'"([^"]*)"', txt)).encode()
        yield f"unix:{d}/dkim.sock", key
    finally:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


def run(socket_spec, message, *args):
    """milter_run on message (LF line ends; the driver makes them CRLF)."""
    assert os.path.exists(MILTER_RUN), f"{MILTER_RUN} not built"
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        f.write(message)
        f.flush()
        res = subprocess.run([MILTER_RUN, socket_spec, f.name, "--queue-id", QUEUE_ID,
                              "--timeout", "60", *args],
                             capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    return lines


def unescape(value):
    return value.encode().decode("unicode_escape").encode("latin-1")


def message(sender="alice@example.com", body=b"Hello Bob.\n"):
    return (b"From: Alice <" + sender.encode() + b">\n"
            b"To: bob@example.org\n"
            b"Subject: hello there,\n a folded subject\n"
            b"Date: Sat, 5 Dec 2026 05:00:00 +0000\n"
            b"Message-ID: <1@example.com>\n\n" + body)


def test_rspamd_rejects_gtube_with_its_text(rspamd):
    lines = run(rspamd, message(body=GTUBE.encode() + b"\n"),
                "--from", "alice@example.com", "--rcpt", "bob@example.org")
    assert lines[0] == "verdict reject"
    assert re.fullmatch(r"reply 5\d\d 5\.\d+\.\d+ .*Gtube pattern.*", lines[1]), lines


def test_rspamd_adds_its_headers_to_a_clean_message(rspamd):
    lines = run(rspamd, message(), "--from", "alice@example.com", "--rcpt", "bob@example.org",
                "--client", "192.0.2.10", "--client-name", "mail.example.net")
    assert lines[0] in ("verdict accept", "verdict continue")
    edits = [l for l in lines if l.startswith("edit ")]
    assert f"edit add_header X-Rspamd-Queue-Id {QUEUE_ID}" in edits
    result = [l for l in edits if l.startswith("edit add_header X-Spamd-Result ")]
    assert len(result) == 1
    value = unescape(result[0].split(" ", 3)[3])
    # folded, every line break followed by white space
    assert b"\n" in value and re.search(rb"\n(?![ \t])", value) is None
    assert any(l.startswith("edit insert_header ") and " Authentication-Results " in l
               for l in edits)


def test_rspamd_hears_the_authenticated_user(rspamd):
    # milter_headers skips authenticated senders by default: no X-Spamd-Result.
    lines = run(rspamd, message(), "--from", "alice@example.com", "--rcpt", "bob@example.org",
                "--client", "192.0.2.10", "--auth", "alice")
    assert lines[0] in ("verdict accept", "verdict continue")
    assert not any("X-Spamd-Result" in l for l in lines), lines


def test_opendkim_signature_verifies(opendkim):
    import dkim
    sock, key = opendkim
    msg = message()
    lines = run(sock, msg, "--from", "alice@example.com", "--rcpt", "bob@example.org")
    assert lines[0] in ("verdict accept", "verdict continue")
    sig = [l for l in lines if l.startswith("edit insert_header 0 DKIM-Signature ")]
    assert len(sig) == 1, lines
    value = unescape(sig[0].split(" ", 4)[4])
    assert b"d=example.com" in value and b"s=sel" in value
    signed = (b"DKIM-Signature: " + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
              + b"\r\n" + msg.replace(b"\n", b"\r\n"))
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: key)
    # The body as the milter saw it: one changed octet breaks the signature.
    assert not dkim.verify(signed.replace(b"Hello Bob.", b"Hello Bob!"),
                           dnsfunc=lambda name, timeout=5: key)


def test_rspamd_then_opendkim(rspamd, opendkim):
    # rspamd answers EOM with ACCEPT; OpenDKIM after it still signs (an
    # ACCEPT ends only that milter's conversation, as in Postfix).
    sock, key = opendkim
    lines = run(f"{rspamd},{sock}", message(), "--from", "alice@example.com",
                "--rcpt", "bob@example.org")
    assert lines[0] == "verdict accept"
    assert any(l.startswith("edit add_header X-Spamd-Result ") for l in lines), lines
    assert any(l.startswith("edit insert_header 0 DKIM-Signature ") for l in lines), lines


def test_opendkim_signs_for_an_authenticated_sender(opendkim):
    # From outside its InternalHosts, OpenDKIM signs only when the
    # {auth_type} macro (which its symlist asks for) says the sender
    # authenticated.
    sock, _ = opendkim
    args = ("--from", "alice@example.com", "--rcpt", "bob@example.org",
            "--client", "192.0.2.10")
    assert not any("DKIM-Signature" in l for l in run(sock, message(), *args))
    lines = run(sock, message(), *args, "--auth", "alice")
    assert any(l.startswith("edit insert_header 0 DKIM-Signature ") for l in lines), lines


def test_opendkim_leaves_other_domains_unsigned(opendkim):
    sock, _ = opendkim
    lines = run(sock, message(sender="carol@other.example"),
                "--from", "carol@other.example", "--rcpt", "bob@example.org")
    assert not any("DKIM-Signature" in l for l in lines), lines

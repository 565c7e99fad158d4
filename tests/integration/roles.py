"""Finding a running server's role processes by their command line (the
master starts each as `sealpost role NAME ...`), and restarting workers
the hard way."""
import os
import re
import signal
import subprocess
import time
from pathlib import Path


def cmdline(pid):
    """pid's argv as a list of bytes, or None once it has exited."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return None


def role_pids(master, role):
    """The master's children started as `sealpost role <role>`."""
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                         text=True).stdout
    return [pid for pid in map(int, out.split())
            if (cmdline(pid) or [])[1:3] == [b"role", role.encode()]]


def restart_workers(srv, timeout=20):
    """kill -9 every smtpd worker of srv, wait until as many new ones run
    and the server greets again."""
    want = int(re.search(r"event=start .* workers=(\d+)", srv.log()).group(1))
    old = role_pids(srv.proc.pid, "smtpd")
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        now = role_pids(srv.proc.pid, "smtpd")
        if len(now) == want and not set(now) & set(old):
            break
        assert time.monotonic() < deadline, (old, now)
        time.sleep(0.05)
    srv.wait_ready()
    assert "event=child_died role=smtpd" in srv.log()

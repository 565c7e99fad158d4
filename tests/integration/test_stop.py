"""A stop is graceful whoever receives the signal (issue 13): Ctrl-C in a
terminal and systemd's default KillMode=control-group deliver SIGINT or
SIGTERM to every process of the group, not just the master. The roles
ignore those and stop only when the master asks, in the order that loses
nothing: a transaction in progress finishes with its 250, then the client
gets 421 4.3.2, the message is delivered, the daemon exits 0, and nothing
is logged above info from the stop on."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN
from smtpwire import RawSMTP, make_message, message_id


def start_in_own_group(server):
    server.log_file = open(server.log_path, "ab")
    server.proc = subprocess.Popen([BIN, "serve", "-c", str(server.conf)],
                                   stdout=server.log_file, stderr=server.log_file,
                                   start_new_session=True)
    server.wait_ready()
    return server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_to_the_whole_group_is_a_graceful_stop(make_server, sig):
    server = start_in_own_group(make_server(start=False, settings={"shutdown_timeout": "10s"}))
    pgid = os.getpgid(server.proc.pid)
    assert pgid == server.proc.pid
    # every role is in the group the signal goes to
    children = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    assert len(children.stdout.split()) >= 4, children.stdout   # master, queue, delivery, worker
    with RawSMTP(server.port) as c:
        c.ehlo("stop.test")
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message(msgid="<mid-data@t>")[:200])
        os.killpg(pgid, sig)
        time.sleep(0.5)                         # the group has it; the session goes on
        c.send(make_message(msgid="<mid-data@t>")[200:] + b".\r\n")
        r = c.reply()
        assert r.startswith("250 2.0.0 Ok: queued as"), r
        r = c.cmd("NOOP")
        assert r.startswith("421 4.3.2"), r
    assert server.proc.wait(20) == 0
    server.log_file.close()
    got = server.messages("alice")
    assert [message_id(f.read_bytes()) for f in got] == ["<mid-data@t>"]
    log = server.log()
    stop = log.index("event=signal signal=")
    # (a role still starting when the signal came may log its own start-up
    # notes: no sandbox in a sanitizer build, no user, no trust anchor, the
    # delivery role's one DNSSEC probe of a resolver with no internet)
    startup = re.compile(r"event=(sandbox|privsep_limited|dns_config|dns_probe|landlock) ")
    noisy = [ln for ln in log[stop:].splitlines()
             if re.search(r"level=(warn|error)", ln) and not startup.search(ln)]
    assert noisy == [], noisy
    assert "child_died" not in log


def test_roles_ignore_a_terminal_signal_sent_to_them_alone(make_server):
    """Only the master stops the roles: a TERM to a worker alone is
    ignored (the master would otherwise restart a worker it never asked
    to stop)."""
    server = make_server(settings={"workers": "1"})
    pid = int(re.findall(r"event=child_start role=smtpd slot=0 pid=(\d+)", server.log())[-1])
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    with RawSMTP(server.port) as c:
        assert c.ehlo("still.test").code == 250
    assert "child_exit" not in server.log() and "child_died" not in server.log()
    assert server.stop() == 0

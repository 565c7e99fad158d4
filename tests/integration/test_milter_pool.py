"""More than one milter process ([server] milter_processes): the queue
hands each message or check to the process with the fewest in hand, so
one slow milter conversation does not hold every other message; a
milter process that dies is restarted in its slot while the others go
on.

The proof of parallelism is a barrier, not a clock: the scripted milter
answers the end of a message only once two conversations are at that
point together, which one process (one conversation at a time) can never
reach before the milter's timeout.

Trusts: smtplib as the client, the Maildir the server writes, the log.
"""
import os
import re
import signal
import smtplib
import subprocess
import threading

import pytest

from conftest import BIN
from scripted_milter import ACCEPT, ScriptedMilter
from smtpwire import make_message, wait_until


def pool_server(make_server, m, processes, timeout="20s"):
    return make_server(extra_sections=f"""
[milter scripted]
socket = {m.spec}
default_action = tempfail
timeout = {timeout}
""", listener_extra="milters = scripted\n",
        settings={"milter_processes": str(processes)})


def send_in_thread(server, msgid, results):
    def run():
        with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as c:
            results[msgid] = c.sendmail("sender@example.net", ["alice@example.test"],
                                        make_message(msgid=msgid))
    t = threading.Thread(target=run)
    t.start()
    return t


def test_two_processes_judge_two_messages_at_once(make_server):
    both = threading.Barrier(2, timeout=15)

    def eom(data):
        both.wait()                 # raises (no answer: timeout) if alone
        return ACCEPT

    m = ScriptedMilter(eom=eom)
    try:
        server = pool_server(make_server, m, 2)
        assert wait_until(lambda: "event=milter_channel status=up slot=1" in server.log())
        results = {}
        threads = [send_in_thread(server, f"<pool-{i}@t>", results) for i in range(2)]
        for t in threads:
            t.join(60)
        assert results == {"<pool-0@t>": {}, "<pool-1@t>": {}}, results
        assert wait_until(lambda: len(server.messages("alice")) == 2)
        assert "milter_unavailable" not in server.log()
    finally:
        m.stop()


def milter_pids(server):
    return {int(slot): int(pid) for slot, pid in
            re.findall(r"event=child_start role=milter slot=(\d+) pid=(\d+)", server.log())}


def test_a_dead_milter_process_is_restarted_and_the_others_go_on(make_server):
    m = ScriptedMilter(eom=ACCEPT)
    try:
        server = pool_server(make_server, m, 3)
        assert wait_until(lambda: len(milter_pids(server)) == 3)
        victim = milter_pids(server)[1]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: milter_pids(server).get(1, victim) != victim)
        assert "child_died role=milter" in server.log()
        for i in range(4):
            with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as c:
                assert c.sendmail("sender@example.net", ["alice@example.test"],
                                  make_message(msgid=f"<after-kill-{i}@t>")) == {}
        assert wait_until(lambda: len(server.messages("alice")) == 4)
    finally:
        m.stop()


@pytest.mark.parametrize("bad", ["0", "17"])
def test_check_refuses_an_out_of_range_process_count(make_server, bad):
    server = make_server(start=False, settings={"milter_processes": bad})
    out = subprocess.run([BIN, "check", "-c", str(server.conf)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0 and "milter_processes" in out.stdout + out.stderr

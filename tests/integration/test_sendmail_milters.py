"""Mail from `sealpost sendmail` through [queue] sendmail_milters
(Postfix's non_smtpd_milters): OpenDKIM (real, milters.py) signs what a
local program sends and the signature verifies; a scripted milter's
reject bounces the message to its local sender with the milter's reply,
a discard keeps nothing, a tempfail leaves the maildrop file for a later
try; `sealpost check` refuses a sendmail milter whose stage is not data.

Trusts: the sendmail command, the Maildir files the server writes,
Python's dkim package as the verifier, the log.
"""
import subprocess

import dkim

from conftest import BIN
from milters import OpenDKIM
from scripted_milter import DISCARD, ScriptedMilter, reply
from smtpwire import wait_until
from test_sendmail import delivered, local  # noqa: F401 - local is a fixture

MESSAGE = (b"From: bob@example.test\nTo: alice@example.test\nSubject: from cron\n\n"
           b"Disk usage is fine.\n")


def sections(name, spec, default_action="tempfail", stage="data"):
    return f"""
[milter {name}]
socket = {spec}
default_action = {default_action}
timeout = 10s
stage = {stage}

[queue]
sendmail_milters = {name}
"""


def test_opendkim_signs_mail_from_sendmail(local):
    dk = OpenDKIM(kind="inet").start()
    try:
        lc = local(extra_sections=sections("opendkim", dk.socket))
        r = lc.sendmail("-f", "bob@example.test", "alice@example.test", data=MESSAGE)
        assert r.returncode == 0, r.stderr
        (data,) = delivered(lc.server, "alice")
        assert b"DKIM-Signature:" in data, data
        assert dkim.verify(data, dnsfunc=dk.dnsfunc), data
        assert not dkim.verify(data.replace(b"fine", b"full"), dnsfunc=dk.dnsfunc)
        assert wait_until(lambda: list(lc.maildrop.iterdir()) == [])
        assert "event=pickup_milters" in lc.server.log()
    finally:
        dk.cleanup()


def test_reject_bounces_to_the_local_sender_with_the_milters_reply(local):
    m = ScriptedMilter(eom=reply("550 5.7.1 Local mail refused by policy"))
    try:
        lc = local(extra_sections=sections("scripted", m.spec))
        r = lc.sendmail("-f", "bob@example.test", "alice@example.test", data=MESSAGE)
        assert r.returncode == 0, r.stderr
        (dsn,) = delivered(lc.server, "bob")
        assert b"Local mail refused by policy" in dsn and b"Status: 5.7.1" in dsn, dsn
        assert lc.server.messages("alice") == []
        assert wait_until(lambda: list(lc.maildrop.iterdir()) == [])
        assert "event=pickup_refused" in lc.server.log()
    finally:
        m.stop()


def test_discard_keeps_nothing(local):
    m = ScriptedMilter(eom=DISCARD)
    try:
        lc = local(extra_sections=sections("scripted", m.spec))
        assert lc.sendmail("alice@example.test", data=MESSAGE).returncode == 0
        assert lc.wait_log("event=pickup_discarded")
        assert wait_until(lambda: list(lc.maildrop.iterdir()) == [])
        assert lc.server.wait_queue_empty()
        assert lc.server.messages("alice") == []
    finally:
        m.stop()


def test_tempfail_leaves_the_file_for_a_later_try(local):
    m = ScriptedMilter(eom=reply("451 4.7.1 Try later"))
    try:
        lc = local(extra_sections=sections("scripted", m.spec))
        assert lc.sendmail("alice@example.test", data=MESSAGE).returncode == 0
        assert lc.wait_log("event=pickup_deferred")
        assert len(list(lc.maildrop.iterdir())) == 1      # still there, tried again later
        assert lc.server.wait_queue_empty()
        assert lc.server.messages("alice") == []
    finally:
        m.stop()


def test_check_refuses_an_early_stage_sendmail_milter(make_server):
    server = make_server(start=False,
                         extra_sections=sections("x", "inet:127.0.0.1:11332", stage="rcpt"))
    out = subprocess.run([BIN, "check", "-c", str(server.conf)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "sendmail_milters" in out.stdout + out.stderr, out

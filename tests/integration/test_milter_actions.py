"""The milter actions no Debian milter sends on demand, end to end through
the milter role and the queue's checks, against a scripted milter
(scripted_milter.py): discard, quarantine (the message is held), a new
sender, added and deleted recipients, a replaced body, a changed and a
deleted header; and what a broken or hostile milter gets: a body with
bare LFs is stored with CRLF, one larger than max_message_size, a bad
address, a reply code out of range (56x) or garbage packets give the
default action, and a body that cannot be applied drops the milter's
sender and recipient changes too; a silent one times out. Real rspamd
and OpenDKIM: test_milter.py.

Trusts: smtplib as the client, the Maildir and spool files the server
writes, `sealpost queue` for the held state.
"""
import smtplib
import subprocess

import pytest

from conftest import BIN
from scripted_milter import (ACCEPT, DISCARD, add_header, add_rcpt, change_from,
                             change_header, delete_rcpt, packet, quarantine, replace_body,
                             reply, started_milters)
from smtpwire import make_message, wait_until


def wait_log(server, needle):
    assert wait_until(lambda: needle in server.log()), server.log()


milter = pytest.fixture(started_milters, name="milter")


def server_with(make_server, m, default_action="tempfail", timeout="30s", **kw):
    return make_server(extra_sections=f"""
[milter scripted]
socket = {m.spec}
default_action = {default_action}
timeout = {timeout}
""", listener_extra="milters = scripted\n", **kw)


def send(server, rcpts=("alice@example.test",), msg=None, sender="sender@example.net"):
    msg = msg or make_message(body=b"Original body.\r\n")
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.example.net",
                      timeout=60) as c:
        c.ehlo()
        assert c.mail(sender)[0] == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        return c.data(msg)


def test_discard_answers_250_and_keeps_nothing(make_server, milter):
    server = server_with(make_server, milter(DISCARD))
    code, _ = send(server)
    assert code == 250
    wait_log(server, "event=milter_discarded")
    assert server.wait_queue_empty()
    assert server.messages("alice") == []


def test_quarantine_keeps_the_message_on_hold(make_server, milter):
    server = server_with(make_server, milter(quarantine("suspicious attachment") + ACCEPT))
    code, text = send(server)
    assert code == 250, text
    qid = text.decode().rsplit(" ", 1)[1]
    out = subprocess.run([BIN, "queue", "-c", str(server.conf), "show", qid],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "held" in out.stdout.lower(), out.stdout
    assert server.messages("alice") == []
    wait_log(server, 'quarantine="suspicious attachment"')


def test_sender_and_recipient_changes_reach_the_envelope(make_server, milter):
    eom = (change_from("bounces@example.test") + add_rcpt("carol@example.test") +
           delete_rcpt("bob@example.test") + ACCEPT)
    server = server_with(make_server, milter(eom))
    code, text = send(server, rcpts=("alice@example.test", "bob@example.test"))
    assert code == 250, text
    alice = server.wait_messages("alice", 1)[0].read_bytes()
    carol = server.wait_messages("carol", 1)[0].read_bytes()
    assert server.wait_queue_empty()
    assert server.messages("bob") == []
    for data in (alice, carol):
        assert data.startswith(b"Return-Path: <bounces@example.test>\r\n"), data[:200]


def test_header_edits_and_a_replaced_body_with_bare_lf(make_server, milter):
    eom = (add_header("X-Scanned", "yes,\n\tfolded by LF") +
           change_header(1, "Subject", "[tagged] test") +
           replace_body(b"New body line 1\nline 2\r\n") + ACCEPT)
    server = server_with(make_server, milter(eom))
    code, text = send(server)
    assert code == 250, text
    data = server.wait_messages("alice", 1)[0].read_bytes()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nX-Scanned: yes,\r\n\tfolded by LF" in head
    assert b"\r\nSubject: [tagged] test" in head and b"Subject: test\r\n" not in head
    assert body == b"New body line 1\r\nline 2\r\n"
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_deleting_a_header(make_server, milter):
    server = server_with(make_server, milter(change_header(1, "Subject", "") + ACCEPT))
    assert send(server)[0] == 250
    data = server.wait_messages("alice", 1)[0].read_bytes()
    assert b"\r\nSubject:" not in data.partition(b"\r\n\r\n")[0]


def test_every_recipient_deleted_means_nothing_kept(make_server, milter):
    server = server_with(make_server, milter(delete_rcpt("alice@example.test") + ACCEPT))
    assert send(server)[0] == 250
    wait_log(server, "no recipient left")
    assert server.wait_queue_empty()
    assert server.messages("alice") == []


@pytest.mark.parametrize("eom,why", [
    (replace_body(b"x" * (70 * 1024)) + ACCEPT, "larger than max_message_size"),
    (add_rcpt("not an address") + ACCEPT, "a recipient that is no address"),
    (packet(b"h", b"X-Broken\0no final NUL") + ACCEPT, "a malformed packet"),
    (b"\xff\xff\xff\xff", "a length no packet may have"),
    (packet(b"Z", b"") , "an unknown reply"),
])
def test_a_broken_milter_gets_the_default_action(make_server, milter, eom, why):
    server = server_with(make_server, milter(eom), settings={"max_message_size": "64k"})
    code, text = send(server)
    assert code == 451, (why, code, text)
    assert server.wait_queue_empty()
    assert server.messages("alice") == []
    # the next message goes through a working milter on the same server
    assert "event=milter_unavailable" in server.log() or "milter_result_refused" in server.log()


def test_a_broken_milter_with_default_accept_delivers_unchanged(make_server, milter):
    server = server_with(make_server, milter(b"\xff\xff\xff\xff"), default_action="accept")
    msg = make_message(body=b"Kept as sent.\r\n")
    assert send(server, msg=msg)[0] == 250
    data = server.wait_messages("alice", 1)[0].read_bytes()
    assert data.endswith(b"\r\n\r\nKept as sent.\r\n")


def test_a_failed_rewrite_leaves_no_envelope_edits(make_server, milter):
    """A body the role cannot apply (a bare CR) makes the milter broken:
    with default_action = accept the message goes on as it came, and the
    sender and recipient changes sent before that body are dropped too."""
    eom = (change_from("bounces@example.test") + add_rcpt("carol@example.test") +
           replace_body(b"bare\rCR\r\n") + ACCEPT)
    server = server_with(make_server, milter(eom), default_action="accept")
    msg = make_message(body=b"Kept as sent.\r\n")
    assert send(server, msg=msg)[0] == 250
    data = server.wait_messages("alice", 1)[0].read_bytes()
    assert data.startswith(b"Return-Path: <sender@example.net>\r\n"), data[:200]
    assert data.endswith(b"\r\n\r\nKept as sent.\r\n")
    assert server.wait_queue_empty()
    assert server.messages("carol") == []
    wait_log(server, "bare CR")


def test_a_reply_code_with_a_second_digit_over_5_is_a_broken_milter(make_server, milter):
    """RFC 5321 4.2.1: the second digit of a reply code is 0-5. A milter's
    "561" is its own protocol error (its default_action), not a result
    the queue would refuse as garbage and close the milter role's channel."""
    server = server_with(make_server, milter(reply("561 5.7.1 no")), default_action="reject")
    code, text = send(server)
    assert (code, text) == (550, b"5.7.1 Content filter unavailable, message refused")
    wait_log(server, "milter=scripted reason=")     # the role's line, not the queue's
    log = server.log()
    assert "second digit" in log, log
    assert "milter_channel_closed" not in log and "child_died" not in log, log
    assert server.messages("alice") == []


def test_a_silent_milter_times_out(make_server, milter):
    server = server_with(make_server, milter(None), timeout="2s")
    code, text = send(server)
    assert code == 451, text
    wait_log(server, "event=milter_unavailable")


def test_what_the_milter_hears(make_server, milter):
    m = milter(ACCEPT)
    server = server_with(make_server, m)
    code, text = send(server, rcpts=("alice@example.test", "bob@example.test"))
    assert code == 250, text
    qid = text.decode().rsplit(" ", 1)[1]
    (connect,) = m.heard(b"C")
    assert connect.startswith(b"[127.0.0.1]\x004") and connect.endswith(b"127.0.0.1\x00")
    assert m.heard(b"H") == [b"client.example.net\x00"]
    assert m.heard(b"M")[0].startswith(b"<sender@example.net>\x00")
    assert [r.split(b"\0")[0] for r in m.heard(b"R")] == [b"<alice@example.test>",
                                                         b"<bob@example.test>"]
    names = [h.split(b"\0")[0] for h in m.heard(b"L")]
    assert names[:3] == [b"From", b"To", b"Subject"], names     # our Received: is hidden
    assert any(qid.encode() in d for d in m.heard(b"D")), "the i macro carries the queue id"


@pytest.mark.parametrize("extra,listener,needle", [
    ("", "milters = nosuch\n", "[listener mx] milters: no section [milter nosuch]"),
    ("[milter a]\nsocket = unix:/run/a/a.sock\n[milter b]\nsocket = unix:/run/b/b.sock\n",
     "milters = a, b\n", "every unix: milter socket must be in one folder"),
    ("[milter a]\nsocket = inet:mx.example.org:11332\n", "milters = a\n",
     "is not an IP address"),
    ("[milter a]\nsocket = inet:127.0.0.1:11332\nstage = eom\n", "milters = a\n",
     "stage"),
    ("[milter a]\ndefault_action = tempfail\n", "milters = a\n", "socket"),
])
def test_check_refuses_a_bad_milter_config(make_server, extra, listener, needle):
    server = make_server(start=False, extra_sections=extra, listener_extra=listener)
    r = subprocess.run([BIN, "check", "-c", str(server.conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r
    assert needle in r.stderr, r.stderr

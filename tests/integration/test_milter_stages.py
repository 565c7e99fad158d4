"""Milters asked during the SMTP dialogue (`stage = connect | mail |
rcpt`), end to end: the worker asks the queue, the queue asks the milter
role, the role holds a conversation with the milter up to that command,
and the verdict answers the command itself. A scripted milter
(scripted_milter.py) answers each event as the test says; real rspamd at
an early stage is in test_milter.py.

What is checked: a connect-stage refusal is a 554 greeting after which
only QUIT works (RFC 5321 3.1), a tempfail a 421; a mail-stage refusal
answers MAIL with the milter's reply; a rcpt-stage refusal answers that
RCPT only, the other recipients get the message; a discard at RCPT gives
250s and keeps nothing; a milter that is down gets its default_action at
that command; pipelined commands get their replies in order; and the
milter hears only the events up to its stage (never the message).

Trusts: smtplib and raw sockets as the client, the Maildir the server
writes, what the scripted milter records.
"""
import smtplib
import socket

import pytest

from scripted_milter import (CONTINUE, DISCARD, TEMPFAIL, reply, started_milters)
from smtpwire import RawSMTP, make_message, message_id, wait_until


milter = pytest.fixture(started_milters, name="milter")


def server_at(make_server, m, stage, default_action="tempfail", spec=None, **kw):
    return make_server(extra_sections=f"""
[milter early]
socket = {spec or m.spec}
stage = {stage}
default_action = {default_action}
timeout = 10s
""", listener_extra="milters = early\n", **kw)


def settle(m):
    """Forget what the milter heard while the test waited for the server
    to greet (that conversation ends with QUIT)."""
    assert wait_until(lambda: m.commands().endswith(b"Q"))
    m.events.clear()


def refuse_rcpt(name, answer):
    """An RCPT answer: `answer` for recipients containing name, else go on."""
    return lambda data: answer if name.encode() in data else CONTINUE


def test_connect_refusal_is_a_554_greeting_then_only_quit(make_server, milter):
    m = milter()
    server = server_at(make_server, m, "connect")     # (the start waits for a 220)
    settle(m)
    m.on[b"C"] = reply("550 5.7.1 Your address is listed")
    with RawSMTP(server.port, greet=False) as c:
        greeting = c.reply()
        assert greeting.startswith("554 5.7.1 Your address is listed"), greeting
        assert c.cmd("EHLO client.example.net").code == 503
        assert c.cmd("MAIL FROM:<a@example.net>").code == 503
        assert c.cmd("QUIT").code == 221
    # the milter heard the connection and nothing after it (its thread may
    # record the QUIT after the client has its reply)
    assert wait_until(lambda: m.commands() == b"OCQ"), m.commands()
    assert "stage=connect" in server.log()


def test_connect_tempfail_is_a_421(make_server, milter):
    m = milter()
    server = server_at(make_server, m, "connect")
    settle(m)
    m.on[b"C"] = TEMPFAIL
    with RawSMTP(server.port, greet=False) as c:
        greeting = c.reply()
        assert greeting.startswith("421 4."), greeting
        c.expect_closed()


def test_connect_stage_milter_is_not_asked_about_the_message(make_server, milter):
    m = milter()
    server = server_at(make_server, m, "connect")
    settle(m)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.sendmail("sender@example.net", ["alice@example.test"],
                   make_message(msgid="<connect-ok@t>"))
    assert wait_until(lambda: len(server.messages("alice")) == 1)
    assert wait_until(lambda: m.commands() == b"OCQ"), m.commands()
    # the client's address and port, as Postfix sends them
    (connect,) = m.heard(b"C")
    assert b"127.0.0.1" in connect


def test_mail_refusal_answers_mail_and_the_session_goes_on(make_server, milter):
    m = milter(on={b"M": lambda d: reply("553 5.7.1 Sender blocked by policy")
                   if b"spammer" in d else CONTINUE})
    server = server_at(make_server, m, "mail")
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.example.net",
                      timeout=30) as c:
        c.ehlo()
        code, text = c.mail("spammer@example.net")
        assert (code, text) == (553, b"5.7.1 Sender blocked by policy")
        assert c.rcpt("alice@example.test")[0] == 503      # no transaction
        assert c.mail("friend@example.net")[0] == 250
        assert c.rcpt("alice@example.test")[0] == 250
        assert c.data(make_message(msgid="<after-mail-refusal@t>"))[0] == 250
    assert wait_until(lambda: len(server.messages("alice")) == 1)
    helos = m.heard(b"H")
    assert helos and helos[0].rstrip(b"\0") == b"client.example.net"
    assert [d.split(b"\0")[0] for d in m.heard(b"M")] == [b"<spammer@example.net>",
                                                         b"<friend@example.net>"]
    assert m.heard(b"R") == [] and m.heard(b"E") == []


def test_rcpt_refusal_answers_that_recipient_only(make_server, milter):
    m = milter(on={b"R": refuse_rcpt("bob", reply("550 5.7.1 Bob does not take mail"))})
    server = server_at(make_server, m, "rcpt")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo()
        assert c.mail("sender@example.net")[0] == 250
        assert c.rcpt("alice@example.test")[0] == 250
        code, text = c.rcpt("bob@example.test")
        assert (code, text) == (550, b"5.7.1 Bob does not take mail")
        assert c.data(make_message(msgid="<rcpt-refusal@t>"))[0] == 250
    assert wait_until(lambda: len(server.messages("alice")) == 1)
    assert server.messages("bob") == []
    # one short conversation per recipient, each with only that recipient
    rcpts = [d.split(b"\0")[0] for d in m.heard(b"R")]
    assert rcpts == [b"<alice@example.test>", b"<bob@example.test>"]
    assert m.heard(b"E") == []
    assert "verdict=milter" in server.log()


def test_rcpt_tempfail_is_that_recipients_4xx(make_server, milter):
    m = milter(on={b"R": refuse_rcpt("bob", TEMPFAIL)})
    server = server_at(make_server, m, "rcpt")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo()
        assert c.mail("sender@example.net")[0] == 250
        code, text = c.rcpt("bob@example.test")
        assert code == 451 and text.startswith(b"4.7.1"), (code, text)
        assert c.rcpt("alice@example.test")[0] == 250


def test_rcpt_discard_takes_the_message_and_keeps_nothing(make_server, milter):
    m = milter(on={b"R": refuse_rcpt("bob", DISCARD)})
    server = server_at(make_server, m, "rcpt")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo()
        assert c.mail("sender@example.net")[0] == 250
        assert c.rcpt("alice@example.test")[0] == 250
        assert c.rcpt("bob@example.test")[0] == 250
        code, text = c.data(make_message(msgid="<discarded@t>"))
        assert code == 250 and b"queued as" in text, text
    assert wait_until(lambda: "event=milter_discarded" in server.log())
    assert server.wait_queue_empty()
    assert server.messages("alice") == [] and server.messages("bob") == []


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("action,code", [("tempfail", 451), ("reject", 550), ("accept", 250)])
def test_milter_down_at_rcpt_gets_its_default_action(make_server, action, code):
    server = server_at(make_server, None, "rcpt", default_action=action,
                       spec=f"inet:127.0.0.1:{dead_port()}")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as c:
        c.ehlo()
        assert c.mail("sender@example.net")[0] == 250
        assert c.rcpt("alice@example.test")[0] == code
        if code == 250:
            assert c.data(make_message(msgid="<down-accept@t>"))[0] == 250
    if code == 250:
        assert wait_until(lambda: len(server.messages("alice")) == 1)
    assert "event=milter_unavailable" in server.log()
    assert "child_died" not in server.log()


def test_pipelined_commands_keep_their_order(make_server, milter):
    m = milter(on={b"R": refuse_rcpt("bob", reply("550 5.7.1 Not bob"))})
    server = server_at(make_server, m, "rcpt")
    msg = make_message(msgid="<pipelined@t>")
    with RawSMTP(server.port) as c:
        c.ehlo("pipe.example.net")
        c.send(b"MAIL FROM:<sender@example.net>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<carol@example.test>\r\n"
               b"DATA\r\n")
        codes = [c.reply().code for _ in range(5)]
        assert codes == [250, 250, 550, 250, 354], codes
        c.send(msg + b".\r\n")
        assert c.reply().startswith("250 ")
    assert wait_until(lambda: len(server.messages("alice")) == 1 and
                      len(server.messages("carol")) == 1)
    assert server.messages("bob") == []
    got = server.messages("alice")
    assert message_id(got[0].read_bytes()) == "<pipelined@t>"


def test_client_that_leaves_while_the_milter_thinks(make_server, milter):
    """The session waits for the verdict; a client that hangs up meanwhile
    is freed when it comes, and the server goes on serving others."""
    import threading
    gate = threading.Event()

    def slow(data):
        gate.wait(10)
        return CONTINUE

    m = milter(on={b"R": slow})
    server = server_at(make_server, m, "rcpt")
    with RawSMTP(server.port) as c:
        c.ehlo("leaving.example.net")
        c.send(b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice@example.test>\r\n")
        assert c.reply().startswith("250")
    gate.set()
    # the session is freed once the verdict comes: every connection the
    # server took (the start-up probe's and this one) has its disconnect
    def all_freed():
        log = server.log()
        return log.count("event=connect ") == log.count("event=disconnect ") >= 2

    assert wait_until(all_freed), server.log()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        assert c.ehlo()[0] == 250


def test_stop_while_a_milter_is_asked_finishes_the_transaction(make_server, milter):
    """SIGTERM while a RCPT waits for its milter: the RCPT still gets its
    answer, the transaction its 250, then 421 4.3.2; the daemon exits 0."""
    import signal
    import threading
    asked, release = threading.Event(), threading.Event()

    def slow(data):
        asked.set()
        release.wait(20)
        return CONTINUE

    m = milter(on={b"R": slow})
    server = server_at(make_server, m, "rcpt", settings={"shutdown_timeout": "30s"})
    with RawSMTP(server.port) as c:
        c.ehlo("stopping.example.net")
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        assert asked.wait(20)
        server.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "event=signal" in server.log())
        release.set()
        assert c.reply().code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message(msgid="<stop-during-check@t>") + b".\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
        assert c.cmd("NOOP").startswith("421 4.3.2")
    assert server.proc.wait(30) == 0
    assert [message_id(f.read_bytes()) for f in server.messages("alice")] == \
        ["<stop-during-check@t>"]

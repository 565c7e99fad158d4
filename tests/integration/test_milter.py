"""The milter client (issue 15, item 3) end to end against real milters
started by the test (milters.py): rspamd in milter mode rejects a GTUBE
message at the end of DATA with its own reply text, rejects or defers by
a rule with exactly the configured text, and adds its X-Spam-* /
X-Spamd-Result / X-Rspamd-* / Authentication-Results headers to a clean
message; OpenDKIM (inet and unix socket) signs mail whose From is in the
signing domain, and the delivered copy verifies with Python's dkim
package against the test's key (a tampered copy does not); both milters
in one listener; a stopped or silent milter gives 451 (default_action =
tempfail), delivers unchanged (accept) or refuses with 5xx (reject).

The [milter] sections and `milters =` are the config syntax of
docs/INTEGRATION.md. Trusts: smtplib as the client, the Maildir files the
server writes, Python's dkim package (python3-dkim) as the verifier.
"""
import re
import smtplib
import socket
from pathlib import Path

import dkim
import pytest

import milters
from conftest import free_port, strip_added_headers
from milters import (GTUBE, RSPAMD_GTUBE_REPLY, RSPAMD_RULE_REJECT_REPLY,
                     RSPAMD_RULE_SOFTREJECT_REPLY, OpenDKIM, Rspamd)
from smtpwire import make_message

HOSTNAME = "mx.example.test"        # the test server's [server] hostname
HELO = "client.example.net"
RSPAMD_HEADERS = ("X-Spamd-Result", "X-Rspamd-Server", "X-Rspamd-Queue-Id",
                  "X-Spam-Status", "Authentication-Results")


@pytest.fixture(scope="module")
def rspamd():
    """One rspamd for the module: a cold start compiles its caches."""
    r = Rspamd().start()
    yield r
    r.cleanup()


@pytest.fixture
def make_opendkim():
    started = []

    def factory(kind="inet"):
        d = OpenDKIM(kind=kind)
        started.append(d)
        return d.start()

    yield factory
    for d in started:
        d.cleanup()


def milter_section(name, socket_spec, default_action="tempfail", timeout="30s",
                   stage="data"):
    return f"""
[milter {name}]
socket = {socket_spec}
default_action = {default_action}
timeout = {timeout}
stage = {stage}
"""


def milter_server(make_server, milters):
    """milters: [(name, socket, default_action[, timeout])], in order."""
    sections = "".join(milter_section(*m) for m in milters)
    names = ", ".join(m[0] for m in milters)
    return make_server(extra_sections=sections, listener_extra=f"milters = {names}\n")


def transaction(server, msg, rcpts=("alice@example.test",), sender="sender@example.net",
                client=None):
    """MAIL, RCPT, DATA over smtplib: the reply to the end of DATA."""
    own = client is None
    c = client or smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=60)
    try:
        if own:
            c.ehlo()
        code, text = c.mail(sender)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (code, text)
        return c.data(msg)
    finally:
        if own:
            c.quit()


def queue_id(reply):
    code, text = reply
    assert code == 250, reply
    m = re.fullmatch(rb"2\.0\.0 Ok: queued as (\S+)", text)
    assert m, reply
    return m.group(1).decode()


def split(data: bytes):
    """(header fields as [(name, raw value incl. folding)], body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data[:300]
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, colon, value = line.partition(b":")
            assert colon, line
            fields.append((name.decode(), value))
    return fields, body


def values(fields, name):
    return [v for n, v in fields if n.lower() == name.lower()]


def unfolded(value: bytes) -> str:
    return re.sub(r"\r\n[ \t]+", " ", value.decode()).strip()


def no_bare_lf(data: bytes):
    """Milters fold with bare LF (rspamd, OpenDKIM): the file must not."""
    return b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")


def delivered_one(server, local="alice"):
    files = server.wait_messages(local, 1)
    assert len(files) == 1, server.log()
    assert server.wait_queue_empty(), server.log()
    return files[0].read_bytes()


def assert_nothing_delivered(server, local="alice"):
    assert server.wait_queue_empty(), server.log()
    assert server.messages(local) == [], server.log()


def clean_message(subject="hello", sender="sender@example.net"):
    return make_message(subject=subject, sender=sender,
                        body=b"Just a clean message.\r\n..with a dot\r\n")


# ------------------------------------------------------------------ rspamd

def test_rspamd_rejects_gtube_with_its_own_reply(make_server, rspamd):
    server = milter_server(make_server, [("rspamd", rspamd.socket, "tempfail")])
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=60) as c:
        c.ehlo()
        msg = make_message(subject="gtube", body=GTUBE + b"\r\n")
        assert transaction(server, msg, client=c) == RSPAMD_GTUBE_REPLY
        # the session goes on: the next transaction is scanned and accepted
        clean = clean_message()
        queue_id(transaction(server, clean, client=c))
    data = delivered_one(server)
    assert GTUBE not in data
    assert strip_added_headers(data).endswith(clean.partition(b"\r\n\r\n")[2])


def test_rspamd_adds_its_headers_to_a_clean_message(make_server, rspamd):
    server = milter_server(make_server, [("rspamd", rspamd.socket, "tempfail")])
    msg = clean_message()
    qid = queue_id(transaction(server, msg))
    data = delivered_one(server)
    assert no_bare_lf(data), data
    fields, body = split(data)
    sent_fields, sent_body = split(msg)
    assert body == sent_body                            # byte-exact, dots undone
    # the sender's fields are all there, in their order
    kept = [f for f in fields if f in sent_fields]
    assert kept == sent_fields, fields
    for name in RSPAMD_HEADERS:
        assert len(values(fields, name)) == 1, (name, fields)
    status = unfolded(values(fields, "X-Spam-Status")[0])
    assert re.fullmatch(r"No, score=-?\d+\.\d\d", status), status
    result = unfolded(values(fields, "X-Spamd-Result")[0])
    assert re.match(r"default: False \[-?\d+\.\d\d / 15\.00\];", result), result
    # folded by rspamd over several lines, one symbol a line
    assert b"\r\n\t" in values(fields, "X-Spamd-Result")[0]
    assert unfolded(values(fields, "X-Rspamd-Server")[0]) == socket.gethostname()
    # the "i" macro: rspamd names the message by sealpost's queue id
    assert unfolded(values(fields, "X-Rspamd-Queue-Id")[0]) == qid
    # the "j" macro (or {daemon_name}): the authserv-id is this MTA
    ar = unfolded(values(fields, "Authentication-Results")[0])
    assert ar.startswith(HOSTNAME + ";"), ar


@pytest.mark.parametrize("stage", ["connect", "mail", "rcpt"])
def test_rspamd_at_an_early_stage_takes_the_short_conversation(make_server, rspamd, stage):
    """rspamd judges at the end of the message; asked at an earlier stage
    it goes on at every step, takes the ABORT and QUIT after the checked
    command without complaint, and never sees the message (no headers)."""
    server = milter_server(make_server, [("rspamd", rspamd.socket, "reject", "30s", stage)])
    queue_id(transaction(server, clean_message(), rcpts=("alice@example.test",
                                                         "bob@example.test")))
    data = delivered_one(server)
    fields, _ = split(data)
    for name in RSPAMD_HEADERS:
        assert values(fields, name) == [], (name, fields)
    assert "milter_unavailable" not in server.log()
    assert server.log().count(f"stage={stage}") == 0      # nothing was refused


def test_rspamd_rule_rejects_with_exactly_the_configured_text(make_server, rspamd):
    server = milter_server(make_server, [("rspamd", rspamd.socket, "accept")])
    reply = transaction(server, clean_message(subject="please sealpost-test-reject this"))
    assert reply == RSPAMD_RULE_REJECT_REPLY
    assert_nothing_delivered(server)


def test_rspamd_soft_reject_defers_with_its_text(make_server, rspamd):
    server = milter_server(make_server, [("rspamd", rspamd.socket, "accept")])
    reply = transaction(server, clean_message(subject="sealpost-test-softreject"))
    assert reply == RSPAMD_RULE_SOFTREJECT_REPLY
    assert_nothing_delivered(server)


# ---------------------------------------------------------------- OpenDKIM

def verify(dk, data: bytes) -> bool:
    return dkim.verify(data, dnsfunc=dk.dnsfunc)


def assert_signed(dk, data: bytes):
    assert no_bare_lf(data), data
    fields, _ = split(data)
    sigs = values(fields, "DKIM-Signature")
    assert len(sigs) == 1, fields
    sig = unfolded(sigs[0])
    assert f"d={dk.domain};" in sig and f"s={dk.selector};" in sig, sig
    assert "c=relaxed/simple;" in sig, sig
    assert verify(dk, data), data
    # a tampered copy fails: one body octet, or the signed Subject
    assert not verify(dk, data.replace(b"Just a clean", b"Just a dirty"))
    assert not verify(dk, data.replace(b"Subject: signed", b"Subject: signeD"))


@pytest.mark.parametrize("kind", ["inet", "unix"])
def test_opendkim_signs_and_the_signature_verifies(make_server, make_opendkim, kind):
    dk = make_opendkim(kind)
    server = milter_server(make_server, [("opendkim", dk.socket, "tempfail")])
    msg = clean_message(subject="signed", sender="bob@example.test")
    queue_id(transaction(server, msg, sender="bob@example.test"))
    data = delivered_one(server)
    assert_signed(dk, data)
    assert split(data)[1] == split(msg)[1]


def test_opendkim_does_not_sign_a_foreign_from(make_server, make_opendkim):
    """From: outside the signing domain: nothing to sign, nothing added."""
    dk = make_opendkim()
    server = milter_server(make_server, [("opendkim", dk.socket, "tempfail")])
    msg = clean_message(subject="foreign", sender="someone@other.test")
    queue_id(transaction(server, msg))
    data = delivered_one(server)
    assert b"DKIM-Signature" not in data
    assert strip_added_headers(data) == msg


def test_rspamd_then_opendkim(make_server, rspamd, make_opendkim):
    dk = make_opendkim()
    server = milter_server(make_server, [("rspamd", rspamd.socket, "tempfail"),
                                         ("opendkim", dk.socket, "tempfail")])
    msg = clean_message(subject="signed", sender="bob@example.test")
    queue_id(transaction(server, msg, sender="bob@example.test"))
    data = delivered_one(server)
    fields, _ = split(data)
    for name in RSPAMD_HEADERS:
        assert len(values(fields, name)) == 1, (name, fields)
    assert_signed(dk, data)
    # and GTUBE still stops at the first milter
    assert transaction(server, make_message(subject="gtube", body=GTUBE + b"\r\n")) \
        == RSPAMD_GTUBE_REPLY
    assert len(server.messages("alice")) == 1


# ------------------------------------------------------ milter down / silent

def test_stopped_milter_tempfail_gives_451_and_delivers_nothing(make_server, make_opendkim):
    dk = make_opendkim()
    server = milter_server(make_server, [("opendkim", dk.socket, "tempfail")])
    first = clean_message(subject="signed", sender="bob@example.test")
    queue_id(transaction(server, first, sender="bob@example.test"))
    assert_signed(dk, delivered_one(server))
    dk.stop()
    code, text = transaction(server, clean_message(sender="bob@example.test"),
                             sender="bob@example.test")
    assert code == 451 and text.startswith(b"4."), (code, text)
    assert server.wait_queue_empty(), server.log()
    assert len(server.messages("alice")) == 1, server.log()


def test_stopped_milter_accept_delivers_unchanged(make_server, make_opendkim):
    dk = make_opendkim()
    server = milter_server(make_server, [("opendkim", dk.socket, "accept")])
    dk.stop()
    msg = clean_message(subject="signed", sender="bob@example.test")
    queue_id(transaction(server, msg, sender="bob@example.test"))
    data = delivered_one(server)
    assert strip_added_headers(data) == msg        # no signature, nothing else


def test_stopped_milter_reject_refuses_with_5xx(make_server, make_opendkim):
    dk = make_opendkim()
    server = milter_server(make_server, [("opendkim", dk.socket, "reject")])
    dk.stop()
    code, text = transaction(server, clean_message(sender="bob@example.test"),
                             sender="bob@example.test")
    assert 500 <= code < 600 and text.startswith(b"5."), (code, text)
    assert_nothing_delivered(server)


def test_silent_milter_times_out_into_the_default_action(make_server):
    """A listener that accepts the connection and never answers OPTNEG:
    after `timeout`, default_action (tempfail) decides."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)                 # connections wait in the backlog, unanswered
        port = mute.getsockname()[1]
        server = milter_server(make_server, [("mute", f"inet:127.0.0.1:{port}",
                                              "tempfail", "2s")])
        code, text = transaction(server, clean_message())
        assert code == 451 and text.startswith(b"4."), (code, text)
        assert_nothing_delivered(server)


def test_nothing_listening_with_accept_delivers(make_server):
    server = milter_server(make_server, [("gone", f"inet:127.0.0.1:{free_port()}",
                                          "accept")])
    msg = clean_message()
    queue_id(transaction(server, msg))
    assert strip_added_headers(delivered_one(server)) == msg


# ---------------------------------------------------------------- docs

def test_integration_doc_shows_the_configs_these_tests_run():
    """docs/INTEGRATION.md's snippets are milters.py's config text."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "INTEGRATION.md").read_text()
    for name, text in milters.RSPAMD_LOCAL.items():
        assert f"`/etc/rspamd/{name}`:\n\n```\n{text.format(bind='localhost:11332')}```" \
            in doc, name
    keep = {"d": "{d}", "cache": "{cache}", "dead_port": "{dead_port}"}
    for name, text in milters.RSPAMD_TEST_ONLY.items():
        assert f"`{name}`:\n\n```\n{text.format(**keep)}```" in doc, name
    dk = milters.OPENDKIM_CONFIG.format(d="{d}", socket="{socket}", user="{user}",
                                        domain="{domain}", selector="{selector}",
                                        test_only="")
    assert f"```\n{dk}```" in doc
    assert f"```\n{milters.OPENDKIM_TEST_ONLY}```" in doc
    flat = " ".join(doc.split())
    for reply in (milters.RSPAMD_GTUBE_REPLY, milters.RSPAMD_RULE_REJECT_REPLY,
                  milters.RSPAMD_RULE_SOFTREJECT_REPLY):
        assert f"{reply[0]} {reply[1].decode()}" in flat, reply

"""The cleartext policy of a require_tls listener (530 before STARTTLS,
except to cleartext_recipients) and the REQUIRETLS MAIL parameter
(RFC 8689: only inside TLS, kept in the spool envelope)."""
import re
import smtplib

import pytest

from conftest import TLS_HOSTNAME
from smtpwire import RawSMTP, make_message, message_id, new_msgid, wait_until

SENDER = "sender@example.net"
REFUSED = [b"530 5.7.0 Must issue a STARTTLS command first"]


def starttls(raw, pki):
    raw.ehlo()
    r = raw.cmd("STARTTLS")
    assert r.lines == [b"220 2.0.0 Ready to start TLS"], r
    assert raw.buf == b""
    raw.sock = pki.client_context().wrap_socket(raw.sock, server_hostname=TLS_HOSTNAME)
    raw.ehlo()
    return raw


def send_data(raw, msgid, to):
    assert raw.cmd("DATA").code == 354
    raw.send(make_message(msgid=msgid, to=to) + b".\r\n")
    r = raw.reply()
    assert r.code == 250, r
    return r


def delivered_ids(server, local, domain="example.test", count=1):
    return {message_id(f.read_bytes())
            for f in server.wait_messages(local, count, domain=domain)}


@pytest.fixture
def strict(make_tls_server):
    """require_tls on the STARTTLS listener; abuse has a mailbox; one full
    address is allowed in cleartext as well."""
    return make_tls_server(
        require_tls="yes",
        cleartext_recipients="postmaster, abuse, tls-reports@example.test",
        mailboxes=("alice", "bob", "abuse", "tls-reports"),
        listeners={"smtps": {"tls": "implicit", "require_tls": "yes"}})


# ---------------------------------------------------------------- cleartext

def test_cleartext_recipient_refused(strict):
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        # MAIL itself is fine: the policy is per recipient
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == REFUSED
        assert raw.cmd("RCPT TO:<Bob@Example.Test>").lines == REFUSED
        # a listed local part in a domain other than the full-address entry's
        assert raw.cmd("RCPT TO:<tls-reports@other.test>").lines == REFUSED
        assert raw.cmd("DATA").lines == [b"554 5.5.1 Error: no valid recipients"]
    log = strict.wait_log("verdict=tls_required", count=3)
    for to in ("alice@example.test", "Bob@Example.Test", "tls-reports@other.test"):
        assert re.search(r"event=rcpt session=\S+ client=127\.0\.0\.1 "
                         rf'to="{re.escape(to)}" verdict=tls_required', log), (to, log)


def test_policy_runs_before_mailbox_check(strict):
    """An unknown user in cleartext gets 530, not 550: the cleartext answer
    does not reveal which mailboxes exist."""
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<nosuchuser@example.test>").lines == REFUSED


def test_cleartext_recipients_accepted_and_delivered(strict):
    ids = {name: new_msgid() for name in ("postmaster", "abuse", "abuse-other",
                                          "bare-postmaster", "tls-reports")}
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        for key, to, rcpt in (("postmaster", "postmaster@example.test", None),
                              ("abuse", "abuse@example.test", None),
                              ("abuse-other", "abuse@other.test", None),
                              ("bare-postmaster", "Postmaster", None),
                              ("tls-reports", "tls-reports@example.test",
                               "TLS-Reports@EXAMPLE.test")):
            assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
            r = raw.cmd(f"RCPT TO:<{rcpt or to}>")
            assert r.lines == [b"250 2.1.5 Ok"], (to, r)
            send_data(raw, ids[key], to)
    assert ids["postmaster"] in delivered_ids(strict, "postmaster", count=2)
    assert ids["bare-postmaster"] in delivered_ids(strict, "postmaster", count=2)
    assert delivered_ids(strict, "abuse") == {ids["abuse"]}
    assert delivered_ids(strict, "abuse", domain="other.test") == {ids["abuse-other"]}
    assert delivered_ids(strict, "tls-reports") == {ids["tls-reports"]}
    # delivered over a cleartext session: ESMTP, no TLS summary
    data = strict.messages("abuse")[0].read_bytes()
    assert b" with ESMTP id " in data and b"(using " not in data


def test_mixed_recipients_in_cleartext(strict):
    """Refused and allowed recipients in one transaction: only the allowed
    one gets the message."""
    msgid = new_msgid()
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == REFUSED
        assert raw.cmd("RCPT TO:<abuse@example.test>").code == 250
        send_data(raw, msgid, "abuse@example.test")
    assert delivered_ids(strict, "abuse") == {msgid}
    assert strict.messages("alice") == []


# ------------------------------------------- cleartext content and DSNs

def dsn_reports(server, local):
    """The multipart/report messages in local's Maildir (bytes)."""
    return [f.read_bytes() for f in server.messages(local)
            if b"multipart/report" in f.read_bytes().split(b"\r\n\r\n", 1)[0]]


def test_cleartext_success_dsn_not_sent(strict, tls_pki):
    """A cleartext client cannot reach a protected mailbox through a DSN:
    MAIL FROM:<alice> (protected), RCPT TO:<postmaster> NOTIFY=SUCCESS
    (exempt). Postmaster gets the message, alice gets nothing; inside TLS
    the same transaction does give alice her success report."""
    secret = new_msgid()
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        assert raw.cmd("MAIL FROM:<alice@example.test> RET=FULL").code == 250
        r = raw.cmd("RCPT TO:<postmaster@example.test> NOTIFY=SUCCESS,DELAY")
        assert r.lines == [b"250 2.1.5 Ok"], r
        send_data(raw, secret, "postmaster@example.test")
    assert secret in delivered_ids(strict, "postmaster")
    assert strict.wait_queue_empty()        # a report would be queued by now
    assert strict.messages("alice") == []
    assert re.search(r'event=dsn_restricted session=\S+ to="postmaster@example.test" '
                     r"ignored=success,delay reason=cleartext", strict.log())
    # the control: inside TLS, NOTIFY=SUCCESS reaches alice
    tls_id = new_msgid()
    with RawSMTP(strict.port) as raw:
        starttls(raw, tls_pki)
        assert raw.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert raw.cmd("RCPT TO:<postmaster@example.test> NOTIFY=SUCCESS").code == 250
        send_data(raw, tls_id, "postmaster@example.test")
    reports = [None]
    assert wait_until(lambda: reports.__setitem__(0, dsn_reports(strict, "alice")) or
                      reports[0], 20)
    assert len(reports[0]) == 1 and tls_id.encode() in reports[0][0]
    assert strict.wait_queue_empty()
    # and still nothing from the cleartext transaction
    for f in strict.messages("alice"):
        assert secret.encode() not in f.read_bytes()


def test_cleartext_failure_dsn_carries_nothing(make_tls_server):
    """A failure report about a cleartext message goes to the (protected)
    sender without any part of the message: no header, no body, no
    ENVID, no ORCPT, whatever RET asked for."""
    srv = make_tls_server(require_tls="yes", mailboxes=("alice", "tls-reports"),
                          cleartext_recipients="postmaster, tls-reports@example.test",
                          extra_sections="\n[relay]\nmax_queue_lifetime = 2s\n")
    # tls-reports cannot be delivered to (its Maildir is a file): the
    # message expires after 2 s and fails
    (srv.mail / "example.test").mkdir(parents=True)
    (srv.mail / "example.test" / "tls-reports").write_text("not a Maildir\n")
    secret = new_msgid()
    body = b"the cleartext body ZZSECRETBODYZZ\r\n"
    with RawSMTP(srv.port) as raw:
        raw.ehlo()
        assert raw.cmd("MAIL FROM:<alice@example.test> RET=FULL ENVID=ZZSECRETENVIDZZ").code == 250
        r = raw.cmd("RCPT TO:<tls-reports@example.test> ORCPT=rfc822;ZZSECRETORCPTZZ@x.test")
        assert r.lines == [b"250 2.1.5 Ok"], r
        assert raw.cmd("DATA").code == 354
        raw.send(make_message(msgid=secret, subject="ZZSECRETSUBJECTZZ", body=body) + b".\r\n")
        assert raw.reply().code == 250
    reports = [None]
    assert wait_until(lambda: reports.__setitem__(0, dsn_reports(srv, "alice")) or
                      reports[0], 30), srv.log()[-3000:]
    assert len(reports[0]) == 1
    report = reports[0][0]
    assert b"Action: failed" in report and b"Final-Recipient: rfc822; tls-reports@example.test" \
        in report, report
    assert b"no part of it is returned" in report
    for leak in (b"ZZSECRET", secret.encode(), b"Original-Recipient", b"Original-Envelope-Id",
                 b"text/rfc822-headers", b"message/rfc822"):
        assert leak not in report, (leak, report)


def test_cleartext_envelope_withholds_dsn_content(make_tls_server, tls_pki):
    """The spool envelope of a cleartext message says so; NOTIFY keeps only
    FAILURE. A message received inside TLS has neither restriction."""
    srv = make_tls_server(require_tls="yes", mailboxes=("alice", "abuse"),
                          extra_sections="\n[queue]\nhold = yes\n")
    with RawSMTP(srv.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<postmaster@example.test> NOTIFY=SUCCESS").code == 250
        assert raw.cmd("RCPT TO:<abuse@example.test>").code == 250
        assert raw.cmd("RCPT TO:<abuse@other.test> NOTIFY=DELAY,FAILURE").code == 250
        assert raw.cmd("DATA").code == 354
        raw.send(make_message() + b".\r\n")
        qid = queued_id(raw.reply())
    head = (srv.root / "spool" / "queue" / qid).read_bytes().split(b"\n\n", 1)[0].decode()
    lines = head.splitlines()
    assert "dsn_content none" in lines, head
    # NEVER (1) for SUCCESS alone, FAILURE (4) for unset and for DELAY,FAILURE
    assert [l for l in lines if l.startswith("rcpt ")] == [
        "rcpt 1 - postmaster@example.test", "rcpt 4 - abuse@example.test",
        "rcpt 4 - abuse@other.test"], head
    with RawSMTP(srv.port) as raw:
        starttls(raw, tls_pki)
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS").code == 250
        assert raw.cmd("DATA").code == 354
        raw.send(make_message() + b".\r\n")
        qid = queued_id(raw.reply())
    head = (srv.root / "spool" / "queue" / qid).read_bytes().split(b"\n\n", 1)[0].decode()
    assert "dsn_content" not in head and "rcpt 2 - alice@example.test" in head.splitlines()


def test_after_starttls_everyone_accepted(strict, tls_pki):
    msgid = new_msgid()
    with RawSMTP(strict.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == REFUSED
        assert raw.cmd("RSET").code == 250
        starttls(raw, tls_pki)
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == [b"250 2.1.5 Ok"]
        # the mailbox check still applies inside TLS
        assert raw.cmd("RCPT TO:<nosuchuser@example.test>").code == 550
        send_data(raw, msgid, "alice@example.test")
    assert delivered_ids(strict, "alice") == {msgid}
    data = strict.messages("alice")[0].read_bytes()
    assert b" with ESMTPS id " in data


def test_implicit_listener_with_require_tls(strict, tls_pki):
    msgid = new_msgid()
    with smtplib.SMTP_SSL("127.0.0.1", strict.ports["smtps"], timeout=20,
                          context=tls_pki.client_context()) as c:
        assert c.sendmail(SENDER, ["alice@example.test"], make_message(msgid=msgid)) == {}
    assert delivered_ids(strict, "alice") == {msgid}


def test_require_tls_off_accepts_cleartext(make_tls_server):
    srv = make_tls_server(require_tls="no")
    msgid = new_msgid()
    with RawSMTP(srv.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == [b"250 2.1.5 Ok"]
        send_data(raw, msgid, "alice@example.test")
    assert delivered_ids(srv, "alice") == {msgid}
    assert "verdict=tls_required" not in srv.log()


def test_empty_cleartext_list_refuses_postmaster(make_tls_server):
    srv = make_tls_server(require_tls="yes", cleartext_recipients="")
    with RawSMTP(srv.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<postmaster@example.test>").lines == REFUSED
        assert raw.cmd("RCPT TO:<Postmaster>").lines == REFUSED


def test_refusals_count_as_errors(make_tls_server):
    """530 counts towards max_errors like any other refusal."""
    srv = make_tls_server(require_tls="yes", settings={"max_errors": "3"})
    with RawSMTP(srv.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == REFUSED
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == REFUSED
        raw.send(b"RCPT TO:<alice@example.test>\r\n")
        assert raw.reply().lines == REFUSED
        assert raw.reply().code == 421
        assert raw.is_closed()


# ---------------------------------------------------------------- REQUIRETLS

@pytest.fixture
def held(make_tls_server):
    """Mail stays in spool/queue/ ([queue] hold = yes) so the envelope can
    be read; an implicit listener as well."""
    return make_tls_server(extra_sections="\n[queue]\nhold = yes\n",
                           listeners={"smtps": {"tls": "implicit"}})


def envelope(server, queue_id):
    path = server.root / "spool" / "queue" / queue_id
    assert path.is_file(), (path, server.queue_files())
    head = path.read_bytes().split(b"\n\n", 1)[0].decode()
    return dict(line.split(" ", 1) for line in head.splitlines()[1:])


def queued_id(reply):
    m = re.match(rb"250 2\.0\.0 Ok: queued as ([0-9A-F]+)$", reply.lines[0])
    assert m, reply
    return m.group(1).decode()


def test_requiretls_refused_in_cleartext(held):
    with RawSMTP(held.port) as raw:
        kw = raw.ehlo().text
        assert "REQUIRETLS" not in kw
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").lines == \
            [b"555 5.5.4 Unsupported MAIL parameter"]
        # no transaction was opened
        assert raw.cmd("RCPT TO:<alice@example.test>").code == 503


def test_requiretls_inside_starttls_is_stored(held, tls_pki):
    with RawSMTP(held.port) as raw:
        starttls(raw, tls_pki)
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").lines == [b"250 2.1.0 Ok"]
        assert raw.cmd("RCPT TO:<alice@example.test>").code == 250
        with_flag = queued_id(send_data(raw, new_msgid(), "alice@example.test"))
        # the next transaction on the same session does not inherit it
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").code == 250
        without = queued_id(send_data(raw, new_msgid(), "alice@example.test"))
    env = envelope(held, with_flag)
    assert env["requiretls"] == "1", env
    assert env["from"] == SENDER
    assert envelope(held, without)["requiretls"] == "0"
    log = held.wait_log("requiretls=1")
    assert "requiretls=1" in log
    # held: nothing delivered, both still queued
    assert held.messages("alice") == []
    assert {with_flag, without} <= set(held.queue_files())


def test_requiretls_on_implicit_listener(held, tls_pki):
    with RawSMTP(held.ports["smtps"], greet=False) as raw:
        raw.sock = tls_pki.client_context().wrap_socket(raw.sock,
                                                        server_hostname=TLS_HOSTNAME)
        assert raw.reply().code == 220
        assert b"250-REQUIRETLS" in raw.ehlo().lines
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").code == 250
        assert raw.cmd("RCPT TO:<bob@example.test>").code == 250
        qid = queued_id(send_data(raw, new_msgid(), "bob@example.test"))
    assert envelope(held, qid)["requiretls"] == "1"


def test_requiretls_needs_ehlo(held, tls_pki):
    """After HELO (not EHLO) inside TLS, MAIL parameters are refused."""
    with RawSMTP(held.port) as raw:
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
        raw.sock = tls_pki.client_context().wrap_socket(raw.sock,
                                                        server_hostname=TLS_HOSTNAME)
        assert raw.cmd("HELO c.example.net").code == 250
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").lines == \
            [b"555 5.5.4 MAIL parameters need EHLO"]


def test_requiretls_with_value_refused(held, tls_pki):
    with RawSMTP(held.port) as raw:
        starttls(raw, tls_pki)
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS=yes").lines == \
            [b"501 5.5.4 Bad MAIL parameter value"]
        assert raw.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS REQUIRETLS").lines == \
            [b"501 5.5.4 Bad MAIL parameter value"]

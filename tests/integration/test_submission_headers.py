"""Submission header rules (issue 14 item 3): on role = submission
listeners, after AUTH, a message gets the Date and Message-ID it lacks
(RFC 6409 8.3) where its header section ends, and every From: address
must be one the sender map gives the user (553 5.7.1 otherwise, nothing
queued, the session goes on); [submission] received_client_ip = no keeps
the client's address out of the Received header. MX listeners change
nothing. Through smtplib on 587 (STARTTLS) and 465 (implicit TLS), DATA
and BDAT, against the real daemon.
"""
import email.utils
import re
import smtplib
import time

import pytest

from test_submission import PASSWORDS, crypt_hash

MSGID = re.compile(rb"^<[^<>@\s]+@mx\.example\.test>$")


def make_sub(make_tls_server, tmp_path, extra=""):
    users = tmp_path / "users.passwd"
    users.write_text("".join(f"{u}:{crypt_hash(p)}\n" for u, p in PASSWORDS.items()))
    senders = tmp_path / "senders.map"
    senders.write_text("alice@example.test alice\n@other.test alice\n"
                       "bob@example.test bob\n")
    return make_tls_server(
        listeners={"sub": {"role": "submission", "tls": "starttls"},
                   "smtps": {"role": "submission", "tls": "implicit"}},
        extra_sections=f"\n[submission]\nusers = {users}\nsenders = {senders}\n"
                       f"auth_failure_delay = 0s\n{extra}")


@pytest.fixture
def sub(make_tls_server, tmp_path):
    return make_sub(make_tls_server, tmp_path)


def starttls(srv, pki, user="alice"):
    c = smtplib.SMTP("127.0.0.1", srv.ports["sub"], timeout=10)
    c.ehlo("client.test")
    c.starttls(context=pki.client_context())
    c.ehlo("client.test")
    c.login(user, PASSWORDS[user])
    return c


def implicit(srv, pki, user="alice"):
    c = smtplib.SMTP_SSL("127.0.0.1", srv.ports["smtps"], timeout=10,
                         context=pki.client_context())
    c.ehlo("client.test")
    c.login(user, PASSWORDS[user])
    return c


def split(data):
    """(header lines unfolded, body) of a delivered message."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    lines = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            lines[-1] += line
        else:
            lines.append(line)
    return lines, body


def fields(lines, name):
    name = name.lower() + b":"
    return [l[len(name):].strip() for l in lines if l.lower().startswith(name)]


def delivered(srv, local, count=1):
    got = srv.wait_messages(local, count)
    assert len(got) == count, srv.log()[-3000:]
    return [p.read_bytes() for p in got]


def check_added(lines):
    dates, ids = fields(lines, b"Date"), fields(lines, b"Message-ID")
    assert len(dates) == 1 and len(ids) == 1, lines
    when = email.utils.parsedate_to_datetime(dates[0].decode())
    assert when.tzinfo is not None and abs(when.timestamp() - time.time()) < 600
    assert MSGID.match(ids[0]), ids[0]
    return dates[0], ids[0]


# ------------------------------------------------------------ Date, Message-ID

def test_missing_date_and_message_id_are_added_on_587(sub, tls_pki):
    msg = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: bare\r\n"
           b"\r\nHello.\r\nDate: not a header, body text\r\n")
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    data, = delivered(sub, "bob")
    lines, body = split(data)
    check_added(lines)
    # added at the end of the header section, before the empty line
    assert lines[-2].startswith(b"Date: ") and lines[-1].startswith(b"Message-ID: ")
    assert lines[-3] == b"Subject: bare"
    assert body == b"Hello.\r\nDate: not a header, body text\r\n"
    assert "event=header_added" in sub.log() and "date=yes message_id=yes" in sub.log()


def test_unique_message_ids_on_465(sub, tls_pki):
    msg = b"From: alice@example.test\r\nSubject: twice\r\n\r\nHi.\r\n"
    with implicit(sub, tls_pki) as c:
        for _ in range(2):
            assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    ids = {check_added(split(d)[0])[1] for d in delivered(sub, "bob", 2)}
    assert len(ids) == 2


def test_own_date_and_message_id_are_kept(sub, tls_pki):
    msg = (b"Message-ID: <own.1@client.test>\r\nDATE: Sat, 5 Dec 2026 01:02:03 +0100\r\n"
           b"From: alice@example.test\r\n\r\nKept.\r\n")
    with implicit(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    lines, body = split(delivered(sub, "bob")[0])
    assert fields(lines, b"Message-ID") == [b"<own.1@client.test>"]
    assert fields(lines, b"Date") == [b"Sat, 5 Dec 2026 01:02:03 +0100"]
    assert body == b"Kept.\r\n"
    assert "event=header_added" not in sub.log()


def test_only_the_missing_one_is_added(sub, tls_pki):
    msg = b"Message-ID: <own.2@client.test>\r\nFrom: alice@example.test\r\n\r\nx\r\n"
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    lines, _ = split(delivered(sub, "bob")[0])
    assert fields(lines, b"Message-ID") == [b"<own.2@client.test>"]
    assert len(fields(lines, b"Date")) == 1


def test_headers_only_message(sub, tls_pki):
    msg = b"From: alice@example.test\r\nSubject: only headers\r\n"
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    data = delivered(sub, "bob")[0]
    assert b"\r\n\r\n" not in data             # still no body
    lines = data[:-2].split(b"\r\n")
    assert lines[-3:-2] == [b"Subject: only headers"]
    assert lines[-1].startswith(b"Message-ID: ") and lines[-2].startswith(b"Date: ")
    check_added(lines)


def test_no_empty_line_after_the_header(sub, tls_pki):
    msg = (b"From: alice@example.test\r\nSubject: no blank\r\nthis line is body\r\n"
           b"From: mallory@evil.test\r\n")
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    lines, body = split(delivered(sub, "bob")[0])
    check_added(lines)
    assert fields(lines, b"From") == [b"alice@example.test"]
    # the fields and an empty line go before the first line that is no field
    assert body == b"this line is body\r\nFrom: mallory@evil.test\r\n"


def test_message_without_header_section(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"],
                          b"Just a line of text.\r\n") == {}
    lines, body = split(delivered(sub, "bob")[0])
    check_added(lines)
    assert body == b"Just a line of text.\r\n"


# ------------------------------------------------------------------ From:

def test_from_someone_elses_address_is_refused(sub, tls_pki):
    bad = b"From: Bob <bob@example.test>\r\nSubject: forged\r\n\r\nx\r\n"
    good = b"From: alice@example.test\r\nSubject: after\r\n\r\ny\r\n"
    with starttls(sub, tls_pki) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["carol@example.test"], bad)
        assert e.value.smtp_code == 553 and e.value.smtp_error.startswith(
            b"5.7.1 <bob@example.test>: From: header address rejected"), e.value
        # the session goes on: the next transaction is accepted
        assert c.sendmail("alice@example.test", ["carol@example.test"], good) == {}
    data, = delivered(sub, "carol")
    assert b"Subject: after" in data
    log = sub.log()
    assert log.count("event=commit ") == 1
    assert "event=from_refused" in log and "user=alice from=bob@example.test" in log


@pytest.mark.parametrize("frm", [
    b"Alice Liddell <alice@example.test>",
    b"\"Liddell, Alice\" <alice@example.test>",
    b"alice@example.test (Alice Liddell)",
    b"(work) Alice <alice(c)@example.test>",
    b"=?utf-8?q?Al=C3=AFce?= <alice@example.test>",
    b"Team: alice@example.test, Other <x@other.test>;",
    b"Alice <alice@example.test>,\r\n\tAlso Alice <ALICE@Example.Test>",
    b"undisclosed:;, alice@example.test",
])
def test_from_forms_with_mapped_addresses_are_accepted(sub, tls_pki, frm):
    msg = b"From: " + frm + b"\r\nSubject: forms\r\n\r\nx\r\n"
    with starttls(sub, tls_pki) as c:
        assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    assert len(delivered(sub, "bob")) == 1


@pytest.mark.parametrize("frm,text", [
    (b"Alice <alice@example.test>, bob@example.test", b"<bob@example.test>: From:"),
    (b"Team: alice@example.test, bob@example.test;", b"<bob@example.test>: From:"),
    (b"\"alice@example.test\"@evil.test", b"From: header address rejected"),
    (b"Doe, John <alice@example.test>", b"cannot check the From: header"),
    (b"alice", b"cannot check the From: header"),
    (b"undisclosed:;", b"it names no address"),
])
def test_from_refusals(sub, tls_pki, frm, text):
    msg = b"Subject: x\r\nFrom: " + frm + b"\r\n\r\nx\r\n"
    with starttls(sub, tls_pki) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"], msg)
        assert e.value.smtp_code == 553 and e.value.smtp_error.startswith(b"5.7.1"), e.value
        assert text in e.value.smtp_error, e.value
        assert c.noop()[0] == 250
    assert "event=commit " not in sub.log()


def test_second_from_field_is_checked_too(sub, tls_pki):
    msg = b"From: alice@example.test\r\nFrom: bob@example.test\r\n\r\nx\r\n"
    with implicit(sub, tls_pki) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@example.test", ["bob@example.test"], msg)
        assert e.value.smtp_code == 553


def test_without_a_sender_map_from_must_be_the_users_own_name(make_tls_server, tmp_path,
                                                              tls_pki):
    """No [submission] senders: as for the envelope sender, a user may use
    only the address that is its name, in From: too."""
    users = tmp_path / "users.passwd"
    users.write_text(f"carol@example.test:{crypt_hash('pw')}\n")
    srv = make_tls_server(listeners={"sub": {"role": "submission", "tls": "starttls"}},
                          extra_sections=f"\n[submission]\nusers = {users}\n"
                                         "auth_failure_delay = 0s\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["sub"], timeout=10) as c:
        c.starttls(context=tls_pki.client_context())
        c.login("carol@example.test", "pw")
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("carol@example.test", ["bob@example.test"],
                       b"From: alice@example.test\r\n\r\nx\r\n")
        assert e.value.smtp_code == 553 and e.value.smtp_error.startswith(b"5.7.1")
        assert c.sendmail("carol@example.test", ["bob@example.test"],
                          b"From: Carol <CAROL@example.test>\r\n\r\nx\r\n") == {}
    assert b"From: Carol <CAROL@example.test>" in delivered(srv, "bob")[0]


# ------------------------------------------------------------------- BDAT

def bdat(c, chunks):
    """MAIL, RCPT, then the chunks (the last one LAST) on an authenticated
    smtplib connection; the reply to the last chunk."""
    assert "chunking" in c.esmtp_features
    assert c.docmd("MAIL", "FROM:<alice@example.test>")[0] == 250
    assert c.docmd("RCPT", "TO:<bob@example.test>")[0] == 250
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        c.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        reply = c.getreply()
        if not last:
            assert reply[0] == 250, reply
    return reply


def test_bdat_gets_the_fields_and_the_from_check(sub, tls_pki):
    msg = b"From: Alice <alice@example.test>\r\nSubject: chunked\r\n\r\nBody.\r\n"
    with implicit(sub, tls_pki) as c:
        # chunk boundaries inside a field name, a CRLF and the empty line
        code, text = bdat(c, [msg[:3], msg[3:40], msg[40:53], msg[53:]])
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued"), text
        bad = b"Fr" + b"om: bob@example.test\r\n\r\nx\r\n"
        code, text = bdat(c, [bad[:2], bad[2:]])
        assert code == 553 and text.startswith(b"5.7.1 <bob@example.test>"), text
        assert c.noop()[0] == 250
    lines, body = split(delivered(sub, "bob")[0])
    check_added(lines)
    assert lines[-3] == b"Subject: chunked" and body == b"Body.\r\n"


# ----------------------------------------------------- Received, MX listeners

def test_received_keeps_the_client_ip_by_default(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   b"From: alice@example.test\r\n\r\nx\r\n")
    assert b"Received: from client.test ([127.0.0.1])" in delivered(sub, "bob")[0]


def test_received_client_ip_no(make_tls_server, tmp_path, tls_pki):
    srv = make_sub(make_tls_server, tmp_path, "received_client_ip = no\n")
    with starttls(srv, tls_pki) as c:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   b"From: alice@example.test\r\n\r\nx\r\n")
    data = delivered(srv, "bob")[0]
    assert b"Received: from client.test\r\n\t(using TLS" in data
    assert b"127.0.0.1" not in data
    assert "event=connect session=" in srv.log() and "client=127.0.0.1" in srv.log()
    # MX listeners keep it whatever the key says
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("x@far.test", ["carol@example.test"], b"Subject: mx\r\n\r\nx\r\n")
    assert b"([127.0.0.1])" in delivered(srv, "carol")[0]


def test_mx_listener_adds_nothing_and_checks_no_from(sub):
    msg = b"From: bob@example.test\r\nSubject: mx\r\n\r\nNo fields added.\r\n"
    with smtplib.SMTP("127.0.0.1", sub.port, timeout=10) as c:
        assert c.sendmail("someone@far.test", ["bob@example.test"], msg) == {}
    data = delivered(sub, "bob")[0]
    lines, body = split(data)
    assert fields(lines, b"Date") == [] and fields(lines, b"Message-ID") == []
    assert data.endswith(msg)
    assert "event=header_added" not in sub.log()

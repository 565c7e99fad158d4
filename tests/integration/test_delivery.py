"""A message arrives in the Maildir exactly as sent, apart from the trace
headers sealpost prepends; recipients are routed to the right mailbox."""
import re
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import sample_message, strip_added_headers
from smtpwire import (RawSMTP, all_delivered, dot_stuff, make_message,
                      message_id, new_msgid)

SENDER = "sender@example.net"
HELO = "client.example.net"


def smtp(server):
    # local_hostname avoids socket.getfqdn(), which may wait for DNS.
    return smtplib.SMTP("127.0.0.1", server.port, local_hostname=HELO, timeout=20)


def only_message(server, local, domain="example.test"):
    files = server.wait_messages(local, 1, domain=domain)
    assert len(files) == 1, (local, domain, files)
    return files[0].read_bytes()


def check_trace(data, sender, rcpt, proto="ESMTP"):
    """The three added headers, in order, with the right values."""
    lines = data.split(b"\r\n")
    assert lines[0] == b"Return-Path: <" + sender.encode() + b">"
    assert lines[1] == b"Delivered-To: " + rcpt.encode()
    assert lines[2] == b"Received: from " + HELO.encode() + b" ([127.0.0.1])"
    assert re.fullmatch(rb"\tby mx\.example\.test \(sealpost\) with " + proto.encode()
                        + rb" id [0-9A-F]{16}", lines[3]), lines[3]
    assert lines[4] == b"\tfor <" + rcpt.encode() + b">;"
    assert re.fullmatch(rb"\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} "
                        rb"\d\d:\d\d:\d\d [+-]\d{4}", lines[5]), lines[5]


# ---------------------------------------------------------------- byte-exact

def test_sample_via_smtplib_is_byte_exact(server):
    msg = sample_message()
    assert len(msg) > 8000 and max(len(l) for l in msg.split(b"\r\n")) >= 700
    with smtp(server) as c:
        assert c.sendmail(SENDER, ["alice@example.test"], msg) == {}
    data = only_message(server, "alice")
    assert strip_added_headers(data) == msg
    check_trace(data, SENDER, "alice@example.test")


def test_sample_via_raw_data_in_odd_pieces_is_byte_exact(server):
    """Dot-stuffed by hand and written in pieces that split CRLF and the
    final CRLF.CRLF across TCP segments."""
    msg = sample_message()
    wire = dot_stuff(msg) + b".\r\n"
    with RawSMTP(server.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}> SIZE={len(msg)}").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        cuts = sorted({1, 2, 700, 701, 4096, len(wire) - 5, len(wire) - 4,
                       len(wire) - 3, len(wire) - 2, len(wire) - 1})
        last = 0
        for cut in cuts:
            c.send(wire[last:cut])
            time.sleep(0.01)    # separate segments, not synchronization
            last = cut
        assert c.pending(0.2) == b"", "reply before the end of data"
        c.send(wire[last:])
        r = c.reply()
        assert r.startswith("250 2.0.0 Ok: queued as "), r
    data = only_message(server, "bob")
    assert strip_added_headers(data) == msg
    check_trace(data, SENDER, "bob@example.test")


DOT_BODY = (b"Subject: dots\r\n\r\n"
            b".\r\n"
            b"..\r\n"
            b"...\r\n"
            b".leading dot\r\n"
            b"..two leading dots\r\n"
            b". space after dot\r\n"
            b"middle . dot\r\n"
            b".\r\n"
            b"\r\n"
            b".")           # last line without CRLF: the client adds one


def test_dot_lines_via_smtplib(server):
    with smtp(server) as c:
        assert c.sendmail(SENDER, ["alice@example.test"], DOT_BODY) == {}
    data = only_message(server, "alice")
    assert strip_added_headers(data) == DOT_BODY + b"\r\n"


def test_dot_lines_via_raw_data(server):
    stuffed = b"".join((b"." + line if line.startswith(b".") else line)
                       for line in (DOT_BODY + b"\r\n").splitlines(keepends=True))
    assert stuffed.count(b"\r\n..") == 8
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert c.cmd("RCPT TO:<carol@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(stuffed + b".\r\n")
        assert c.reply().code == 250
    assert strip_added_headers(only_message(server, "carol")) == DOT_BODY + b"\r\n"


def test_message_starting_with_dot_line_and_empty_message(server):
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        # First line of the data is a stuffed "." line.
        r = c.transaction(SENDER, ["alice@example.test"], b".\r\nX: y\r\n\r\nbody\r\n")
        assert r.code == 250, r
        # An empty message: "." right after the 354.
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        assert c.cmd(".").code == 250
    assert strip_added_headers(only_message(server, "alice")) == b".\r\nX: y\r\n\r\nbody\r\n"
    assert strip_added_headers(only_message(server, "bob")) == b""


# ---------------------------------------------------------------- 8-bit, UTF-8

def eight_bit_body():
    lines = [bytes(range(lo, lo + 32)) for lo in range(0x80, 0x100, 32)]
    ascii_ctl = bytes(b for b in range(1, 0x80) if b not in (10, 13))
    return (b"Subject: 8bit\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            + b"\r\n".join(lines) + b"\r\n" + ascii_ctl + b"\r\n")


def test_8bitmime_body_byte_exact(server):
    body = eight_bit_body()
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert b"8BITMIME" in c.cmd("EHLO again.example.net").text.encode()
        r = c.transaction(SENDER, ["alice@example.test"], body, "BODY=8BITMIME")
        assert r.code == 250, r
    assert strip_added_headers(only_message(server, "alice")) == body


def test_8bitmime_via_smtplib(server):
    body = eight_bit_body()
    with smtp(server) as c:
        assert c.sendmail(SENDER, ["bob@example.test"], body,
                          mail_options=["BODY=8BITMIME"]) == {}
    assert strip_added_headers(only_message(server, "bob")) == body


UTF8_MSG = ("From: Jöran Öberg <jöran@other.test>\r\n"
            "To: Üla <ü@other.test>\r\n"
            "Subject: Grüße aus Köln – 日本語 ✉\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Straße, naïve café, Ελληνικά, русский, 😀\r\n").encode()


def test_smtputf8_addresses_and_message(server):
    with RawSMTP(server.port) as c:
        assert b"SMTPUTF8" in c.ehlo(HELO).text.encode()
        r = c.transaction("jöran@other.test", ["ü@other.test"], UTF8_MSG,
                          "SMTPUTF8 BODY=8BITMIME")
        assert r.code == 250, r
    data = only_message(server, "ü", domain="other.test")
    assert strip_added_headers(data) == UTF8_MSG
    check_trace(data, "jöran@other.test", "ü@other.test", proto="UTF8SMTP")


def test_smtputf8_via_smtplib(server):
    with smtp(server) as c:
        assert c.sendmail("jöran@other.test", ["Ünïcødé.User@other.test"], UTF8_MSG,
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    # Local parts go to the file system in lower case (ASCII only).
    data = only_message(server, "Ünïcødé.user", domain="other.test")
    assert strip_added_headers(data) == UTF8_MSG


def test_utf8_address_needs_smtputf8(server):
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        r = c.cmd("MAIL FROM:<jöran@other.test>")
        assert r.startswith("553 5.6.7"), r
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        r = c.cmd("RCPT TO:<ü@other.test>")
        assert r.startswith("553 5.6.7"), r
        r = c.cmd("RCPT TO:<alice@exämple.test>")
        assert r.startswith("553 5.6.7"), r
        # An ASCII recipient still works in the same transaction.
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        r = c.cmd("RSET")
        assert r.startswith("250 2.0.0"), r
        # SMTPUTF8 needs EHLO.
        assert c.cmd(f"HELO {HELO}").code == 250
        r = c.cmd("MAIL FROM:<jöran@other.test> SMTPUTF8")
        assert r.startswith("555 5.5.4"), r
    time.sleep(0.2)
    assert all_delivered(server.mail) == []


# ---------------------------------------------------------------- recipients

def test_unknown_and_foreign_recipients_are_refused(server):
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.startswith("550 5.1.1 <nobody@example.test>"), r
        r = c.cmd("RCPT TO:<alice@gmail.test>")
        assert r.startswith("554 5.7.1 <alice@gmail.test>"), r
        r = c.cmd("RCPT TO:<alice@[127.0.0.1]>")
        assert r.startswith("554 5.7.1"), r
        r = c.cmd("RCPT TO:<alice@sub.example.test>")
        assert r.startswith("554 5.7.1"), r
        r = c.cmd("DATA")
        assert r.startswith("554 5.5.1"), r


def test_recipient_case_source_route_and_null_sender(server):
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        r = c.transaction("", ["ALICE@Example.TEST"], make_message(msgid="<a1@t>"))
        assert r.code == 250, r
        r = c.transaction(SENDER, ["@relay.example.net:bob@example.test"],
                          make_message(msgid="<b1@t>"))
        assert r.code == 250, r
    data = only_message(server, "alice")
    assert data.startswith(b"Return-Path: <>\r\nDelivered-To: ALICE@Example.TEST\r\n")
    assert message_id(data) == "<a1@t>"
    assert message_id(only_message(server, "bob")) == "<b1@t>"


@pytest.mark.parametrize("rcpt,delivered_to", [
    ("postmaster@example.test", "postmaster@example.test"),
    ("Postmaster", "postmaster@example.test"),
    ("POSTMASTER", "postmaster@example.test"),
    ("PostMaster@EXAMPLE.test", "PostMaster@EXAMPLE.test"),
    ("postmaster@other.test", "postmaster@other.test"),
])
def test_postmaster_always_accepted(server, rcpt, delivered_to):
    """The users list has no postmaster entry; postmaster is accepted
    anyway and lands in the configured postmaster mailbox."""
    mid = new_msgid()
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        r = c.transaction(SENDER, [rcpt], make_message(msgid=mid, to=rcpt))
        assert r.code == 250, r
    data = only_message(server, "postmaster")
    assert message_id(data) == mid
    assert data.split(b"\r\n")[1] == b"Delivered-To: " + delivered_to.encode()
    assert server.wait_queue_empty()
    assert [p for p in all_delivered(server.mail)] == server.messages("postmaster")


def test_quoted_local_parts(server):
    # (as sent, Maildir folder, domain, Delivered-To: the canonical form,
    # quotes only where needed, RFC 5321 4.1.2)
    cases = [
        ('"alice"@example.test', "alice", "example.test", "alice@example.test"),
        ('"john smith"@other.test', "john%20smith", "other.test", '"john smith"@other.test'),
        ('"a\\"b"@other.test', "a%22b", "other.test", '"a\\"b"@other.test'),
        ('"ÿ.dot..dot"@other.test', "ÿ.dot..dot", "other.test", '"ÿ.dot..dot"@other.test'),
        ('"ÿ.d\\ot"@other.test', "ÿ.dot", "other.test", "ÿ.dot@other.test"),
    ]
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        r = c.cmd(f"MAIL FROM:<{SENDER}> SMTPUTF8")
        assert r.code == 250
        r = c.cmd('RCPT TO:<"not listed"@example.test>')
        assert r.startswith("550 5.1.1"), r
        r = c.cmd('RCPT TO:<"unterminated@example.test>')
        assert r.startswith("501 5.1.3"), r
        assert c.cmd("RSET").code == 250
        for addr, _, _, _ in cases:
            mid = new_msgid()
            r = c.transaction(SENDER, [addr], make_message(msgid=mid), "SMTPUTF8")
            assert r.code == 250, (addr, r)
    for addr, folder, domain, canonical in cases:
        data = only_message(server, folder, domain=domain)
        assert data.split(b"\r\n")[1] == b"Delivered-To: " + canonical.encode(), addr


def test_duplicate_recipient_delivered_once(server):
    mid = new_msgid()
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for rc in ("alice@example.test", "alice@example.test", "ALICE@example.test", "bob@example.test"):
            assert c.cmd(f"RCPT TO:<{rc}>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message(msgid=mid)) + b".\r\n")
        assert c.reply().code == 250
    assert server.wait_messages("bob", 1)
    assert server.wait_queue_empty()
    assert len(server.messages("alice")) == 1
    assert len(server.messages("bob")) == 1


def test_quoted_spelling_kept_as_orcpt(make_server):
    """The envelope stores the canonical address; when the client spelled
    it otherwise and gave no ORCPT, the spelling is kept as the ORCPT
    (RFC 3461 4.2), so a DSN still shows what the client sent."""
    server = make_server(extra_sections="\n[queue]\nhold = yes\n")
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for rcpt in ('<"p\\ostmaster"@example.test>', '<"bob"@example.test> ORCPT=rfc822;given@x.test',
                     "<carol@example.test>", '<"john smith"@other.test>',
                     '<"mary\\ smith"@other.test>', '<"x+y=z"@other.test>'):
            assert c.cmd(f"RCPT TO:{rcpt}").code == 250, rcpt
        assert c.cmd("DATA").code == 354
        c.send(make_message() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
    qid = r.lines[0].split()[-1].decode()
    head = (server.root / "spool" / "queue" / qid).read_bytes().split(b"\n\n", 1)[0]
    assert [l for l in head.decode().splitlines() if l.startswith("rcpt ")] == [
        'rcpt 0 rfc822;"p\\ostmaster"@example.test postmaster@example.test',
        "rcpt 0 rfc822;given@x.test bob@example.test",
        "rcpt 0 - carol@example.test",
        'rcpt 0 - "john smith"@other.test',
        'rcpt 0 rfc822;"mary\\+20smith"@other.test "mary smith"@other.test',
        'rcpt 0 rfc822;"x+2By+3Dz"@other.test x+y=z@other.test',
    ], head


def test_multiple_recipients_each_get_their_own_copy(server):
    msg = sample_message()
    with smtp(server) as c:
        assert c.sendmail(SENDER, ["alice@example.test", "bob@example.test", "carol@example.test",
                                   "zed@other.test"], msg) == {}
    for local, domain in (("alice", "example.test"), ("bob", "example.test"),
                          ("carol", "example.test"), ("zed", "other.test")):
        data = only_message(server, local, domain)
        assert data.split(b"\r\n")[1] == f"Delivered-To: {local}@{domain}".encode()
        # several recipients: the Received header names none of them
        assert b"\tfor <" not in data.split(b"\r\n\r\n")[0].split(b"Received:")[1]
        lines = data.split(b"\r\n")
        i = 3
        while lines[i].startswith((b"\t", b" ")):
            i += 1
        assert b"\r\n".join(lines[i:]) == msg


# ---------------------------------------------------------------- swaks

def swaks(server, *args, timeout=30):
    return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(server.port),
                           "--helo", HELO, "--from", SENDER, *args],
                          capture_output=True, timeout=timeout)


@pytest.mark.parametrize("extra", [[], ["--pipeline"]], ids=["plain", "pipeline"])
def test_swaks_send(server, extra):
    mid = new_msgid()
    res = swaks(server, "--to", "alice@example.test,bob@example.test",
                "--header", f"Message-Id: {mid}", "--header", "Subject: via swaks",
                "--body", "Hello from swaks.\n.leading dot\n", *extra)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    out = res.stdout.decode()
    assert "250 2.0.0 Ok: queued as" in out
    if extra:
        assert "PIPELINING" in out
    for local in ("alice", "bob"):
        data = only_message(server, local)
        assert message_id(data) == mid
        body = strip_added_headers(data)
        assert b"Subject: via swaks\r\n" in body
        assert b"\r\n\r\nHello from swaks.\r\n.leading dot\r\n" in body


def test_swaks_sample_file_byte_exact(server, tmp_path):
    msg = sample_message()
    f = tmp_path / "sample.eml"
    f.write_bytes(msg)
    res = swaks(server, "--to", "carol@example.test", "--data", str(f), "--pipeline")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    # swaks always ends the data with CRLF "." CRLF, so a file that already
    # ends in CRLF arrives with one more empty line; nothing else changes.
    assert strip_added_headers(only_message(server, "carol")) == msg + b"\r\n"


def test_swaks_rejected_recipient(server):
    res = swaks(server, "--to", "nobody@example.test")
    assert res.returncode == 24, res.stdout.decode()    # swaks: RCPT TO failed
    assert "550 5.1.1" in res.stdout.decode()
    res = swaks(server, "--to", "someone@gmail.test", "--pipeline")
    assert res.returncode == 24, res.stdout.decode()
    assert "554 5.7.1" in res.stdout.decode()
    assert all_delivered(server.mail) == []


def test_recipients_that_name_no_mailbox(server):
    """An empty quoted local part is valid syntax but names no mailbox: it
    must be refused at RCPT, not accepted and then stuck in the queue."""
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        r = c.cmd('RCPT TO:<""@other.test>')
        assert r.startswith("550 5.1.1"), r
        r = c.cmd('RCPT TO:<""@example.test>')
        assert r.startswith("550 5.1.1"), r
        r = c.cmd('RCPT TO:<""@gmail.test>')
        assert r.startswith("554 5.7.1"), r


def test_local_part_cannot_escape_the_mail_folder(server):
    hostile = ['"../../../escape"@other.test', '".."@other.test', '"."@other.test',
               '"a/../../b"@other.test', '"x/y"@other.test']
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        for addr in hostile:
            r = c.transaction(SENDER, [addr], make_message())
            assert r.code == 250, (addr, r)
    assert server.wait_queue_empty()
    files = all_delivered(server.mail)
    assert len(files) == len(hostile)
    root = (server.mail / "other.test").resolve()
    for f in files:
        maildir = f.resolve().parent.parent
        assert maildir.parent == root, f
    assert not (server.root / "escape").exists()


def test_configured_postmaster_mailbox(make_server):
    server = make_server(settings={"postmaster": "carol@example.test"})
    with RawSMTP(server.port) as c:
        c.ehlo(HELO)
        for rcpt in ("Postmaster", "postmaster@example.test", "postmaster@other.test"):
            r = c.transaction(SENDER, [rcpt], make_message())
            assert r.code == 250, (rcpt, r)
    assert len(server.wait_messages("carol", 3)) == 3
    assert server.wait_queue_empty()
    assert len(all_delivered(server.mail)) == 3

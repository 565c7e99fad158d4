"""SMTP smuggling (CVE-2023-51766 class): no end-of-data variant other than
CRLF "." CRLF ends a message, so a second message can never be hidden in
the first one; the message holding a bare CR or LF is refused whole."""
import pytest

from smtpwire import RawSMTP, all_delivered, make_message, message_id

SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n", b"\r.\n"]

SMUGGLED = (b"MAIL FROM:<evil@x>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"From: <ceo@example.test>\r\n"
            b"Subject: smuggled\r\n\r\n"
            b"pay now\r\n")


@pytest.mark.parametrize("seq", SEQUENCES, ids=repr)
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split-at-seq"])
def test_smuggled_message_is_not_delivered(server, seq, split):
    good = make_message(msgid="<good@t>", subject="after")
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        head = b"From: <sender@example.net>\r\nSubject: carrier\r\n\r\nhello"
        tail = SMUGGLED + b".\r\n"
        if split:
            c.send(head + seq[:2])
            assert c.pending(0.2) == b""
            c.send(seq[2:] + tail)
        else:
            c.send(head + seq + tail)
        r = c.reply()
        assert r.startswith("550 5.6.0"), r
        # exactly one reply for all of that: the next one belongs to NOOP
        r = c.cmd("NOOP")
        assert r.lines == [b"250 2.0.0 Ok"], r
        assert c.pending() == b""
        # the session still works
        r = c.transaction("sender@example.net", ["alice@example.test"], good)
        assert r.startswith("250 2.0.0 Ok: queued as"), r
    files = server.wait_messages("alice", 1)
    assert server.wait_queue_empty()
    assert server.messages("bob") == []
    assert [message_id(f.read_bytes()) for f in server.messages("alice")] == ["<good@t>"]
    assert len(all_delivered(server.mail)) == 1
    assert b"pay now" not in files[0].read_bytes()


def test_bare_newlines_anywhere_in_data_are_refused(server):
    bodies = [b"Subject: a\r\n\r\nbare\nlf\r\n", b"Subject: b\r\n\r\nbare\rcr\r\n",
              b"Subject: c\n\r\nlf in header\r\n", b"Subject: d\r\n\r\nends in cr\r\r\n",
              b"Subject: e\r\n\r\n.\n\r\n"]
    with RawSMTP(server.port) as c:
        c.ehlo()
        for body in bodies:
            assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
            assert c.cmd("RCPT TO:<alice@example.test>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(body + b".\r\n")
            r = c.reply()
            assert r.startswith("550 5.6.0"), (body, r)
        assert c.cmd("NOOP").code == 250
    assert server.wait_queue_empty()
    assert all_delivered(server.mail) == []


def test_proper_end_of_data_splits_pipelined_message(server):
    """The control case: a real CRLF.CRLF does end the message, and what
    follows is a command, so with valid line ends two messages arrive."""
    first = b"From: <sender@example.net>\r\nSubject: carrier\r\n\r\nhello\r\n"
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(first + b".\r\n" + SMUGGLED + b".\r\n")
        rs = c.replies(5)
        assert [r.code for r in rs] == [250, 250, 250, 354, 250], rs
    assert len(server.wait_messages("bob", 1)) == 1
    assert len(server.wait_messages("alice", 1)) == 1


NUL_BODIES = [
    # the two shapes: NUL before and after the dot of a would-be end
    b"Subject: n1\r\n\r\nhello\r\n\0.\r\nMAIL FROM:<evil@x>\r\n",
    b"Subject: n2\r\n\r\nhello\r\n.\0\r\nMAIL FROM:<evil@x>\r\n",
    b"Subject: n3\r\n\r\na NUL\0inside a line\r\n",
    b"Subject: \0n4\r\n\r\nin the header\r\n",
]


@pytest.mark.parametrize("body", NUL_BODIES, ids=["nul-dot", "dot-nul", "mid-line", "header"])
def test_nul_octets_are_refused_after_the_real_end(server, body):
    """RFC 5322 and RFC 6152 allow no NUL in a 7bit/8BITMIME body: the
    message is refused with 550 5.6.0 once its real end has arrived (a
    NUL never ends data), and the session goes on."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")
        r = c.reply()
        assert r.startswith("550 5.6.0") and "NUL" in r.text, r
        r = c.cmd("NOOP")
        assert r.lines == [b"250 2.0.0 Ok"], r
        assert c.pending() == b""
    assert server.wait_queue_empty()
    assert all_delivered(server.mail) == []


def test_nul_octet_in_bdat_is_refused(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        chunk = b"Subject: b\r\n\r\nnul\0here\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.startswith("550 5.6.0") and "NUL" in r.text, r
        assert c.cmd("NOOP").code == 250
    assert server.wait_queue_empty()
    assert all_delivered(server.mail) == []

"""SMTP protocol behaviour: greeting and EHLO, pipelining, BDAT/CHUNKING,
command sequencing, and enhanced status codes on every reply."""

from conftest import sample_message, strip_added_headers
from smtpwire import (ENHANCED, RawSMTP, all_delivered, dot_stuff, make_message,
                      message_id)

SENDER = "sender@example.net"
MAIL = f"MAIL FROM:<{SENDER}>\r\n"


def body_of(server, local, domain="example.test", count=1):
    files = server.wait_messages(local, count, domain=domain)
    assert len(files) == count, (local, files)
    return [strip_added_headers(f.read_bytes()) for f in files]


def by_msgid(server, local, domain="example.test"):
    out = {}
    for f in server.messages(local, domain):
        data = strip_added_headers(f.read_bytes())
        out[message_id(data)] = data
    return out


# ---------------------------------------------------------------- greeting

def test_greeting_and_ehlo_keywords(server):
    with RawSMTP(server.port) as c:
        assert c.greeting.lines == [b"220 mx.example.test ESMTP sealpost"]
        r = c.cmd("EHLO client.example.net")
        assert r.lines[0] == b"250-mx.example.test"
        keywords = [l[4:] for l in r.lines[1:]]
        assert len(set(keywords)) == len(keywords), keywords
        # what this suite relies on (other extensions may be offered too)
        assert {b"PIPELINING", b"SIZE 1048576", b"8BITMIME", b"SMTPUTF8",
                b"ENHANCEDSTATUSCODES", b"CHUNKING"} <= set(keywords), keywords
        assert b"STARTTLS" not in keywords          # no [tls] in this config
        assert r.lines[-1][3:4] == b" " and all(l[3:4] == b"-" for l in r.lines[:-1])
        r = c.cmd("HELO client.example.net")
        assert r.lines == [b"250 mx.example.test"]
        r = c.cmd("QUIT")
        assert r.startswith("221 2.0.0"), r
        assert c.expect_closed()


# ---------------------------------------------------------------- pipelining

def test_pipelined_commands_replied_in_order(server):
    m1, m2 = make_message(msgid="<p1@t>"), make_message(msgid="<p2@t>")
    with RawSMTP(server.port) as c:
        c.send("EHLO client.example.net\r\n" + MAIL +
               "RCPT TO:<alice@example.test>\r\n"
               "RCPT TO:<nobody@example.test>\r\n"
               "RCPT TO:<bob@example.test>\r\n"
               "DATA\r\n")
        rs = c.replies(6)
        assert rs[0].code == 250 and rs[0].lines[0] == b"250-mx.example.test"
        assert [r.lines[0][:9] for r in rs[1:]] == [
            b"250 2.1.0", b"250 2.1.5", b"550 5.1.1", b"250 2.1.5", b"354 End d"]
        # The end of the data and the next transaction in one write.
        c.send(dot_stuff(m1) + b".\r\n" + MAIL.encode() +
               b"RCPT TO:<carol@example.test>\r\nNOOP\r\nDATA\r\n")
        rs = c.replies(5)
        assert rs[0].startswith("250 2.0.0 Ok: queued as")
        assert [r.lines[0][:9] for r in rs[1:]] == [
            b"250 2.1.0", b"250 2.1.5", b"250 2.0.0", b"354 End d"]
        c.send(dot_stuff(m2) + b".\r\nQUIT\r\n")
        rs = c.replies(2)
        assert rs[0].startswith("250 2.0.0 Ok: queued as")
        assert rs[1].startswith("221 2.0.0")
        assert c.expect_closed()
    assert body_of(server, "alice") == [m1]
    assert body_of(server, "bob") == [m1]
    assert body_of(server, "carol") == [m2]


def test_two_whole_data_transactions_in_one_write(server):
    m1 = make_message(msgid="<w1@t>", body=b".dotted\r\nfirst\r\n")
    m2 = make_message(msgid="<w2@t>", body=b"second\r\n")
    wire = (b"EHLO client.example.net\r\n" + MAIL.encode() +
            b"RCPT TO:<alice@example.test>\r\nDATA\r\n" + dot_stuff(m1) + b".\r\n" +
            b"MAIL FROM:<other@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
            b"RCPT TO:<bob@example.test>\r\nDATA\r\n" + dot_stuff(m2) + b".\r\n" +
            b"QUIT\r\n")
    with RawSMTP(server.port) as c:
        c.send(wire)
        rs = c.replies(10)
        codes = [r.code for r in rs]
        assert codes == [250, 250, 250, 354, 250, 250, 250, 250, 354, 250], rs
        assert rs[4].startswith("250 2.0.0 Ok: queued as")
        assert rs[9].startswith("250 2.0.0 Ok: queued as")
        assert rs[4].text != rs[9].text
        assert c.reply().startswith("221 2.0.0")
        assert c.expect_closed()
    server.wait_messages("alice", 2)
    got = by_msgid(server, "alice")
    assert got == {"<w1@t>": m1, "<w2@t>": m2}
    assert body_of(server, "bob") == [m2]
    bob = server.messages("bob")[0].read_bytes()
    assert bob.startswith(b"Return-Path: <other@example.net>\r\n")


def test_two_whole_bdat_transactions_in_one_write(server):
    m1 = make_message(msgid="<b1@t>", body=b".not stuffed\r\n")
    m2 = make_message(msgid="<b2@t>", body=b"..also not\r\n")
    wire = b"EHLO client.example.net\r\n"
    for m in (m1, m2):
        wire += (MAIL.encode() + b"RCPT TO:<carol@example.test>\r\n" +
                 b"BDAT %d\r\n" % 10 + m[:10] +
                 b"BDAT %d LAST\r\n" % (len(m) - 10) + m[10:])
    wire += b"QUIT\r\n"
    with RawSMTP(server.port) as c:
        c.send(wire)
        rs = c.replies(9)
        assert [r.lines[0][:9] for r in rs[1:]] == [
            b"250 2.1.0", b"250 2.1.5", b"250 2.0.0", b"250 2.0.0",
            b"250 2.1.0", b"250 2.1.5", b"250 2.0.0", b"250 2.0.0"]
        assert rs[3].lines == [b"250 2.0.0 10 octets received"]
        assert rs[4].startswith("250 2.0.0 Ok: queued as")
        assert rs[8].startswith("250 2.0.0 Ok: queued as")
        assert c.reply().startswith("221")
    server.wait_messages("carol", 2)
    assert by_msgid(server, "carol") == {"<b1@t>": m1, "<b2@t>": m2}


def test_many_pipelined_transactions_and_commands(server):
    n = 25
    msgs = [make_message(msgid=f"<many{i}@t>", body=(b"x" * 97 + b"\r\n") * i + b".\r\n") for i in range(n)]
    wire = b"EHLO client.example.net\r\n"
    for m in msgs:
        wire += MAIL.encode() + b"RCPT TO:<bob@example.test>\r\nNOOP\r\nRSET\r\n"
        wire += MAIL.encode() + b"RCPT TO:<bob@example.test>\r\nDATA\r\n" + dot_stuff(m) + b".\r\n"
    wire += b"NOOP\r\n" * 300 + b"QUIT\r\n"
    with RawSMTP(server.port) as c:
        c.send(wire)
        assert c.reply().code == 250
        for i in range(n):
            rs = c.replies(8)
            assert [r.code for r in rs] == [250, 250, 250, 250, 250, 250, 354, 250], (i, rs)
            assert rs[7].startswith("250 2.0.0 Ok: queued as")
        assert all(r.lines == [b"250 2.0.0 Ok"] for r in c.replies(300))
        assert c.reply().startswith("221")
        assert c.expect_closed()
    server.wait_messages("bob", n)
    assert by_msgid(server, "bob") == {message_id(m): m for m in msgs}


# ---------------------------------------------------------------- BDAT

def test_bdat_several_chunks_byte_exact(server):
    msg = sample_message()
    # Chunk boundaries inside CRLF, right before a "." line and at odd places.
    cuts = [0, 1, msg.index(b"\r\n") + 1, 1000, 4096, len(msg) - 1, len(msg)]
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}> BODY=8BITMIME SIZE={len(msg)}").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        total = 0
        for a, b in zip(cuts, cuts[1:]):
            c.send(b"BDAT %d\r\n" % (b - a) + msg[a:b])
            total += b - a
            r = c.reply()
            assert r.lines == [b"250 2.0.0 %d octets received" % total], r
        r = c.cmd("BDAT 0 LAST")
        assert r.startswith("250 2.0.0 Ok: queued as"), r
    assert body_of(server, "alice") == [msg]


def test_bdat_is_not_dot_unstuffed(server):
    msg = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n\r\n.\r\n"
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        c.send(b"bdat %d last\r\n" % len(msg) + msg)      # verbs are case-insensitive
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
        # DATA works again in the next transaction.
        r = c.transaction(SENDER, ["bob@example.test"], b"after bdat\r\n")
        assert r.code == 250
    assert sorted(body_of(server, "bob", count=2)) == sorted([msg, b"after bdat\r\n"])


def test_bdat_without_mail_is_consumed_and_refused(server):
    """The chunk must be read and thrown away, not run as commands."""
    chunk = b"NOOP\r\nQUIT\r\n"
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.startswith("503 5.5.1"), r
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        r = c.reply()
        assert r.startswith("503 5.5.1"), r
        r = c.reply()
        assert r.lines == [b"250 2.0.0 Ok"], r
        assert c.pending() == b""
        # still in sync: a full transaction works
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT 7 LAST\r\nhello\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert body_of(server, "alice") == [b"hello\r\n"]


def test_bdat_before_ehlo_and_without_rcpt(server):
    with RawSMTP(server.port) as c:
        c.send(b"BDAT 4\r\nRSET")
        assert c.reply().startswith("503 5.5.1")
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        r = c.reply()
        assert r.startswith("554 5.5.1"), r
        # a failed chunk ends the transaction (RFC 3030)
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.startswith("503 5.5.1"), r
        assert c.cmd("NOOP").code == 250
    assert all_delivered(server.mail) == []


def test_data_after_bdat_refused(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT 7\r\nhello\r\n")
        assert c.reply().lines == [b"250 2.0.0 7 octets received"]
        r = c.cmd("DATA")
        assert r.startswith("503 5.5.1"), r
        # the BDAT transaction goes on and completes
        c.send(b"BDAT 7 LAST\r\nworld\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert body_of(server, "alice") == [b"hello\r\nworld\r\n"]


def test_rcpt_after_bdat_refused(server):
    """RFC 3030 has no way to add a recipient once the message has begun:
    RCPT (and MAIL) after the first chunk get 503 and the message goes to
    exactly the recipients that got 250, also when the RCPT is pipelined
    between two chunks."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").lines == [b"250 2.1.5 Ok"]
        c.send(b"BDAT 7\r\nhello\r\n")
        assert c.reply().lines == [b"250 2.0.0 7 octets received"]
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.startswith("503 5.5.1"), r
        r = c.cmd(MAIL.strip())
        assert r.startswith("503 5.5.1"), r
        c.send(b"BDAT 7\r\nthere\r\nRCPT TO:<carol@example.test>\r\nBDAT 7 LAST\r\nworld\r\n")
        assert c.reply().lines == [b"250 2.0.0 14 octets received"]
        r = c.reply()
        assert r.startswith("503 5.5.1"), r
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert body_of(server, "alice") == [b"hello\r\nthere\r\nworld\r\n"]
    assert server.wait_queue_empty()
    assert [p.parent.parent.name for p in all_delivered(server.mail)] == ["alice"]
    assert "rcpts=2" not in server.log()


def test_rset_after_bdat_aborts(server):
    """RSET after a chunk aborts the transaction as usual: nothing is
    delivered, and the next transaction takes recipients again."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT 7\r\nfirst\r\n")
        assert c.reply().code == 250
        assert c.cmd("RSET").lines == [b"250 2.0.0 Ok"]
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.startswith("503 5.5.1 Error: need MAIL command"), r
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        c.send(b"BDAT 8 LAST\r\nsecond\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert body_of(server, "bob") == [b"second\r\n"]
    assert server.wait_queue_empty()
    assert server.messages("alice") == []


def test_bdat_chunk_over_size_limit(make_server):
    server = make_server(settings={"max_message_size": "10k"})
    limit = 10 * 1024
    with RawSMTP(server.port) as c:
        c.ehlo()
        # one chunk too big: read, thrown away, 552, transaction gone
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT %d LAST\r\n" % (limit + 1) + b"NOOP\r\n" * ((limit + 1) // 6) +
               b"x" * ((limit + 1) % 6))
        r = c.reply()
        assert r.startswith("552 5.3.4"), r
        assert c.pending() == b""
        assert c.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1")
        # chunks that add up to too much
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT 6000\r\n" + b"y" * 5998 + b"\r\n")
        assert c.reply().code == 250
        c.send(b"BDAT 6000 LAST\r\n" + b"z" * 5998 + b"\r\n")
        assert c.reply().startswith("552 5.3.4")
        assert c.cmd("NOOP").code == 250
        # exactly the limit is fine
        msg = (b"a" * 998 + b"\r\n") * 10 + b"b" * (limit - 10000 - 2) + b"\r\n"
        assert len(msg) == limit
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT %d LAST\r\n" % limit + msg)
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert body_of(server, "alice") == [msg]


def test_bdat_bad_syntax_closes(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        r = c.cmd("BDAT lots")
        assert r.startswith("501 5.5.4"), r
        assert c.expect_closed()


def test_bdat_bare_lf_rejected(server):
    msg = b"Subject: x\r\n\r\nbare\nlf\r\n"
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        r = c.reply()
        assert r.startswith("550 5.6.0"), r
        assert c.cmd("NOOP").code == 250
    assert all_delivered(server.mail) == []


# ---------------------------------------------------------------- sequencing

def test_bad_sequences(server):
    with RawSMTP(server.port) as c:
        r = c.cmd(MAIL.strip())
        assert r.startswith("503 5.5.1"), r                 # MAIL before EHLO
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.startswith("503 5.5.1"), r
        c.ehlo()
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.startswith("503 5.5.1"), r                 # RCPT before MAIL
        r = c.cmd("DATA")
        assert r.startswith("503 5.5.1"), r                 # DATA before MAIL
        assert c.cmd(MAIL.strip()).code == 250
        r = c.cmd("DATA")
        assert r.startswith("554 5.5.1"), r                 # DATA before RCPT
        r = c.cmd("MAIL FROM:<second@example.net>")
        assert r.startswith("503 5.5.1"), r                 # nested MAIL
        # the first transaction is intact
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: seq\r\n\r\nok\r\n.\r\n")
        assert c.reply().code == 250
        # RSET and EHLO both end a transaction
        assert c.cmd(MAIL.strip()).code == 250
        assert c.cmd("RSET").lines == [b"250 2.0.0 Ok"]
        assert c.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1")
        assert c.cmd(MAIL.strip()).code == 250
        c.ehlo()
        assert c.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1")
    data = server.wait_messages("alice", 1)[0].read_bytes()
    assert data.startswith(b"Return-Path: <sender@example.net>\r\n")
    assert data.endswith(b"\r\nSubject: seq\r\n\r\nok\r\n")


def test_syntax_errors(make_server):
    server = make_server(settings={"max_errors": "100"})
    with RawSMTP(server.port) as c:
        assert c.cmd("EHLO").startswith("501 5.5.2")
        assert c.cmd("HELO").startswith("501 5.5.2")
        c.ehlo()
        assert c.cmd("FOO bar").startswith("500 5.5.2")
        assert c.cmd("").startswith("500 5.5.2")
        assert c.cmd("MAILFROM:<a@b.example>").startswith("500 5.5.2")
        assert c.cmd(MAIL.strip() + " FOO=BAR").startswith("555 5.5.4")
        assert c.cmd(MAIL.strip() + " NOTIFY=SUCCESS").startswith("555 5.5.4")
        assert c.cmd(MAIL.strip() + " BODY=9BIT").startswith("501 5.5.4")
        assert c.cmd(MAIL.strip() + " SIZE=12x").startswith("501 5.5.4")
        assert c.cmd(MAIL.strip() + " SIZE=1 SIZE=1").startswith("501 5.5.4")
        assert c.cmd("MAIL FROM:<a b@example.net>").startswith("501 5.1.7")
        assert c.cmd("MAIL TO:<a@example.net>").startswith("501 5.5.4")
        assert c.cmd("MAIL FROM:<a@example.net> SMTPUTF8").code == 250
        assert c.cmd("RCPT TO:<alice@>").startswith("501 5.1.3")
        assert c.cmd("RCPT TO:<alice@example.test> FOO=1").startswith("555 5.5.4")
        assert c.cmd("RCPT TO:<alice@example.test> SIZE=10").startswith("555 5.5.4")
        assert c.cmd("DATA now").startswith("501 5.5.4")
        assert c.cmd("RSET now").startswith("501 5.5.4")
        assert c.cmd("QUIT now").startswith("501 5.5.4")
        assert c.cmd("VRFY").startswith("501 5.5.4")
        assert c.cmd("NOOP anything").lines == [b"250 2.0.0 Ok"]
        assert c.cmd("rset").code == 250
        assert c.cmd("mail from:<lower@example.net>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    time_ok = server.wait_queue_empty(1)
    assert time_ok and all_delivered(server.mail) == []


def test_helo_session_has_no_esmtp_parameters(server):
    with RawSMTP(server.port) as c:
        assert c.cmd("HELO client.example.net").code == 250
        assert c.cmd(MAIL.strip() + " SIZE=100").startswith("555 5.5.4")
        assert c.cmd(MAIL.strip() + " BODY=8BITMIME").startswith("555 5.5.4")
        r = c.transaction(SENDER, ["alice@example.test"], b"Subject: helo\r\n\r\nplain\r\n")
        assert r.code == 250
    data = server.wait_messages("alice", 1)[0].read_bytes()
    assert b"with SMTP id" in data


def test_every_reply_has_enhanced_status_code(make_server):
    """Walk through every command and error path; each reply except the
    greeting, EHLO/HELO and 354 starts with an enhanced status code."""
    script = [
        "MAIL FROM:<a@example.net>", "RCPT TO:<alice@example.test>", "DATA", "BDAT 0 LAST",
        "EHLO client.example.net", "HELO client.example.net", "EHLO client.example.net",
        "NOOP", "HELP", "VRFY alice", "VRFY", "EXPN staff", "AUTH PLAIN AGdAZw==",
        "FOO", "RSET", "RSET x",
        "MAIL FROM:<a@example.net> SIZE=99999999", "MAIL FROM:<bad address>",
        "MAIL FROM:<a@example.net> X=Y", "MAIL FROM:<jöran@example.net>",
        "MAIL FROM:<a@example.net>", "MAIL FROM:<a@example.net>",
        "RCPT TO:<nobody@example.test>", "RCPT TO:<x@gmail.test>", "RCPT TO:<ü@other.test>",
        "RCPT TO:<bad>", "RCPT TO:<alice@example.test> X=Y", "RCPT TO:<alice@example.test>",
        "DATA x", "DATA", "MAIL FROM:<a@example.net>", "RCPT TO:<bob@example.test>",
        "BDAT 0", "DATA", "BDAT 0 LAST", "STARTTLS", "QUIT",
    ]
    seen = []
    server = make_server(settings={"max_errors": "100"})
    with RawSMTP(server.port) as c:
        seen.append((None, c.greeting))
        for line in script:
            r = c.cmd(line)
            seen.append((line, r))
            if r.code == 354:
                c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
                seen.append(("<end of data>", c.reply()))
    checked = 0
    for line, r in seen:
        if line is None or line.startswith(("EHLO", "HELO")) or r.code == 354:
            continue
        for l in r.lines:
            assert ENHANCED.match(l), (line, r)
            checked += 1
    assert checked >= len(script) - 4
    codes = {r.code for _, r in seen}
    assert {250, 252, 214, 221, 500, 501, 502, 503, 552, 553, 554, 555, 550} <= codes, codes


"""Every limit: command line length and line ends, message size, recipients,
errors per session, timeouts and connection limits."""
import time

import pytest

from smtpwire import (RawSMTP, all_delivered, dot_stuff,
                      make_message, wait_until)

SENDER = "sender@example.net"


def start_tx(c, rcpt="alice@example.test", params=""):
    assert c.cmd(f"MAIL FROM:<{SENDER}>{params}").code == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250


# ---------------------------------------------------------------- command lines

def test_command_line_length_limit(server):
    limit = 2048                                            # default max_line_length
    with RawSMTP(server.port) as c:
        c.ehlo()
        ok = b"NOOP " + b"x" * (limit - 7)
        assert len(ok) + 2 == limit
        assert c.cmd(ok).lines == [b"250 2.0.0 Ok"]
        r = c.cmd(ok + b"x")
        assert r.startswith("500 5.5.2"), r
        assert "too long" in r.text
        # a long line whose rest would look like a command: one reply only
        c.send(b"NOOP " + b"y" * 5000 + b" QUIT\r\nNOOP\r\n")
        assert c.reply().startswith("500 5.5.2")
        assert c.reply().lines == [b"250 2.0.0 Ok"]
        # a very long line arriving in pieces, with no line end for a while
        c.send(b"MAIL FROM:<" + b"z" * 100000)
        assert c.reply().startswith("500 5.5.2")
        c.send(b"z" * 100000 + b">\r\nRCPT TO:<alice@example.test>\r\n")
        r = c.reply()
        assert r.startswith("503 5.5.1"), r                 # no MAIL was accepted
        assert c.pending() == b""
        assert c.cmd("NOOP").code == 250


@pytest.mark.parametrize("line", [
    b"NOOP\rNOOP\r\n",
    b"NO\rOP\r\n",
    b"\r\r\n",
    b"\rNOOP\r\n",
    b"MAIL FROM:<a@example.net>\rRCPT TO:<alice@example.test>\r\n",
], ids=repr)
def test_bare_cr_in_command_line(server, line):
    """One 500 5.5.2 for the line, nothing of it executed; the line end
    (CRLF) is unambiguous, so the session goes on."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(line + b"RCPT TO:<alice@example.test>\r\n")
        r = c.reply()
        assert r.startswith("500 5.5.2"), r
        assert "bare CR" in r.text
        r = c.reply()
        assert r.startswith("503 5.5.1"), r                 # no MAIL was accepted
        assert c.pending() == b""
        assert c.cmd("NOOP").code == 250


@pytest.mark.parametrize("line", [b"NOOP\n", b"\n", b"\rNOOP\n"], ids=repr)
def test_bare_lf_in_command_line_closes(server, line):
    """A bare LF: 500 5.5.2, then the connection is closed."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(line + b"RCPT TO:<alice@example.test>\r\n")
        r = c.reply()
        assert r.startswith("500 5.5.2"), r
        assert "bare LF" in r.text
        assert c.sock.recv(4096) == b""


@pytest.mark.parametrize("line", [
    b"NOOP\nMAIL FROM:<evil@example.net>\r\n",
    b"MAIL FROM:<a@example.net>\nMAIL FROM:<evil@example.net>\r\n",
], ids=repr)
def test_bare_lf_inside_command_line_is_not_a_line_end(server, line):
    """RFC 5321 2.3.8: only CRLF ends a line. A bare LF makes the line
    boundary ambiguous (a filter in front may split there), so sealpost
    answers 500 5.5.2 and closes: nothing after the LF is ever executed."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(line + b"NOOP\r\n")
        r = c.reply()
        assert r.startswith("500 5.5.2"), r
        assert c.sock.recv(4096) == b""     # closed: no 250 for MAIL or NOOP
    assert "event=bare_lf" in server.log()
    assert "evil@example.net" not in server.log()


# ---------------------------------------------------------------- message size

def test_size_parameter_over_limit(server):
    limit = 1024 * 1024
    with RawSMTP(server.port) as c:
        c.ehlo()
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE={limit + 1}")
        assert r.startswith("552 5.3.4"), r
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE=99999999999999999999")
        assert r.code in (501, 552), r
        assert c.cmd(f"MAIL FROM:<{SENDER}> SIZE={limit}").code == 250


def test_streaming_over_size_limit(make_server):
    server = make_server(settings={"max_message_size": "10k"})
    limit = 10 * 1024
    line = b"a" * 98 + b"\r\n"
    exact = make_message(msgid="<exact@t>", body=b"")
    exact += line * ((limit - len(exact)) // 100)
    exact += b"b" * (limit - len(exact) - 2) + b"\r\n"
    assert len(exact) == limit
    with RawSMTP(server.port) as c:
        c.ehlo()
        # one octet too many, announced with a false SIZE: refused after the dot
        start_tx(c, params=" SIZE=100")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(b"x" + exact))
        assert c.pending(0.3) == b"", "no reply before the end of data"
        c.send(b".\r\n")
        r = c.reply()
        assert r.startswith("552 5.3.4"), r
        # far too big (200 times the limit), the session survives
        start_tx(c)
        assert c.cmd("DATA").code == 354
        c.send(line * (2 * limit) + b".\r\n")
        r = c.reply()
        assert r.startswith("552 5.3.4"), r
        # exactly the limit is accepted
        start_tx(c)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(exact) + b".\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
    files = server.wait_messages("alice", 1)
    assert server.wait_queue_empty()
    assert len(server.messages("alice")) == 1
    assert files[0].read_bytes().endswith(exact)
    # the refused messages left nothing in the spool
    assert list((server.root / "spool" / "incoming").iterdir()) == []


def test_text_line_length_limit(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        ok = b"Subject: long\r\n\r\n" + b"y" * 998 + b"\r\n"
        r = c.transaction(SENDER, ["alice@example.test"], ok)
        assert r.code == 250, r
        start_tx(c)
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")
        r = c.reply()
        assert r.startswith("550 5.6.0"), r
        assert c.cmd("NOOP").code == 250
    assert server.wait_messages("alice", 1)
    assert server.wait_queue_empty()
    assert len(server.messages("alice")) == 1


def test_text_line_limit_ignores_stuffed_dot(server):
    body = b"Subject: dot\r\n\r\n." + b"d" * 997 + b"\r\n"  # 1000 octets with CRLF
    with RawSMTP(server.port) as c:
        c.ehlo()
        r = c.transaction(SENDER, ["alice@example.test"], body)
        assert r.code == 250, r


# ---------------------------------------------------------------- recipients

def test_too_many_recipients(server):
    limit = 20
    msg = make_message(msgid="<many-rcpts@t>")
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for i in range(limit):
            assert c.cmd(f"RCPT TO:<r{i}@other.test>").code == 250
            if i == 5:      # a repeated recipient does not use up a place
                assert c.cmd("RCPT TO:<R0@other.test>").code == 250
        for i in range(limit, limit + 3):
            r = c.cmd(f"RCPT TO:<r{i}@other.test>")
            assert r.startswith("452 4.5.3"), r
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg) + b".\r\n")
        assert c.reply().code == 250
    for i in range(limit):
        assert len(server.wait_messages(f"r{i}", 1, domain="other.test")) == 1
    assert server.wait_queue_empty()
    assert len(all_delivered(server.mail)) == limit


def quoted_spellings(local, n):
    """n distinct quoted spellings of local ("p\\ostmaster", ...): each
    escapes a different set of its octets (RFC 5321 quoted-pairSMTP)."""
    out = []
    for mask in range(1, 1 << len(local)):
        out.append('"' + "".join("\\" + ch if mask >> i & 1 else ch
                                 for i, ch in enumerate(local)) + '"')
        if len(out) == n:
            return out
    raise ValueError("not enough spellings")


def test_quoted_spellings_are_one_recipient(server):
    """100 spellings of postmaster in one transaction are one recipient:
    one delivery, one place in max_recipients (20 here), and every
    repeat gets the reply a repeated recipient always got."""
    msg = make_message(msgid="<spellings@t>")
    spellings = ["postmaster", '"postmaster"', "PostMaster"] + quoted_spellings("postmaster", 97)
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        c.send("".join(f"RCPT TO:<{s}@example.test>\r\n" for s in spellings))
        for s in spellings:
            r = c.reply()
            assert r.lines == [b"250 2.1.5 Ok"], (s, r)
        # the spellings took one place: 19 more recipients fit
        for i in range(19):
            assert c.cmd(f"RCPT TO:<r{i}@other.test>").code == 250
        assert c.cmd("RCPT TO:<r19@other.test>").startswith("452 4.5.3")
        # a repeat of an accepted recipient still gets its 250 at the limit
        assert c.cmd('RCPT TO:<"r\\0"@other.test>').lines == [b"250 2.1.5 Ok"]
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg) + b".\r\n")
        assert c.reply().code == 250
    assert server.wait_queue_empty()
    assert len(server.messages("postmaster")) == 1
    assert len(all_delivered(server.mail)) == 20
    log = server.log()
    assert log.count("verdict=duplicate") == 100
    assert 'to="postmaster@example.test" verdict=accepted' in log


# ---------------------------------------------------------------- errors

def test_too_many_errors_closes_session(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        for i in range(9):
            r = c.cmd("XYZZY" if i % 2 else "RCPT TO:<alice@example.test>")
            assert r.code in (500, 503), r
        assert c.cmd("NOOP").code == 250              # successes do not reset the count
        r = c.cmd("XYZZY")
        assert r.startswith("500 5.5.2"), r
        r = c.reply()
        assert r.startswith("421 4.7.0"), r
        assert c.expect_closed()


def test_rejected_recipients_count_as_errors(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for i in range(9):
            assert c.cmd(f"RCPT TO:<guess{i}@example.test>").startswith("550 5.1.1")
        r = c.cmd("RCPT TO:<guess9@example.test>")
        assert r.startswith("550 5.1.1")
        assert c.reply().startswith("421 4.7.0")
        assert c.expect_closed()


# ---------------------------------------------------------------- timeouts

def test_command_timeout(make_server):
    server = make_server(settings={"command_timeout": "2s"})
    with RawSMTP(server.port) as c:
        # activity keeps the session alive past the timeout
        for _ in range(3):
            assert c.cmd("NOOP").code == 250
            time.sleep(1.0)         # idle time is the stimulus here
        c.ehlo()
        start_tx(c)
        t0 = time.monotonic()
        r = c.reply(timeout=10)
        waited = time.monotonic() - t0
        assert r.startswith("421 4.4.2"), r
        assert 1.5 <= waited <= 4.5, waited
        assert c.expect_closed()
    time.sleep(0.1)
    assert list((server.root / "spool" / "incoming").iterdir()) == []


def test_data_timeout(make_server):
    server = make_server(settings={"data_timeout": "2s"})
    with RawSMTP(server.port) as c:
        c.ehlo()
        start_tx(c)
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: slow\r\n\r\nhalf a message")
        t0 = time.monotonic()
        r = c.reply(timeout=10)
        waited = time.monotonic() - t0
        assert r.startswith("421 4.4.2"), r
        assert 1.5 <= waited <= 4.5, waited
        assert c.expect_closed()
    assert wait_until(lambda: list((server.root / "spool" / "incoming").iterdir()) == [], 5)
    assert server.queue_files() == []
    assert all_delivered(server.mail) == []


# ---------------------------------------------------------------- connections

def refused(port, source):
    """Connect and expect the over-limit refusal; returns its text."""
    with RawSMTP(port, source=source, greet=False) as c:
        r = c.reply()
        assert r.startswith("421 4.7.0"), r
        assert c.is_closed()
        return r.text


def test_per_ip_connection_limit(make_server):
    server = make_server(settings={"max_connections_per_ip": "3"})
    clients = []
    try:
        # (the fixture's readiness probe may still count for a moment)
        for _ in range(3):
            c = wait_until(lambda: _greeted(server.port, "127.0.0.1"), 5)
            assert c
            clients.append(c)
        assert "from your address" in refused(server.port, "127.0.0.1")
        # another address is not affected
        with RawSMTP(server.port, source="127.0.0.2") as other:
            assert other.greeting.code == 220
            assert other.cmd("NOOP").code == 250
        # the sessions that were let in still work
        for c in clients:
            assert c.cmd("NOOP").code == 250
        # a slot frees up when a session ends
        assert clients[0].cmd("QUIT").code == 221
        assert clients[0].is_closed()

        def try_connect():
            c = RawSMTP(server.port)
            if c.greeting.code == 220:
                clients.append(c)
                return True
            c.close()
            return False
        assert wait_until(try_connect, 5)
        assert "from your address" in refused(server.port, "127.0.0.1")
    finally:
        for c in clients:
            c.close()


def test_per_ip_limit_keyed_on_exact_address(make_server):
    """Addresses whose text fell into one of the old table's 4,096 hash
    buckets (FNV-1a) have quotas of their own: filling the quota of
    127.0.0.144 leaves 127.0.0.1 (and 127.0.11.29, a third of the bucket)
    unaffected."""
    def old_bucket(ip):
        h = 2166136261
        for ch in ip.encode():
            h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
        return h % 4096
    victims = ["127.0.0.1", "127.0.11.29"]
    assert {old_bucket(ip) for ip in victims} == {old_bucket("127.0.0.144")}
    server = make_server(settings={"max_connections_per_ip": "4"})
    clients = []
    try:
        for _ in range(4):
            c = wait_until(lambda: _greeted(server.port, "127.0.0.144"), 5)
            assert c
            clients.append(c)
        assert "from your address" in refused(server.port, "127.0.0.144")
        for ip in victims:
            for _ in range(4):
                c = wait_until(lambda: _greeted(server.port, ip), 5)
                assert c, ip
                clients.append(c)
            assert "from your address" in refused(server.port, ip)
        for c in clients:
            assert c.cmd("NOOP").code == 250
    finally:
        for c in clients:
            c.close()


def test_total_connection_limit(make_server):
    server = make_server(settings={"max_connections": "3"})
    # The readiness probe of the fixture may still be counted for a moment.
    clients = []
    try:
        for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            c = wait_until(lambda: _greeted(server.port, ip), 5)
            assert c, ip
            clients.append(c)
        text = refused(server.port, "127.0.0.5")
        assert "too many connections" in text and "from your address" not in text
        for c in clients:
            assert c.cmd("NOOP").code == 250
    finally:
        for c in clients:
            c.close()


def _greeted(port, ip):
    c = RawSMTP(port, source=ip)
    if c.greeting.code == 220:
        return c
    c.close()
    return None

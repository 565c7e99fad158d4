"""TLS sessions end to end: STARTTLS (RFC 3207) and implicit TLS
(RFC 8314) with real clients (openssl s_client, swaks, smtplib), what
EHLO advertises in and out of TLS, STARTTLS error replies, the
command-injection defence (CVE-2011-0411 class) and the session reset
after the handshake."""
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import TLS_HOSTNAME
from smtpwire import RawSMTP, make_message, message_id, new_msgid

SENDER = "sender@example.net"
TIMEOUT = 20


# ---------------------------------------------------------------- helpers

def wrap(raw, pki, ctx=None):
    """Move a RawSMTP connection under TLS right after "220 Ready". The
    server must not have sent anything after its 220."""
    assert raw.buf == b"", f"bytes after the STARTTLS 220: {raw.buf!r}"
    ctx = ctx or pki.client_context()
    raw.sock = ctx.wrap_socket(raw.sock, server_hostname=TLS_HOSTNAME,
                               suppress_ragged_eofs=False)
    return raw


def starttls(raw, pki, ehlo=True):
    if ehlo:
        raw.ehlo()
    r = raw.cmd("STARTTLS")
    assert r.lines == [b"220 2.0.0 Ready to start TLS"], r
    return wrap(raw, pki)


def implicit(port, pki):
    """A RawSMTP on an implicit-TLS port; returns it with the greeting read."""
    raw = RawSMTP(port, greet=False)
    wrap(raw, pki)
    raw.greeting = raw.reply()
    return raw


def read_to_eof(raw, timeout=10):
    """Everything the server still sends until it closes (a TLS alert, say)."""
    raw.sock.settimeout(timeout)
    data = raw.buf
    try:
        while True:
            chunk = raw.sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def keywords(reply):
    return [ln[4:].split(b" ")[0].decode() for ln in reply.lines[1:]]


def received_header(data: bytes) -> str:
    """sealpost's own Received header (the third line on), unfolded."""
    lines = data.split(b"\r\n")
    assert lines[2].startswith(b"Received: from "), lines[:4]
    out = [lines[2]]
    for ln in lines[3:]:
        if not ln.startswith((b"\t", b" ")):
            break
        out.append(ln)
    return b"\r\n".join(out).decode()


def delivered_with(server, msgid, local="alice", count=1):
    files = server.wait_messages(local, count)
    for f in files:
        data = f.read_bytes()
        if message_id(data) == msgid:
            return data
    raise AssertionError(f"{msgid} not delivered to {local}: {files}\n{server.log()}")


def assert_tls13_received(hdr):
    assert " with ESMTPS id " in hdr, hdr
    assert "(using TLSv1.3 with cipher TLS_" in hdr, hdr
    # folded before key-exchange, continuation line starts with TAB SP
    assert "\r\n\t key-exchange X25519 server-signature ECDSA (P-256)" in hdr, hdr


def s_client(*args, stdin="", timeout=TIMEOUT):
    return subprocess.run(["openssl", "s_client", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def verify_args(pki):
    return ["-CAfile", str(pki.ca_cert), "-verify_return_error",
            "-verify_hostname", TLS_HOSTNAME]


@pytest.fixture
def tls_server(make_tls_server):
    """STARTTLS on .port, implicit TLS on .implicit_port, none on .ports["plain"]."""
    return make_tls_server(listeners={"smtps": {"tls": "implicit"},
                                      "plain": {"tls": "none"}})


# ---------------------------------------------------------------- real clients

def test_openssl_s_client_starttls_delivers(tls_server, tls_pki):
    msgid = new_msgid()
    script = ("EHLO client.example.net\nMAIL FROM:<s@example.net>\n"
              "RCPT TO:<alice@example.test>\nDATA\n"
              f"Subject: via s_client\nMessage-ID: {msgid}\n\nbody\n.\nQUIT\n")
    r = s_client("-connect", f"127.0.0.1:{tls_server.port}", "-starttls", "smtp",
                 "-name", "client.example.net", *verify_args(tls_pki), "-quiet", "-crlf",
                 stdin=script)
    # s_client handled the cleartext EHLO + STARTTLS itself; what it shows
    # is the server's side after the handshake
    out = r.stdout.splitlines()
    assert out[0] == "250-mx.example.test", r.stdout + r.stderr
    assert "250-REQUIRETLS" in out and "250-STARTTLS" not in out, r.stdout
    assert re.search(r"^250 2\.0\.0 Ok: queued as [0-9A-F]+$", r.stdout, re.M), r.stdout
    assert out[-1] == "221 2.0.0 Bye", r.stdout
    assert "verify return:1" in r.stderr and "verify error" not in r.stderr, r.stderr
    data = delivered_with(tls_server, msgid)
    hdr = received_header(data)
    assert hdr.startswith("Received: from client.example.net ([127.0.0.1])\r\n"), hdr
    assert_tls13_received(hdr)


def test_swaks_starttls_delivers(tls_server, tls_pki):
    msgid = new_msgid()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(tls_server.port),
                        "--tls", "--tls-verify", "--tls-ca-path", str(tls_pki.ca_cert),
                        "--ehlo", "swaks.example.net", "--from", SENDER,
                        "--to", "alice@example.test", "--header", f"Message-Id: {msgid}",
                        "--timeout", "15"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  220 2.0.0 Ready to start TLS" in r.stdout, r.stdout
    assert re.search(r"=== TLS started with cipher TLSv1\.3:", r.stdout), r.stdout
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as ", r.stdout), r.stdout
    hdr = received_header(delivered_with(tls_server, msgid))
    assert hdr.startswith("Received: from swaks.example.net ([127.0.0.1])"), hdr
    assert_tls13_received(hdr)


def test_swaks_tls_on_connect(tls_server, tls_pki):
    msgid = new_msgid()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                        str(tls_server.implicit_port), "--tls-on-connect", "--tls-verify",
                        "--tls-ca-path", str(tls_pki.ca_cert), "--ehlo", "swaks.example.net",
                        "--from", SENDER, "--to", "alice@example.test",
                        "--header", f"Message-Id: {msgid}", "--timeout", "15"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    # TLS first, then the greeting inside it
    assert r.stdout.index("=== TLS started") < r.stdout.index("<~  220 mx.example.test"), \
        r.stdout
    assert_tls13_received(received_header(delivered_with(tls_server, msgid)))


def test_smtplib_starttls_delivers(tls_server, tls_pki):
    msgid = new_msgid()
    with smtplib.SMTP("127.0.0.1", tls_server.port, local_hostname="py.example.net",
                      timeout=TIMEOUT) as c:
        c.ehlo()
        assert c.has_extn("starttls") and not c.has_extn("requiretls")
        code, _ = c.starttls(context=tls_pki.client_context())
        assert code == 220
        assert c.sock.version() == "TLSv1.3"
        assert c.sock.getpeercert(binary_form=True) == tls_pki.der("ec")
        c.ehlo()
        assert c.has_extn("requiretls") and not c.has_extn("starttls")
        refused = c.sendmail(SENDER, ["alice@example.test"], make_message(msgid=msgid))
        assert refused == {}
    hdr = received_header(delivered_with(tls_server, msgid))
    assert hdr.startswith("Received: from py.example.net ([127.0.0.1])"), hdr
    assert_tls13_received(hdr)
    assert "\r\n\tfor <alice@example.test>;" in hdr, hdr


def test_cleartext_received_says_esmtp(tls_server):
    """Control for the ESMTPS checks: the same server without STARTTLS."""
    msgid = new_msgid()
    with smtplib.SMTP("127.0.0.1", tls_server.port, timeout=TIMEOUT) as c:
        c.sendmail(SENDER, ["alice@example.test"], make_message(msgid=msgid))
    hdr = received_header(delivered_with(tls_server, msgid))
    assert " with ESMTP id " in hdr and "using" not in hdr, hdr


def test_smtplib_implicit_tls(tls_server, tls_pki):
    msgid = new_msgid()
    with smtplib.SMTP_SSL("127.0.0.1", tls_server.implicit_port, timeout=TIMEOUT,
                          context=tls_pki.client_context()) as c:
        code, ehlo = c.ehlo()
        assert code == 250
        assert c.has_extn("requiretls") and not c.has_extn("starttls")
        assert c.sock.getpeercert(binary_form=True) == tls_pki.der("ec")
        assert c.sendmail(SENDER, ["alice@example.test"], make_message(msgid=msgid)) == {}
    assert_tls13_received(received_header(delivered_with(tls_server, msgid)))
    tls_server.wait_log("listener=smtps tls=implicit")


def test_openssl_s_client_implicit_greeting(tls_server, tls_pki):
    r = s_client("-connect", f"127.0.0.1:{tls_server.implicit_port}", *verify_args(tls_pki),
                 "-quiet", "-crlf", stdin="EHLO c.example.net\nQUIT\n")
    out = r.stdout.splitlines()
    assert out[0] == "220 mx.example.test ESMTP sealpost", r.stdout + r.stderr
    assert "250-REQUIRETLS" in out and "250-STARTTLS" not in out, r.stdout
    assert out[-1] == "221 2.0.0 Bye", r.stdout
    assert "verify return:1" in r.stderr, r.stderr


def test_implicit_greeting_only_after_handshake(tls_server, tls_pki):
    raw = RawSMTP(tls_server.implicit_port, greet=False)
    try:
        # nothing in cleartext: the server waits for the ClientHello
        assert raw.pending(0.3) == b""
        wrap(raw, tls_pki)
        assert raw.reply().lines == [b"220 mx.example.test ESMTP sealpost"]
        raw.ehlo()
        assert raw.cmd("QUIT").code == 221
    finally:
        raw.close()


def test_implicit_port_refuses_cleartext_smtp(tls_server):
    """A cleartext client on the implicit port never gets an SMTP session."""
    raw = RawSMTP(tls_server.implicit_port, greet=False)
    try:
        raw.send(b"EHLO x\r\nMAIL FROM:<a@b.test>\r\n")
        data = read_to_eof(raw)
        # at most a TLS alert record, never an SMTP reply
        assert data == b"" or data.startswith(b"\x15\x03"), data
    finally:
        raw.close()
    log = tls_server.wait_log("event=tls_failed")
    assert "event=mail" not in log


# ---------------------------------------------------------------- advertising

def test_starttls_advertised_only_in_cleartext(tls_server, tls_pki):
    with RawSMTP(tls_server.port) as raw:
        kw = keywords(raw.ehlo())
        assert "STARTTLS" in kw and "REQUIRETLS" not in kw, kw
        starttls(raw, tls_pki, ehlo=False)
        kw = keywords(raw.ehlo())
        assert "REQUIRETLS" in kw and "STARTTLS" not in kw, kw
        # a second STARTTLS inside TLS is refused
        assert raw.cmd("STARTTLS").lines == [b"503 5.5.1 Error: TLS already active"]


def test_plain_listener_offers_no_tls(tls_server):
    with RawSMTP(tls_server.ports["plain"]) as raw:
        kw = keywords(raw.ehlo())
        assert "STARTTLS" not in kw and "REQUIRETLS" not in kw, kw
        assert raw.cmd("STARTTLS").lines == [b"502 5.5.1 Error: STARTTLS not available"]
        # the session goes on in cleartext
        assert raw.cmd("NOOP").lines == [b"250 2.0.0 Ok"]


def test_server_without_tls_section(server):
    with RawSMTP(server.port) as raw:
        assert "STARTTLS" not in keywords(raw.ehlo())
        assert raw.cmd("STARTTLS").lines == [b"502 5.5.1 Error: STARTTLS not available"]


def test_starttls_with_argument(tls_server):
    with RawSMTP(tls_server.port) as raw:
        raw.ehlo()
        assert raw.cmd("STARTTLS foo").lines == [b"501 5.5.4 Syntax: STARTTLS"]
        # still cleartext and still usable
        assert raw.cmd("NOOP").lines == [b"250 2.0.0 Ok"]
        assert raw.cmd("STARTTLS").code == 220


def test_starttls_inside_implicit_tls(tls_server, tls_pki):
    raw = implicit(tls_server.implicit_port, tls_pki)
    try:
        raw.ehlo()
        assert raw.cmd("STARTTLS").lines == [b"503 5.5.1 Error: TLS already active"]
        assert raw.cmd("NOOP").lines == [b"250 2.0.0 Ok"]
    finally:
        raw.close()


def test_starttls_on_none_listener_of_tls_server(make_tls_server):
    srv = make_tls_server(tls="none")
    with RawSMTP(srv.port) as raw:
        assert "STARTTLS" not in keywords(raw.ehlo())
        assert raw.cmd("STARTTLS").lines == [b"502 5.5.1 Error: STARTTLS not available"]


# ---------------------------------------------------------------- injection

@pytest.mark.parametrize("injected", [
    b"NOOP\r\n",
    b"MAIL FROM:<a@b.test>\r\n",
    b"RSET\r\n",
    b"EHLO evil.example\r\n",
    b"EHLO evil.example\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n",
], ids=["noop", "mail", "rset", "ehlo", "ehlo-mail-rcpt"])
def test_starttls_command_injection(tls_server, tls_pki, injected):
    """Commands sent in cleartext together with STARTTLS must be thrown
    away, never executed inside the TLS session."""
    with RawSMTP(tls_server.port) as raw:
        raw.send(b"EHLO x.example\r\nSTARTTLS\r\n" + injected)
        assert raw.reply().code == 250
        assert raw.reply().lines == [b"220 2.0.0 Ready to start TLS"]
        wrap(raw, tls_pki)
        # the first reply inside TLS answers our NOOP, and it is the only one
        raw.send(b"NOOP\r\n")
        assert raw.reply().lines == [b"250 2.0.0 Ok"]
        assert raw.pending(0.3) == b"", "a reply for an injected command arrived"
        # no EHLO got through: the session starts from scratch
        assert raw.cmd("MAIL FROM:<a@b.test>").lines == \
            [b"503 5.5.1 Error: send HELO/EHLO first"]
        raw.ehlo()
        assert raw.cmd("MAIL FROM:<a@b.test>").code == 250
    log = tls_server.wait_log("event=starttls_discard")
    m = re.search(r"event=starttls_discard session=\S+ client=127\.0\.0\.1 bytes=(\d+)", log)
    assert m and int(m.group(1)) == len(injected), log


def test_starttls_bytes_after_220_go_to_handshake(tls_server, tls_pki):
    """Cleartext sent after the 220 (but before the ClientHello) is fed to
    the TLS layer, which fails the handshake: never an SMTP command."""
    with RawSMTP(tls_server.port) as raw:
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
        raw.send(b"NOOP\r\n")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            wrap(raw, tls_pki)
            raw.send(b"NOOP\r\n")
            raw.reply()
    log = tls_server.wait_log("event=tls_failed")
    assert "event=mail" not in log


# ---------------------------------------------------------------- reset

def test_starttls_resets_session(tls_server, tls_pki):
    with RawSMTP(tls_server.port) as raw:
        raw.ehlo()
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert raw.cmd("RCPT TO:<alice@example.test>").code == 250
        starttls(raw, tls_pki, ehlo=False)
        # RFC 3207 4.2: no EHLO, no transaction survive the handshake
        assert raw.cmd("MAIL FROM:<a@b.test>").lines == \
            [b"503 5.5.1 Error: send HELO/EHLO first"]
        assert raw.cmd("RCPT TO:<alice@example.test>").lines == \
            [b"503 5.5.1 Error: need MAIL command"]
        assert raw.cmd("DATA").lines == [b"503 5.5.1 Error: need MAIL command"]
        raw.ehlo()
        # not "nested MAIL": the cleartext transaction is gone
        assert raw.cmd(f"MAIL FROM:<{SENDER}>").lines == [b"250 2.1.0 Ok"]
        assert raw.cmd("RCPT TO:<bob@example.test>").code == 250
        msgid = new_msgid()
        assert raw.cmd("DATA").code == 354
        raw.send(make_message(msgid=msgid, to="bob@example.test") + b".\r\n")
        assert raw.reply().code == 250
    data = delivered_with(tls_server, msgid, local="bob")
    assert_tls13_received(received_header(data))
    # the cleartext recipient got nothing
    assert tls_server.messages("alice") == []


def test_starttls_without_ehlo(tls_server, tls_pki):
    """STARTTLS before any EHLO is allowed (RFC 3207 does not require it)."""
    with RawSMTP(tls_server.port) as raw:
        starttls(raw, tls_pki, ehlo=False)
        assert raw.cmd("MAIL FROM:<a@b.test>").code == 503
        raw.ehlo()
        assert raw.cmd("QUIT").code == 221


def test_quit_sends_close_notify(tls_server, tls_pki):
    ctx = tls_pki.client_context()
    # Python sets OP_IGNORE_UNEXPECTED_EOF by default; a strict client does not
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    with RawSMTP(tls_server.port) as raw:
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
        wrap(raw, tls_pki, ctx)
        raw.ehlo()
        assert raw.cmd("QUIT").lines == [b"221 2.0.0 Bye"]
        raw.sock.settimeout(10)
        # with suppress_ragged_eofs=False a missing close_notify raises SSLEOFError
        assert raw.sock.recv(100) == b""


def test_handshake_failure_is_logged(tls_server):
    """Garbage instead of a ClientHello: the session ends, the log says why."""
    with RawSMTP(tls_server.port) as raw:
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
        raw.send(b"\x16\x03\x01\x00\x05hello" + b"x" * 64)
        data = read_to_eof(raw)
        assert data == b"" or data.startswith(b"\x15\x03"), data
    log = tls_server.wait_log("event=tls_failed")
    assert re.search(r"event=tls_failed session=\S+ client=127\.0\.0\.1 reason=\"", log), log


def test_many_starttls_sessions(tls_server, tls_pki):
    """Several TLS sessions at once, interleaved, each delivering."""
    ids = [new_msgid() for _ in range(4)]
    conns = []
    try:
        for _ in ids:
            raw = RawSMTP(tls_server.port)
            starttls(raw, tls_pki)
            raw.ehlo()
            conns.append(raw)
        for raw, msgid in zip(conns, ids):
            assert raw.transaction(SENDER, ["carol@example.test"],
                                   make_message(msgid=msgid, to="carol@example.test")).code == 250
    finally:
        for raw in conns:
            raw.close()
    files = tls_server.wait_messages("carol", len(ids))
    assert sorted(message_id(f.read_bytes()) for f in files) == sorted(ids)


def test_pending_handshake_does_not_block_others(tls_server):
    """A client that connects to the implicit port and never sends its
    ClientHello does not hold up other sessions."""
    idle = socket.create_connection(("127.0.0.1", tls_server.implicit_port))
    try:
        with RawSMTP(tls_server.port) as raw:
            assert raw.cmd("NOOP").code == 250
    finally:
        idle.close()


def test_smtputf8_inside_tls_is_utf8smtps(tls_server, tls_pki):
    msgid = new_msgid()
    with RawSMTP(tls_server.port) as raw:
        starttls(raw, tls_pki)
        raw.ehlo()
        assert raw.transaction(SENDER, ["alice@example.test"], make_message(msgid=msgid),
                               mail_params="SMTPUTF8").code == 250
    hdr = received_header(delivered_with(tls_server, msgid))
    assert " with UTF8SMTPS id " in hdr, hdr


@pytest.mark.parametrize("where", ["implicit", "starttls"])
def test_stalled_handshake_times_out(make_tls_server, tls_pki, where):
    """A client that never sends its ClientHello is cut at command_timeout."""
    srv = make_tls_server(settings={"command_timeout": "1s"},
                          listeners={"smtps": {"tls": "implicit"}})
    if where == "implicit":
        raw = RawSMTP(srv.implicit_port, greet=False)
    else:
        raw = RawSMTP(srv.port)
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
    with raw:
        assert read_to_eof(raw, timeout=10) == b""
    log = srv.wait_log('event=tls_failed')
    assert re.search(r'event=tls_failed session=\S+ client=127\.0\.0\.1 '
                     r'reason="handshake timeout"', log), log

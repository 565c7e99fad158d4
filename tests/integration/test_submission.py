"""Submission (issue 14, part): role = submission listeners on STARTTLS and
implicit TLS, SMTP AUTH PLAIN and LOGIN checked by the queue process
against a crypt(3) users file, the failure lockout, and the sender map,
through Python's smtplib and swaks against the real daemon.

Passwords are hashed by `openssl passwd -6` (sha512-crypt), as an
operator would.
"""
import base64
import os
import shutil
import smtplib
import ssl
import subprocess

import pytest

BIN = os.environ.get("SEALPOST_BIN", "sealpost")
PASSWORDS = {"alice": "correct horse", "bob": "battery staple"}


def crypt_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def sub(make_tls_server, tmp_path):
    """A server with a STARTTLS submission listener ("sub") and an implicit
    one ("smtps"); alice may send as herself and anyone @other.test, bob
    only as bob@example.test."""
    users = tmp_path / "users.passwd"
    users.write_text("# user:hash\n" + "".join(
        f"{u}:{crypt_hash(p)}\n" for u, p in PASSWORDS.items()))
    senders = tmp_path / "senders.map"
    senders.write_text("alice@example.test alice\n@other.test alice\n"
                       "bob@example.test bob\n")
    return make_tls_server(
        listeners={"sub": {"role": "submission", "tls": "starttls"},
                   "smtps": {"role": "submission", "tls": "implicit"}},
        extra_sections=f"""
[submission]
users = {users}
senders = {senders}
auth_failures = 3
auth_failure_delay = 0s
auth_lockout = 1h
""")


def starttls(srv, pki, name="sub"):
    c = smtplib.SMTP("127.0.0.1", srv.ports[name], timeout=10)
    c.ehlo("client.test")
    c.starttls(context=pki.client_context())
    c.ehlo("client.test")
    return c


def message(frm, to, subject="submitted"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@client.test>\r\n\r\nHello.\r\n")


def test_login_on_587_with_starttls_delivers(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        c.login("alice", PASSWORDS["alice"])
        assert c.sendmail("alice@example.test", ["bob@example.test"],
                          message("alice@example.test", "bob@example.test")) == {}
    got = sub.wait_messages("bob", 1)
    data = got[0].read_bytes()
    assert b"with ESMTPSA" in data
    log = sub.log()
    assert "event=auth " in log and "result=ok user=alice mechanism=PLAIN" in log
    assert PASSWORDS["alice"] not in log


def test_login_on_465_implicit_tls(sub, tls_pki):
    with smtplib.SMTP_SSL("127.0.0.1", sub.ports["smtps"], timeout=10,
                          context=tls_pki.client_context()) as c:
        c.ehlo("client.test")
        c.login("bob", PASSWORDS["bob"])
        assert c.sendmail("bob@example.test", ["alice@example.test"],
                          message("bob@example.test", "alice@example.test")) == {}
    assert len(sub.wait_messages("alice", 1)) == 1


def test_nothing_but_starttls_before_tls(sub):
    with smtplib.SMTP("127.0.0.1", sub.ports["sub"], timeout=10) as c:
        code, _ = c.ehlo("client.test")
        assert code == 250 and "auth" not in c.esmtp_features
        assert "starttls" in c.esmtp_features
        code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0x").decode())
        assert code == 538 and text.startswith(b"5.7.11"), (code, text)
        code, text = c.docmd("MAIL", "FROM:<alice@example.test>")
        assert code == 530 and b"STARTTLS" in text, (code, text)
        code, text = c.docmd("VRFY", "alice")
        assert code == 530
        assert c.noop()[0] == 250


def test_mail_without_auth_is_refused(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        code, text = c.docmd("MAIL", "FROM:<alice@example.test>")
        assert code == 530 and text.startswith(b"5.7.0 Authentication required"), text


def auth_plain(c, user, password):
    return c.docmd("AUTH", "PLAIN " + base64.b64encode(
        b"\0" + user.encode() + b"\0" + password.encode()).decode())


def test_wrong_password_535_then_lockout(sub, tls_pki):
    for _ in range(3):
        with starttls(sub, tls_pki) as c:
            code, text = auth_plain(c, "alice", "wrong")
            assert code == 535 and text.startswith(b"5.7.8"), (code, text)
    # The address is locked out now, even with the right password.
    with starttls(sub, tls_pki) as c:
        code, text = auth_plain(c, "alice", PASSWORDS["alice"])
        assert code == 421 and text.startswith(b"4.7.0"), (code, text)
    log = sub.log()
    assert "event=auth_lockout client=127.0.0.1 failures=3" in log
    assert "result=failed user=alice" in log and "wrong" not in log.replace("wrong_", "")


def test_unknown_user_gets_the_same_535(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        code, text = auth_plain(c, "mallory", "anything")
        assert code == 535 and text.startswith(b"5.7.8"), (code, text)


def test_sender_map(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        c.login("bob", PASSWORDS["bob"])
        code, text = c.docmd("MAIL", "FROM:<alice@example.test>")
        assert code == 553 and text.startswith(b"5.7.1"), (code, text)
        code, _ = c.docmd("MAIL", "FROM:<bob@example.test>")
        assert code == 250
    with starttls(sub, tls_pki) as c:
        c.login("alice", PASSWORDS["alice"])
        code, _ = c.docmd("MAIL", "FROM:<anyone@other.test> AUTH=<>")
        assert code == 250                               # @domain rule, AUTH= accepted
        code, _ = c.docmd("RCPT", "TO:<someone@far-away.test>")
        assert code == 250                               # authenticated: may relay


def test_sasl_protocol_edges(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        code, text = c.docmd("AUTH", "CRAM-MD5")
        assert code == 504 and text.startswith(b"5.5.4")
        code, text = c.docmd("AUTH", "PLAIN")
        assert code == 334
        code, text = c.docmd("*")
        assert code == 501 and text.startswith(b"5.0.0")
        code, text = c.docmd("AUTH", "PLAIN not-base64!")
        assert code == 501 and text.startswith(b"5.5.2")
        other = base64.b64encode(b"bob\0alice\0" + PASSWORDS["alice"].encode()).decode()
        code, text = c.docmd("AUTH", "PLAIN " + other)
        assert code == 535                               # acting as someone else
        code, text = c.docmd("AUTH", "LOGIN")
        assert code == 334 and text == b"VXNlcm5hbWU6"
        code, text = c.docmd(base64.b64encode(b"alice").decode())
        assert code == 334 and text == b"UGFzc3dvcmQ6"
        code, text = c.docmd(base64.b64encode(PASSWORDS["alice"].encode()).decode())
        assert code == 235, (code, text)
        code, text = c.docmd("AUTH", "PLAIN")
        assert code == 503                               # already authenticated


def test_mx_listener_offers_no_auth(sub, tls_pki):
    with smtplib.SMTP("127.0.0.1", sub.port, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=tls_pki.client_context())
        c.ehlo("client.test")
        assert "auth" not in c.esmtp_features
        code, _ = c.docmd("AUTH", "PLAIN")
        assert code == 503


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_auth(sub):
    out = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(sub.ports["sub"]),
                          "--tls", "--auth", "LOGIN", "--auth-user", "alice",
                          "--auth-password", PASSWORDS["alice"], "--from",
                          "alice@example.test", "--to", "carol@example.test",
                          "--helo", "client.test", "--tls-verify", "--tls-ca-path",
                          str(sub.pki.ca_cert), "--tls-sni", "localhost"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0" in out.stdout
    assert len(sub.wait_messages("carol", 1)) == 1


def test_check_reports_a_bad_users_file(tmp_path, make_tls_server):
    users = tmp_path / "bad.passwd"
    users.write_text("alice:$6$salt$hash\nbob:plaintext\n")
    srv = make_tls_server(start=False, listeners={"sub": {"role": "submission"}},
                          extra_sections=f"\n[submission]\nusers = {users}\n")
    res = subprocess.run([BIN, "check", "-c", str(srv.conf)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert "line 2" in res.stderr and "hash" in res.stderr, res.stderr
    assert "plaintext" not in res.stderr


def test_submission_listener_needs_users(tmp_path, make_tls_server):
    srv = make_tls_server(start=False, listeners={"sub": {"role": "submission"}})
    res = subprocess.run([BIN, "check", "-c", str(srv.conf)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1 and "[submission] users" in res.stderr, res.stderr


# ----------------------------------------------------------- as an attacker

def test_client_gone_while_the_queue_checks(sub, tls_pki):
    """The client sends AUTH and hangs up before the verdict: the session is
    freed once the verdict arrives, the worker keeps serving."""
    for _ in range(2):                  # below auth_failures: no lockout
        c = starttls(sub, tls_pki)
        c.send(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0" + b"x" * 200) + b"\r\n")
        c.sock.close()
    assert sub.wait_log("result=failed user=alice", count=2)
    with starttls(sub, tls_pki) as c:
        c.login("bob", PASSWORDS["bob"])
    assert sub.log().count("event=disconnect") >= 2


def test_pipelined_mail_after_auth_waits_for_the_verdict(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        cred = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode())
        c.send(b"AUTH PLAIN " + cred + b"\r\nMAIL FROM:<alice@example.test>\r\n")
        assert c.getreply()[0] == 235
        assert c.getreply()[0] == 250               # executed after the 235, not before


def test_overlong_response_ends_the_exchange(sub, tls_pki):
    with starttls(sub, tls_pki) as c:
        assert c.docmd("AUTH", "PLAIN")[0] == 334
        code, text = c.docmd("A" * 5000)
        assert code == 500 and b"too long" in text
        code, _ = c.docmd("NOOP")                     # a command again, not a response
        assert code == 250

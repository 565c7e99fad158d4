"""What a milter hears about an authenticated client: {auth_authen} is
the user the queue's AUTH grant stands for, {auth_type} the SASL
mechanism the client really used (PLAIN or LOGIN), at an early stage
(MAIL) and at the end of the data alike; a client that did not
authenticate sends neither macro.

Trusts: smtplib as the client (its auth() uses the mechanism we name),
what the scripted milter records (scripted_milter.py).
"""
import re
import smtplib
import subprocess

import pytest

from scripted_milter import started_milters
from smtpwire import wait_until

PASSWORD = "correct horse"


milter = pytest.fixture(started_milters, name="milter")


def macros(m):
    """Every macro name -> value the milter heard, in order."""
    out = []
    for data in m.heard(b"D"):
        parts = data[1:].split(b"\0")          # the stage letter, then name NUL value ...
        out += [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    return out


def submission_server(make_tls_server, tmp_path, early, late):
    users = tmp_path / "users.passwd"
    hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD,
                            capture_output=True, text=True, check=True).stdout.strip()
    users.write_text(f"alice:{hashed}\n")
    senders = tmp_path / "senders.map"
    senders.write_text("alice@example.test alice\n")
    return make_tls_server(
        listeners={"sub": {"role": "submission", "tls": "starttls",
                           "milters": "early, late"}},
        extra_sections=f"""
[submission]
users = {users}
senders = {senders}
auth_failure_delay = 0s

[milter early]
socket = {early.spec}
stage = mail
timeout = 10s

[milter late]
socket = {late.spec}
timeout = 10s
""")


def send_as_alice(srv, pki, mechanism):
    with smtplib.SMTP("127.0.0.1", srv.ports["sub"], timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=pki.client_context())
        c.ehlo("client.test")
        c.user, c.password = "alice", PASSWORD
        code, _ = c.auth(mechanism, getattr(c, "auth_" + mechanism.lower()),
                         initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        c.sendmail("alice@example.test", ["bob@example.test"],
                   b"From: alice@example.test\r\nSubject: auth\r\n\r\nHello.\r\n")


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_milters_hear_the_user_and_the_mechanism(make_tls_server, tls_pki, tmp_path,
                                                 milter, mechanism):
    early, late = milter(), milter()
    srv = submission_server(make_tls_server, tmp_path, early, late)
    send_as_alice(srv, tls_pki, mechanism)
    assert len(srv.wait_messages("bob", 1)) == 1
    for m in (early, late):
        assert wait_until(lambda: (b"{auth_type}", mechanism.encode()) in macros(m)), \
            macros(m)
        assert (b"{auth_authen}", b"alice") in macros(m), macros(m)
    assert re.search(rf'event=auth_granted slot=\d+ user="?alice"? mechanism={mechanism}\n',
                     srv.log()), srv.log()


def test_no_auth_macros_without_auth(make_tls_server, tls_pki, tmp_path, milter):
    early = milter()
    srv = make_tls_server(extra_sections=f"""
[milter early]
socket = {early.spec}
stage = mail
timeout = 10s
""", listener_extra="milters = early\n")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("sender@example.net", ["bob@example.test"],
                   b"From: sender@example.net\r\nSubject: anon\r\n\r\nHello.\r\n")
    assert len(srv.wait_messages("bob", 1)) == 1
    assert wait_until(lambda: early.heard(b"M")), early.commands()
    names = [n for n, _ in macros(early)]
    assert b"{auth_type}" not in names and b"{auth_authen}" not in names, names

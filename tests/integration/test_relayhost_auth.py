"""Sending through a smart host with AUTH (issue 14, item 5): a first
sealpost relays everything to `[relay] relayhost`, logging in with the
`relayhost_credentials` file, and a SECOND sealpost is that smart host:
submission listeners with implicit TLS and STARTTLS, a crypt(3) users
file, and a certificate for smarthost.example.test signed by the test
CA. The name resolves through the DNSSEC test world (nsd), the first
sealpost trusts the test CA through `[relay] ca_file`.

Asserted through the real daemons: mail arrives in the smart host's
Maildir and the smart host logged the user; a wrong password defers (no
bounce) and the password is in no log; a certificate for another name or
from another CA defers before any AUTH; a smart host without AUTH
defers; a credentials file readable by others stops `serve` and `check`.
"""
import os
import smtplib
import subprocess

import pytest

from conftest import TLSServer, _openssl
from smtpwire import wait_until

BIN = os.environ.get("SEALPOST_BIN", "sealpost")
SMARTHOST = "smarthost.example.test"
USER, PASSWORD = "relayuser", "s3cret-Pa55:with colon"


class SmartPKI:
    """Certificates for the smart host, in the shape TLSServer installs
    (cert(kind) with the chain, key(kind) mode 600): "good" for
    SMARTHOST from the test CA, "wrongname" for another name from the
    test CA, "otherca" for SMARTHOST from a CA nobody trusts."""

    def __init__(self, d, test_pki):
        self.dir = d
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-noenc", "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "30",
                 "-subj", "/CN=untrusted test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        cas = {"good": (test_pki.ca_cert, test_pki.ca_key, SMARTHOST),
               "wrongname": (test_pki.ca_cert, test_pki.ca_key, "elsewhere.example.test"),
               "otherca": (d / "other-ca.pem", d / "other-ca.key", SMARTHOST)}
        for serial, (kind, (ca, ca_key, name)) in enumerate(cas.items(), start=100):
            (d / f"{kind}.ext").write_text(
                f"subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
            _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-noenc", "-keyout", f"{kind}.key", "-out", f"{kind}.csr",
                     "-subj", f"/CN={name}", cwd=d)
            _openssl("x509", "-req", "-in", f"{kind}.csr", "-CA", str(ca), "-CAkey",
                     str(ca_key), "-set_serial", str(serial), "-days", "30",
                     "-extfile", f"{kind}.ext", "-out", f"{kind}.leaf.pem", cwd=d)
            (d / f"{kind}.pem").write_text((d / f"{kind}.leaf.pem").read_text() +
                                           ca.read_text())
            os.chmod(d / f"{kind}.key", 0o600)

    def cert(self, kind):
        return self.dir / f"{kind}.pem"

    def key(self, kind):
        return self.dir / f"{kind}.key"

    def install(self, dest, kind, name=None):
        cert, key = dest / f"{kind}.pem", dest / f"{kind}.key"
        cert.write_bytes(self.cert(kind).read_bytes())
        key.write_bytes(self.key(kind).read_bytes())
        os.chmod(key, 0o600)
        return cert, key


@pytest.fixture(scope="module")
def smart_pki(tmp_path_factory, tls_pki):
    return SmartPKI(tmp_path_factory.mktemp("smartpki"), tls_pki)


def crypt_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True).stdout.strip()


class Relay:
    """The DNS world, the smart host (second sealpost) and the sending
    sealpost (first)."""

    def __init__(self, dns_world, make_server, smart_pki, tls_pki, tmp_path):
        self.dns = dns_world
        self.make_server = make_server
        self.smart_pki = smart_pki
        self.tls_pki = tls_pki
        self.tmp = tmp_path
        self.smart = self.sender = None
        self.smart_servers = []
        self.dns.add(SMARTHOST, "A", "127.0.0.1")
        self.dns.start()

    def start_smarthost(self, cert="good"):
        users = self.tmp / "smart-users.passwd"
        users.write_text(f"{USER}:{crypt_hash(PASSWORD)}\n")
        senders = self.tmp / "smart-senders.map"
        senders.write_text(f"@example.test {USER}\n")
        self.smart = self._smart(cert, users, senders)
        return self.smart

    def _smart(self, cert, users, senders):
        root = self.tmp / f"smart-{cert}"
        root.mkdir()
        srv = TLSServer(root, self.smart_pki, certs=(cert,),
                        listeners={"sub": {"role": "submission", "tls": "starttls"},
                                   "smtps": {"role": "submission", "tls": "implicit"}},
                        extra_sections=f"""
[domain remote.test]
maildir = mail/{{domain}}/{{local}}

[submission]
users = {users}
senders = {senders}
auth_failure_delay = 0s
auth_failures = 1000
""")
        self.smart_servers.append(srv)
        return srv.start()

    def credentials(self, text=None, mode=0o600):
        path = self.tmp / "relay.credentials"
        path.write_text(text if text is not None else f"# smart host login\n{USER}:{PASSWORD}\n")
        os.chmod(path, mode)
        return path

    def sender_config(self, port, tls, creds, start=True):
        conf = self.dns.write_unbound_conf(self.tmp / "sender-unbound.conf")
        self.sender = self.make_server(start=start, extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [{SMARTHOST}]:{port}
relayhost_tls = {tls}
relayhost_credentials = {creds}
ca_file = {self.tls_pki.ca_cert}
unbound_config = {conf}
retry = 1s
max_queue_lifetime = 1h
dns_timeout = 3s
connect_timeout = 2s
smtp_timeout = 10s
""")
        return self.sender

    def send(self, rcpt="bob@remote.test", subject="via the smart host"):
        msg = (f"From: alice@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", self.sender.port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.sendmail("alice@example.test", [rcpt], msg) == {}

    def logs(self):
        return (self.sender.log() if self.sender else "") + (
            "".join(s.log() for s in self.smart_servers))


@pytest.fixture
def relay(dns_world, make_server, smart_pki, tls_pki, tmp_path):
    r = Relay(dns_world, make_server, smart_pki, tls_pki, tmp_path)
    yield r
    for srv in r.smart_servers + ([r.sender] if r.sender and r.sender.proc else []):
        srv.stop()
        log = srv.log()
        assert "AddressSanitizer" not in log and "runtime error:" not in log, log[-3000:]


def assert_no_password(relay):
    logs = relay.logs()
    assert PASSWORD not in logs
    assert "s3cret" not in logs


@pytest.mark.parametrize("tls,listener", [("implicit", "smtps"), ("starttls", "sub")])
def test_mail_goes_through_the_smart_host_with_auth(relay, tls, listener):
    smart = relay.start_smarthost()
    sender = relay.sender_config(smart.ports[listener], tls, relay.credentials())
    relay.send()
    got = smart.wait_messages("bob", 1, domain="remote.test")
    assert len(got) == 1, sender.log() + smart.log()
    data = got[0].read_bytes()
    assert b"Subject: via the smart host" in data
    assert b"with ESMTPSA" in data          # the smart host saw an authenticated client
    assert f"result=ok user={USER}" in smart.wait_log(f"result=ok user={USER}")
    log = sender.log()
    assert f"event=relay_auth result=ok peer={SMARTHOST}[127.0.0.1]:" in log
    assert f"user={USER} mechanism=PLAIN" in log
    assert wait_until(lambda: "status=sent" in sender.log())
    assert "verified=pkix" in sender.log()
    assert sender.wait_queue_empty()
    assert_no_password(relay)


def test_wrong_password_defers_and_never_bounces(relay):
    smart = relay.start_smarthost()
    creds = relay.credentials(f"{USER}:wrong-{PASSWORD}\n")
    sender = relay.sender_config(smart.ports["smtps"], "implicit", creds)
    relay.send()
    # Two refused logins: the message was retried, not bounced.
    assert wait_until(lambda: sender.log().count("event=relay_auth result=failed") >= 2), \
        sender.log()
    log = sender.log()
    assert "level=error" in log.split("event=relay_auth result=failed")[0].rsplit("\n", 1)[-1]
    assert "dsn=4.7.8" in log and "status=deferred" in log
    assert "status=bounced" not in log
    assert sender.messages("alice") == []           # no DSN to the sender
    assert [f for f in sender.queue_files() if "." not in f]   # still queued
    assert smart.messages("bob", domain="remote.test") == []
    assert f"result=failed user={USER}" in smart.log()
    assert "wrong-" not in relay.logs()
    assert_no_password(relay)


@pytest.mark.parametrize("cert,why", [("wrongname", "hostname mismatch"),
                                      ("otherca", "self-signed certificate in certificate chain")])
def test_unverified_certificate_defers_before_any_auth(relay, cert, why):
    smart = relay.start_smarthost(cert=cert)
    sender = relay.sender_config(smart.ports["smtps"], "implicit", relay.credentials())
    relay.send()
    assert wait_until(lambda: sender.log().count("status=deferred") >= 2), sender.log()
    log = sender.log()
    assert why in log and "dsn=4.7.5" in log
    assert "event=relay_auth" not in log            # AUTH was never attempted
    assert "event=auth " not in smart.log()         # and the smart host saw none
    assert smart.messages("bob", domain="remote.test") == []
    assert [f for f in sender.queue_files() if "." not in f]
    assert_no_password(relay)


def test_starttls_certificate_checked_before_auth(relay):
    smart = relay.start_smarthost(cert="wrongname")
    sender = relay.sender_config(smart.ports["sub"], "starttls", relay.credentials())
    relay.send()
    assert wait_until(lambda: "status=deferred" in sender.log()), sender.log()
    assert "hostname mismatch" in sender.log()
    assert "event=auth " not in smart.log()
    assert_no_password(relay)


def test_smart_host_without_auth_defers(relay):
    smart = relay.start_smarthost()
    # the smart host's MX listener: STARTTLS, but no AUTH offered
    sender = relay.sender_config(smart.port, "starttls", relay.credentials())
    relay.send()
    assert wait_until(lambda: "status=deferred" in sender.log()), sender.log()
    log = sender.log()
    assert "offers no AUTH PLAIN or LOGIN" in log and "dsn=4.7.0" in log
    assert smart.messages("bob", domain="remote.test") == []
    assert "Relay access denied" not in smart.log()     # no MAIL was ever sent
    assert_no_password(relay)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_credentials_file_open_to_others_is_refused(relay, mode):
    creds = relay.credentials(mode=mode)
    sender = relay.sender_config(2525, "implicit", creds, start=False)
    res = subprocess.run([BIN, "check", "-c", str(sender.conf)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1, res
    assert f"relayhost_credentials {creds} is accessible by group or others" in res.stderr
    assert f"chmod 600 {creds}" in res.stderr
    sender.start(wait=False)
    assert sender.proc.wait(30) != 0
    assert "is accessible by group or others" in sender.log()
    assert PASSWORD not in res.stdout + res.stderr + sender.log()


def test_credentials_0400_and_check_passes(relay):
    creds = relay.credentials(mode=0o400)
    sender = relay.sender_config(2525, "implicit", creds, start=False)
    res = subprocess.run([BIN, "check", "-c", str(sender.conf)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res
    assert f"relayhost_credentials = {creds}" in res.stdout
    assert "relayhost_tls = implicit" in res.stdout
    assert PASSWORD not in res.stdout + res.stderr


@pytest.mark.parametrize("text,why", [
    ("", "no \"user:password\" line"),
    ("justauser\n", "line 1: not \"user:password\""),
    (f"{USER}:\n", "line 1: empty password"),
    (f"a:b\n{USER}:{PASSWORD}\n", "line 2: a second credentials line"),
])
def test_malformed_credentials_fail_check(relay, text, why):
    creds = relay.credentials(text)
    sender = relay.sender_config(2525, "starttls", creds, start=False)
    res = subprocess.run([BIN, "check", "-c", str(sender.conf)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1 and why in res.stderr, res
    assert PASSWORD not in res.stderr


def test_credentials_need_a_relayhost(tmp_path):
    creds = tmp_path / "c"
    creds.write_text("u:p\n")
    os.chmod(creds, 0o600)
    conf = tmp_path / "s.conf"
    conf.write_text(f"[server]\nhostname = mx.example.test\nspool = {tmp_path}/spool\n"
                    f"[listener mx]\naddress = 127.0.0.1:2525\n"
                    f"[domain example.test]\nmaildir = {tmp_path}/mail/{{local}}\n"
                    f"[relay]\nrelayhost_credentials = {creds}\n")
    res = subprocess.run([BIN, "check", "-c", str(conf)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1
    assert "relayhost_credentials needs a relayhost in [relay]" in res.stderr


class LoginOnlyHost:
    """A minimal smart host speaking implicit TLS with the "good"
    certificate and offering only AUTH LOGIN (some ISP hosts do): records
    what the client sent, so the test sees the real LOGIN exchange."""

    def __init__(self, pki):
        import socketserver
        import ssl
        import threading

        self.seen = []                  # decoded (user, password) pairs
        self.messages = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.cert("good")), str(pki.key("good")))
        host = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self):
                self.request = ctx.wrap_socket(self.request, server_side=True)
                super().setup()

            def say(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                import base64
                self.say("220 login-only.test ESMTP")
                step, user, data = None, None, None
                for raw in self.rfile:
                    line = raw.rstrip(b"\r\n").decode("ascii", "replace")
                    if data is not None:
                        if line == ".":
                            host.messages.append("\n".join(data))
                            data = None
                            self.say("250 2.0.0 queued")
                        else:
                            data.append(line)
                    elif step == "user":
                        user, step = base64.b64decode(line).decode(), "pass"
                        self.say("334 UGFzc3dvcmQ6")
                    elif step == "pass":
                        host.seen.append((user, base64.b64decode(line).decode()))
                        step = "done"
                        self.say("235 2.7.0 Authentication successful")
                    elif line.upper().startswith("EHLO"):
                        self.say("250-login-only.test\r\n250-AUTH LOGIN\r\n250 8BITMIME")
                    elif line.upper() == "AUTH LOGIN":
                        step = "user"
                        self.say("334 VXNlcm5hbWU6")
                    elif line.upper().startswith(("MAIL", "RCPT")):
                        self.say("250 2.1.0 ok" if step == "done" else "530 5.7.0 auth first")
                    elif line.upper() == "DATA":
                        data = []
                        self.say("354 go ahead")
                    elif line.upper() == "QUIT":
                        self.say("221 2.0.0 bye")
                        return
                    else:
                        self.say("502 5.5.1 no")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_login_when_only_login_is_offered(relay, smart_pki):
    host = LoginOnlyHost(smart_pki)
    try:
        sender = relay.sender_config(host.port, "implicit", relay.credentials())
        relay.send()
        assert wait_until(lambda: "status=sent" in sender.log()), sender.log()
        assert host.seen == [(USER, PASSWORD)]
        assert any("Subject: via the smart host" in m for m in host.messages)
        assert f"user={USER} mechanism=LOGIN" in sender.log()
        assert_no_password(relay)
    finally:
        host.stop()


def test_sighup_takes_fixed_credentials(relay):
    """The operator's fix for a wrong password: correct the file, reload.
    A file opened to others on reload is refused and the old one kept."""
    import signal
    smart = relay.start_smarthost()
    creds = relay.credentials(f"{USER}:wrong-{PASSWORD}\n")
    sender = relay.sender_config(smart.ports["smtps"], "implicit", creds)
    relay.send()
    assert wait_until(lambda: "event=relay_auth result=failed" in sender.log()), sender.log()
    os.chmod(creds, 0o644)
    sender.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=relayhost_credentials status=failed keeping=old"
                      in sender.log()), sender.log()
    assert "is accessible by group or others" in sender.log()
    relay.credentials()                      # the right password, mode 0600
    sender.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=relayhost_credentials status=ok" in sender.log()), \
        sender.log()
    got = smart.wait_messages("bob", 1, domain="remote.test")
    assert len(got) == 1, sender.log()
    assert "event=relay_auth result=ok" in sender.log()
    assert wait_until(lambda: "status=sent" in sender.log())
    assert sender.proc.poll() is None
    assert "wrong-" not in relay.logs()
    assert_no_password(relay)

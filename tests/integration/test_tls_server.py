"""The server's TLS setup end to end: the protocol floor (TLS 1.2 by
default, min_version = TLSv1.3), certificate and key files checked at
start, reload on SIGHUP (new certificate for new sessions, old sessions
untouched, a broken file keeps the old one), and ECDSA + RSA side by side."""
import hashlib
import re
import signal
import socket
import smtplib
import ssl
import subprocess
import warnings

import pytest

from conftest import TLS_HOSTNAME, free_port
from roles import restart_workers
from smtpwire import RawSMTP, make_message, message_id, new_msgid, wait_until

SENDER = "sender@example.net"
TIMEOUT = 20


def handshake(port, pki, ctx=None, starttls=True):
    """One STARTTLS (or implicit) handshake; returns the TLS RawSMTP."""
    ctx = ctx or pki.client_context()
    raw = RawSMTP(port, greet=starttls)
    try:
        if starttls:
            raw.ehlo()
            assert raw.cmd("STARTTLS").code == 220
        raw.sock = ctx.wrap_socket(raw.sock, server_hostname=TLS_HOSTNAME)
        if not starttls:
            raw.greeting = raw.reply()
    except BaseException:
        raw.close()
        raise
    return raw


def peer_der(port, pki, ctx=None):
    with handshake(port, pki, ctx) as raw:
        return raw.sock.getpeercert(binary_form=True)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def legacy_context(version):
    """A client that speaks only `version`, with the security level lowered
    so that the client side itself does not refuse old protocols."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


# ---------------------------------------------------------------- versions

@pytest.fixture
def tls_server(make_tls_server):
    return make_tls_server(certs=("ec", "rsa"), listeners={"smtps": {"tls": "implicit"}})


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["TLSv1.0", "TLSv1.1"])
def test_old_protocol_refused(tls_server, tls_pki, version):
    for port, starttls in ((tls_server.port, True), (tls_server.implicit_port, False)):
        with pytest.raises(ssl.SSLError) as exc:
            handshake(port, tls_pki, legacy_context(version), starttls=starttls)
        # the *server* said no (protocol_version alert), not our own library
        assert "TLSV1_ALERT_PROTOCOL_VERSION" in str(exc.value), exc.value
    log = tls_server.wait_log("event=tls_failed", count=2)
    assert 'reason="error:0A000102:SSL routines::unsupported protocol"' in log, log


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1, "TLSv1"),
                                          (ssl.TLSVersion.TLSv1_1, "TLSv1.1")],
                         ids=["TLSv1.0", "TLSv1.1"])
def test_old_protocol_client_works_elsewhere(tls_pki, version, name):
    """Control for the test above: the same legacy client does complete a
    handshake with `openssl s_server` configured for that version, so the
    refusal above really comes from sealpost."""
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
                            "-cert", str(tls_pki.cert("ec")), "-key", str(tls_pki.key("ec")),
                            "-cipher", "DEFAULT@SECLEVEL=0", "-naccept", "1"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        for line in srv.stdout:             # "ACCEPT" once it listens
            if line.strip() == "ACCEPT":
                break
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            with legacy_context(version).wrap_socket(s) as tls:
                assert tls.version() == name
    finally:
        srv.kill()
        srv.wait()


def test_old_protocol_refused_openssl(tls_server, tls_pki):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_server.port}",
                        "-starttls", "smtp", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                        "-brief"], input="QUIT\n", capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode != 0
    assert "CONNECTION ESTABLISHED" not in r.stderr + r.stdout
    assert "alert protocol version" in r.stderr, r.stderr


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_modern_protocols_accepted(tls_server, tls_pki, version, name):
    ctx = tls_pki.client_context(minimum=version, maximum=version)
    with handshake(tls_server.port, tls_pki, ctx) as raw:
        assert raw.sock.version() == name
        raw.ehlo()
        msgid = new_msgid()
        assert raw.transaction(SENDER, ["alice@example.test"],
                               make_message(msgid=msgid)).code == 250
    files = tls_server.wait_messages("alice", 1)
    data = files[0].read_bytes()
    assert message_id(data) == msgid
    assert f"(using {name} with cipher ".encode() in data
    assert b" with ESMTPS id " in data


def test_tls12_forward_secret_aead_only(tls_server, tls_pki):
    """TLS 1.2 clients get an ECDHE + AEAD suite; a client offering only
    RSA key exchange or CBC suites is refused."""
    ctx = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with handshake(tls_server.port, tls_pki, ctx) as raw:
        name, proto, _ = raw.sock.cipher()
        assert proto == "TLSv1.2" and name.startswith("ECDHE-") and \
            ("GCM" in name or "CHACHA20" in name), name
    for weak in ("AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA"):
        ctx = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2, ciphers=weak)
        with pytest.raises(ssl.SSLError):
            handshake(tls_server.port, tls_pki, ctx)


def test_min_version_tls13(make_tls_server, tls_pki):
    srv = make_tls_server(min_version="TLSv1.3", listeners={"smtps": {"tls": "implicit"}})
    ctx12 = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    for port, starttls in ((srv.port, True), (srv.implicit_port, False)):
        with pytest.raises(ssl.SSLError) as exc:
            handshake(port, tls_pki, ctx12, starttls=starttls)
        assert "TLSV1_ALERT_PROTOCOL_VERSION" in str(exc.value), exc.value
        with handshake(port, tls_pki, starttls=starttls) as raw:
            assert raw.sock.version() == "TLSv1.3"
            assert raw.ehlo().code == 250
    srv.wait_log("event=tls_failed", count=2)


# ---------------------------------------------------------------- certificates

def test_both_certificate_types(tls_server, tls_pki):
    # a modern client prefers ECDSA
    assert peer_der(tls_server.port, tls_pki) == tls_pki.der("ec")
    # TLS 1.2 with only an RSA-authenticated suite gets the RSA certificate
    ctx = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                 ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    with handshake(tls_server.port, tls_pki, ctx) as raw:
        assert raw.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        assert raw.sock.getpeercert(binary_form=True) == tls_pki.der("rsa")
    # TLS 1.2 with only ECDSA suites gets the ECDSA one
    ctx = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                 ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert peer_der(tls_server.port, tls_pki, ctx) == tls_pki.der("ec")


def test_rsa_only_sigalgs_openssl_tls13(tls_server, tls_pki):
    rsa_pem = tls_pki.cert("rsa").read_text().split("-----END CERTIFICATE-----")[0]
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_server.port}",
                        "-starttls", "smtp", "-tls1_3", "-sigalgs", "RSA-PSS+SHA256",
                        "-CAfile", str(tls_pki.ca_cert), "-verify_return_error",
                        "-verify_hostname", TLS_HOSTNAME],
                       input="QUIT\n", capture_output=True, text=True, timeout=TIMEOUT)
    assert "Peer signature type: RSA-PSS" in r.stdout, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout
    assert rsa_pem.strip() in r.stdout, r.stdout
    log = tls_server.wait_log("server-signature RSA-PSS (2048 bits)")
    assert "server-signature RSA-PSS (2048 bits) server-digest SHA256" in log


def test_received_names_rsa_signature(tls_server, tls_pki):
    ctx = tls_pki.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                 ciphers="ECDHE-RSA-AES256-GCM-SHA384")
    msgid = new_msgid()
    with handshake(tls_server.port, tls_pki, ctx) as raw:
        raw.ehlo()
        assert raw.transaction(SENDER, ["bob@example.test"],
                               make_message(msgid=msgid, to="bob@example.test")).code == 250
    data = tls_server.wait_messages("bob", 1)[0].read_bytes()
    assert b"(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)\r\n" \
           b"\t key-exchange X25519 " in data, data[:600]
    # Python offers RSA-PSS first, so even TLS 1.2 signs with PSS here
    assert b"server-signature RSA-PSS (2048 bits) server-digest SHA256)" in data, data[:600]


def test_tls12_pkcs1_signature_named_rsa(tls_server, tls_pki):
    """A TLS 1.2 client that allows only PKCS#1 v1.5 signatures: the summary
    says RSA, not RSA-PSS (it reports what was signed, not a guess)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_server.port}",
                        "-starttls", "smtp", "-tls1_2", "-sigalgs", "RSA+SHA256",
                        "-CAfile", str(tls_pki.ca_cert), "-brief"],
                       input="QUIT\n", capture_output=True, text=True, timeout=TIMEOUT)
    assert "Signature type: RSA\n" in r.stderr, r.stderr
    log = tls_server.wait_log("event=tls ")
    assert "using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits) " \
           "key-exchange X25519 server-signature RSA (2048 bits) server-digest SHA256" in log, log


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_session_resumption(tls_server, tls_pki, version):
    """A second session resumes the first (tickets / session cache). A
    resumed session made no signature, so its Received header claims none
    (the last-loaded RSA certificate was named for an ECDSA session)."""
    ctx = tls_pki.client_context(minimum=version, maximum=version)
    with handshake(tls_server.port, tls_pki, ctx) as raw:
        raw.ehlo()                  # TLS 1.3 tickets arrive after the handshake
        session = raw.sock.session
        assert raw.sock.getpeercert(binary_form=True) == tls_pki.der("ec")
    raw = RawSMTP(tls_server.port)
    try:
        raw.ehlo()
        assert raw.cmd("STARTTLS").code == 220
        raw.sock = ctx.wrap_socket(raw.sock, server_hostname=TLS_HOSTNAME, session=session)
        assert raw.sock.session_reused
        raw.ehlo()
        msgid = new_msgid()
        assert raw.transaction(SENDER, ["carol@example.test"],
                               make_message(msgid=msgid, to="carol@example.test")).code == 250
    finally:
        raw.close()
    log = tls_server.wait_log("resumed=1")
    assert len(re.findall(r"event=tls session=\S+ client=127\.0\.0\.1 resumed=0", log)) == 1
    data = tls_server.wait_messages("carol", 1)[0].read_bytes()
    hdr = data.split(b"\r\n\tby ", 1)[0]
    assert b"\t key-exchange " in hdr, hdr
    assert b"server-signature" not in hdr, hdr
    assert b" with ESMTPS id " in data


def test_client_renegotiation_refused(tls_server, tls_pki):
    """TLS 1.2 client-initiated renegotiation (s_client's "R" command)
    never yields a second handshake."""
    proc = subprocess.Popen(["openssl", "s_client", "-connect",
                             f"127.0.0.1:{tls_server.implicit_port}", "-tls1_2",
                             "-CAfile", str(tls_pki.ca_cert)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("220 "):
                break
        proc.stdin.write("R\n")
        proc.stdin.flush()
        # the server answers the renegotiation attempt by ending the session
        tls_server.wait_log("event=disconnect", count=2)
        try:
            proc.stdin.write("NOOP\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait(TIMEOUT)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert "250 2.0.0 Ok" not in out, out
    log = tls_server.log()
    assert log.count("event=tls ") == 1, log
    assert err.count("depth=0 ") == 1, err     # the certificate was checked once


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=lambda m: f"{m:04o}")
def test_key_readable_by_others_refused(make_tls_server, mode):
    srv = make_tls_server(start=False)
    srv.key_files[0].chmod(mode)
    srv.start(wait=False)
    rc = srv.wait_exit()
    assert rc not in (None, 0), srv.log()
    log = srv.log()
    assert f"private key {srv.key_files[0]} is accessible by group or others " \
           f"(mode {mode:04o})" in log, log
    assert f"chmod 600 {srv.key_files[0]}" in log, log
    assert "event=listen" not in log, "listened before checking the key"


def test_key_file_problems_refused(make_tls_server, tls_pki):
    # missing key file
    srv = make_tls_server(start=False)
    srv.key_files[0].unlink()
    srv.start(wait=False)
    assert srv.wait_exit() not in (None, 0)
    assert f"private key {srv.key_files[0]}: No such file or directory" in srv.log()
    # key of another certificate
    srv = make_tls_server(start=False)
    srv.key_files[0].write_bytes(tls_pki.key("ec2").read_bytes())
    srv.start(wait=False)
    assert srv.wait_exit() not in (None, 0)
    assert f"private key {srv.key_files[0]} does not match certificate " \
           f"{srv.cert_files[0]}" in srv.log(), srv.log()
    # certificate file that is not PEM
    srv = make_tls_server(start=False)
    srv.cert_files[0].write_text("not a certificate\n")
    srv.start(wait=False)
    assert srv.wait_exit() not in (None, 0)
    assert f"certificate {srv.cert_files[0]}: " in srv.log(), srv.log()


def test_two_certificates_of_one_type_refused(make_tls_server):
    """OpenSSL keeps one certificate per key type; a second ECDSA one would
    silently replace the first, so the server refuses to start."""
    srv = make_tls_server(certs=("ec", "ec2"), start=False)
    srv.start(wait=False)
    assert srv.wait_exit() not in (None, 0)
    assert f"certificate {srv.cert_files[1]} has the same key type (ECDSA) as " \
           f"certificate {srv.cert_files[0]}" in srv.log(), srv.log()


# ---------------------------------------------------------------- SIGHUP

def replace_pair(srv, pki, kind):
    """Write another certificate and key over the configured files."""
    srv.cert_files[0].write_bytes(pki.cert(kind).read_bytes())
    srv.key_files[0].write_bytes(pki.key(kind).read_bytes())
    srv.key_files[0].chmod(0o600)


def test_sighup_loads_new_certificate(make_tls_server, tls_pki):
    srv = make_tls_server(listeners={"smtps": {"tls": "implicit"}})
    old = handshake(srv.port, tls_pki)
    try:
        assert old.sock.getpeercert(binary_form=True) == tls_pki.der("ec")
        old.ehlo()
        # a transaction already open across the reload
        assert old.cmd(f"MAIL FROM:<{SENDER}>").code == 250

        replace_pair(srv, tls_pki, "ec2")
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log("event=reload what=tls status=ok")
        # an old worker may take a connection before it handles the
        # master's retire signal: the new certificate comes within moments
        assert wait_until(lambda: peer_der(srv.port, tls_pki) == tls_pki.der("ec2"), 5)

        for port, starttls in ((srv.port, True), (srv.implicit_port, False)):
            with handshake(port, tls_pki, starttls=starttls) as new:
                der = new.sock.getpeercert(binary_form=True)
                assert fingerprint(der) == fingerprint(tls_pki.der("ec2"))
        # the session from before the reload goes on with its old keys
        msgid = new_msgid()
        assert old.cmd("RCPT TO:<alice@example.test>").code == 250
        assert old.cmd("DATA").code == 354
        old.send(make_message(msgid=msgid) + b".\r\n")
        assert old.reply().code == 250
        assert old.cmd("QUIT").code == 221
    finally:
        old.close()
    assert message_id(srv.wait_messages("alice", 1)[0].read_bytes()) == msgid


def test_sighup_with_broken_certificate_keeps_old(make_tls_server, tls_pki):
    srv = make_tls_server()
    assert peer_der(srv.port, tls_pki) == tls_pki.der("ec")
    srv.cert_files[0].write_text("-----BEGIN CERTIFICATE-----\nbroken\n"
                                 "-----END CERTIFICATE-----\n")
    srv.proc.send_signal(signal.SIGHUP)
    log = srv.wait_log("event=reload what=tls status=failed")
    assert f'keeping=old error="certificate {srv.cert_files[0]}: ' in log, log
    assert srv.proc.poll() is None
    assert peer_der(srv.port, tls_pki) == tls_pki.der("ec")
    # workers started after the failed reload (every one killed and
    # restarted) still have the old certificate: the master hands each new
    # worker the last set of files that loaded, never the broken file
    restart_workers(srv)
    for _ in range(4):
        assert peer_der(srv.port, tls_pki) == tls_pki.der("ec")

    # a key that became world-readable is refused on reload too
    replace_pair(srv, tls_pki, "ec2")
    srv.key_files[0].chmod(0o644)
    srv.proc.send_signal(signal.SIGHUP)
    log = srv.wait_log("event=reload what=tls status=failed", count=2)
    assert f"private key {srv.key_files[0]} is accessible by group or others" in log
    assert peer_der(srv.port, tls_pki) == tls_pki.der("ec")

    # once fixed, the next SIGHUP takes it
    srv.key_files[0].chmod(0o600)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log("event=reload what=tls status=ok")
    # a worker being retired may still take a connection or two before it
    # handles the master's signal: the new certificate comes within moments
    assert wait_until(lambda: peer_der(srv.port, tls_pki) == tls_pki.der("ec2"), 5)
    for _ in range(4):
        assert peer_der(srv.port, tls_pki) == tls_pki.der("ec2")
    # and mail still flows
    msgid = new_msgid()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
        c.starttls(context=tls_pki.client_context())
        assert c.sendmail(SENDER, ["bob@example.test"],
                          make_message(msgid=msgid, to="bob@example.test")) == {}
    assert message_id(srv.wait_messages("bob", 1)[0].read_bytes()) == msgid

"""Authenticated outbound TLS (issue 12): DANE (RFC 7672) against real
DNSSEC answers from nsd (dnsworld.py) and real TLS peers on 127.0.0.2x
(aiosmtpd with STARTTLS, certificates from the test PKI), per-destination
security policies, and REQUIRETLS (RFC 8689) on the sending side.

TLSA records are computed in each test from the peer's own key or CA.
"""
import hashlib
import os
import ssl
import subprocess
import smtplib
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

from peers import Peer, _Handler
from test_outbound import (World, dsn_fields, dsn_messages, message, send,
                           wait_log)

MX = "mx.example.test"          # the PKI's certificates name this host


class _TLSSMTP(AioSMTP):
    """aiosmtpd with STARTTLS and, optionally, REQUIRETLS (RFC 8689):
    advertised after STARTTLS, and the MAIL parameter accepted."""

    requiretls = False

    async def smtp_MAIL(self, arg):
        if arg and arg.upper().rstrip().endswith(" REQUIRETLS"):
            if not (self.requiretls and self._tls_protocol is not None):
                await self.push("555 5.5.4 REQUIRETLS not supported")
                return
            arg = arg.rstrip()[:-len(" REQUIRETLS")]
            self.session.requiretls_seen = True
        return await super().smtp_MAIL(arg)


class _TLSHandler(_Handler):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.peer.requiretls and server._tls_protocol is not None:
            responses.insert(-1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        with self.peer.lock:
            if self.peer.messages and "tls" not in self.peer.messages[-1]:
                self.peer.messages[-1]["tls"] = server._tls_protocol is not None
                self.peer.messages[-1]["requiretls"] = getattr(
                    session, "requiretls_seen", False)
        return reply


class _TLSController(Controller):
    def factory(self):
        srv = _TLSSMTP(self.handler, enable_SMTPUTF8=True, decode_data=False,
                       hostname=self.peer_name, tls_context=self.tls_ctx,
                       require_starttls=False)
        srv.requiretls = self.handler.peer.requiretls
        return srv


class TLSPeer(Peer):
    """A Peer offering STARTTLS with the PKI's certificate (leaf + CA)."""

    def __init__(self, address, port, pki, kind="ec", requiretls=False):
        super().__init__(address, port, name=MX)
        self.requiretls = requiretls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.cert(kind)), str(pki.key(kind)))
        self.controller = _TLSController(_TLSHandler(self), hostname=address, port=port)
        self.controller.peer_name = MX
        self.controller.tls_ctx = ctx


def spki_sha256(pki, kind="ec"):
    der = subprocess.run(["openssl", "pkey", "-in", str(pki.key(kind)), "-pubout",
                          "-outform", "DER"], capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def ca_sha256(pki):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pki.ca_cert.read_text())).hexdigest()


class DaneWorld(World):
    def tls_peer(self, addr, pki, **kw):
        p = TLSPeer(addr, self.port, pki, **kw).start()
        self.peers[addr] = p
        return p

    def tlsa(self, host, rdata):
        self.dns.add(f"_{self.port}._tcp.{host}", "TLSA", rdata)


@pytest.fixture
def dworld(dns_world, make_tls_server, tmp_path):
    w = DaneWorld(dns_world, make_tls_server, tmp_path)
    yield w
    w.stop()


def wait_deferred(server, peer, rcpt):
    assert wait_log(server, "status=deferred"), server.log()[-3000:]
    assert peer.received() == []
    assert rcpt in server.log()


def tls_line(server):
    return [line for line in server.log().splitlines()
            if "event=delivered" in line and "status=sent" in line]


def test_dane_ee_match_is_sent_and_logged(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.21"))
    dworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.21", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<ee@t>"))
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True
    assert wait_log(server, "status=sent")
    line = tls_line(server)[0]
    assert "verified=dane" in line and "tlsa=3/1/1/" + spki_sha256(tls_pki)[:16] in line
    assert "tls=dane" in server.log()            # the event=tls_policy line


def test_dane_ta_with_test_ca_is_sent(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.22"))
    dworld.tlsa(MX, "2 0 1 " + ca_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.22", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<ta@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    assert "verified=dane tlsa=2/0/1/" in tls_line(server)[0]


def test_tlsa_mismatch_defers_and_sends_nothing(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.23"))
    dworld.tlsa(MX, "3 1 1 " + "00" * 32)
    peer = dworld.tls_peer("127.0.0.23", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<mm@t>"))
    wait_deferred(server, peer, "bob@d.example.test")
    assert "no TLSA record matches" in server.log()
    assert "4.7.5" in server.log()


def test_mismatch_on_first_mx_tries_next_mx(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.24"), (20, "mx2.example.test", "127.0.0.25"))
    dworld.tlsa(MX, "3 1 1 " + "00" * 32)
    dworld.tlsa("mx2.example.test", "3 1 1 " + spki_sha256(tls_pki))
    bad = dworld.tls_peer("127.0.0.24", tls_pki)
    good = dworld.tls_peer("127.0.0.25", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<next@t>"))
    assert len(good.wait_messages(1)) == 1
    assert bad.received() == []
    assert wait_log(server, "status=sent")
    assert "verified=dane" in tls_line(server)[0]


def test_tlsa_without_starttls_defers(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.26"))
    dworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.peer("127.0.0.26")             # no STARTTLS
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<nostls@t>"))
    wait_deferred(server, peer, "bob@d.example.test")
    assert "does not offer STARTTLS" in server.log()


def test_bogus_tlsa_defers(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.27"))
    good = spki_sha256(tls_pki)
    dworld.dns.tamper(f"_{dworld.port}._tcp.{MX}", "TLSA", "3 1 1 " + "11" * 32,
                      "3 1 1 " + good)
    peer = dworld.tls_peer("127.0.0.27", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<bogus@t>"))
    wait_deferred(server, peer, "bob@d.example.test")
    assert "tlsa=failed" in server.log()
    assert "bogus" in server.log()


def test_servfail_on_tlsa_defers(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.28"))
    # A signed CNAME into a zone nsd refuses: the TLSA query ends in SERVFAIL.
    dworld.dns.add(f"_{dworld.port}._tcp.{MX}", "CNAME", "tlsa.refused.example.")
    peer = dworld.tls_peer("127.0.0.28", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.example.test"], message("<sf@t>"))
    wait_deferred(server, peer, "bob@d.example.test")
    assert "tlsa=failed" in server.log()


def test_unsigned_zone_stays_opportunistic(dworld, tls_pki):
    host = "mx.insecure.test"
    dworld.mx("d.insecure.test", (10, host, "127.0.0.29"))
    dworld.tlsa(host, "3 1 1 " + "00" * 32)     # insecure: must be ignored
    peer = dworld.tls_peer("127.0.0.29", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@d.insecure.test"], message("<ins@t>"))
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True
    assert wait_log(server, "status=sent")
    assert "verified=" not in tls_line(server)[0]
    assert "tlsa=not-looked-up" in server.log()


def requiretls_send(server, pki, rcpt, msgid):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=pki.client_context())
        c.ehlo("client.test")
        assert "requiretls" in c.esmtp_features
        refused = c.sendmail("alice@example.test", [rcpt],
                             message(msgid) + b"Secret body line.\r\n",
                             mail_options=["REQUIRETLS"])
        assert refused == {}


def bounce_for(server, status, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in dsn_messages(server):
            fields = dsn_fields(msg)
            if fields and fields[0].get("status") == status:
                return msg
        time.sleep(0.1)
    raise AssertionError("no bounce with " + status + "\n" + server.log()[-3000:])


def assert_headers_only(msg):
    parts = [p.get_content_type() for p in msg.walk()]
    assert "text/rfc822-headers" in parts
    assert "message/rfc822" not in parts
    assert b"Secret body line" not in msg.as_bytes()


def test_requiretls_to_unauthenticated_peer_bounces_5_7_10(dworld, tls_pki):
    dworld.mx("d.insecure.test", (10, "mx.insecure.test", "127.0.0.21"))
    peer = dworld.tls_peer("127.0.0.21", tls_pki, requiretls=True)
    server = dworld.start()
    requiretls_send(server, tls_pki, "bob@d.insecure.test", "<rt1@t>")
    msg = bounce_for(server, "5.7.10")
    assert_headers_only(msg)
    assert peer.received() == []


def test_requiretls_to_dane_peer_without_requiretls_bounces_5_7_30(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.22"))
    dworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.22", tls_pki, requiretls=False)
    server = dworld.start()
    requiretls_send(server, tls_pki, "bob@d.example.test", "<rt2@t>")
    msg = bounce_for(server, "5.7.30")
    assert_headers_only(msg)
    assert peer.received() == []


def test_requiretls_to_dane_peer_with_requiretls_is_sent(dworld, tls_pki):
    dworld.mx("d.example.test", (10, MX, "127.0.0.23"))
    dworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.23", tls_pki, requiretls=True)
    server = dworld.start()
    requiretls_send(server, tls_pki, "bob@d.example.test", "<rt3@t>")
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["requiretls"] is True
    assert wait_log(server, "status=sent")
    assert "verified=dane" in tls_line(server)[0]


def test_destination_verify_with_ca_file(dworld, tls_pki):
    """security = verify: PKIX against the test CA, the MX name checked."""
    dworld.mx("v.insecure.test", (10, "mx.insecure.test", "127.0.0.24"),)
    dworld.mx("w.example.test", (10, MX, "127.0.0.25"))
    bad = dworld.tls_peer("127.0.0.24", tls_pki)     # name mismatch
    good = dworld.tls_peer("127.0.0.25", tls_pki)
    server = dworld.start(extra_relay=f"""
[destination v.insecure.test]
security = verify
ca_file = {tls_pki.ca_cert}

[destination w.example.test]
security = verify
ca_file = {tls_pki.ca_cert}
""")
    send(server, "alice@example.test", ["bob@w.example.test"], message("<pk1@t>"))
    assert len(good.wait_messages(1)) == 1
    assert wait_log(server, "verified=pkix")
    send(server, "alice@example.test", ["bob@v.insecure.test"], message("<pk2@t>"))
    wait_deferred(server, bad, "bob@v.insecure.test")
    assert "certificate verification failed" in server.log()


def test_destination_none_and_dane_only(dworld, tls_pki):
    dworld.mx("n.example.test", (10, MX, "127.0.0.26"))
    dworld.tlsa(MX, "3 1 1 " + "00" * 32)        # would defer under DANE
    dworld.mx("o.insecure.test", (10, "mx.insecure.test", "127.0.0.27"))
    plain = dworld.tls_peer("127.0.0.26", tls_pki)
    other = dworld.tls_peer("127.0.0.27", tls_pki)
    server = dworld.start(extra_relay="""
[destination n.example.test]
security = none

[destination o.insecure.test]
security = dane-only
""")
    send(server, "alice@example.test", ["bob@n.example.test"], message("<none@t>"))
    got = plain.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is False
    send(server, "alice@example.test", ["bob@o.insecure.test"], message("<donly@t>"))
    wait_deferred(server, other, "bob@o.insecure.test")
    assert "dane-only" in server.log()


# ------------------------------------------- CNAME'd MX host (RFC 7672 2.2.2)

ALIAS = "mxalias.example.test"   # the MX record names this; a CNAME leads to MX


def cname_mx(dworld, domain, addr):
    dworld.dns.add(domain, "MX", f"10 {ALIAS}.")
    dworld.dns.add(ALIAS, "CNAME", f"{MX}.")
    dworld.dns.add(MX, "A", addr)


def test_cname_mx_uses_tlsa_of_the_expanded_name(dworld, tls_pki):
    """TLSA at the CNAME target only: found there first; DANE-TA's name
    check passes because the certificate names the expanded name, which
    is also the SNI."""
    cname_mx(dworld, "c.example.test", "127.0.0.21")
    dworld.tlsa(MX, "2 0 1 " + ca_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.21", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@c.example.test"], message("<cn1@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    assert "verified=dane tlsa=2/0/1/" in tls_line(server)[0]
    assert f"host={ALIAS} cname={MX}" in server.log()


def test_cname_mx_falls_back_to_the_mx_record_name(dworld, tls_pki):
    """No TLSA at the target (secure denial): the name from the MX record
    is asked next, and its DANE-EE record authenticates the server."""
    cname_mx(dworld, "c.example.test", "127.0.0.22")
    dworld.tlsa(ALIAS, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.22", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@c.example.test"], message("<cn2@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    assert "verified=dane tlsa=3/1/1/" in tls_line(server)[0]


def test_cname_mx_expanded_name_records_win(dworld, tls_pki):
    """Records at the target that do not match defer the host, even when
    the MX record's name has matching ones: the expanded name decides."""
    cname_mx(dworld, "c.example.test", "127.0.0.23")
    dworld.tlsa(MX, "3 1 1 " + "00" * 32)
    dworld.tlsa(ALIAS, "3 1 1 " + spki_sha256(tls_pki))
    peer = dworld.tls_peer("127.0.0.23", tls_pki)
    server = dworld.start()
    send(server, "alice@example.test", ["bob@c.example.test"], message("<cn3@t>"))
    wait_deferred(server, peer, "bob@c.example.test")
    assert "no TLSA record matches" in server.log()


# ------------------------------------------ [destination] security = fingerprint

def cert_sha256(pki, kind="ec"):
    """SHA-256 of the leaf certificate (the file may hold the chain)."""
    der = subprocess.run(["openssl", "x509", "-in", str(pki.cert(kind)), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_destination_fingerprint_pins_the_server(dworld, tls_pki):
    """An unsigned zone, a certificate the pin matches by key (one
    destination) or by whole certificate in colon form (another): sent,
    and logged as verified=fingerprint. A third destination pins another
    digest: deferred, nothing sent, never in cleartext."""
    dworld.mx("k.insecure.test", (10, "mxk.insecure.test", "127.0.0.24"))
    dworld.mx("c.insecure.test", (10, "mxc.insecure.test", "127.0.0.25"))
    dworld.mx("x.insecure.test", (10, "mxx.insecure.test", "127.0.0.26"))
    by_key = dworld.tls_peer("127.0.0.24", tls_pki)
    by_cert = dworld.tls_peer("127.0.0.25", tls_pki)
    wrong = dworld.tls_peer("127.0.0.26", tls_pki)
    colon = ":".join(cert_sha256(tls_pki)[i:i + 2] for i in range(0, 64, 2)).upper()
    server = dworld.start(extra_relay=f"""
[destination k.insecure.test]
security = fingerprint
fingerprints = {"11" * 32}, {spki_sha256(tls_pki)}

[destination c.insecure.test]
security = fingerprint
fingerprints = {colon}

[destination x.insecure.test]
security = fingerprint
fingerprints = {"22" * 32}
""")
    send(server, "alice@example.test", ["bob@k.insecure.test"], message("<fp1@t>"))
    got = by_key.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True, server.log()[-4000:]
    assert wait_log(server, "verified=fingerprint key=" + spki_sha256(tls_pki)[:16])
    send(server, "alice@example.test", ["bob@c.insecure.test"], message("<fp2@t>"))
    assert len(by_cert.wait_messages(1)) == 1, server.log()[-4000:]
    assert wait_log(server, "verified=fingerprint cert=" + cert_sha256(tls_pki)[:16])
    send(server, "alice@example.test", ["bob@x.insecure.test"], message("<fp3@t>"))
    wait_deferred(server, wrong, "bob@x.insecure.test")
    assert "no fingerprint matches" in server.log()


# ------------------------------- a resolver path that cannot deliver DNSSEC

def run_check(server):
    return subprocess.run([os.environ.get("SEALPOST_BIN", "sealpost"), "check", "-c",
                           str(server.conf)], capture_output=True, text=True, timeout=30)


def test_stale_trust_anchor_is_loud_and_mail_still_flows(dworld, tls_pki, tmp_path):
    """A trust anchor that matches no key of the zone (a stale root.key, or
    a forwarder that strips signatures) makes every answer bogus. sealpost
    says so at level error, treats answers as insecure (no DANE) and keeps
    delivering (stalwart#1578 stopped in silence); `sealpost check` fails
    with the same finding."""
    stale = tmp_path / "stale.ta"
    stale.write_text("; an anchor for another key\ntest. 3600 IN DS 4711 13 2 "
                     + "ab" * 32 + "\n")
    dworld.mx("d.example.test", (10, MX, "127.0.0.21"))
    dworld.tlsa(MX, "3 1 1 " + "00" * 32)        # would defer under DANE
    peer = dworld.tls_peer("127.0.0.21", tls_pki)
    server = dworld.start(anchor=stale)
    assert wait_log(server, "cannot deliver DNSSEC")
    line = [l for l in server.log().splitlines() if "cannot deliver DNSSEC" in l][0]
    assert "level=error" in line and "event=dns_config" in line and "zone test" in line
    send(server, "alice@example.test", ["bob@d.example.test"], message("<stale@t>"))
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True, server.log()[-3000:]  # not deferred
    assert "mx_dnssec=insecure" in server.log()
    res = run_check(server)
    assert res.returncode == 1, res.stderr
    assert "cannot deliver DNSSEC" in res.stderr and "zone test" in res.stderr


def test_working_trust_anchor_passes_the_probe(dworld, tls_pki):
    server = dworld.start()
    assert wait_log(server, "event=dns_probe zone=test result=secure")
    res = run_check(server)
    assert res.returncode == 0, res.stderr
    assert "DNSSEC" not in res.stderr


def test_requiretls_skips_an_unauthenticated_mx_for_a_dane_one(dworld, tls_pki):
    """RFC 8689 4.2.1: every MX is considered. The first MX has no TLSA
    (opportunistic only), the second is DANE-authenticated and offers
    REQUIRETLS: the message goes to the second, the first never sees it.
    An ordinary message still takes the first MX."""
    dworld.mx("d.example.test", (10, "mx1.example.test", "127.0.0.24"), (20, MX, "127.0.0.25"))
    dworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    first = dworld.tls_peer("127.0.0.24", tls_pki, requiretls=True)
    second = dworld.tls_peer("127.0.0.25", tls_pki, requiretls=True)
    server = dworld.start()
    requiretls_send(server, tls_pki, "bob@d.example.test", "<rt-next@t>")
    got = second.wait_messages(1)
    assert len(got) == 1 and got[0]["requiretls"] is True
    assert first.received() == []
    assert "requiretls=yes" in server.log()
    send(server, "alice@example.test", ["carol@d.example.test"], message("<plain@t>"))
    assert len(first.wait_messages(1)) == 1


def test_requiretls_with_failed_tlsa_lookup_is_deferred_not_bounced(dworld, tls_pki):
    """A TLSA lookup that fails (SERVFAIL) may pass: the REQUIRETLS message
    waits for a retry instead of bouncing with 5.7.10."""
    dworld.mx("d.example.test", (10, MX, "127.0.0.26"))
    dworld.dns.add(f"_{dworld.port}._tcp.{MX}", "CNAME", "tlsa.refused.example.")
    peer = dworld.tls_peer("127.0.0.26", tls_pki, requiretls=True)
    server = dworld.start()
    requiretls_send(server, tls_pki, "bob@d.example.test", "<rt-sf@t>")
    assert wait_log(server, "status=deferred"), server.log()[-3000:]
    assert "status=bounced" not in server.log()
    assert dsn_messages(server) == []
    assert peer.received() == []

"""MTA-STS (RFC 8461) and "TLS-Required: No" (RFC 8689 section 5) on the
sending side (issue 12): the "_mta-sts" TXT record from the loopback
DNSSEC world (dnsworld.py), the policy fetched over real HTTPS from a
Python server on 127.0.0.x (certificate from the test CA, [relay]
mta_sts_port pointing at it), and receiving peers whose certificates
name their MX host (or, for the failure cases, another name).

sealpost trusts the test CA for both the policy host and the MX hosts
through [relay] ca_file.
"""
import http.server
import random
import ssl
import subprocess
import threading

import pytest

from smtpwire import wait_until
from test_dane import (_TLSController, _TLSHandler, DaneWorld, requiretls_send,
                       spki_sha256, tls_line)
from test_outbound import message, send, wait_log
from peers import Peer

POLICY_ADDR = "127.0.0.30"      # the HTTPS policy host (mta-sts.DOMAIN)


# ------------------------------------------------------------ certificates

def issue(pki, tmp, names):
    """A leaf certificate for names from the test CA: (chain file, key file)."""
    tag = names[0].replace("*", "star")
    key, csr, leaf, ext = (tmp / f"{tag}.key", tmp / f"{tag}.csr", tmp / f"{tag}.leaf",
                           tmp / f"{tag}.ext")
    ext.write_text("subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-noenc", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={names[0]}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert),
                    "-CAkey", str(pki.ca_key), "-set_serial",
                    str(random.randrange(1000, 2**62)), "-days", "30", "-extfile", str(ext),
                    "-out", str(leaf)], check=True, capture_output=True)
    chain = tmp / f"{tag}.pem"
    chain.write_text(leaf.read_text() + pki.ca_cert.read_text())
    return chain, key


# ------------------------------------------------------------ policy host

class PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.hits.append(self.path)
            status, ctype, body, extra = srv.status, srv.ctype, srv.body, dict(srv.headers)
        if self.path != "/.well-known/mta-sts.txt":
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PolicyServer:
    """HTTPS on POLICY_ADDR:port with a certificate for mta-sts.DOMAIN."""

    def __init__(self, port, cert, key):
        self.httpd = http.server.ThreadingHTTPServer((POLICY_ADDR, port), PolicyHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.lock = threading.Lock()
        self.httpd.hits = []
        self.set(b"")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set(self, body, status=200, ctype="text/plain", headers=None):
        with self.httpd.lock:
            self.httpd.body, self.httpd.status = body, status
            self.httpd.ctype, self.httpd.headers = ctype, headers or {}

    def hits(self):
        with self.httpd.lock:
            return list(self.httpd.hits)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def policy(mode, *mx, max_age=86400):
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {m}" for m in mx]
    return ("\r\n".join(lines + [f"max_age: {max_age}"]) + "\r\n").encode()


# ------------------------------------------------------------ the world

class CertPeer(Peer):
    """An SMTP peer with STARTTLS and a given certificate chain."""

    def __init__(self, address, port, cert, key, requiretls=False):
        super().__init__(address, port, name="peer.test")
        self.requiretls = requiretls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.controller = _TLSController(_TLSHandler(self), hostname=address, port=port)
        self.controller.peer_name = "peer.test"
        self.controller.tls_ctx = ctx


class StsWorld(DaneWorld):
    def __init__(self, *a, pki, **kw):
        super().__init__(*a, **kw)
        self.pki = pki
        self.certs = self.tmp / "certs"
        self.certs.mkdir()
        self.https = None
        self.https_port = None

    def cert(self, *names):
        return issue(self.pki, self.certs, list(names))

    def cert_peer(self, addr, *names, requiretls=False):
        cert, key = self.cert(*names)
        p = CertPeer(addr, self.port, cert, key, requiretls=requiretls).start()
        self.peers[addr] = p
        return p

    def sts(self, domain, record_id, body, txt_ttl=300, **kw):
        """Publish "_mta-sts.DOMAIN" and serve body from mta-sts.DOMAIN."""
        self.dns.add(f"_mta-sts.{domain}", "TXT", f'"v=STSv1; id={record_id}"', ttl=txt_ttl)
        self.dns.add(f"mta-sts.{domain}", "A", POLICY_ADDR)
        self.start_https(domain)
        self.https.set(body, **kw)
        return self.https

    def start_https(self, domain):
        if self.https is None:
            from test_outbound import free_port_on_all
            self.https_port = self.https_port or free_port_on_all([POLICY_ADDR])
            cert, key = self.cert(f"mta-sts.{domain}")
            self.https = PolicyServer(self.https_port, cert, key)
        return self.https

    def start(self, extra_relay="", **kw):
        port = self.https_port or 443
        return super().start(extra_relay=f"ca_file = {self.pki.ca_cert}\n"
                             f"mta_sts_port = {port}\nmta_sts_timeout = 5s\n" + extra_relay,
                             **kw)

    def stop(self):
        super().stop()
        if self.https:
            self.https.stop()


@pytest.fixture
def sworld(dns_world, make_tls_server, tmp_path, tls_pki):
    w = StsWorld(dns_world, make_tls_server, tmp_path, pki=tls_pki)
    yield w
    w.stop()


def sts_ready(w, domain, mode, *mx, record_id="20261204", **kw):
    """MX records for domain and its policy host serving a policy."""
    return w.sts(domain, record_id, policy(mode, *mx), **kw)


def deferred_never_sent(server, peer, rcpt, needle):
    assert wait_log(server, "status=deferred"), server.log()[-3000:]
    assert wait_log(server, needle), server.log()[-3000:]
    assert peer.received() == []
    assert rcpt in server.log()


# ------------------------------------------------------------ enforce

def test_enforce_with_matching_certificate_is_sent_verified(sworld):
    d = "s.insecure.test"
    sworld.mx(d, (10, "mx.s.insecure.test", "127.0.0.21"))
    peer = sworld.cert_peer("127.0.0.21", "mx.s.insecure.test")
    https = sts_ready(sworld, d, "enforce", "mx.s.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<e1@t>"))
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True
    assert wait_log(server, "status=sent")
    assert "verified=pkix policy=mta-sts" in tls_line(server)[0]
    log = server.log()
    assert f"event=sts_policy domain={d} mode=enforce id=20261204" in log
    assert "source=fetched" in log and "sts=enforce sts_mx=yes tls=verify" in log
    assert "result=success" in log                 # the TLS-RPT session hook
    assert https.hits() == ["/.well-known/mta-sts.txt"]


def test_enforce_with_wrong_certificate_name_defers(sworld):
    d = "w.insecure.test"
    sworld.mx(d, (10, "mx.w.insecure.test", "127.0.0.22"))
    peer = sworld.cert_peer("127.0.0.22", "other-name.insecure.test")
    sts_ready(sworld, d, "enforce", "mx.w.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<e2@t>"))
    deferred_never_sent(server, peer, f"bob@{d}", "4.7.5")
    assert "result=validation-failure" in server.log()


def test_enforce_with_mx_not_in_policy_defers(sworld):
    d = "n.insecure.test"
    sworld.mx(d, (10, "mx.n.insecure.test", "127.0.0.23"))
    peer = sworld.cert_peer("127.0.0.23", "mx.n.insecure.test")
    sts_ready(sworld, d, "enforce", "mail.elsewhere.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<e3@t>"))
    deferred_never_sent(server, peer, f"bob@{d}", "not listed in the domain's MTA-STS policy")
    assert peer.attempts(f"bob@{d}") == 0


def test_enforce_wildcard_pattern_matches(sworld):
    d = "wc.insecure.test"
    sworld.mx(d, (10, "mx1.wc.insecure.test", "127.0.0.24"))
    peer = sworld.cert_peer("127.0.0.24", "mx1.wc.insecure.test")
    sts_ready(sworld, d, "enforce", "*.wc.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<e4@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    assert "verified=pkix policy=mta-sts" in tls_line(server)[0]


# ------------------------------------------------------------ testing, none

def test_testing_mode_with_wrong_name_is_sent_and_reported(sworld):
    d = "t.insecure.test"
    sworld.mx(d, (10, "mx.t.insecure.test", "127.0.0.25"))
    peer = sworld.cert_peer("127.0.0.25", "other-name.insecure.test")
    sts_ready(sworld, d, "testing", "mx.t.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<t1@t>"))
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True
    assert wait_log(server, "status=sent")
    log = server.log()
    assert "event=sts_testing_failure" in log
    assert "result=certificate-host-mismatch enforced=no" in log
    assert "verified=pkix" not in tls_line(server)[0]


def test_mode_none_is_opportunistic(sworld):
    d = "z.insecure.test"
    sworld.mx(d, (10, "mx.z.insecure.test", "127.0.0.26"))
    peer = sworld.cert_peer("127.0.0.26", "other-name.insecure.test")
    sworld.sts(d, "1", policy("none"))
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<n1@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    log = server.log()
    assert f"event=sts_policy domain={d} mode=none" in log
    assert "sts=none sts_mx=no tls=may" in log


def test_no_txt_record_means_no_sts(sworld):
    d = "x.insecure.test"
    sworld.mx(d, (10, "mx.x.insecure.test", "127.0.0.27"))
    peer = sworld.cert_peer("127.0.0.27", "other-name.insecure.test")
    https = sworld.start_https(d)
    https.set(policy("enforce", "nothing.test"))   # served, but never announced
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<x1@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, f"event=sts_policy domain={d} source=none")
    assert "no TXT record" in server.log()
    assert https.hits() == []


# ------------------------------------------------------------ bad policies

BAD = {
    "invalid": dict(body=b"version: STSv1\r\nmode: sometimes\r\nmax_age: 10\r\n"),
    "too-big": dict(body=b"version: STSv1\r\nmode: enforce\r\nmx: a.test\r\nmax_age: 10\r\n"
                    + b"x-pad: " + b"a" * 70000 + b"\r\n"),
    "content-type": dict(ctype="text/html"),
    "redirect": dict(status=302, headers={"Location": "https://elsewhere.test/p.txt"}),
    "status-404": dict(status=404),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_policy_response_means_no_policy(sworld, kind):
    d = "b.insecure.test"
    sworld.mx(d, (10, "mx.b.insecure.test", "127.0.0.28"))
    peer = sworld.cert_peer("127.0.0.28", "other-name.insecure.test")
    args = dict(BAD[kind])
    body = args.pop("body", policy("enforce", "nothing.test"))
    sworld.sts(d, "bad1", body, **args)
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message(f"<bad-{kind}@t>"))
    assert len(peer.wait_messages(1)) == 1            # opportunistic, as without a policy
    assert wait_log(server, "status=sent")
    log = server.log()
    # RFC 8460 4.3.2.2: no policy retrieved is a fetch error, a bad one invalid
    want = "sts-policy-fetch-error" if kind in ("redirect", "status-404") else "sts-policy-invalid"
    assert "event=sts_fetch_failed" in log and f"result={want}" in log
    assert f"event=sts_policy domain={d} source=none" in log


def test_untrusted_policy_host_is_webpki_invalid(sworld, tmp_path):
    d = "u.insecure.test"
    sworld.mx(d, (10, "mx.u.insecure.test", "127.0.0.29"))
    peer = sworld.cert_peer("127.0.0.29", "other-name.insecure.test")
    sworld.dns.add(f"_mta-sts.{d}", "TXT", '"v=STSv1; id=u1"')
    sworld.dns.add(f"mta-sts.{d}", "A", POLICY_ADDR)
    sworld.start_https("wrong-name.insecure.test").set(policy("enforce", "nothing.test"))
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<u1@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "result=sts-webpki-invalid")


# ------------------------------------------------------------ the cache

def test_policy_cache_survives_restart(sworld):
    d = "c.insecure.test"
    sworld.mx(d, (10, "mx.c.insecure.test", "127.0.0.21"))
    good = sworld.cert_peer("127.0.0.21", "mx.c.insecure.test")
    https = sts_ready(sworld, d, "enforce", "mx.c.insecure.test", record_id="c1")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<c1@t>"))
    assert len(good.wait_messages(1)) == 1
    cache = server.root / "spool" / "sts" / d
    assert wait_until(cache.exists), server.log()[-2000:]
    text = cache.read_bytes()
    assert text.startswith(b"sealpost-sts 1\ndomain " + d.encode() + b"\nid c1\n")
    assert b"mode: enforce" in text
    # Restart without the policy host, and with a peer whose name is wrong:
    # the cached enforce policy still defers.
    server.stop()
    https.stop()
    sworld.https = None
    good.stop()
    del sworld.peers["127.0.0.21"]
    bad = sworld.cert_peer("127.0.0.21", "other-name.insecure.test")
    server.start()
    assert wait_log(server, "event=sts_cache_sent policies=1")
    send(server, "alice@example.test", [f"bob@{d}"], message("<c2@t>"))
    assert wait_log(server, f"event=sts_policy domain={d} mode=enforce id=c1")
    assert wait_log(server, "source=cache")
    assert wait_log(server, "status=deferred")
    assert bad.received() == []


def test_policy_id_change_refetches(sworld):
    d = "r.insecure.test"
    sworld.mx(d, (10, "mx.r.insecure.test", "127.0.0.22"))
    peer = sworld.cert_peer("127.0.0.22", "other-name.insecure.test")
    # id "one": enforce, and the MX is not listed: deferred, retried every second
    https = sworld.sts(d, "one", policy("enforce", "nothing.test"), txt_ttl=1)
    server = sworld.start(retry="1s")
    send(server, "alice@example.test", [f"bob@{d}"], message("<r1@t>"))
    assert wait_log(server, "not listed in the domain's MTA-STS policy")
    assert wait_log(server, f"domain={d} mode=enforce id=one")
    # Retries use the cache while the id stays the same.
    assert wait_until(lambda: server.log().count(f"domain={d} mode=enforce id=one") >= 2)
    assert "id=one max_age=86400 source=cache" in server.log()
    assert len(https.hits()) == 1
    # New id, new policy (testing, MX listed): the next retry fetches it and sends.
    https.set(policy("testing", "mx.r.insecure.test"))
    sworld.dns.records["insecure.test"] = [
        r for r in sworld.dns.records["insecure.test"] if "_mta-sts" not in r]
    sworld.dns.add(f"_mta-sts.{d}", "TXT", '"v=STSv1; id=two"', ttl=1)
    sworld.dns.reload()
    assert len(peer.wait_messages(1)) == 1, server.log()[-3000:]
    assert f"domain={d} mode=testing id=two max_age=86400 source=fetched" in server.log()
    assert len(https.hits()) == 2


# ------------------------------------------------------------ DANE first

def test_dane_host_wins_over_sts(sworld):
    d = "dane-sts.example.test"                 # signed zone
    mx = "mx.dane-sts.example.test"
    sworld.mx(d, (10, mx, "127.0.0.23"))
    cert, key = sworld.cert("other-name.example.test")
    peer = CertPeer("127.0.0.23", sworld.port, cert, key).start()
    sworld.peers["127.0.0.23"] = peer
    sworld.tlsa(mx, "3 1 1 " + _spki_of(key))
    https = sts_ready(sworld, d, "enforce", "not-this-mx.example.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<dw@t>"))
    assert len(peer.wait_messages(1)) == 1
    assert wait_log(server, "status=sent")
    assert "verified=dane" in tls_line(server)[0]
    assert "event=sts_policy" not in server.log()
    assert https.hits() == []


def _spki_of(key):
    import hashlib
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


# ------------------------------------------------------------ REQUIRETLS

def test_requiretls_to_sts_enforce_domain_in_unsigned_zone_is_sent(sworld, tls_pki):
    d = "rt.insecure.test"
    sworld.mx(d, (10, "mx.rt.insecure.test", "127.0.0.24"))
    peer = sworld.cert_peer("127.0.0.24", "mx.rt.insecure.test", requiretls=True)
    sts_ready(sworld, d, "enforce", "mx.rt.insecure.test")
    server = sworld.start()
    requiretls_send(server, tls_pki, f"bob@{d}", "<rt-sts@t>")
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["requiretls"] is True
    assert wait_log(server, "status=sent")
    assert "mx_dnssec=insecure" in server.log()


def test_requiretls_with_testing_policy_and_bad_certificate_bounces(sworld, tls_pki):
    d = "rtt.insecure.test"
    sworld.mx(d, (10, "mx.rtt.insecure.test", "127.0.0.25"))
    peer = sworld.cert_peer("127.0.0.25", "other-name.insecure.test", requiretls=True)
    sts_ready(sworld, d, "testing", "mx.rtt.insecure.test")
    server = sworld.start()
    requiretls_send(server, tls_pki, f"bob@{d}", "<rt-testing@t>")
    assert wait_log(server, "5.7.10"), server.log()[-3000:]
    assert peer.received() == []


# ------------------------------------------------------------ TLS-Required: No

def test_tls_required_no_falls_back_to_opportunistic(sworld):
    d = "trn.insecure.test"
    sworld.mx(d, (10, "mx.trn.insecure.test", "127.0.0.26"))
    peer = sworld.cert_peer("127.0.0.26", "other-name.insecure.test")
    https = sts_ready(sworld, d, "enforce", "mx.trn.insecure.test")
    server = sworld.start()
    data = (b"From: alice@example.test\r\nTo: bob@" + d.encode() + b"\r\n"
            b"Subject: relaxed\r\nTLS-Required: No\r\nMessage-ID: <trn@t>\r\n\r\nHi.\r\n")
    send(server, "alice@example.test", [f"bob@{d}"], data)
    got = peer.wait_messages(1)
    assert len(got) == 1 and got[0]["tls"] is True
    assert wait_log(server, "status=sent")
    log = server.log()
    assert "event=tls_required_no" in log and "tls_required=no" in log
    assert https.hits() == []               # no policy looked up for that connection
    # The same domain without the header is still held to the policy.
    send(server, "alice@example.test", [f"bob@{d}"], message("<trn2@t>"))
    assert wait_log(server, "status=deferred")
    assert len(peer.received()) == 1


# ------------------------------------------------------- TLS-RPT for MTA-STS

def sts_reports(server, domain):
    """The day's RFC 8460 policies for domain, once its sessions are stored."""
    from test_tlsrpt import tls_report

    def policies():
        for rep in tls_report(server):
            for p in rep["policies"]:
                if p["policy"]["policy-domain"] == domain:
                    return rep["policies"]
        return None
    assert wait_until(policies), server.log()[-3000:]
    return policies()


def test_tlsrpt_reports_a_verified_sts_session(sworld):
    """A session under an MTA-STS policy is reported with policy-type sts,
    the policy lines and its mx patterns; verified: a success."""
    d = "rs.insecure.test"
    sworld.mx(d, (10, "mx.rs.insecure.test", "127.0.0.21"))
    peer = sworld.cert_peer("127.0.0.21", "mx.rs.insecure.test")
    sts_ready(sworld, d, "enforce", "mx.rs.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<rs@t>"))
    assert len(peer.wait_messages(1)) == 1
    pol = sts_reports(server, d)[0]
    assert pol["policy"]["policy-type"] == "sts", pol
    assert pol["policy"]["policy-domain"] == d
    assert "mode: enforce" in pol["policy"]["policy-string"]
    assert pol["policy"]["mx-host"] == ["mx.rs.insecure.test"]
    assert pol["summary"]["total-successful-session-count"] == 1
    assert pol["summary"]["total-failure-session-count"] == 0


def test_tlsrpt_reports_a_testing_failure(sworld):
    """A testing policy's host with the wrong certificate name: delivered,
    and reported as certificate-host-mismatch under policy-type sts."""
    d = "rt.insecure.test"
    sworld.mx(d, (10, "mx.rt.insecure.test", "127.0.0.22"))
    peer = sworld.cert_peer("127.0.0.22", "other-name.insecure.test")
    sts_ready(sworld, d, "testing", "mx.rt.insecure.test")
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<rt@t>"))
    assert len(peer.wait_messages(1)) == 1
    pol = sts_reports(server, d)[0]
    assert pol["policy"]["policy-type"] == "sts", pol
    assert "mode: testing" in pol["policy"]["policy-string"]
    assert pol["summary"]["total-failure-session-count"] == 1
    assert pol["failure-details"][0]["result-type"] == "certificate-host-mismatch"
    assert pol["failure-details"][0]["receiving-mx-hostname"] == "mx.rt.insecure.test"


def test_tlsrpt_reports_a_failed_policy_fetch(sworld):
    """The policy host answers 404: no policy (delivered opportunistically),
    and the day's report for the domain has an sts-policy-fetch-error."""
    d = "rf.insecure.test"
    sworld.mx(d, (10, "mx.rf.insecure.test", "127.0.0.23"))
    peer = sworld.cert_peer("127.0.0.23", "mx.rf.insecure.test")
    https = sts_ready(sworld, d, "enforce", "mx.rf.insecure.test")
    https.set(b"not here", status=404)
    server = sworld.start()
    send(server, "alice@example.test", [f"bob@{d}"], message("<rf@t>"))
    assert len(peer.wait_messages(1)) == 1
    pols = sts_reports(server, d)
    sts = [p for p in pols if p["policy"]["policy-type"] == "sts"]
    assert sts, pols
    kinds = [f["result-type"] for p in sts for f in p.get("failure-details", [])]
    assert "sts-policy-fetch-error" in kinds, pols

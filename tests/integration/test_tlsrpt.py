"""TLS reporting on the sending side (RFC 8460, issue 12 item 5): real
deliveries through the DNSSEC world of test_dane.py (nsd, TLS peers on
127.0.0.2x), then `sealpost tls-report` parsed with json, and the daily
report message parsed with the email package, gunzipped and json-loaded.

The store keeps one folder per UTC day (spool/tlsrpt/YYYY-MM-DD) and the
mailer's only notion of a completed day is "the folder's date is before
today's"; renaming the folder to yesterday's date while sealpost is
stopped is therefore exactly what a real midnight does to it (and the
test cannot wait for one).
"""
import base64
import datetime
import email
import email.policy
import gzip
import json
import os
import subprocess

import pytest

from smtpwire import wait_until
from test_dane import MX, DaneWorld, spki_sha256
from test_outbound import message, send, wait_log

BIN = os.environ.get("SEALPOST_BIN", "build/sealpost")

TLSRPT_SECTION = """
[tlsrpt]
organization = org.example.test
contact = tls-contact@example.test
"""


@pytest.fixture
def rworld(dns_world, make_tls_server, tmp_path):
    w = DaneWorld(dns_world, make_tls_server, tmp_path)
    yield w
    w.stop()


def store(server):
    return server.root / "spool" / "tlsrpt"


def days(server):
    d = store(server)
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []


def tls_report(server, day=None):
    args = [BIN, "tls-report", "-c", str(server.conf)]
    if day:
        args += ["--date", day]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def reports_by_domain(server, expect):
    """Wait until the stored reports cover expect {domain: sessions}."""
    got = {}

    def ready():
        nonlocal got
        ds = days(server)
        if not ds:
            return False
        got = {}
        for doc in tls_report(server, ds[-1]):
            pols = doc["policies"]
            domain = pols[0]["policy"]["policy-domain"]
            n = sum(p["summary"]["total-successful-session-count"] +
                    p["summary"]["total-failure-session-count"] for p in pols)
            got[domain] = (doc, n)
        return all(d in got and got[d][1] >= n for d, n in expect.items())
    assert wait_until(ready, timeout=20), (got, server.log()[-3000:])
    return {d: doc for d, (doc, _) in got.items()}


def rfc3339(s):
    assert s.endswith("Z")
    return datetime.datetime.fromisoformat(s[:-1] + "+00:00")


def check_envelope(doc, day):
    assert doc["organization-name"] == "org.example.test"
    assert doc["contact-info"] == "tls-contact@example.test"
    assert isinstance(doc["report-id"], str) and doc["report-id"]
    start = rfc3339(doc["date-range"]["start-datetime"])
    end = rfc3339(doc["date-range"]["end-datetime"])
    assert start.strftime("%Y-%m-%d") == day and start.hour == 0 and start.minute == 0
    assert end - start == datetime.timedelta(hours=23, minutes=59, seconds=59)


def test_dane_success_failure_and_no_policy_in_json(rworld, tls_pki):
    key = spki_sha256(tls_pki)
    rworld.mx("d.example.test", (10, MX, "127.0.0.21"))
    rworld.tlsa(MX, "3 1 1 " + key)
    rworld.mx("e.example.test", (10, "mx2.example.test", "127.0.0.22"))
    rworld.tlsa("mx2.example.test", "3 1 1 " + "00" * 32)
    rworld.mx("d.insecure.test", (10, "mx.insecure.test", "127.0.0.23"))
    good = rworld.tls_peer("127.0.0.21", tls_pki)
    bad = rworld.tls_peer("127.0.0.22", tls_pki)
    plain = rworld.tls_peer("127.0.0.23", tls_pki)
    server = rworld.start(retry="1h", extra_relay=TLSRPT_SECTION)
    send(server, "alice@example.test", ["bob@d.example.test"], message("<r1@t>"))
    send(server, "alice@example.test", ["bob@e.example.test"], message("<r2@t>"))
    send(server, "alice@example.test", ["bob@d.insecure.test"], message("<r3@t>"))
    assert len(good.wait_messages(1)) == 1
    assert len(plain.wait_messages(1)) == 1
    assert wait_log(server, "status=deferred")
    assert bad.received() == []

    docs = reports_by_domain(server, {"d.example.test": 1, "e.example.test": 1,
                                      "d.insecure.test": 1})
    assert set(docs) == {"d.example.test", "e.example.test", "d.insecure.test"}
    day = days(server)[-1]
    for doc in docs.values():
        check_envelope(doc, day)
        assert len(doc["policies"]) == 1

    ok = docs["d.example.test"]["policies"][0]
    assert ok["policy"] == {"policy-type": "tlsa", "policy-string": ["3 1 1 " + key],
                            "policy-domain": "d.example.test", "mx-host": [MX]}
    assert ok["summary"] == {"total-successful-session-count": 1,
                             "total-failure-session-count": 0}
    assert "failure-details" not in ok

    fail = docs["e.example.test"]["policies"][0]
    assert fail["policy"]["policy-type"] == "tlsa"
    assert fail["policy"]["policy-string"] == ["3 1 1 " + "00" * 32]
    assert fail["summary"] == {"total-successful-session-count": 0,
                               "total-failure-session-count": 1}
    [detail] = fail["failure-details"]
    assert detail["result-type"] == "validation-failure"
    assert detail["receiving-mx-hostname"] == "mx2.example.test"
    assert detail["receiving-ip"] == "127.0.0.22"
    assert detail["sending-mta-ip"] == "127.0.0.1"
    assert detail["failed-session-count"] == 1
    assert "TLSA" in detail["failure-reason-code"]

    none = docs["d.insecure.test"]["policies"][0]
    assert none["policy"] == {"policy-type": "no-policy-found",
                              "policy-domain": "d.insecure.test"}
    assert none["summary"]["total-successful-session-count"] == 1


def test_bogus_tlsa_is_dnssec_invalid(rworld, tls_pki):
    rworld.mx("b.example.test", (10, MX, "127.0.0.24"))
    good = spki_sha256(tls_pki)
    rworld.dns.tamper(f"_{rworld.port}._tcp.{MX}", "TLSA", "3 1 1 " + "11" * 32,
                      "3 1 1 " + good)
    peer = rworld.tls_peer("127.0.0.24", tls_pki)
    server = rworld.start(retry="1h", extra_relay=TLSRPT_SECTION)
    send(server, "alice@example.test", ["bob@b.example.test"], message("<r4@t>"))
    docs = reports_by_domain(server, {"b.example.test": 1})
    pol = docs["b.example.test"]["policies"][0]
    assert pol["policy"]["policy-type"] == "tlsa"
    [detail] = pol["failure-details"]
    assert detail["result-type"] == "dnssec-invalid"
    assert detail["receiving-mx-hostname"] == MX
    assert "receiving-ip" not in detail           # never connected
    assert peer.received() == []


def test_no_starttls_is_starttls_not_supported(rworld, tls_pki):
    """An MX without STARTTLS: under DANE the MX is skipped, without a
    policy the mail goes in cleartext; both sessions are failures."""
    rworld.mx("s.example.test", (10, MX, "127.0.0.26"))
    rworld.tlsa(MX, "3 1 1 " + spki_sha256(tls_pki))
    rworld.mx("s.insecure.test", (10, "mx.insecure.test", "127.0.0.27"))
    dane = rworld.peer("127.0.0.26")              # no STARTTLS
    plain = rworld.peer("127.0.0.27")
    server = rworld.start(retry="1h", extra_relay=TLSRPT_SECTION)
    send(server, "alice@example.test", ["bob@s.example.test"], message("<r6@t>"))
    send(server, "alice@example.test", ["bob@s.insecure.test"], message("<r7@t>"))
    assert len(plain.wait_messages(1)) == 1
    docs = reports_by_domain(server, {"s.example.test": 1, "s.insecure.test": 1})
    assert dane.received() == []
    for domain, ptype, ip in (("s.example.test", "tlsa", "127.0.0.26"),
                              ("s.insecure.test", "no-policy-found", "127.0.0.27")):
        pol = docs[domain]["policies"][0]
        assert pol["policy"]["policy-type"] == ptype
        assert pol["summary"] == {"total-successful-session-count": 0,
                                  "total-failure-session-count": 1}
        [detail] = pol["failure-details"]
        assert detail["result-type"] == "starttls-not-supported"
        assert detail["receiving-ip"] == ip


def carol_reports(server):
    out = []
    for path in server.messages("carol"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def checks_after(server, count):
    return wait_until(lambda: server.log().count("event=tlsrpt_check") >= count, timeout=20)


def test_daily_report_is_mailed_once(rworld, tls_pki):
    key = spki_sha256(tls_pki)
    rworld.mx("d.example.test", (10, MX, "127.0.0.25"))
    rworld.tlsa(MX, "3 1 1 " + key)
    rworld.dns.add("_smtp._tls.d.example.test", "TXT",
                   '"v=TLSRPTv1; rua=mailto:carol@example.test"')
    peer = rworld.tls_peer("127.0.0.25", tls_pki)
    server = rworld.start(retry="1h", extra_relay=TLSRPT_SECTION)
    send(server, "alice@example.test", ["bob@d.example.test"], message("<r5@t>"))
    assert len(peer.wait_messages(1)) == 1
    reports_by_domain(server, {"d.example.test": 1})
    assert carol_reports(server) == []            # today is not complete

    assert server.stop() == 0
    today = days(server)[-1]
    yesterday = (datetime.date.fromisoformat(today) - datetime.timedelta(days=1)).isoformat()
    (store(server) / today).rename(store(server) / yesterday)
    server.start()
    assert wait_until(lambda: len(carol_reports(server)) == 1, timeout=20), \
        server.log()[-3000:]
    msg = carol_reports(server)[0]
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == "d.example.test"
    assert msg["TLS-Report-Submitter"] == "mx.example.test"
    subject = " ".join(str(msg["Subject"]).split())
    assert subject.startswith("Report Domain: d.example.test Submitter: mx.example.test "
                              "Report-ID: <")
    assert msg["From"] == "postmaster@mx.example.test"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "application/tlsrpt+gzip"]
    att = list(msg.iter_parts())[1]
    assert att["Content-Transfer-Encoding"] == "base64"
    name = att.get_filename()
    assert name.startswith("mx.example.test!d.example.test!") and name.endswith(".json.gz")
    doc = json.loads(gzip.decompress(base64.b64decode(att.get_payload())))
    check_envelope(doc, yesterday)
    pol = doc["policies"][0]
    assert pol["policy"]["policy-domain"] == "d.example.test"
    assert pol["summary"]["total-successful-session-count"] == 1
    assert (store(server) / yesterday / ".reported").exists()

    # A restart finds the day reported: nothing is sent again.
    checks = server.log().count("event=tlsrpt_check")
    assert server.stop() == 0
    server.start()
    assert checks_after(server, checks + 1)
    assert wait_log(server, "event=tlsrpt_check")
    assert len(carol_reports(server)) == 1
    # ... and `tls-report --date` still prints the reported day.
    assert [d["policies"][0]["policy"]["policy-domain"]
            for d in tls_report(server, yesterday)] == ["d.example.test"]


def test_bad_date_is_a_usage_error(rworld):
    server = rworld.start()
    out = subprocess.run([BIN, "tls-report", "--date", "2026-02-30", "-c", str(server.conf)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "YYYY-MM-DD" in out.stderr

"""`sealpost dns-records` (issue 12, item 6): what it tells an operator to
publish really works.

Server A (hostname mx.example.test, the test PKI's ECDSA certificate) is
the MX of d.example.test in the loopback DNSSEC world (dnsworld.py). Its
`dns-records` output is pasted verbatim into the signed zones served by
nsd (only the port label of the TLSA owner changes: the test peers
listen on a free port, not 25), then a second sealpost B relays mail to
d.example.test: B must authenticate A by DANE and A must get the
message. With only the TLSA record of another key published, B defers.
The MTA-STS and TLS-RPT TXT records are read back from nsd and, with
the policy file text, checked against RFC 8461 / RFC 8460 syntax.

Trusts: nsd, openssl and the sealpost binary under test.
"""
import hashlib
import re
import struct
import subprocess

import pytest

from conftest import BIN
from dnsworld import _skip_name, dns_query
from test_outbound import World, message, send, wait_log

MX = "mx.example.test"          # the PKI's certificates name this host
A_ADDR = "127.0.0.29"
DOMAIN = "d.example.test"


def spki_sha256(pki, kind):
    der = subprocess.run(["openssl", "pkey", "-in", str(pki.key(kind)), "-pubout",
                          "-outform", "DER"], capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def server_a(world, make_tls_server):
    """A, not started: its own listener on A_ADDR at the world's port,
    and d.example.test as a local domain (every local part accepted)."""
    return make_tls_server(start=False, certs=("ec",), extra_sections=f"""
[listener in]
address = {A_ADDR}:{world.port}
tls = starttls

[domain {DOMAIN}]
maildir = mail/{{domain}}/{{local}}
""")


def dns_records(server, *args):
    res = subprocess.run([BIN, "dns-records", "-c", str(server.conf), *args],
                         capture_output=True, text=True, timeout=30)
    return res


def record_lines(text):
    return [line for line in text.splitlines() if line.strip() and not line.startswith(";")]


def txt_strings(world, name):
    """The TXT records nsd serves at name, each as its joined strings."""
    res = dns_query(world.dns.address, world.dns.port, name, "TXT")
    assert res is not None and res[0] == 0, f"no answer for {name} TXT: {res}"
    msg = res[3]
    qd, an = struct.unpack("!HH", msg[4:8])
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    out = []
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if rtype == 16:
            rd, parts, p = msg[off:off + rdlen], [], 0
            while p < len(rd):
                parts.append(rd[p + 1:p + 1 + rd[p]])
                p += 1 + rd[p]
            out.append(b"".join(parts).decode("ascii"))
        off += rdlen
    return out


def policy_block(text, domain):
    """The policy file printed (as comments) for domain, as served."""
    block = text.split(f"; ---- domain {domain} ----", 1)[1]
    body = block.split("; ---- begin mta-sts.txt ----\n", 1)[1]
    body = body.split("; ---- end mta-sts.txt ----", 1)[0]
    lines = body.splitlines()
    assert all(line.startswith("; ") for line in lines), lines
    return "".join(line[2:] + "\n" for line in lines)


def check_policy(policy):
    """RFC 8461 3.2: key: value lines; version STSv1 first; mode, mx,
    max_age; mx patterns are host names (or *.name)."""
    fields = []
    for line in policy.splitlines():
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(\S+)[ \t]*", line)
        assert m, f"not a policy line: {line!r}"
        fields.append((m.group(1), m.group(2)))
    keys = dict(fields)
    assert fields[0] == ("version", "STSv1")
    assert keys["mode"] == "testing"
    assert 0 < int(keys["max_age"]) <= 31557600
    mxs = [v for k, v in fields if k == "mx"]
    assert mxs == [MX]
    return keys


def test_published_records_let_another_sealpost_verify_by_dane(dns_world, make_server, tmp_path,
                                                               make_tls_server, tls_pki):
    world = World(dns_world, make_server, tmp_path)
    try:
        a = server_a(world, make_tls_server)
        res = dns_records(a, "--next-key", str(tls_pki.key("ec2")))
        assert res.returncode == 0, res.stderr
        out = res.stdout
        current, nxt = spki_sha256(tls_pki, "ec"), spki_sha256(tls_pki, "ec2")
        tlsa = [line for line in record_lines(out) if " TLSA " in line]
        assert tlsa == [f"_25._tcp.{MX}. IN TLSA 3 1 1 {current}",
                        f"_25._tcp.{MX}. IN TLSA 3 1 1 {nxt}"], out
        # the records for each local domain of A
        for domain in ("example.test", "other.test", DOMAIN):
            assert f"_mta-sts.{domain}. IN TXT " in out
            assert f'_smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"' in out
        # paste it into the zones, A is the MX of d.example.test
        world.mx(DOMAIN, (10, MX, A_ADDR))
        dns_world.add_zone_text(out.replace("_25._tcp.", f"_{world.port}._tcp."))
        b = world.start()                       # starts nsd: the zones must load
        a.start()
        # what nsd now serves is what the operator was told to publish
        for domain in ("example.test", "other.test", DOMAIN):
            policy = policy_block(out, domain)
            check_policy(policy)
            sts = txt_strings(world, f"_mta-sts.{domain}")
            assert len(sts) == 1, sts
            m = re.fullmatch(r"v=STSv1; id=([A-Za-z0-9]{1,32})", sts[0])
            assert m, sts
            assert m.group(1) == hashlib.sha256(policy.encode()).hexdigest()[:20]
            rpt = txt_strings(world, f"_smtp._tls.{domain}")
            assert rpt == [f"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"]

        send(b, "alice@example.test", [f"bob@{DOMAIN}"], message("<dnsrec@t>"))
        assert a.wait_messages("bob", 1, domain=DOMAIN), b.log()[-3000:]
        assert wait_log(b, "status=sent"), b.log()[-3000:]
        line = [x for x in b.log().splitlines() if "event=delivered" in x and "status=sent" in x]
        assert "verified=dane" in line[0], line
        assert f"tlsa=3/1/1/{current[:16]}" in line[0], line
    finally:
        world.stop()


def test_tlsa_of_another_key_defers(dns_world, make_server, make_tls_server, tls_pki, tmp_path):
    world = World(dns_world, make_server, tmp_path)
    try:
        a = server_a(world, make_tls_server)
        res = dns_records(a, "--next-key", str(tls_pki.cert("rsa")))
        assert res.returncode == 0, res.stderr
        # publish only the staged key's record: A still serves the old one
        nxt = [line for line in record_lines(res.stdout) if " TLSA " in line][1]
        assert nxt.endswith(spki_sha256(tls_pki, "rsa"))
        world.mx(DOMAIN, (10, MX, A_ADDR))
        dns_world.add_zone_text(nxt.replace("_25._tcp.", f"_{world.port}._tcp."))
        b = world.start()
        a.start()
        send(b, "alice@example.test", [f"bob@{DOMAIN}"], message("<dnsrec-bad@t>"))
        assert wait_log(b, "status=deferred"), b.log()[-3000:]
        assert "no TLSA record matches" in b.log()
        assert a.messages("bob", domain=DOMAIN) == []
    finally:
        world.stop()


@pytest.mark.parametrize("problem", ["missing", "not_pem"])
def test_unreadable_certificate_is_refused(make_tls_server, problem):
    a = make_tls_server(start=False, certs=("ec",))
    if problem == "missing":
        a.cert_files[0].unlink()
        want = f"{a.cert_files[0]}: No such file or directory"
    else:
        a.cert_files[0].write_text("not a certificate\n")
        want = f"{a.cert_files[0]}: no PEM certificate"
    res = dns_records(a)
    assert res.returncode == 1
    assert res.stdout == ""
    assert want in res.stderr, res.stderr


def test_unreadable_next_key_is_refused(make_tls_server, tmp_path):
    a = make_tls_server(start=False, certs=("ec",))
    res = dns_records(a, "--next-key", str(tmp_path / "absent.key"))
    assert res.returncode == 1 and res.stdout == ""
    assert "absent.key: No such file or directory" in res.stderr


def test_no_certificate_is_refused(make_server):
    s = make_server(start=False)
    res = dns_records(s)
    assert res.returncode == 1 and res.stdout == ""
    assert "[tls] names no certificate" in res.stderr

"""sealpost's DNS code (src/dns/) against a real, DNSSEC-signed world.

Each test builds a DNSWorld (nsd on loopback, zones signed with ldns),
then asks tests/tools/dns_lookup, which drives dns_resolve_mx /
dns_resolve_host through a libevent loop and prints the result as JSON
lines. The resolver forwards everything to the world's nsd, so no query
leaves the machine.
"""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from dnsworld import REFUSED_DOMAIN

LOOKUP = os.environ.get("DNS_LOOKUP_BIN") or str(
    Path(__file__).resolve().parents[2] / "build" / "tests" / "dns_lookup")

pytestmark = pytest.mark.skipif(not os.path.exists(LOOKUP),
                                reason="dns_lookup not built (set DNS_LOOKUP_BIN)")


def lookup(world, mode, name, *extra, config=True, timeout_ms=1500, check=True):
    """Run dns_lookup; returns (summary dict, [host dicts])."""
    args = [LOOKUP, "--timeout", str(timeout_ms)]
    if config and world is not None:
        args += ["--unbound-config", str(world.unbound_conf)]
    args += [*extra, mode, name]
    res = subprocess.run(args, capture_output=True, text=True, timeout=10)
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
        assert lines and "outcome" in lines[0], res.stdout + res.stderr
    if not lines:
        return {}, []
    return lines[0], lines[1:]


def names(hosts):
    return [h["host"] for h in hosts]


# ------------------------------------------------------------------ MX

def test_mx_ordered_by_preference(dns_world):
    w = dns_world
    w.add("example.test", "MX", "20 mx2.example.test.")
    w.add("example.test", "MX", "10 mx1.example.test.")
    w.add("mx1.example.test", "A", "127.0.0.21")
    w.add("mx2.example.test", "A", "127.0.0.22")
    w.add("mx2.example.test", "AAAA", "::1")
    w.start()
    res, hosts = lookup(w, "mx", "example.test", "--port", "2525")
    assert res["outcome"] == "DNS_OK" and res["error"] == ""
    assert res["implicit"] is False
    assert res["mx_dnssec"] == "secure"
    assert names(hosts) == ["mx1.example.test", "mx2.example.test"]
    assert [h["preference"] for h in hosts] == [10, 20]
    assert hosts[0]["addresses"] == ["127.0.0.21:2525"]
    assert hosts[1]["addresses"] == ["127.0.0.22:2525", "[::1]:2525"]
    assert all(h["dnssec"] == "secure" for h in hosts)


def test_mx_equal_preferences_random_order(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 a.example.test.")
    w.add("example.test", "MX", "10 b.example.test.")
    w.add("example.test", "MX", "5 first.example.test.")
    for host, ip in (("a", "127.0.0.21"), ("b", "127.0.0.22"), ("first", "127.0.0.23")):
        w.add(f"{host}.example.test", "A", ip)
    w.start()
    orders = set()
    for _ in range(24):
        res, hosts = lookup(w, "mx", "example.test")
        assert res["outcome"] == "DNS_OK"
        assert hosts[0]["host"] == "first.example.test"
        assert sorted(names(hosts[1:])) == ["a.example.test", "b.example.test"]
        assert {h["preference"] for h in hosts[1:]} == {10}
        orders.add(tuple(names(hosts)))
        if len(orders) == 2:
            break
    assert len(orders) == 2, "equal preferences never changed order"


def test_null_mx(dns_world):
    dns_world.add("example.test", "MX", "0 .")
    dns_world.start()
    res, hosts = lookup(dns_world, "mx", "example.test")
    assert res["outcome"] == "DNS_NULL_MX"
    assert "null MX" in res["error"] and "example.test" in res["error"]
    assert hosts == []


def test_no_mx_is_implicit_mx_with_a_and_aaaa(dns_world):
    dns_world.add("other.test", "A", "127.0.0.24")
    dns_world.add("other.test", "AAAA", "::1")
    dns_world.add("other.test", "TXT", '"v=spf1 -all"')
    dns_world.start()
    res, hosts = lookup(dns_world, "mx", "other.test")
    assert res["outcome"] == "DNS_OK"
    assert res["implicit"] is True
    assert res["mx_dnssec"] == "secure"        # the NODATA was validated
    assert names(hosts) == ["other.test"]
    assert hosts[0]["preference"] == 0
    assert hosts[0]["addresses"] == ["127.0.0.24:25", "[::1]:25"]


def test_no_mx_and_no_address(dns_world):
    dns_world.add("other.test", "TXT", '"nothing here"')
    dns_world.start()
    res, _ = lookup(dns_world, "mx", "other.test")
    assert res["outcome"] == "DNS_NO_ADDRESS"
    assert "other.test" in res["error"]


def test_mx_host_without_address_is_dropped(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 gone.example.test.")      # NXDOMAIN
    w.add("example.test", "MX", "20 txtonly.example.test.")   # NODATA
    w.add("example.test", "MX", "30 mx3.example.test.")
    w.add("txtonly.example.test", "TXT", '"no address"')
    w.add("mx3.example.test", "AAAA", "::1")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert res["outcome"] == "DNS_OK"
    assert names(hosts) == ["mx3.example.test"]
    assert hosts[0]["addresses"] == ["[::1]:25"]


def test_mx_hosts_all_without_address(dns_world):
    dns_world.add("example.test", "MX", "10 gone.example.test.")
    dns_world.add("example.test", "MX", "20 gone2.example.test.")
    dns_world.start()
    res, hosts = lookup(dns_world, "mx", "example.test")
    assert res["outcome"] == "DNS_NO_ADDRESS"
    assert "mail exchangers of example.test" in res["error"]
    assert hosts == []


def test_nxdomain(dns_world):
    dns_world.start()
    res, _ = lookup(dns_world, "mx", "nosuch.example.test")
    assert res["outcome"] == "DNS_NXDOMAIN"
    assert res["error"] == "Host or domain name not found: nosuch.example.test type=MX: NXDOMAIN"
    assert res["mx_dnssec"] == "secure"


def test_refused_is_tempfail(dns_world):
    dns_world.start()
    res, _ = lookup(dns_world, "mx", REFUSED_DOMAIN)
    assert res["outcome"] == "DNS_TEMPFAIL"
    assert "SERVFAIL" in res["error"] and REFUSED_DOMAIN in res["error"]


def test_server_down_is_tempfail_after_deadline(dns_world):
    dns_world.start().stop()
    started = time.monotonic()
    res, _ = lookup(dns_world, "mx", "example.test", timeout_ms=400)
    assert time.monotonic() - started < 1.5
    assert res["outcome"] == "DNS_TEMPFAIL"
    assert "timeout" in res["error"]


def test_many_records_are_capped(dns_world):
    w = dns_world
    for i in range(40):
        w.add("example.test", "MX", f"{100 - i} mx{i}.example.test.")
        w.add(f"mx{i}.example.test", "A", f"127.0.1.{i + 1}")
    for i in range(20):
        w.add("mx39.example.test", "A", f"127.0.2.{i + 1}")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert res["outcome"] == "DNS_OK"
    assert len(hosts) == 16                        # DNS_MAX_HOSTS
    assert hosts[0]["host"] == "mx39.example.test"  # preference 61, the lowest
    assert [h["preference"] for h in hosts] == sorted(h["preference"] for h in hosts)
    assert len(hosts[0]["addresses"]) == 8         # DNS_MAX_ADDRS


def test_unusable_exchange_names_are_skipped(dns_world):
    w = dns_world
    w.add("example.test", "MX", r"10 bad\032name.example.test.")
    w.add("example.test", "MX", "20 good.example.test.")
    w.add("good.example.test", "A", "127.0.0.21")
    w.add("other.test", "MX", r"10 only\255bad.other.test.")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert res["outcome"] == "DNS_OK"
    assert names(hosts) == ["good.example.test"]
    res, hosts = lookup(w, "mx", "other.test")
    assert res["outcome"] == "DNS_NO_ADDRESS"
    assert "no valid host" in res["error"]


def test_invalid_domain_names_need_no_query():
    for bad in ("bad..name.test", "a" * 64 + ".test", "sp ace.test",
                "x" * 250 + ".test", "new\nline.test", ".", ""):
        res, _ = lookup(None, "mx", bad, "--resolver", "127.0.0.1@9")
        assert res["outcome"] == "DNS_NXDOMAIN", bad
        assert "invalid" in res["error"]
        assert "\n" not in res["error"]


# ------------------------------------------------------------- DNSSEC

def test_dnssec_secure_insecure_bogus(dns_world):
    w = dns_world
    for zone in ("example.test", "insecure.test", "bogus.test"):
        w.add(zone, "MX", f"10 mx.{zone}.")
        w.add(f"mx.{zone}", "A", "127.0.0.21")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert (res["outcome"], res["mx_dnssec"], hosts[0]["dnssec"]) == ("DNS_OK", "secure", "secure")
    res, hosts = lookup(w, "mx", "insecure.test")
    assert (res["outcome"], res["mx_dnssec"], hosts[0]["dnssec"]) == (
        "DNS_OK", "insecure", "insecure")
    res, hosts = lookup(w, "mx", "bogus.test")
    assert res["outcome"] == "DNS_TEMPFAIL"
    assert res["mx_dnssec"] == "bogus"
    assert "DNSSEC" in res["error"] and "bogus" in res["error"]
    assert "DNSKEY" in res["error"]           # libunbound's why_bogus
    assert hosts == []


def test_secure_mx_with_insecure_exchange(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 mx.insecure.test.")
    w.add("mx.insecure.test", "A", "127.0.0.21")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert res["mx_dnssec"] == "secure"
    assert hosts[0]["dnssec"] == "insecure"


def test_bogus_address_is_not_used(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 mx1.example.test.")
    w.add("example.test", "MX", "20 mx2.example.test.")
    w.tamper("mx1.example.test", "A", "127.0.0.21", "127.0.0.66")
    w.add("mx2.example.test", "A", "127.0.0.22")
    w.add("only.example.test", "MX", "10 mx1.example.test.")
    w.start()
    res, hosts = lookup(w, "mx", "example.test")
    assert res["outcome"] == "DNS_OK"
    assert names(hosts) == ["mx2.example.test"]
    res, hosts = lookup(w, "mx", "only.example.test")
    assert res["outcome"] == "DNS_TEMPFAIL"
    assert "bogus" in res["error"] and "mx1.example.test type=A" in res["error"]


def test_forwarder_and_trust_anchor_options(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 mx1.example.test.")
    w.add("mx1.example.test", "A", "127.0.0.21")
    w.start()
    minimal = w.write_unbound_conf(w.root / "minimal.conf", trust_anchor=False, forward=False)
    res, hosts = lookup(w, "mx", "example.test", "--resolver", w.forwarder,
                        "--trust-anchor", str(w.trust_anchor),
                        "--unbound-config", str(minimal), config=False)
    assert res["outcome"] == "DNS_OK" and res["mx_dnssec"] == "secure"
    # Without the anchor nothing validates: insecure, never bogus.
    res, hosts = lookup(w, "mx", "example.test", "--resolver", w.forwarder,
                        "--trust-anchor", "/dev/null",
                        "--unbound-config", str(minimal), config=False)
    assert res["outcome"] == "DNS_OK" and res["mx_dnssec"] == "insecure"


@pytest.mark.skipif(not os.path.exists("/usr/share/dns/root.key"),
                    reason="no system root key")
def test_system_root_key_is_the_default_anchor(dns_world):
    """With no anchor of its own the resolver trusts the real root key,
    which cannot validate the test world: the test. anchor is required."""
    w = dns_world
    w.add("example.test", "MX", "10 mx1.example.test.")
    w.add("mx1.example.test", "A", "127.0.0.21")
    w.start()
    minimal = w.write_unbound_conf(w.root / "minimal.conf", trust_anchor=False)
    res, _ = lookup(w, "mx", "example.test", "--unbound-config", str(minimal), config=False)
    assert res["outcome"] == "DNS_TEMPFAIL" and res["mx_dnssec"] == "bogus"


def test_setup_errors_are_reported(dns_world):
    res, _ = lookup(None, "mx", "example.test", "--trust-anchor", "/nonexistent/ta",
                    "--resolver", "127.0.0.1@9", check=False)
    assert "/nonexistent/ta" in res.get("setup_error", "")
    bad = dns_world.root / "bad.conf"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("server:\n    no-such-option: yes\n")
    res, _ = lookup(None, "mx", "example.test", "--unbound-config", str(bad), check=False)
    assert "unbound config" in res.get("setup_error", "")


# ---------------------------------------------------- CNAME and hosts

def test_cname_followed(dns_world):
    w = dns_world
    w.add("alias.example.test", "CNAME", "other.test.")
    w.add("other.test", "MX", "10 mxalias.example.test.")
    w.add("mxalias.example.test", "CNAME", "real.other.test.")
    w.add("real.other.test", "A", "127.0.0.25")
    w.start()
    res, hosts = lookup(w, "mx", "alias.example.test")
    assert res["outcome"] == "DNS_OK"
    assert res["mx_dnssec"] == "secure"
    assert names(hosts) == ["mxalias.example.test"]
    assert hosts[0]["addresses"] == ["127.0.0.25:25"]


def test_host_lookup(dns_world):
    w = dns_world
    w.add("relay.example.test", "A", "127.0.0.26")
    w.add("relay.example.test", "MX", "10 ignored.example.test.")
    w.start()
    for name in ("relay.example.test", "[relay.example.test]", "Relay.Example.Test."):
        res, hosts = lookup(w, "host", name, "--port", "587")
        assert res["outcome"] == "DNS_OK", name
        assert res["implicit"] is True
        assert res["mx_dnssec"] == "secure"
        assert names(hosts) == ["relay.example.test"]
        assert hosts[0]["addresses"] == ["127.0.0.26:587"]
    res, _ = lookup(w, "host", "nosuch.example.test")
    assert res["outcome"] == "DNS_NXDOMAIN"
    assert res["mx_dnssec"] == "secure"         # a validated denial
    assert "nosuch.example.test" in res["error"]
    res, _ = lookup(w, "host", "example.test")
    assert res["outcome"] == "DNS_NO_ADDRESS"
    assert res["error"] == "No address found for example.test: no A/AAAA records"
    res, hosts = lookup(w, "host", "mx.insecure.test")
    assert res["outcome"] == "DNS_NXDOMAIN" and res["mx_dnssec"] == "insecure"
    res, hosts = lookup(w, "mx", "[relay.example.test]")
    assert res["outcome"] == "DNS_OK" and names(hosts) == ["relay.example.test"]


def test_ip_literals_need_no_dns():
    cases = {"192.0.2.1": "192.0.2.1:26", "[192.0.2.1]": "192.0.2.1:26",
             "2001:db8::1": "[2001:db8::1]:26", "[2001:DB8::1]": "[2001:db8::1]:26",
             "[IPv6:2001:db8::1]": "[2001:db8::1]:26"}
    for literal, expected in cases.items():
        started = time.monotonic()
        # A forwarder that does not exist: any query would time out.
        res, hosts = lookup(None, "host", literal, "--resolver", "127.0.0.1@9", "--port", "26")
        assert time.monotonic() - started < 1.0
        assert res["outcome"] == "DNS_OK", literal
        assert res["implicit"] is True
        assert len(hosts) == 1 and hosts[0]["addresses"] == [expected]
        assert hosts[0]["dnssec"] == "insecure"
    res, hosts = lookup(None, "mx", "[192.0.2.7]", "--resolver", "127.0.0.1@9")
    assert res["outcome"] == "DNS_OK" and hosts[0]["addresses"] == ["192.0.2.7:25"]


def test_free_cancels_outstanding_lookups(dns_world):
    dns_world.add("example.test", "MX", "10 mx1.example.test.")
    dns_world.add("mx1.example.test", "A", "127.0.0.21")
    dns_world.start()
    for mode, name in (("mx", "example.test"), ("host", "192.0.2.1")):
        res = subprocess.run([LOOKUP, "--unbound-config", str(dns_world.unbound_conf),
                              "--cancel", mode, name], capture_output=True, text=True,
                             timeout=10)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.splitlines()[-1]) == {"cancelled": True, "callbacks": 0}


def test_world_reload(dns_world):
    w = dns_world
    w.add("example.test", "MX", "10 mx1.example.test.")
    w.add("mx1.example.test", "A", "127.0.0.21")
    w.start()
    pid = w.proc.pid
    w.records["example.test"] = [r for r in w.records["example.test"] if "MX" not in r]
    w.add("example.test", "MX", "0 .")
    w.reload()
    assert w.proc.pid == pid
    res, _ = lookup(w, "mx", "example.test")
    assert res["outcome"] == "DNS_NULL_MX"

"""Prometheus metrics (`[metrics] listen`, docs/OPERATIONS.md "Metrics").

A real sealpost with a metrics endpoint on loopback: the page is fetched
with urllib and parsed with prometheus_client's strict text parser
(Debian's python3-prometheus-client), counters are checked to move as
mail flows (a Maildir delivery, an unknown user, a remote recipient whose
next hop is down, a STARTTLS session, a killed worker), bad HTTP is
refused while the endpoint keeps serving, and a real `prometheus`
(Debian's package, started here with its own config and storage in the
test's folder) scrapes it and answers queries about it.
"""
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from roles import role_pids
from smtpwire import wait_until

FAMILIES = {
    "sealpost_smtpd_connections": "counter",
    "sealpost_smtpd_rcpt": "counter",
    "sealpost_queue_messages_queued": "counter",
    "sealpost_deliveries": "counter",
    "sealpost_tls_sessions": "counter",
    "sealpost_outbound_tls_policy": "counter",
    "sealpost_process_restarts": "counter",
    "sealpost_metrics_requests": "counter",
    "sealpost_metrics_connections_refused": "counter",
    "sealpost_queue_messages": "gauge",
    "sealpost_queue_oldest_message_age_seconds": "gauge",
    "sealpost_delivery_latency_seconds": "histogram",
    "sealpost_queue_commit_group_size": "histogram",
    "sealpost_queue_fsync_seconds": "histogram",
}


def metrics_server(make_tls_server, timeout="2s", workers="1"):
    """A TLS-capable server with [metrics] on a free loopback port and a
    relayhost that refuses connections (remote mail is deferred)."""
    mport, closed = free_port(), free_port()
    srv = make_tls_server(settings={"workers": workers}, extra_sections=f"""
[relay]
trusted_networks = 127.0.0.1/32
relayhost = [127.0.0.1]:{closed}
retry = 1h

[metrics]
listen = 127.0.0.1:{mport}
timeout = {timeout}
max_request_size = 2048
""")
    srv.metrics_port = mport
    wait_until(lambda: "event=metrics_ready" in srv.log(), timeout=10)
    return srv


def fetch(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def scrape(port):
    """{family name: family} from the strict parser; every family once."""
    text = fetch(port)
    fams = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name not in fams, fam.name
        assert fam.documentation, fam.name
        fams[fam.name] = fam
    return fams


def value(fams, family, sample, **labels):
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((family, sample, labels))


def check_histogram(fam):
    buckets = [(s.labels["le"], s.value) for s in fam.samples if s.name.endswith("_bucket")]
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds) and buckets[-1][0] == "+Inf", buckets
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), buckets            # cumulative: never decreasing
    count = [s.value for s in fam.samples if s.name.endswith("_count")][0]
    total = [s.value for s in fam.samples if s.name.endswith("_sum")][0]
    assert count == counts[-1] and total >= 0
    return count


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_page_parses_and_counters_move(make_tls_server):
    srv = metrics_server(make_tls_server)
    fams = scrape(srv.metrics_port)
    for name, kind in FAMILIES.items():
        assert fams[name].type == kind, name
    assert value(fams, "sealpost_smtpd_rcpt", "sealpost_smtpd_rcpt_total",
                 verdict="accepted") == 0

    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        refused = c.sendmail("sender@example.net",
                             ["alice@example.test", "nobody@example.test",
                              "someone@remote.test"],
                             b"Subject: metrics\r\n\r\nHello.\r\n")
        assert refused["nobody@example.test"][0] == 550
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.starttls(context=no_verify())
        version = c.sock.version()
        c.sendmail("sender@example.net", ["bob@example.test"],
                   b"Subject: tls\r\n\r\nHello.\r\n")

    def moved():
        f = scrape(srv.metrics_port)
        want = [
            (("sealpost_smtpd_connections", "sealpost_smtpd_connections_total"),
             dict(listener="mx", tls="none"), -1),     # and wait_ready's probes
            (("sealpost_smtpd_connections", "sealpost_smtpd_connections_total"),
             dict(listener="mx", tls="starttls"), 1),
            (("sealpost_smtpd_rcpt", "sealpost_smtpd_rcpt_total"),
             dict(verdict="accepted"), 3),
            (("sealpost_smtpd_rcpt", "sealpost_smtpd_rcpt_total"),
             dict(verdict="unknown_user"), 1),
            (("sealpost_queue_messages_queued", "sealpost_queue_messages_queued_total"),
             {}, 2),
            (("sealpost_deliveries", "sealpost_deliveries_total"),
             dict(transport="maildir", outcome="delivered"), 2),
            (("sealpost_deliveries", "sealpost_deliveries_total"),
             dict(transport="smtp", outcome="deferred"), 1),
            (("sealpost_tls_sessions", "sealpost_tls_sessions_total"),
             dict(direction="inbound", version=version), 1),
            (("sealpost_queue_messages", "sealpost_queue_messages"), {}, 1),
        ]
        # n < 0: at least -n
        return all(value(f, fam, sample, **labels) == n if n >= 0 else
                   value(f, fam, sample, **labels) >= -n
                   for (fam, sample), labels, n in want) and f
    fams = wait_until(moved, timeout=20)
    assert fams, fetch(srv.metrics_port) + srv.log()[-3000:]
    assert value(fams, "sealpost_deliveries", "sealpost_deliveries_total",
                 transport="smtp", outcome="delivered") == 0
    assert value(fams, "sealpost_queue_oldest_message_age_seconds",
                 "sealpost_queue_oldest_message_age_seconds") >= 0
    assert check_histogram(fams["sealpost_delivery_latency_seconds"]) == 2
    assert check_histogram(fams["sealpost_queue_commit_group_size"]) >= 1
    assert check_histogram(fams["sealpost_queue_fsync_seconds"]) >= 1
    groups = fams["sealpost_queue_commit_group_size"]
    assert [s.value for s in groups.samples if s.name.endswith("_sum")][0] == 2

    # the age gauge grows while the deferred message waits
    time.sleep(1.1)
    age = wait_until(lambda: value(scrape(srv.metrics_port),
                                   "sealpost_queue_oldest_message_age_seconds",
                                   "sealpost_queue_oldest_message_age_seconds") >= 1)
    assert age


def test_killed_worker_counts_a_restart(make_tls_server):
    srv = metrics_server(make_tls_server)
    restarts = ("sealpost_process_restarts", "sealpost_process_restarts_total")
    assert value(scrape(srv.metrics_port), *restarts, role="smtpd") == 0
    [pid] = role_pids(srv.proc.pid, "smtpd")
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: value(scrape(srv.metrics_port), *restarts, role="smtpd") == 1)
    assert value(scrape(srv.metrics_port), *restarts, role="queue") == 0
    srv.wait_ready()


def raw_http(port, data, timeout=10):
    """Send data, read until the server closes (or timeout): the bytes."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return got
            got += chunk
    raise AssertionError(f"not closed after {timeout}s: {got[:200]!r}")


def status_of(reply):
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else None


def test_bad_http_is_refused_and_the_endpoint_keeps_serving(make_tls_server):
    srv = metrics_server(make_tls_server, timeout="2s")
    port = srv.metrics_port
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(port, "/")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(port, "/metrics/../etc/passwd")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", data=b"x=1", method="POST"), timeout=10)
    assert 400 <= e.value.code < 500
    reply = raw_http(port, b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) == 405 and b"Allow: GET" in reply
    # a request line past max_request_size: refused or cut off, never served
    reply = raw_http(port, b"GET /metrics?" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) in (None, 400, 413, 414, 431), reply[:100]
    reply = raw_http(port, b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"b" * 4000 +
                     b"\r\n\r\n")
    assert status_of(reply) in (None, 400, 413, 431), reply[:100]
    # garbage: 400 or closed
    reply = raw_http(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    assert status_of(reply) in (None, 400), reply[:100]
    # slowloris: half a request, then silence: closed after [metrics] timeout
    start = time.monotonic()
    reply = raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ", timeout=15)
    assert status_of(reply) in (None, 400, 408), reply[:100]
    assert time.monotonic() - start >= 1.5
    # and it still serves, the refusals counted
    fams = scrape(port)
    assert value(fams, "sealpost_metrics_requests", "sealpost_metrics_requests_total",
                 result="refused") >= 3
    assert value(fams, "sealpost_process_restarts", "sealpost_process_restarts_total",
                 role="metrics") == 0
    assert len(role_pids(srv.proc.pid, "metrics")) == 1


def test_metrics_off_without_listen(make_tls_server):
    srv = make_tls_server()
    assert role_pids(srv.proc.pid, "metrics") == []
    assert "listener=metrics" not in srv.log()


def test_metrics_role_is_confined(make_tls_server):
    srv = metrics_server(make_tls_server)
    # metrics_ready is logged from start(); the filter goes on just after it
    wait_until(lambda: "event=sandbox role=metrics" in srv.log(), timeout=10)
    log = srv.log()
    assert "event=privsep role=metrics" in log
    if "status=disabled" not in log:        # sanitizer builds have no filters
        assert "event=sandbox role=metrics status=active" in log
        assert "chroot=" + str(srv.root / "spool" / "empty") in log


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
    except (OSError, ValueError):
        return None
    if doc.get("status") != "success" or not doc["data"]["result"]:
        return None
    return float(doc["data"]["result"][0]["value"][1])


def test_real_prometheus_scrapes_sealpost(make_tls_server, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "Debian's prometheus package is missing (scripts/deps.sh)"
    srv = metrics_server(make_tls_server)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("sender@example.net", ["alice@example.test"], b"Subject: p\r\n\r\nHi.\r\n")
    conf = tmp_path / "prometheus.yml"
    conf.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sealpost
    static_configs:
      - targets: ['127.0.0.1:{srv.metrics_port}']
""")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([prometheus, f"--config.file={conf}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=log)
    try:
        up = wait_until(lambda: prometheus_query(port, 'up{job="sealpost"}') == 1, timeout=60)
        assert up, (tmp_path / "prometheus.log").read_text()[-3000:]
        queued = wait_until(lambda: prometheus_query(
            port, 'sealpost_queue_messages_queued_total{job="sealpost"}'), timeout=30)
        assert queued and queued >= 1
        delivered = prometheus_query(port, 'sealpost_deliveries_total{transport="maildir",'
                                           'outcome="delivered"}')
        assert delivered == 1
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

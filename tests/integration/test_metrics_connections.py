"""`[metrics] max_connections`: the metrics role holds at most that many
HTTP connections; past it a new one is answered 503 and closed unread.

A real sealpost with a metrics endpoint on loopback and a cap of 4: four
idle TCP connections fill it, a fifth (and a real scrape) is refused at
once instead of hanging, the refusal is counted and logged once, and
after the idle ones go (closed by the client, or by the server after
[metrics] timeout) a real scrape with urllib gets a page the strict
Prometheus parser accepts - the role never restarted. Trusts: nothing
from the server but what it sends on the sockets and writes to its log.
"""
import http.client
import socket
import subprocess
import time
import urllib.error

import pytest

from conftest import BIN, free_port
from roles import role_pids
from smtpwire import wait_until
from test_metrics import fetch, raw_http, scrape, status_of, value

CAP = 4
TIMEOUT = 3             # [metrics] timeout, seconds


def capped_server(make_tls_server, timeout=TIMEOUT):
    mport = free_port()
    srv = make_tls_server(extra_sections=f"""
[metrics]
listen = 127.0.0.1:{mport}
timeout = {timeout}s
max_connections = {CAP}
""")
    srv.metrics_port = mport
    assert wait_until(lambda: "event=metrics_ready" in srv.log(), timeout=10), srv.log()
    assert f"max_connections={CAP}" in srv.log()
    srv.metrics_pid = role_pids(srv.proc.pid, "metrics")
    assert len(srv.metrics_pid) == 1
    return srv


def refused_total(port):
    return value(scrape(port), "sealpost_metrics_connections_refused",
                 "sealpost_metrics_connections_refused_total")


def fill(port):
    """CAP idle connections, then proof that the role holds them all: the
    next connection is refused. Opened together, they reach the role's
    accept queue in order, so the first CAP are the ones kept."""
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CAP)]
    reply = raw_http(port, b"", timeout=10)     # sends nothing: closed with a 503
    assert status_of(reply) == 503, reply
    assert b"sealpost_" not in reply
    return idle


def scrape_refused_at_once(port):
    """A real scrape while the cap is full: refused, not left hanging."""
    start = time.monotonic()
    with pytest.raises((urllib.error.HTTPError, ConnectionError,
                        http.client.RemoteDisconnected, urllib.error.URLError)) as e:
        fetch(port)
    if isinstance(e.value, urllib.error.HTTPError):
        assert e.value.code == 503
    assert time.monotonic() - start < TIMEOUT      # not held until [metrics] timeout


def scrape_works(port):
    try:
        return scrape(port)
    except (OSError, http.client.HTTPException):
        return None


def assert_not_restarted(srv):
    assert "event=child_died" not in srv.log()
    assert role_pids(srv.proc.pid, "metrics") == srv.metrics_pid


def test_cap_refuses_extra_connections_and_serves_after_they_close(make_tls_server):
    srv = capped_server(make_tls_server, timeout=30)
    port = srv.metrics_port
    idle = fill(port)
    scrape_refused_at_once(port)
    assert wait_until(lambda: "event=metrics_connections_refused" in srv.log(), timeout=10)
    # the idle ones still hold the cap: a third refusal, quiet in the log
    assert status_of(raw_http(port, b"", timeout=10)) == 503
    for s in idle:
        s.close()
    fams = wait_until(lambda: scrape_works(port), timeout=10)
    assert fams, srv.log()[-2000:]
    assert value(fams, "sealpost_metrics_connections_refused",
                 "sealpost_metrics_connections_refused_total") >= 3
    assert value(fams, "sealpost_process_restarts", "sealpost_process_restarts_total",
                 role="metrics") == 0
    # one log line for the burst (the next is a minute away at most)
    assert srv.log().count("event=metrics_connections_refused") == 1
    # the slots are all free again: CAP connections fit, the next does not
    idle = fill(port)
    assert_not_restarted(srv)
    # a stop while the cap is full: a clean exit (the fixture also looks
    # for sanitizer reports)
    assert srv.stop() == 0
    for s in idle:
        s.close()


def test_idle_connections_are_dropped_after_timeout(make_tls_server):
    srv = capped_server(make_tls_server)
    port = srv.metrics_port
    start = time.monotonic()
    idle = fill(port)
    # the client keeps them open; the server closes each after [metrics] timeout
    for s in idle:
        try:
            assert s.recv(1024) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert time.monotonic() - start >= TIMEOUT - 0.5
    # which frees the cap without the client closing anything
    fams = wait_until(lambda: scrape_works(port), timeout=10)
    assert fams, srv.log()[-2000:]
    assert refused_total(port) >= 1
    assert_not_restarted(srv)


def test_max_connections_bounds(make_tls_server):
    for bad in ("0", "4097", "many"):
        srv = make_tls_server(start=False, extra_sections=f"""
[metrics]
listen = 127.0.0.1:{free_port()}
max_connections = {bad}
""")
        r = subprocess.run([BIN, "check", "-c", str(srv.conf)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1, (bad, r.stdout)
        assert "max_connections" in r.stderr, r.stderr

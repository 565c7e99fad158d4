"""Aliases and routing (issue 15, item 2), end to end through real
sockets: a `[domain] aliases` file expanded by the queue (to local
Maildirs, to remote addresses relayed to test peers, to several
targets once each, a catch-all, chains up to the depth limit), loops
and too-deep chains refused at RCPT with 550 5.4.6, `|command` and
`:include:` refused by `sealpost check` and at start with file:line,
`[relay] relay_domains` with `[route D] nexthop` delivering to a fixed
next hop without any MX record, `[relay] relay_recipients` refusing the
addresses of relay domains it does not list (also after SIGHUP), and a DSN about a failed alias target
naming the original recipient."""
import email
import email.policy
import signal
import smtplib
import subprocess
import urllib.request

import pytest

from conftest import BIN, free_port
from peers import Peer
from smtpwire import wait_until
from test_outbound import World, dsn_fields, dsn_messages, send

SENDER = "bob@example.test"


def with_aliases(srv, aliases):
    """Write srv's alias file and name it in [domain example.test]."""
    (srv.root / "aliases").write_text(aliases)
    text = srv.conf.read_text()
    text = text.replace("[domain example.test]\nmailboxes = users\n",
                        "[domain example.test]\nmailboxes = users\naliases = aliases\n", 1)
    srv.conf.write_text(text)
    return srv


def alias_server(make_server, aliases, sections=""):
    srv = make_server(start=False, extra_sections=sections)
    return with_aliases(srv, aliases).start()


def message(msgid, to="list@example.test", subject="alias test"):
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\n\r\nHello.\r\n").encode()


def rcpt_reply(server, rcpt):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.mail(SENDER)[0] == 250
        return c.rcpt(rcpt)


def bodies(server, local, count):
    found = server.wait_messages(local, count)
    return [p.read_bytes() for p in found]


@pytest.fixture
def hop():
    """A receiving SMTP peer on 127.0.0.1 (a fixed next hop)."""
    p = Peer("127.0.0.1", free_port()).start()
    yield p
    p.stop()


def route_sections(hop, extra=""):
    return f"""
[relay]
relay_domains = relay.test
retry = 1s
connect_timeout = 2s
smtp_timeout = 10s
max_queue_lifetime = 1h
{extra}
[route relay.test]
nexthop = [127.0.0.1]:{hop.port}
"""


def test_alias_to_a_local_user(make_server):
    server = alias_server(make_server, "# the role address\ninfo: alice\n")
    send(server, SENDER, ["info@example.test"], message("<local@t>"))
    got = bodies(server, "alice", 1)
    assert len(got) == 1 and b"Message-ID: <local@t>" in got[0]
    assert server.wait_queue_empty()
    assert not server.maildir("info").exists()


def test_dsn_to_a_sender_that_is_an_alias_reaches_its_target(make_server):
    """A report sealpost itself writes goes where mail to its recipient
    goes: a success DSN for a message sent from info@ (an alias of
    alice) lands in alice's Maildir, and no Maildir named "info" is made."""
    server = alias_server(make_server, "info: alice\n")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.mail("info@example.test")[0] == 250
        assert c.rcpt("carol@example.test", ["NOTIFY=SUCCESS"])[0] == 250
        assert c.data(message("<dsn-to-alias@t>", to="carol@example.test"))[0] == 250
    assert len(bodies(server, "carol", 1)) == 1
    (dsn,) = bodies(server, "alice", 1)
    assert b"multipart/report" in dsn and b"report-type=delivery-status" in dsn
    assert b"Action: delivered" in dsn
    assert server.wait_queue_empty()
    assert not server.maildir("info").exists()
    assert "bounce_alias_failed" not in server.log()


def test_two_targets_each_get_it_once(make_server):
    """An alias to two mailboxes, sent together with one of them and a
    second alias that overlaps: each mailbox gets exactly one copy."""
    server = alias_server(make_server, "team: alice, carol\nall: team, alice\n")
    send(server, SENDER, ["team@example.test", "all@example.test", "alice@example.test"],
         message("<two@t>"))
    assert len(bodies(server, "alice", 1)) == 1
    assert len(bodies(server, "carol", 1)) == 1
    assert server.wait_queue_empty()
    assert len(server.messages("alice")) == 1
    assert len(server.messages("carol")) == 1


def test_catch_all(make_server):
    server = alias_server(make_server, "@: carol\n")
    # a mailbox still gets its own mail; anything else falls to carol
    send(server, SENDER, ["whoever@example.test", "alice@example.test"],
         message("<catch@t>"))
    assert len(bodies(server, "carol", 1)) == 1
    assert len(bodies(server, "alice", 1)) == 1
    assert server.wait_queue_empty()
    assert not server.maildir("whoever").exists()


def test_without_catch_all_unknown_users_are_still_refused(make_server):
    server = alias_server(make_server, "info: alice\n")
    code, text = rcpt_reply(server, "whoever@example.test")
    assert code == 550 and text.startswith(b"5.1.1")


def chain(n):
    """a1 -> a2 -> ... -> aN -> alice: N alias lines deep."""
    lines = [f"a{i}: a{i + 1}\n" for i in range(1, n)]
    return "".join(lines) + f"a{n}: alice\n"


def test_chain_within_the_depth_limit(make_server):
    server = alias_server(make_server, chain(10))     # RECIPIENT_ALIAS_DEPTH
    send(server, SENDER, ["a1@example.test"], message("<chain@t>"))
    assert len(bodies(server, "alice", 1)) == 1
    assert server.wait_queue_empty()


def test_too_deep_chain_is_refused_with_5_4_6(make_server):
    server = alias_server(make_server, chain(11))
    code, text = rcpt_reply(server, "a1@example.test")
    assert code == 550
    assert text.startswith(b"5.4.6") and b"Routing loop" in text
    # the same chain entered one step later is within the limit
    assert rcpt_reply(server, "a2@example.test")[0] == 250


def scrape_rcpt_verdicts(port):
    """{verdict: count} of sealpost_smtpd_rcpt_total on the metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        page = r.read().decode()
    got = {}
    for line in page.splitlines():
        if line.startswith('sealpost_smtpd_rcpt_total{verdict="'):
            verdict = line.split('"')[1]
            got[verdict] = float(line.rsplit(" ", 1)[1])
    return got


def test_loop_is_refused_with_5_4_6(make_server):
    mport = free_port()
    server = alias_server(make_server, "ping: pong\npong: alice, ping\n@: lost\n",
                          sections=f"[metrics]\nlisten = 127.0.0.1:{mport}\n")
    for rcpt in ("ping@example.test", "pong@example.test", "anything@example.test"):
        code, text = rcpt_reply(server, rcpt)
        assert code == 550, rcpt
        assert text.startswith(b"5.4.6") and b"Routing loop detected" in text
    assert "verdict=alias_loop" in server.log()
    # a loop elsewhere does not touch the other recipients
    assert rcpt_reply(server, "alice@example.test")[0] == 250
    # counted as what it is, not as a relay refusal
    assert wait_until(lambda: "event=metrics_ready" in server.log(), timeout=10)
    got = scrape_rcpt_verdicts(mport)
    assert got["alias_loop"] == 3 and got["relay_denied"] == 0, got


def test_alias_expanding_past_the_limit_is_refused_with_5_5_3(make_server):
    """max_alias_recipients bounds what one RCPT may become; the refusal
    is the address's alone."""
    mport = free_port()
    srv = make_server(start=False, extra_sections=f"[metrics]\nlisten = 127.0.0.1:{mport}\n")
    with_aliases(srv, "team: alice, bob, carol, x@remote.test\npair: alice, bob\n")
    text = srv.conf.read_text()
    assert "[server]\n" in text
    srv.conf.write_text(text.replace("[server]\n", "[server]\nmax_alias_recipients = 3\n", 1))
    server = srv.start()
    code, text = rcpt_reply(server, "team@example.test")
    assert code == 550
    assert text == b"5.5.3 <team@example.test>: Recipient address rejected: " \
                   b"Alias expands to too many recipients", text
    assert "verdict=alias_too_many" in server.log()
    assert rcpt_reply(server, "pair@example.test")[0] == 250
    assert wait_until(lambda: "event=metrics_ready" in server.log(), timeout=10)
    got = scrape_rcpt_verdicts(mport)
    assert got["alias_too_many"] == 1 and got["relay_denied"] == 0, got


def test_alias_keeping_a_copy_in_its_own_mailbox(make_server, hop):
    """'alice: alice, x@remote': a target naming the alias itself is its
    mailbox, not a loop."""
    server = alias_server(make_server, "alice: alice, alice@relay.test\n",
                          route_sections(hop))
    send(server, SENDER, ["alice@example.test"], message("<copy@t>"))
    assert len(bodies(server, "alice", 1)) == 1
    got = hop.wait_messages(1)
    assert len(got) == 1 and got[0]["rcpts"] == ["alice@relay.test"]


@pytest.mark.parametrize("target,why", [
    ("|/usr/bin/procmail", "delivery to a command (|) is not supported"),
    (":include:/etc/mail/list", ":include: is not supported"),
    ("/var/mail/dump", "delivery to a file is not supported"),
])
def test_unsupported_targets_refused_with_file_and_line(make_server, target, why):
    srv = make_server(start=False)
    with_aliases(srv, f"# line 1\ninfo: alice\nbad: alice, {target}\n")
    r = subprocess.run([BIN, "check", "-c", str(srv.conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert f"{srv.root / 'aliases'}:3: '{target}': {why}" in out, out
    # and the server does not start with it
    p = subprocess.run([BIN, "serve", "-c", str(srv.conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert f"aliases:3: '{target}'" in p.stdout + p.stderr


def test_relay_domain_to_a_fixed_next_hop_without_mx(make_server, hop):
    """relay.test has no DNS record at all (and the client is not in
    trusted_networks): sealpost accepts any recipient there and hands it
    to the [route] next hop; other domains stay refused."""
    server = make_server(extra_sections=route_sections(hop))
    code, text = rcpt_reply(server, "someone@elsewhere.test")
    assert code == 554 and b"Relay access denied" in text
    send(server, "sender@outside.test", ["anyone@relay.test", "Other@Relay.Test"],
         message("<route@t>", to="anyone@relay.test"))
    got = hop.wait_messages(1)
    assert len(got) == 1
    assert sorted(got[0]["rcpts"]) == ["Other@Relay.Test", "anyone@relay.test"]
    assert got[0]["from"] == "sender@outside.test"
    assert b"Message-ID: <route@t>" in got[0]["data"]
    assert server.wait_queue_empty()
    assert "status=sent" in server.log()


def relay_list_server(make_server, hop, listed, metrics_port=None):
    """relay.test to the next hop, [relay] relay_recipients = rr holding
    listed; the client (127.0.0.1) is in trusted_networks, which changes
    nothing for a relay domain."""
    sections = route_sections(hop, "relay_domains = relay.test, more.test\n"
                                    "relay_recipients = rr\n"
                                    "trusted_networks = 127.0.0.1/32\n")
    sections = sections.replace("relay_domains = relay.test\n", "", 1)
    sections += f"[route more.test]\nnexthop = [127.0.0.1]:{hop.port}\n"
    if metrics_port:
        sections += f"[metrics]\nlisten = 127.0.0.1:{metrics_port}\n"
    srv = make_server(start=False, extra_sections=sections)
    (srv.root / "rr").write_text(listed)
    return srv.start()


UNKNOWN_RELAY = b"5.1.1 <%s>: Recipient address rejected: User unknown in relay recipient table"


def test_relay_recipients_accept_listed_refuse_others(make_server, hop):
    """Listed addresses (any case) are accepted and reach the next hop;
    an unlisted one, and every address of a relay domain with no line,
    get Postfix's 550 5.1.1, counted in the metrics."""
    mport = free_port()
    server = relay_list_server(make_server, hop, "# backup MX\nalice@relay.test\n"
                               "\"bob.smith\"@relay.test\n", metrics_port=mport)
    for rcpt in ("mallory@relay.test", "anyone@more.test"):
        code, text = rcpt_reply(server, rcpt)
        assert code == 550 and text == UNKNOWN_RELAY % rcpt.encode(), text
    assert "to=\"mallory@relay.test\" verdict=unknown_relay_user" in server.log()
    send(server, "sender@outside.test", ["Alice@Relay.Test", "bob.smith@relay.test"],
         message("<listed@t>", to="alice@relay.test"))
    got = hop.wait_messages(1)
    assert len(got) == 1
    assert sorted(got[0]["rcpts"]) == ["Alice@Relay.Test", "bob.smith@relay.test"]
    assert b"Message-ID: <listed@t>" in got[0]["data"]
    assert server.wait_queue_empty()
    # local domains and relaying for trusted clients are not touched
    assert rcpt_reply(server, "alice@example.test")[0] == 250
    assert rcpt_reply(server, "someone@elsewhere.test")[0] == 250
    wait_until(lambda: "event=metrics_ready" in server.log(), timeout=10)
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
        page = r.read().decode()
    assert 'sealpost_smtpd_rcpt_total{verdict="unknown_relay_user"} 2' in page, page


def test_relay_recipients_domain_line_takes_any_local_part(make_server, hop):
    server = relay_list_server(make_server, hop, "@relay.test\nalice@more.test\n")
    send(server, SENDER, ["whoever@relay.test", "alice@more.test"],
         message("<anyone@t>", to="whoever@relay.test"))
    got = hop.wait_messages(2)          # one transaction per destination domain
    assert sorted(r for m in got for r in m["rcpts"]) == ["alice@more.test",
                                                          "whoever@relay.test"]
    code, text = rcpt_reply(server, "bob@more.test")
    assert code == 550 and text == UNKNOWN_RELAY % b"bob@more.test"


def test_relay_recipients_reload_on_sighup(make_server, hop):
    server = relay_list_server(make_server, hop, "alice@relay.test\n")
    assert rcpt_reply(server, "bob@relay.test")[0] == 550
    (server.root / "rr").write_text("bob@relay.test\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=mailboxes status=ok" in server.log(), timeout=10)
    # new workers (and the queue, first) take the new list
    assert wait_until(lambda: send_if_all_accepted(server, ["bob@relay.test"],
                                                   message("<hup-relay@t>")), timeout=30)
    got = hop.wait_messages(1)
    assert len(got) == 1 and got[0]["rcpts"] == ["bob@relay.test"]
    assert wait_until(lambda: rcpt_reply(server, "alice@relay.test") ==
                      (550, UNKNOWN_RELAY % b"alice@relay.test"), timeout=30)
    # a bad line on reload: refused with FILE:LINE, the old list kept
    (server.root / "rr").write_text("bob@relay.test\ncarol@elsewhere.test\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=mailboxes status=failed keeping=old" in server.log(),
                      timeout=10)
    assert f"{server.root / 'rr'}:2: elsewhere.test is not in [relay] relay_domains" \
        in server.log()
    assert rcpt_reply(server, "bob@relay.test")[0] == 250
    assert rcpt_reply(server, "carol@elsewhere.test")[0] == 250     # trusted: relayed


@pytest.mark.parametrize("text,line,why", [
    ("alice@relay.test\n# ok\nbob\n", 3, "not an address: expected user@domain or @domain"),
    ("@relay.test\nx@typo.test\n", 2, "typo.test is not in [relay] relay_domains"),
])
def test_relay_recipients_bad_line_refused_by_check_and_start(make_server, hop, text, line,
                                                             why):
    srv = make_server(start=False, extra_sections=route_sections(hop, "relay_recipients = rr\n"))
    (srv.root / "rr").write_text(text)
    r = subprocess.run([BIN, "check", "-c", str(srv.conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert f"{srv.root / 'rr'}:{line}: {why}" in r.stdout + r.stderr, r.stdout + r.stderr
    p = subprocess.run([BIN, "serve", "-c", str(srv.conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert f"rr:{line}: {why}" in p.stdout + p.stderr


def test_failed_alias_target_dsn_names_the_original_recipient(make_server, hop):
    """fwd@example.test goes to alice (local) and to friend@relay.test,
    which the next hop refuses: the DSN to the sender shows the failed
    address as Final-Recipient and fwd@example.test as
    Original-Recipient; the forwarded copy keeps the original envelope
    sender (no SRS)."""
    hop.script.rcpt_reply("friend@relay.test", "550 5.1.1 no such user")
    server = alias_server(make_server, "fwd: alice, friend@relay.test, other@relay.test\n",
                          route_sections(hop))
    send(server, SENDER, ["fwd@example.test"], message("<dsn@t>", to="fwd@example.test"))
    assert len(bodies(server, "alice", 1)) == 1
    got = hop.wait_messages(1)
    assert got[0]["rcpts"] == ["other@relay.test"]
    assert got[0]["from"] == SENDER
    assert server.wait_messages("bob", 1)
    dsns = dsn_messages(server, "bob")
    assert len(dsns) == 1
    fields = dsn_fields(dsns[0])
    assert len(fields) == 1
    assert fields[0]["final-recipient"].lower().replace(" ", "") == "rfc822;friend@relay.test"
    assert fields[0]["original-recipient"].lower().replace(" ", "") == "rfc822;fwd@example.test"
    assert fields[0]["status"] == "5.1.1"
    assert server.wait_queue_empty()


def test_alias_to_a_remote_address_is_relayed_through_its_mx(dns_world, make_server,
                                                             tmp_path):
    """A target in a domain with a real (DNSSEC-signed) MX record: the
    queue relays it like any remote recipient, although the client may
    not relay itself."""
    def factory(**kw):
        srv = make_server(start=False, **kw)
        srv.conf.write_text(srv.conf.read_text().replace("trusted_networks = 127.0.0.1/32\n",
                                                         ""))
        return with_aliases(srv, "ext: friend@far.example.test\n").start()

    w = World(dns_world, factory, tmp_path)
    try:
        w.mx("far.example.test", (10, "mx.far.example.test", "127.0.0.27"))
        peer = w.peer("127.0.0.27")
        server = w.start()
        code, _ = rcpt_reply(server, "friend@far.example.test")
        assert code == 554                  # no relaying for this client...
        send(server, SENDER, ["ext@example.test"], message("<mx@t>", to="ext@example.test"))
        got = peer.wait_messages(1)          # ...but the alias is forwarded
        assert len(got) == 1
        assert got[0]["rcpts"] == ["friend@far.example.test"]
        assert got[0]["from"] == SENDER
        assert server.wait_queue_empty()
    finally:
        w.stop()


def send_if_all_accepted(server, rcpts, data):
    """One transaction, with DATA only when every RCPT got 250."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.mail(SENDER)[0] == 250
        if any(c.rcpt(r)[0] != 250 for r in rcpts):
            return False
        assert c.data(data)[0] == 250
        return True


def test_aliases_reload_on_sighup(make_server):
    server = alias_server(make_server, "info: alice\n")
    (server.root / "aliases").write_text("info: carol\nnew: alice\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=mailboxes status=ok" in server.log(), timeout=10)
    # the new workers take the new files (the queue has them before they
    # start); old ones stop accepting on their own signal: a session that
    # gets an old worker sends nothing and is tried again
    assert wait_until(lambda: send_if_all_accepted(
        server, ["info@example.test", "new@example.test"], message("<hup@t>")), timeout=30)
    assert len(bodies(server, "carol", 1)) == 1
    assert len(bodies(server, "alice", 1)) == 1
    # a broken file on reload is refused and the old one kept
    (server.root / "aliases").write_text("info: |/bin/sh\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "what=mailboxes status=failed" in server.log(), timeout=10)
    assert "aliases:1: '|/bin/sh'" in server.log()
    assert rcpt_reply(server, "new@example.test")[0] == 250


def test_the_domains_tls_policy_applies_to_its_next_hop(make_server, hop):
    """[route relay.test] security = encrypt: the next hop offers no
    STARTTLS, so nothing is sent in cleartext; the mail stays queued."""
    server = make_server(extra_sections=route_sections(hop) + "security = encrypt\n")
    send(server, SENDER, ["anyone@relay.test"], message("<tls@t>", to="anyone@relay.test"))
    assert wait_until(lambda: "status=deferred" in server.log())
    assert "event=tls_policy destination=relay.test host=127.0.0.1 policy=encrypt" \
        in server.log()
    assert "does not offer STARTTLS" in server.log()
    assert hop.received() == []
    assert server.queue_files()

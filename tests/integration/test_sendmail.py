"""`sealpost sendmail` (issue 14, item 4): the Sendmail-compatible command
local programs use, through the maildrop folder the queue process picks
up (docs/SPOOL.md, docs/SECURITY.md).

Every server here keeps its spool and a copy of its config in a folder
of its own that other users can reach (mode 0711; pytest's tmp is 0700),
so the command also runs as `nobody`, through `setpriv`, the way a cron
job of an ordinary user would: the maildrop's permissions are really
used, and the uid recorded is the kernel's.
"""
import email.utils
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from smtpwire import wait_until
from test_outbound import PEER_ADDRS, World

BIN = os.environ.get("SEALPOST_BIN", "sealpost")
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
EX_USAGE, EX_DATAERR = 64, 65


class Local:
    """A started server whose spool and config copy others can reach."""

    def __init__(self, make_server, extra_sections="", start=True):
        self.pub = Path(tempfile.mkdtemp(prefix="sealpost-sendmail-"))
        os.chmod(self.pub, 0o711)
        self.server = make_server(start=start, extra_sections=extra_sections,
                                  settings={"spool": str(self.pub / "spool")})
        self.conf = self.pub / "sealpost.conf"
        shutil.copy(self.server.conf, self.conf)
        os.chmod(self.conf, 0o644)
        self.maildrop = self.pub / "spool" / "maildrop"
        self.rejected = self.pub / "spool" / "maildrop-rejected"

    def sendmail(self, *args, data=b"Subject: test\n\nHello.\n", user=None, argv0=None):
        cmd = [argv0 or BIN] + ([] if argv0 else ["sendmail"]) + ["-C", str(self.conf)]
        cmd += list(args)
        if user == "nobody":
            cmd = NOBODY + cmd
        return subprocess.run(cmd, input=data, capture_output=True, timeout=30)

    def wait_log(self, needle, timeout=20):
        return wait_until(lambda: needle in self.server.log(), timeout=timeout)

    def cleanup(self):
        shutil.rmtree(self.pub, ignore_errors=True)


@pytest.fixture
def local(make_server):
    made = []

    def factory(**kw):
        made.append(Local(make_server, **kw))
        return made[-1]

    yield factory
    for lc in made:
        lc.server.stop()
        lc.cleanup()


def delivered(srv, user, count=1):
    got = srv.wait_messages(user, count)
    assert len(got) >= count, srv.log()
    return [p.read_bytes() for p in got]


def test_t_delivers_locally_bcc_removed_and_still_delivered(local):
    lc = local()
    msg = (b"From: Alice <alice@example.test>\nTo: bob@example.test\n"
           b"Cc: \"Carol, C.\" <carol@example.test> (friend)\n"
           b"Bcc: alice@example.test\nSubject: cron\n\nreport\n")
    res = lc.sendmail("-t", "-oi", "-oem", "-odi", "-v", "-B8BITMIME", data=msg)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"" and res.stderr == b""
    for user in ("bob", "carol", "alice"):
        data = delivered(lc.server, user)[0]
        assert b"Bcc:" not in data and b"Subject: cron\r\nreport" not in data
        assert b"Subject: cron\r\n\r\nreport\r\n" in data
        assert data.count(b"From: Alice <alice@example.test>") == 1
    assert "event=pickup " in lc.server.log() and " rcpts=3 " in lc.server.log()
    assert os.listdir(lc.maildrop) == []


def test_recipients_as_arguments_sender_and_fullname(local):
    lc = local()
    res = lc.sendmail("-f", "robot@example.test", "-F", "Build \"Bot\"",
                      "bob@example.test, carol@example.test", "alice",
                      data=b"Subject: args\n\nHello.\n")
    assert res.returncode == 0, res.stderr
    data = delivered(lc.server, "alice")[0]        # a bare name: the first [domain]
    assert data.startswith(b"Return-Path: <robot@example.test>\r\n")
    assert b'From: "Build \\"Bot\\"" <robot@example.test>\r\n' in data
    delivered(lc.server, "bob")
    delivered(lc.server, "carol")
    # -t adds the header's recipients to the arguments' (Postfix's choice)
    res = lc.sendmail("-t", "bob@example.test", data=b"To: carol@example.test\n\nx\n")
    assert res.returncode == 0, res.stderr
    delivered(lc.server, "bob", 2)
    delivered(lc.server, "carol", 2)


def test_body_without_header_gets_an_empty_line(local):
    lc = local()
    assert lc.sendmail("bob@example.test", data=b"just a line\n").returncode == 0
    data = delivered(lc.server, "bob")[0]
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b"just a line\r\n", data
    assert b'\r\nFrom: "root" <root@example.test>\r\n' in head + b"\r\n", data


def header_fields(data, name):
    """The values of the named field in the message's header section."""
    head = data.partition(b"\r\n\r\n")[0].decode()
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    return [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


def test_date_and_message_id_added_when_missing_kept_when_present(local):
    """RFC 6409 8.3: a message from a local program without Date or
    Message-ID gets them; one that has them keeps exactly its own."""
    lc = local()
    assert lc.sendmail("bob@example.test", data=b"Subject: bare\n\nx\n").returncode == 0
    data = delivered(lc.server, "bob")[0]
    dates, ids = header_fields(data, "Date"), header_fields(data, "Message-ID")
    assert len(dates) == 1 and len(ids) == 1, data
    assert email.utils.parsedate_to_datetime(dates[0]) is not None
    assert re.fullmatch(r"<[A-Za-z0-9._-]+@[A-Za-z0-9.-]+>", ids[0]), ids
    own = (b"Date: Mon, 1 Dec 2025 10:00:00 +0000\nMessage-ID: <own@example.test>\n"
           b"Subject: own\n\nx\n")
    assert lc.sendmail("carol@example.test", data=own).returncode == 0
    data = delivered(lc.server, "carol")[0]
    assert header_fields(data, "Date") == ["Mon, 1 Dec 2025 10:00:00 +0000"]
    assert header_fields(data, "Message-ID") == ["<own@example.test>"]
    # two submissions never share an id
    assert lc.sendmail("bob@example.test", data=b"Subject: again\n\nx\n").returncode == 0
    second = delivered(lc.server, "bob", 2)
    got = {header_fields(d, "Message-ID")[0] for d in second}
    assert len(got) == 2


def test_null_sender(local):
    lc = local()
    for null in ("", "<>"):
        res = lc.sendmail("-f", null, "bob@example.test")
        assert res.returncode == 0, res.stderr
    for data in delivered(lc.server, "bob", 2):
        assert data.startswith(b"Return-Path: <>\r\n")
    assert lc.server.log().count("sender=<>") == 2


def test_lone_dot_ends_the_message_unless_i(local):
    lc = local()
    body = b"Subject: dots\n\nline one\n.\nline three\n..\n"
    assert lc.sendmail("bob@example.test", data=body).returncode == 0
    first = delivered(lc.server, "bob")[0]
    assert first.endswith(b"\r\n\r\nline one\r\n")
    assert lc.sendmail("-i", "carol@example.test", data=body).returncode == 0
    second = delivered(lc.server, "carol")[0]
    assert second.endswith(b"line one\r\n.\r\nline three\r\n..\r\n")


def test_as_an_ordinary_user_the_uid_is_recorded(local):
    lc = local()
    mode = os.stat(lc.maildrop).st_mode & 0o7777
    assert mode == 0o1733 and os.stat(lc.pub / "spool").st_mode & 0o777 == 0o711
    res = lc.sendmail("-t", user="nobody", data=b"To: bob@example.test\nSubject: n\n\nhi\n")
    assert res.returncode == 0, res.stderr
    data = delivered(lc.server, "bob")[0]
    assert b"(sealpost sendmail, from userid 65534 (nobody))" in data
    assert data.startswith(b"Return-Path: <nobody@example.test>\r\n")
    assert b"From: \"nobody\" <nobody@example.test>\r\n" in data
    assert "uid=65534 user=nobody sender=nobody@example.test" in lc.server.log()
    # nobody can write into the maildrop but not list it
    ls = subprocess.run(NOBODY + ["ls", str(lc.maildrop)], capture_output=True)
    assert ls.returncode != 0


def test_binary_named_sendmail(local, tmp_path):
    lc = local()
    link = lc.pub / "sendmail"
    link.symlink_to(os.path.abspath(BIN))
    res = lc.sendmail("bob@example.test", argv0=str(link))
    assert res.returncode == 0, res.stderr
    delivered(lc.server, "bob")


def test_exit_codes(local):
    lc = local()
    res = lc.sendmail(data=b"To: bob@example.test\n\nno -t, no arguments\n")
    assert res.returncode == EX_DATAERR and b"no recipients" in res.stderr
    res = lc.sendmail("-t", data=b"Subject: nobody to send to\n\nx\n")
    assert res.returncode == EX_DATAERR
    res = lc.sendmail("bad address@@example.test")
    assert res.returncode == EX_DATAERR and b"bad address list" in res.stderr
    res = lc.sendmail("bob@@example.test")
    assert res.returncode == EX_DATAERR and b"bad address list" in res.stderr
    # never read as another address: words before an angle address, a
    # line break and a "group name" with specials are refused, not guessed
    for arg in ("bob smith@example.test", "bob@example.test\r\nRCPT TO:<carol@example.test>",
                "bob@example.test RCPT TO:<carol@example.test>"):
        res = lc.sendmail(arg)
        assert res.returncode == EX_DATAERR and b"bad address list" in res.stderr, arg
    res = lc.sendmail("-f", "not an address@", "bob@example.test")
    assert res.returncode == EX_DATAERR and b"bad sender address" in res.stderr
    res = lc.sendmail("-Z", "bob@example.test")
    assert res.returncode == EX_USAGE and b"usage:" in res.stderr
    res = lc.sendmail("-bs")
    assert res.returncode == EX_USAGE
    res = lc.sendmail("-f")
    assert res.returncode == EX_USAGE
    res = subprocess.run([BIN, "sendmail", "-C", str(lc.pub / "missing.conf"), "b@x.test"],
                         input=b"x\n", capture_output=True)
    assert res.returncode == 66         # EX_NOINPUT
    res = lc.sendmail("bob@example.test", data=b"Subject: long\n\n" + b"x" * 1200 + b"\n")
    assert res.returncode == EX_DATAERR and b"line too long" in res.stderr
    res = lc.sendmail("bob@example.test", data=b"x" * (1024 * 1024 + 1))
    assert res.returncode == EX_DATAERR and b"too large" in res.stderr
    # nothing of the refused ones reached the maildrop or a mailbox
    assert os.listdir(lc.maildrop) == []
    assert lc.server.messages("bob") == []


def test_accepted_while_stopped_delivered_after_start(local):
    lc = local()
    lc.server.stop()
    res = lc.sendmail("bob@example.test", user="nobody",
                      data=b"Subject: while down\n\nqueued\n")
    assert res.returncode == 0, res.stderr
    assert len(os.listdir(lc.maildrop)) == 1
    assert lc.server.messages("bob") == []
    lc.server.start()
    data = delivered(lc.server, "bob")[0]
    assert b"Subject: while down" in data and b"from userid 65534" in data
    assert wait_until(lambda: os.listdir(lc.maildrop) == [])


def test_hostile_maildrop_files_are_moved_aside(local):
    lc = local()
    lc.server.stop()
    md = lc.maildrop
    secret = lc.pub / "secret"
    secret.write_text("root's secret\n")
    (md / "link").symlink_to(secret)
    os.mkfifo(md / "fifo")
    os.link(secret, md / "hardlink")
    (md / "garbage").write_bytes(b"\x00\xffnot a maildrop file\n")
    good_head = (b"sealpost-maildrop 1\nfrom \nbody 7bit\nsize %d\n"
                 b"rcpt bob@example.test\n\n")
    body = b"Subject: forged\r\n\r\nx\r\n"
    (md / "wrongsize").write_bytes(good_head % (len(body) + 5) + body)
    (md / "bare-lf").write_bytes(good_head % 5 + b"a\nb\n\n")
    with open(md / "huge", "wb") as f:
        f.truncate(2 * 1024 * 1024)
    (md / ".tmp.unfinished").write_bytes(b"half")
    (md / ".tmp.abandoned").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    os.utime(md / ".tmp.abandoned", (two_days_ago, two_days_ago))
    lc.server.start()
    # the queue keeps working: a real message after the bad ones
    assert lc.sendmail("bob@example.test").returncode == 0
    delivered(lc.server, "bob")
    names = ("link", "fifo", "hardlink", "garbage", "wrongsize", "bare-lf", "huge",
             ".tmp.abandoned")
    assert wait_until(lambda: sorted(p.split(".", 1)[1] for p in os.listdir(lc.rejected))
                      == sorted(names)), (os.listdir(lc.rejected), lc.server.log())
    assert os.listdir(md) == [".tmp.unfinished"]   # not stale yet
    log = lc.server.log()
    for reason in ("a symbolic link", "not a regular file", "a hard link",
                   "not a sealpost maildrop file", "too large", "LF without CR",
                   "unfinished temporary file, abandoned"):
        assert reason in log, reason
    assert log.count("event=pickup_rejected") == len(names)
    assert secret.read_text() == "root's secret\n"      # never followed or changed
    assert len(lc.server.messages("bob")) == 1
    assert lc.server.proc.poll() is None


def test_sendmail_t_delivers_to_a_remote_domain(dns_world, make_server, tmp_path):
    w = World(dns_world, make_server, tmp_path)
    try:
        w.mx("remote.test", (10, "mx.remote.test", PEER_ADDRS[0]))
        peer = w.peer(PEER_ADDRS[0])
        w.dns.start()
        conf = w.dns.write_unbound_conf(tmp_path / "sealpost-unbound.conf", trust_anchor=True)
        lc = Local(make_server, extra_sections=f"""
[relay]
smtp_port = {w.port}
unbound_config = {conf}
retry = 1s
dns_timeout = 3s
connect_timeout = 2s
smtp_timeout = 10s
""")
        try:
            res = lc.sendmail("-t", user="nobody",
                              data=b"To: Rem <rem@remote.test>\nBcc: bob@example.test\n"
                                   b"Subject: out\n\nto the world\n")
            assert res.returncode == 0, res.stderr
            got = peer.wait_messages(1)
            assert got and got[0]["rcpts"] == ["rem@remote.test"], lc.server.log()
            assert got[0]["from"] == "nobody@example.test"
            assert b"Bcc:" not in got[0]["data"]
            assert b"from userid 65534 (nobody)" in got[0]["data"]
            assert b"Bcc:" not in delivered(lc.server, "bob")[0]
        finally:
            lc.server.stop()
            lc.cleanup()
    finally:
        w.stop()


def test_recipients_meet_the_same_policy_as_over_smtp(local):
    """A local user's message is checked like an SMTP client's RCPT: an
    address of a local domain with no mailbox is bounced to the sender
    (5.1.1) instead of getting a Maildir of its own, an alias delivers to
    its targets, and the known recipients get the message once."""
    lc = local(start=False)
    srv = lc.server
    (srv.root / "aliases").write_text("team: alice, carol\n")
    text = srv.conf.read_text().replace(
        "[domain example.test]\nmailboxes = users\n",
        "[domain example.test]\nmailboxes = users\naliases = " + str(srv.root / "aliases") + "\n",
        1)
    srv.conf.write_text(text)
    shutil.copy(srv.conf, lc.conf)
    srv.start()
    res = lc.sendmail("-f", "bob@example.test", "team@example.test", "nosuchuser@example.test",
                      data=b"Subject: policy\n\nHello.\n")
    assert res.returncode == 0, res.stderr
    assert b"Subject: policy" in delivered(srv, "alice")[0]
    assert b"Subject: policy" in delivered(srv, "carol")[0]
    assert lc.wait_log("event=pickup_refused"), srv.log()
    line = [ln for ln in srv.log().splitlines() if "event=pickup_refused" in ln][0]
    assert "rcpt=nosuchuser@example.test" in line and "dsn=5.1.1" in line, line
    dsn = delivered(srv, "bob")[0]                  # the bounce to the sender
    assert b"Status: 5.1.1" in dsn and b"nosuchuser@example.test" in dsn, dsn
    assert srv.maildir("alice").exists()
    assert not srv.maildir("nosuchuser").exists() and not srv.maildir("team").exists()
    # nobody known: nothing queued, only the bounce
    res = lc.sendmail("-f", "bob@example.test", "ghost@example.test")
    assert res.returncode == 0, res.stderr
    assert len(delivered(srv, "bob", 2)) == 2
    assert os.listdir(lc.maildrop) == []

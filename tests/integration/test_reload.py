"""Every role runs the config and the files the master loaded, not what
is on disk now: the master executes each role afresh and hands it the
config bytes it read and the last set of mailbox lists (and certificates,
test_tls_server.py) that loaded. A SIGHUP that loads gives the new workers
the new lists; one that fails keeps the old ones, also for workers started
after it; a config file edited after the start changes nothing until the
server is restarted."""
import signal
import smtplib
import time

from roles import restart_workers

TIMEOUT = 20


def wait_log(srv, needle, count=1):
    deadline = time.monotonic() + TIMEOUT
    while srv.log().count(needle) < count:
        assert time.monotonic() < deadline, f"log lacks {needle!r}:\n{srv.log()}"
        time.sleep(0.02)
    return srv.log()


def rcpt(srv, address):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
        c.ehlo("client.test")
        assert c.mail("sender@example.net")[0] == 250
        return c.rcpt(address)[0]


def test_mailbox_reload_and_a_failed_one_keeps_the_last_good(server):
    users = server.root / "users"
    assert rcpt(server, "dave@example.test") == 550
    users.write_text("alice\nbob\ncarol\ndave\n")
    server.proc.send_signal(signal.SIGHUP)
    wait_log(server, "event=reload what=mailboxes status=ok")
    # the old workers stop accepting on their own signal: poll briefly
    deadline = time.monotonic() + TIMEOUT
    while rcpt(server, "dave@example.test") != 250:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    users.unlink()
    server.proc.send_signal(signal.SIGHUP)
    log = wait_log(server, "event=reload what=mailboxes status=failed keeping=old")
    assert f'error="{users}: No such file or directory"' in log, log
    restart_workers(server)
    for _ in range(4):
        assert rcpt(server, "dave@example.test") == 250
        assert rcpt(server, "erin@example.test") == 550


def test_restarted_worker_runs_the_config_the_master_read(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as c:
        assert b"mx.example.test" in c.ehlo("client.test")[1]
    text = server.conf.read_text()
    server.conf.write_text(text.replace("hostname = mx.example.test",
                                        "hostname = edited.example.test"))
    (server.root / "users").write_text("nobody\n")
    restart_workers(server)
    for _ in range(4):
        with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as c:
            code, text = c.ehlo("client.test")
            assert code == 250 and text.startswith(b"mx.example.test"), text
            assert c.mail("sender@example.net")[0] == 250
            assert c.rcpt("alice@example.test")[0] == 250

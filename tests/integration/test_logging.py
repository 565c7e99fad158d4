"""[server] log = syslog | FILE (issue 13): every process's lines reach
the target, in the same key=value format; syslog gets the facility mail
and the severity of each line; a log file is reopened on SIGHUP, so that
logrotate can rename it."""
import os
import re
import signal
import socket
import threading

from smtpwire import RawSMTP, wait_until


def test_log_to_syslog_socket(make_server, tmp_path):
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    got = []
    done = threading.Event()

    def reader():                           # a syslog daemon reads all the time
        while not done.is_set():
            try:
                got.append(sock.recv(8192).decode("utf-8", "replace"))
            except socket.timeout:
                pass

    thread = threading.Thread(target=reader)
    thread.start()
    server = make_server(start=False, settings={"log": "syslog", "syslog_socket": path,
                                                "workers": "1"})
    try:
        server.start()
        with RawSMTP(server.port) as c:
            c.ehlo("syslog.test")

        def roles():
            return {m for d in list(got) for m in re.findall(r"event=sandbox role=(\w+)", d)}
        # every process's lines arrive, the session's included
        assert wait_until(lambda: roles() >= {"queue", "smtpd", "delivery"} and
                          sum("event=disconnect" in d for d in list(got)) >= 2, 10), \
            "\n".join(got)
        for d in got:
            # <PRI>Mmm dd hh:mm:ss sealpost[PID]: level=... ; facility mail (2)
            m = re.match(r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d sealpost\[\d+\]: "
                         r"level=(debug|info|warn|error) ", d)
            assert m, d
            pri, level = int(m.group(1)), m.group(2)
            assert pri // 8 == 2, d
            assert pri % 8 == {"debug": 7, "info": 6, "warn": 4, "error": 3}[level], d
        # nothing went to stderr meanwhile
        assert "event=disconnect" not in server.log()
        assert server.stop() == 0
        assert wait_until(lambda: any(re.search(r"level=info event=stop$", d.strip())
                                      for d in got), 10)
    finally:
        server.stop()
        done.set()
        thread.join()
        sock.close()


def test_log_file_is_reopened_on_sighup(make_server, tmp_path):
    log = tmp_path / "sealpost.log.file"
    server = make_server(settings={"log": str(log), "workers": "1"})
    # The readiness probe's session (no command) is logged too; wait for
    # this session's own disconnect, the last line it causes, so that none
    # of its lines is still on its way when the file is rotated.
    session_done = re.compile(r"event=disconnect .* commands=[1-9]")
    with RawSMTP(server.port) as c:
        c.ehlo("before.test")
    assert wait_until(lambda: log.exists() and session_done.search(log.read_text()), 10)
    text = log.read_text()
    assert re.search(r"sealpost\[\d+\]: level=\w+ event=sandbox role=smtpd", text), text
    assert (log.stat().st_mode & 0o777) == 0o640
    rotated = tmp_path / "sealpost.log.file.1"
    os.rename(log, rotated)
    connects_before = rotated.read_text().count("event=connect")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: log.exists() and "event=reload" in log.read_text(), 10)
    with RawSMTP(server.port) as c:
        c.ehlo("after.test")
    assert wait_until(lambda: session_done.search(log.read_text()), 10)
    # the new session's lines went to the new file, none to the rotated one
    before = rotated.read_text()
    after = log.read_text()
    assert after.count("event=connect") == 1
    assert before.count("event=connect") == connects_before
    assert server.stop() == 0
    assert "event=stop" in log.read_text()
    assert "level=" not in server.log()          # the terminal got nothing

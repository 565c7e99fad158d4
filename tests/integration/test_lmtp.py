

class HostileLMTP:
    """A stdlib LMTP peer on a unix socket that follows the protocol up to
    the end of the data and then misbehaves: `after_data` is what it sends
    then (and it keeps the connection open, silent, afterwards)."""

    def __init__(self, after_data):
        import socket
        import tempfile
        import threading
        self.dir = Path(tempfile.mkdtemp(prefix="lm", dir="/tmp"))
        self.path = self.dir / "lmtp"
        self.after_data = after_data
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(self.path))
        self.sock.listen(8)
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                self._session(c.makefile("rwb"))
            except OSError:
                pass

    def _session(self, f):
        def say(line):
            f.write(line + b"\r\n")
            f.flush()
        say(b"220 hostile LMTP")
        rcpts = 0
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"LHLO":
                say(b"250-hostile\r\n250 8BITMIME")
            elif verb == b"DATA":
                say(b"354 go")
                while f.readline() not in (b".\r\n", b""):
                    pass
                f.write(self.after_data)
                f.flush()
                return          # then silence: the connection stays open
            else:
                rcpts += verb == b"RCPT"
                say(b"250 ok")

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("after_data, why", [
    # one reply for two accepted recipients, then silence: a timeout
    (b"250 2.0.0 first saved\r\n", "did not answer within 2s"),
    # a reply line over 512 octets: refused by the bounded parser
    (b"250 2.0.0 first saved\r\n" + b"250 " + b"x" * 3000 + b"\r\n", "bad reply"),
    # not a reply at all
    (b"250 2.0.0 first saved\r\nhello there\r\n", "bad reply"),
])
def test_hostile_lmtp_server_defers_what_has_no_reply(make_server, after_data, why):
    peer = HostileLMTP(after_data)
    try:
        server = make_server(extra_sections=f"""
[domain lmtp.test]
deliver = lmtp:unix:{peer.path}
lmtp_timeout = 2s
""")
        send(server, ["a@lmtp.test", "b@lmtp.test"], make_message(to="a@lmtp.test"))
        assert wait_until(lambda: log_lines(server, "deferred", "b@lmtp.test")), server.log()
        line = log_lines(server, "deferred", "b@lmtp.test")[0]
        assert "dsn=4.4.2" in line and why in line, line
        delivered = log_lines(server, "delivered", "a@lmtp.test")
        assert len(delivered) == 1 and "first saved" in delivered[0], server.log()
        assert "event=child_died" not in server.log()
        assert "event=lmtp_connection_lost" in server.log()
    finally:
        peer.close()

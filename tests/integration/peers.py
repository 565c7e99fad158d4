"""Receiving SMTP peers for outbound tests: aiosmtpd (Debian's
python3-aiosmtpd) servers on loopback addresses, with scripted replies.

A Peer records every message it accepts (envelope sender, recipients,
bytes) and can be told to answer a recipient or the DATA with a given
reply, for the first N attempts or always.
"""
import asyncio
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP


class Script:
    """Replies keyed by recipient address ("*" for any); each entry is
    (reply, times) where times=None means forever."""

    def __init__(self):
        self.rcpt = {}
        self.data = []
        self.lock = threading.Lock()

    def rcpt_reply(self, address, reply, times=None):
        with self.lock:
            self.rcpt[address.lower()] = [reply, times]

    def data_reply(self, reply, times=None):
        with self.lock:
            self.data.append([reply, times])

    def _take(self, entry):
        reply, times = entry
        if times is None:
            return reply, True
        if times <= 0:
            return None, False
        entry[1] = times - 1
        return reply, True

    def for_rcpt(self, address):
        with self.lock:
            for key in (address.lower(), "*"):
                if key in self.rcpt:
                    reply, ok = self._take(self.rcpt[key])
                    if ok:
                        return reply
        return None

    def for_data(self):
        with self.lock:
            for entry in self.data:
                reply, ok = self._take(entry)
                if ok:
                    return reply
        return None


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.peer.lock:
            self.peer.rcpt_attempts[address.lower()] = \
                self.peer.rcpt_attempts.get(address.lower(), 0) + 1
        reply = self.peer.script.for_rcpt(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.peer.data_delay:
            await asyncio.sleep(self.peer.data_delay)
        reply = self.peer.script.for_data()
        if reply:
            return reply
        with self.peer.lock:
            self.peer.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content,
                "helo": session.host_name,
            })
        return "250 2.0.0 accepted"


class _Controller(Controller):
    def factory(self):
        return AioSMTP(self.handler, enable_SMTPUTF8=True, decode_data=False,
                       hostname=self.peer_name)


class Peer:
    def __init__(self, address, port, name="peer.test"):
        self.address = address
        self.port = port
        self.script = Script()
        self.messages = []
        self.rcpt_attempts = {}
        self.data_delay = 0.0           # seconds before the reply to the final dot
        self.lock = threading.Lock()
        self.controller = _Controller(_Handler(self), hostname=address, port=port)
        self.controller.peer_name = name

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass

    def attempts(self, address):
        with self.lock:
            return self.rcpt_attempts.get(address.lower(), 0)

    def received(self):
        with self.lock:
            return list(self.messages)

    def wait_messages(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received()) >= count:
                return self.received()
            time.sleep(0.05)
        return self.received()

"""A delivery status notification made by queue/bounce.c parses as an
RFC 6522 multipart/report with Python's email package: a text part, a
message/delivery-status part whose per-recipient blocks carry the right
Action and Status, and the returned message.

The report comes from the cmocka unit test (test_sample_for_python in
tests/unit/test_bounce.c), which writes one to $SEALPOST_DSN_SAMPLE: one
failed recipient (5.1.1) and one delayed (4.4.1), RET=FULL, an ENVID.
The binary is $BOUNCE_TEST_BIN (set by ctest), else build/tests/test_bounce.
"""
import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("BOUNCE_TEST_BIN") or str(
    Path(__file__).resolve().parents[2] / "build" / "tests" / "test_bounce")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    if not Path(BIN).exists():
        pytest.skip(f"{BIN} not built")
    sample = tmp_path_factory.mktemp("dsn") / "dsn.eml"
    env = dict(os.environ, SEALPOST_DSN_SAMPLE=str(sample))
    run = subprocess.run([BIN], env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout.decode() + run.stderr.decode()
    assert sample.exists(), "test_bounce wrote no sample"
    return sample.read_bytes()


@pytest.fixture(scope="module")
def msg(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_blocks(msg):
    """(per-message fields, [per-recipient fields]) of the report."""
    part = msg.get_payload()[1]
    assert part.get_content_type() == "message/delivery-status"
    blocks = part.get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2
    return blocks[0], blocks[1:]


def test_crlf_only(raw):
    assert b"\r\n" in raw
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_top_level(msg):
    assert not msg.defects
    assert msg.is_multipart()
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.test"
    assert msg["To"].addresses[0].addr_spec == "alice@sender.example"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime is not None
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@mx.example.test>")


def test_three_parts(msg):
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"]
    assert all(not p.defects for p in parts)
    text = parts[0].get_content()
    assert "This is the mail system at host mx.example.test." in text
    assert "bob@dest.example" in text and "carol@dest.example" in text


def test_per_message_fields(msg):
    per_message, _ = status_blocks(msg)
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "sample-envid-1"
    assert per_message["Arrival-Date"] == "Sun, 29 Nov 2026 16:11:33 +0000"


def test_per_recipient_fields(msg):
    _, rcpts = status_blocks(msg)
    by_rcpt = {str(b["Final-Recipient"]): b for b in rcpts}
    assert set(by_rcpt) == {"rfc822; bob@dest.example", "rfc822; carol@dest.example"}
    bob = by_rcpt["rfc822; bob@dest.example"]
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Original-Recipient"] == "rfc822;bob@dest.example"
    assert bob["Remote-MTA"] == "dns; mx.dest.example"
    assert str(bob["Diagnostic-Code"]).startswith("smtp; 550 5.1.1 <bob@dest.example>")
    assert "try again later" in str(bob["Diagnostic-Code"])
    carol = by_rcpt["rfc822; carol@dest.example"]
    assert carol["Action"] == "delayed"
    assert carol["Status"] == "4.4.1"
    assert carol["Original-Recipient"] is None


def test_returned_message(msg):
    returned = msg.get_payload()[2]
    inner = returned.get_payload()[0]
    assert inner["Subject"] == "quarterly figures"
    assert inner["Message-ID"] == "<orig-1@sender.example>"
    assert "the figures are attached." in inner.get_content()

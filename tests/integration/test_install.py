"""`make install` as an operator (or a package build) runs it: staged into
a DESTDIR, the example config it installs passes `sealpost check` with
the mailboxes list and the self-signed certificate installed beside it,
the systemd unit passes `systemd-analyze verify`, its capability set is
enough for a root master that starts the privilege-separated roles, the
man pages render without a warning and name every config key, and `make
uninstall` leaves only what it says it keeps.

Trusts the Makefile and the tools it calls (install, openssl), man(1),
groff and systemd-analyze from the system.
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, Server

SRC = Path(__file__).resolve().parents[2]
PREFIX = "/usr/local"
UNIT = "usr/local/lib/systemd/system/sealpost.service"
MAN8 = "usr/local/share/man/man8/sealpost.8"
MAN5 = "usr/local/share/man/man5/sealpost.conf.5"
USERS = ("sealpost", "sealpost-queue", "sealpost-delivery")


def make(target, destdir):
    """make TARGET DESTDIR=... with the build folder of the binary under
    test (so the ASan run installs the ASan binary, and nothing rebuilds)."""
    build = Path(BIN).resolve().parent
    return subprocess.run(["make", "-s", "--no-print-directory", target,
                           f"DESTDIR={destdir}", f"PREFIX={PREFIX}", f"BUILD={build}"],
                          cwd=SRC, capture_output=True, text=True, timeout=300)


def install_into(destdir, target="install-files"):
    r = make(target, destdir)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    d = tmp_path_factory.mktemp("destdir")
    r = install_into(d, "install")
    return d, r.stdout + r.stderr


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if not p.is_dir())


def test_install_stages_everything_and_creates_no_user(staged):
    d, out = staged
    assert "DESTDIR is set: not creating the users" in out
    assert "generated a self-signed certificate" in out
    assert files_under(d) == sorted([
        "etc/sealpost/example.org.users", "etc/sealpost/sealpost.conf",
        "etc/sealpost/tls/cert.pem", "etc/sealpost/tls/key.pem",
        MAN5, MAN8, "usr/local/sbin/sealpost", "usr/local/sbin/sendmail", UNIT])
    assert (d / "etc/sealpost/tls/key.pem").stat().st_mode & 0o777 == 0o600
    assert (d / "usr/local/sbin/sealpost").stat().st_mode & 0o777 == 0o755
    assert (d / "var/spool/sealpost").stat().st_mode & 0o777 == 0o711
    assert os.readlink(d / "usr/local/sbin/sendmail") == "sealpost"


def test_installed_example_config_passes_check(staged):
    d, _ = staged
    conf = d / "etc/sealpost/sealpost.conf"
    r = subprocess.run([BIN, "check", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The relative paths resolve to the files installed beside the config.
    etc = (d / "etc/sealpost").resolve()
    assert f"mailboxes = {etc}/example.org.users" in r.stdout
    assert f"certificate = {etc}/tls/cert.pem" in r.stdout
    assert f"private_key = {etc}/tls/key.pem" in r.stdout


def test_installed_certificate_matches_its_key(staged):
    d, _ = staged
    tls = d / "etc/sealpost/tls"
    cert = subprocess.run(["openssl", "x509", "-in", tls / "cert.pem", "-noout", "-pubkey"],
                          capture_output=True, text=True, check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-in", tls / "key.pem", "-pubout"],
                         capture_output=True, text=True, check=True).stdout
    assert cert == key and "PUBLIC KEY" in cert


def test_second_install_keeps_config_and_certificate(staged, tmp_path):
    d = tmp_path / "dest"
    install_into(d)
    conf = d / "etc/sealpost/sealpost.conf"
    conf.write_text(conf.read_text() + "# edited\n")
    cert = (d / "etc/sealpost/tls/cert.pem").read_bytes()
    out = install_into(d).stdout
    assert conf.read_text().endswith("# edited\n")
    assert (d / "etc/sealpost/tls/cert.pem").read_bytes() == cert
    assert "keeping the existing" in out


def test_install_keeps_another_mtas_sendmail(tmp_path):
    d = tmp_path / "dest"
    sbin = d / "usr/local/sbin"
    sbin.mkdir(parents=True)
    (sbin / "sendmail").write_text("#!/bin/sh\n# another MTA\n")
    out = install_into(d).stdout
    assert (sbin / "sendmail").read_text() == "#!/bin/sh\n# another MTA\n"
    assert "keeping" in out and "sendmail" in out
    r = make("uninstall", d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (sbin / "sendmail").exists()


def unit_lines(path):
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_unit_has_the_sandbox_and_stop_settings(staged):
    d, _ = staged
    lines = unit_lines(d / UNIT)
    for want in ("Type=simple", "KillMode=control-group", "Restart=on-failure",
                 "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "ReadWritePaths=/var/spool/sealpost /var/mail",
                 "ExecStartPre=/usr/local/sbin/sealpost check -c /etc/sealpost/sealpost.conf",
                 "ExecStart=/usr/local/sbin/sealpost serve -c /etc/sealpost/sealpost.conf"):
        assert want in lines
    caps = [ln for ln in lines if ln.startswith("CapabilityBoundingSet=")]
    assert len(caps) == 1 and "CAP_SYS_ADMIN" not in caps[0]


def test_systemd_analyze_verify_passes(staged, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (package systemd, scripts/deps.sh)")
    d, _ = staged
    # verify checks that ExecStart's binary exists: point it at the staged
    # one; Documentation= is checked with man against the staged pages.
    unit = tmp_path / "sealpost.service"
    unit.write_text((d / UNIT).read_text().replace(
        f"{PREFIX}/sbin/sealpost", f"{d}{PREFIX}/sbin/sealpost"))
    env = dict(os.environ, MANPATH=f"{d}{PREFIX}/share/man")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stdout + r.stderr


@pytest.mark.parametrize("page", [MAN8, MAN5])
def test_man_pages_render_without_warnings(staged, page):
    d, _ = staged
    env = dict(os.environ, MANWIDTH="80")
    r = subprocess.run(["man", "-l", str(d / page)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "SEE ALSO" in r.stdout and "sealpost" in r.stdout
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", str(d / page)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def config_doc_keys():
    """{section heading: [keys]} from the tables of docs/CONFIGURATION.md."""
    sections, current = {}, None
    for line in (SRC / "docs/CONFIGURATION.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            current = heading if heading.startswith("[") else None
            if current:
                sections[current] = []
        m = re.match(r"\| `([a-z_0-9]+)` \|", line)
        if m and current:
            sections[current].append(m.group(1))
    return sections


def man_sections(text):
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith(".SH "):
            current = line[4:].strip().strip('"')
            out[current] = []
        elif current:
            out[current].append(line)
    return out


def test_conf_man_page_names_every_documented_key():
    doc = config_doc_keys()
    assert {"[server]", "[listener NAME]", "[domain NAME]", "[tls]", "[queue]",
            "[relay]"} <= set(doc)
    man = man_sections((SRC / "man/sealpost.conf.5").read_text())
    for section, keys in doc.items():
        assert section in man, f"sealpost.conf.5 has no section {section}"
        entries = {m.group(1) for ln in man[section]
                   if (m := re.match(r"\.B[IR]? ([a-z_0-9]+)\b", ln))}
        missing = [k for k in keys if k not in entries]
        assert not missing, f"sealpost.conf.5 {section} lacks {missing}"


class CappedServer(Server):
    """sealpost serve under exactly the unit's capability bounding set and
    no_new_privs, as systemd would start it."""

    def __init__(self, root, caps, **kw):
        super().__init__(root, **kw)
        self.caps = caps

    def start(self, wait=True):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", f"--bounding-set=-all,{self.caps}", "--inh-caps=-all",
             "--no-new-privs", BIN, "serve", "-c", str(self.conf)],
            stdout=self.log_file, stderr=self.log_file)
        if wait:
            self.wait_ready()
        return self


def ensure_users():
    for name in USERS:
        if subprocess.run(["id", name], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                           check=True)


def test_unit_capabilities_suffice_for_privsep(staged):
    """Start, deliver, stop, and start again (the spool now belongs to the
    queue user, mode 0700): each capability the unit keeps is used."""
    if os.geteuid() != 0:
        pytest.skip("starting the privilege-separated roles needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed (package util-linux)")
    d, _ = staged
    line = next(ln for ln in unit_lines(d / UNIT) if ln.startswith("CapabilityBoundingSet="))
    caps = ",".join("+" + c.lower()[len("cap_"):] for c in line.split("=", 1)[1].split())
    ensure_users()
    root = Path(tempfile.mkdtemp(prefix="sealpost-caps-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", "sealpost-queue")
    settings = {"user": "sealpost", "queue_user": "sealpost-queue",
                "delivery_user": "sealpost-delivery", "workers": "1"}
    srv = None
    try:
        for n in (1, 2):
            srv = CappedServer(root, caps, settings=settings).start()
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
                c.sendmail("x@example.net", ["alice@example.test"],
                           f"Subject: caps {n}\r\n\r\nhi\r\n".encode())
            assert len(srv.wait_messages("alice", n)) == n, srv.log()
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(20) == 0, srv.log()
            srv.log_file.close()
            # (a config without a DNSSEC trust anchor says so, as an error)
            errors = [ln for ln in srv.log().splitlines()
                      if "level=error" in ln and "event=dns_config" not in ln]
            assert errors == [], srv.log()
    finally:
        if srv and srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_uninstall_leaves_only_spool_and_changed_files(tmp_path):
    d = tmp_path / "dest"
    install_into(d)
    r = make("uninstall", d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert files_under(d) == []
    assert (d / "var/spool/sealpost").is_dir()
    assert not (d / "etc/sealpost").exists()
    assert "keeping" in r.stdout and "var/spool/sealpost" in r.stdout


def test_uninstall_keeps_an_edited_config_and_a_real_certificate(tmp_path):
    d = tmp_path / "dest"
    install_into(d)
    conf = d / "etc/sealpost/sealpost.conf"
    conf.write_text(conf.read_text().replace("mx.example.org", "mx.mine.example"))
    tls = d / "etc/sealpost/tls"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", tls / "key.pem",
                    "-out", tls / "cert.pem", "-days", "2", "-subj", "/CN=mx.mine.example"],
                   check=True, capture_output=True)
    r = make("uninstall", d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert files_under(d) == ["etc/sealpost/sealpost.conf", "etc/sealpost/tls/cert.pem",
                              "etc/sealpost/tls/key.pem"]
    assert f"keeping {d}/etc/sealpost/sealpost.conf" in r.stdout

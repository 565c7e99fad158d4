"""A DNSSEC-signed DNS world on loopback for sealpost's tests.

DNSWorld builds, in a temporary directory, the zones described in
/work/shared/TESTING.md, signs them with ldns-keygen/ldns-signzone and
serves them all from one `nsd -d` process:

    test.           signed parent; DS for example.test, other.test, bogus.test
    example.test    signed
    other.test      signed
    insecure.test   unsigned, no DS              -> validates as insecure
    bogus.test      unsigned, but a DS in test.  -> validates as bogus

Any name outside test. (REFUSED_DOMAIN, say) is answered REFUSED by nsd,
which a forwarding resolver turns into SERVFAIL: a fast temporary failure.
tamper() changes a record of a signed zone after signing: another bogus.

A test adds records before start() (add / tamper), then points sealpost
(or tests/tools/dns_lookup) at the world:

    world.address, world.port   where nsd listens
    world.forwarder             "IP@PORT", for dns_config.resolver
    world.trust_anchor          file with the DS of test.
    world.unbound_conf          libunbound config: local-zone "test."
                                nodefault, trust-anchor-file and a
                                forward-zone "." to nsd (nothing leaves
                                the machine)

Only the standard library is used; readiness is checked with a real DNS
query (SOA test.), never a fixed sleep, and stop() kills exactly the nsd
pid this object started.
"""
import os
import random
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

ZONES_SIGNED = ("example.test", "other.test")
ZONE_INSECURE = "insecure.test"
ZONE_BOGUS = "bogus.test"
REFUSED_DOMAIN = "refused.example"   # nsd is not authoritative: REFUSED
ALL_ZONES = ("test",) + ZONES_SIGNED + (ZONE_INSECURE, ZONE_BOGUS)

RR_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
            "AAAA": 28, "DS": 43, "DNSKEY": 48, "TLSA": 52}


def _fqdn(name):
    return name if name.endswith(".") else name + "."


def _bare(name):
    return name.rstrip(".").lower()


def _port_free(address, port):
    """True if both UDP and TCP can bind address:port right now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def _free_udp_tcp_port(address):
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
        if _port_free(address, port):
            return port
    raise RuntimeError("no free port on " + address)


def dns_query(address, port, name, rrtype, timeout=0.5):
    """Send one non-recursive query over UDP; returns (rcode, aa, ancount,
    raw reply) or None on timeout. Enough to poll nsd for readiness."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(lab)]) + lab.encode("ascii")
                     for lab in _bare(name).split(".") if lab) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack(
        "!HH", RR_TYPES.get(rrtype, rrtype) if isinstance(rrtype, str) else rrtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (address, port))
            while True:
                reply, _ = s.recvfrom(65535)
                if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid:
                    break
        except (socket.timeout, ConnectionRefusedError):
            return None
    flags, _qd, ancount = struct.unpack("!HHH", reply[2:8])
    return flags & 0xF, bool(flags & 0x0400), ancount, reply


def _run(args, cwd):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {res.stderr}{res.stdout}")
    return res.stdout


class DNSWorld:
    """See the module docstring. Usable as a context manager."""

    def __init__(self, root, address=None, port=None):
        """address/port: where nsd listens. By default 127.0.0.53:53 as root
        (another loopback address 127.0.53.N:53 if that is taken), else a
        free high port on 127.0.0.1. A default choice is also retried
        with another address if nsd cannot bind at start(), so read
        address, port and forwarder after start()."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._auto_address = address is None and port is None
        if address is None:
            address = "127.0.0.53" if os.geteuid() == 0 else "127.0.0.1"
        if port is None:
            port = 53 if os.geteuid() == 0 else _free_udp_tcp_port(address)
        self.address = address
        self.port = port
        if self._auto_address and not _port_free(address, port):
            self._pick_other_address()
        self.trust_anchor = self.root / "test.ta"
        self.unbound_conf = self.root / "unbound.conf"
        self.nsd_conf = self.root / "nsd.conf"
        self.log_path = self.root / "nsd.log"
        # A random serial: readiness polling can tell our nsd from another.
        self.serial = random.randrange(1, 2**31)
        self.records = {z: [] for z in ALL_ZONES}
        self.tampered = []          # (owner, type, new rdata) applied after signing
        self.keys = {}
        self.proc = None
        self._log_file = None

    @property
    def forwarder(self):
        """ "IP@PORT" of nsd, for dns_config.resolver / forward-addr."""
        return f"{self.address}@{self.port}"

    def _pick_other_address(self):
        for _ in range(50):
            if os.geteuid() == 0:
                address, port = f"127.0.53.{random.randrange(1, 255)}", 53
            else:
                address, port = "127.0.0.1", _free_udp_tcp_port("127.0.0.1")
            if _port_free(address, port):
                self.address, self.port = address, port
                return
        raise RuntimeError("no free loopback address/port for nsd")

    # -- building -------------------------------------------------------
    def zone_of(self, name):
        """The served zone holding name (longest suffix match)."""
        name = _bare(name)
        best = None
        for zone in ALL_ZONES:
            if name == zone or name.endswith("." + zone):
                if best is None or len(zone) > len(best):
                    best = zone
        if best is None:
            raise ValueError(f"{name} is not inside the test world")
        return best

    def add(self, name, rrtype, rdata, ttl=300):
        """Add one record, e.g. add("example.test", "MX", "10 mx1.example.test.").
        Names are absolute (a trailing dot is optional); rdata is in zone
        file syntax, so names inside it should end with a dot."""
        rrtype = rrtype.upper()
        zone = self.zone_of(name)
        self.records[zone].append(f"{_fqdn(name)}\t{ttl}\tIN\t{rrtype}\t{rdata}")
        return self

    def add_zone_text(self, text):
        """Add zone-file text verbatim (records and `;` comments, as an
        operator would paste it): each record line goes into the served
        zone of its owner name (absolute, first field), with the comment
        lines just before it. Records without a TTL get the zone's $TTL."""
        pending = []
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith(";"):
                pending.append(line)
                continue
            self.records[self.zone_of(line.split()[0])].extend(pending + [line])
            pending = []
        return self

    def tamper(self, name, rrtype, old_rdata, new_rdata, ttl=300):
        """Add a record to a signed zone and change it after signing: its
        RRSIG no longer matches, so a validating resolver calls it bogus."""
        self.add(name, rrtype, old_rdata, ttl)
        self.tampered.append((_fqdn(name).lower(), rrtype.upper(), new_rdata))
        return self

    def _zone_text(self, zone):
        origin = _fqdn(zone)
        lines = [f"$ORIGIN {origin}", "$TTL 300",
                 f"@\tIN\tSOA\tns.test. hostmaster.test. {self.serial} 3600 600 86400 60",
                 "@\tIN\tNS\tns.test."]
        if zone == "test":
            lines.append(f"ns\tIN\tA\t{self.address}")
            for child in ZONES_SIGNED + (ZONE_INSECURE, ZONE_BOGUS):
                lines.append(f"{_fqdn(child)}\tIN\tNS\tns.test.")
            for child in ZONES_SIGNED + (ZONE_BOGUS,):
                lines.append((self.root / f"{self.keys[child]}.ds").read_text().strip())
        lines.extend(self.records[zone])
        return "\n".join(lines) + "\n"

    def _keygen(self, zone):
        base = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], self.root).strip()
        self.keys[zone] = base

    def _sign(self, zone):
        now = int(time.time())
        _run(["ldns-signzone", "-i", str(now - 3600), "-e", str(now + 30 * 86400),
              "-o", _fqdn(zone), "-f", f"{zone}.signed", f"{zone}.zone",
              self.keys[zone]], self.root)

    def _apply_tampering(self, zone):
        path = self.root / f"{zone}.signed"
        out = []
        for line in path.read_text().splitlines():
            fields = line.split()
            for owner, rrtype, new in self.tampered:
                if (len(fields) >= 5 and fields[0].lower() == owner
                        and fields[3].upper() == rrtype and self.zone_of(owner) == zone):
                    line = "\t".join(fields[:4] + [new])
            out.append(line)
        path.write_text("\n".join(out) + "\n")

    def build(self):
        """Generate keys, zone files, signatures and configuration files."""
        for zone in ZONES_SIGNED + (ZONE_BOGUS, "test"):
            if zone not in self.keys:
                self._keygen(zone)
        for zone in ALL_ZONES:
            (self.root / f"{zone}.zone").write_text(self._zone_text(zone))
        # Children first (their DS files already exist), then the parent.
        for zone in ZONES_SIGNED + ("test",):
            self._sign(zone)
            if self.tampered:
                self._apply_tampering(zone)
        for zone in (ZONE_INSECURE, ZONE_BOGUS):   # served unsigned
            (self.root / f"{zone}.signed").write_text(
                (self.root / f"{zone}.zone").read_text())
        self.trust_anchor.write_text(
            (self.root / f"{self.keys['test']}.ds").read_text())
        self._write_nsd_conf()
        self.write_unbound_conf(self.unbound_conf)
        return self

    def _write_nsd_conf(self):
        zones = "".join(f"zone:\n    name: \"{_fqdn(z)}\"\n    zonefile: \"{z}.signed\"\n"
                        for z in ALL_ZONES)
        self.nsd_conf.write_text(f"""server:
    ip-address: {self.address}@{self.port}
    do-ip6: no
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{self.root}"
    zonelistfile: "{self.root}/zone.list"
    xfrdfile: "{self.root}/xfrd.state"
    pidfile: "{self.root}/nsd.pid"
    logfile: "{self.log_path}"
    server-count: 1
    reuseport: no
    verbosity: 1
    hide-version: yes
    minimal-responses: no
remote-control:
    control-enable: no
{zones}""")

    def write_unbound_conf(self, path, trust_anchor=True, forward=True, extra=""):
        """A libunbound config file for sealpost. local-zone "test." nodefault
        lifts unbound's built-in NXDOMAIN for test. (through the API that
        value is silently ignored, so it must come from a file)."""
        text = 'server:\n    local-zone: "test." nodefault\n'
        if trust_anchor:
            text += f'    trust-anchor-file: "{self.trust_anchor}"\n'
        text += extra
        if forward:
            text += f'forward-zone:\n    name: "."\n    forward-addr: {self.forwarder}\n'
        Path(path).write_text(text)
        return Path(path)

    # -- running --------------------------------------------------------
    def start(self, timeout=5):
        for attempt in range(5):
            self.build()
            for name in ("nsd.stderr", "nsd.log"):
                (self.root / name).unlink(missing_ok=True)
            self._log_file = open(self.root / "nsd.stderr", "ab")
            self.proc = subprocess.Popen(["nsd", "-d", "-c", str(self.nsd_conf)],
                                         cwd=self.root, stdout=self._log_file,
                                         stderr=self._log_file)
            try:
                self.wait_serial(self.serial, timeout)
                break
            except RuntimeError:
                self.stop()
                # Lost a race for the address (another world, another run)?
                if (self._auto_address and attempt < 4
                        and "already in use" in self.log()):
                    self._pick_other_address()
                    continue
                raise
        self._check_zones_loaded()
        return self

    def _check_zones_loaded(self):
        """nsd serves the zones it could read and only logs the others:
        a broken test record must fail loudly, not as a missing zone."""
        errors = [line for line in self.log().splitlines() if " error: " in line]
        if errors:
            self.stop()
            raise RuntimeError("nsd could not load the zones:\n" + "\n".join(errors))

    def soa_serial(self):
        """The serial nsd currently serves for test., or None."""
        res = dns_query(self.address, self.port, "test", "SOA", timeout=0.2)
        if res is None or res[0] != 0 or res[2] < 1:
            return None
        return _soa_serial(res[3])

    def wait_serial(self, serial, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + self.log())
            if self.soa_serial() == serial:
                return
            time.sleep(0.02)
        raise TimeoutError(f"nsd did not serve serial {serial}: " + self.log())

    def reload(self, timeout=5):
        """Rebuild the zones from the current records (new serial, new
        signatures, same keys) and make nsd load them (SIGHUP)."""
        self.serial += 1
        self.build()
        self.proc.send_signal(signal.SIGHUP)
        self.wait_serial(self.serial, timeout)
        self._check_zones_loaded()
        return self

    def stop(self, timeout=5):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self

    def log(self):
        text = ""
        for name in ("nsd.stderr", "nsd.log"):
            try:
                text += (self.root / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _skip_name(msg, off):
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1
        if n == 0:
            return off
        off += n


def _soa_serial(msg):
    qdcount, ancount = struct.unpack("!HH", msg[4:8])
    off = 12
    for _ in range(qdcount):
        off = _skip_name(msg, off) + 4
    for _ in range(ancount):
        off = _skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if rtype == 6:
            p = _skip_name(msg, off)
            p = _skip_name(msg, p)
            return struct.unpack("!I", msg[p:p + 4])[0]
        off += rdlen
    return None

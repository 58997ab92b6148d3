"""A WireGuard-like VPN: real TCP web traffic carried inside one long encrypted UDP flow per client.

Why: a VPN tunnel is a single long UDP flow between high or odd ports with encrypted payloads, data in
both directions and periodic keepalives: the shape of a long uTP connection. Its inner traffic is real
(web browsing and downloads over TLS, data.generator.web) so that the outer packets' sizes and timing
follow TCP's, not a synthetic model.

How, inside one namespace: each client host gets a TUN device holding its inner address, the gateway
one holding the inner server's; policy rules (``iif lo``, ahead of the local table) send locally
generated inner traffic into the TUN devices instead of ``lo``, and ``accept_local`` lets the other end
take it back in. The tunnel code reads a TUN device, seals the packet with ChaCha20-Poly1305 in
WireGuard's message framing (handshake initiation 148 B, response 92 B, transport data, 32-byte
keepalives) and sends it over UDP between the hosts' 127.x addresses: only the outer UDP reaches the
capture on ``lo``. Inner addresses (192.0.2.64/26, documentation range) exist only in this namespace.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TUNSETIFF, _IFF_TUN, _IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
MTU = 1420  # WireGuard's default: 1420 + 80 bytes of outer headers fit a 1500-byte link
GATEWAY_INNER = "192.0.2.65"
_TABLE_GW, _TABLE_CLIENT = 200, 100
OPENVPN_INNER, _OPENVPN_BASE = "192.0.2.129", 20  # OpenVPN tunnels: 192.0.2.128/26, rules and tables +20


def _tun(name: str) -> int:
    """Open TUN device ``name`` (it disappears with the descriptor)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def link_tunnels(links: list[tuple[str, str, str]], gateway: str = GATEWAY_INNER, base: int = 0) -> None:
    """Addresses and policy rules for tunnels whose TUN devices exist: each (client device, client inner
    address, gateway device) link carries the client's inner traffic to the inner server ``gateway`` and
    back. ``base`` offsets rule priorities and table numbers, so that two VPN apps can share a namespace."""
    _sh("sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.all.accept_local=1", "net.ipv4.conf.default.accept_local=1")
    for i, (client_dev, inner, gw_dev) in enumerate(links):
        for dev, addr in ((client_dev, inner), (gw_dev, gateway)):
            subprocess.run(["ip", "addr", "add", f"{addr}/32", "dev", dev], capture_output=True)  # a shared gw_dev has it
            _sh("ip", "link", "set", dev, "mtu", str(MTU), "up")
            _sh("sysctl", "-q", "-w", f"net.ipv4.conf.{dev}.rp_filter=0", f"net.ipv4.conf.{dev}.accept_local=1")
        table = str(_TABLE_CLIENT + base + i)
        _sh("ip", "route", "replace", f"{gateway}/32", "dev", client_dev, "table", table)
        _sh("ip", "rule", "add", "pref", str(11 + base + i), "iif", "lo", "from", inner, "lookup", table)
        _sh("ip", "route", "replace", f"{inner}/32", "dev", gw_dev, "table", str(_TABLE_GW + base))
    _sh("ip", "rule", "add", "pref", str(10 + base), "iif", "lo", "from", gateway, "lookup", str(_TABLE_GW + base))
    # The local table must come after those rules, or it would deliver inner traffic over lo directly.
    # (Another VPN app in the namespace may have done both already.)
    subprocess.run(["ip", "rule", "add", "pref", "50", "lookup", "local"], capture_output=True)
    subprocess.run(["ip", "rule", "del", "pref", "0", "lookup", "local"], capture_output=True)


class _Sealer:
    """WireGuard-style framing with ChaCha20-Poly1305 (a fresh random key per tunnel)."""

    def __init__(self, key: bytes, receiver: int) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self.aead = ChaCha20Poly1305(key)
        self.receiver = receiver
        self.counter = 0

    def seal(self, packet: bytes) -> bytes:
        self.counter += 1
        nonce = b"\0\0\0\0" + struct.pack("<Q", self.counter)
        return struct.pack("<II", 4, self.receiver) + struct.pack("<Q", self.counter) + self.aead.encrypt(nonce, packet, None)

    def open(self, msg: bytes) -> bytes:
        nonce = b"\0\0\0\0" + msg[8:16]
        return self.aead.decrypt(nonce, msg[16:], None)


def _client(sock: socket.socket, gateway: tuple[str, int], tun: int, up: _Sealer, down: _Sealer, until: float,
            keepalive: float, rekey: float) -> None:
    """A client's tunnel: a handshake at once and every ``rekey`` s, a keepalive after ``keepalive`` s
    without sending, packets between its TUN device and the gateway until ``until``."""
    last_sent = next_handshake = 0.0
    while time.time() < until:
        now = time.time()
        if now >= next_handshake:
            sock.sendto(struct.pack("<I", 1) + os.urandom(144), gateway)  # handshake initiation, 148 bytes
            next_handshake, last_sent = now + rekey, now
        elif now - last_sent > keepalive:
            sock.sendto(up.seal(b""), gateway)  # 32 bytes: an empty transport message
            last_sent = now
        ready = select.select([sock, tun], [], [], 0.5)[0]
        if tun in ready:
            sock.sendto(up.seal(os.read(tun, 65535)), gateway)
            last_sent = time.time()
        if sock in ready:
            msg = sock.recv(65535)
            if len(msg) > 32 and msg[0] == 4:
                _deliver(tun, down, msg)


def _deliver(tun: int, opener: _Sealer, msg: bytes) -> None:
    """Decrypt a transport message into ``tun``; keepalives (empty) and damaged packets are dropped."""
    from cryptography.exceptions import InvalidTag

    try:
        os.write(tun, opener.open(msg))
    except (InvalidTag, OSError):
        pass


def run_vpn(params: dict[str, Any]) -> None:
    """params: ``gateway_ip``, ``gw_port``, ``port`` (the inner web server's), ``clients`` (list of {ip, port,
    inner, mode, start}), ``keepalive``,
    ``rekey``, ``tls``, ``certfile``/``keyfile``, ``scale``, ``seed``, ``until``, ``t0``."""
    from p2pdetect.data.generator.web import run_web

    rng = random.Random(params["seed"])
    clients = params["clients"]
    fds = {"gw": _tun("vpngw"), **{c["ip"]: _tun(f"vpnc{i}") for i, c in enumerate(clients)}}
    link_tunnels([(f"vpnc{i}", c["inner"], "vpngw") for i, c in enumerate(clients)])
    until = params["until"]
    gw_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gw_sock.bind((params["gateway_ip"], params["gw_port"]))
    threads = [threading.Thread(target=_gateway, args=(gw_sock, fds["gw"], clients, until + 2), daemon=True)]
    for c in clients:
        up, down = os.urandom(32), os.urandom(32)
        rx, tx = rng.getrandbits(32), rng.getrandbits(32)
        cl_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cl_sock.bind((c["ip"], c["port"]))
        threads.append(threading.Thread(target=_client, daemon=True, args=(
            cl_sock, (params["gateway_ip"], params["gw_port"]), fds[c["ip"]], _Sealer(up, rx), _Sealer(down, tx),
            until + 2, params["keepalive"], params["rekey"])))
        c["_keys"] = (_Sealer(up, rx), _Sealer(down, tx))
    inner = dict(params, server_ip=GATEWAY_INNER, clients=[{"ip": c["inner"], "mode": c["mode"], "start": c["start"]}
                                                          for c in clients])
    for t in threads:
        t.start()
    run_web(inner)


def _gateway(sock: socket.socket, tun: int, clients: list[dict[str, Any]], until: float) -> None:
    """The gateway: one UDP port for every client; packets from its TUN device go to the client whose
    inner address they are for, at the endpoint that client's last handshake came from."""
    by_inner = {socket.inet_aton(c["inner"]): c for c in clients}
    by_ip = {c["ip"]: c for c in clients}
    peers: dict[str, tuple[str, int]] = {}
    while time.time() < until:
        ready = select.select([tun, sock], [], [], 0.5)[0]
        if tun in ready:
            pkt = os.read(tun, 65535)
            c = by_inner.get(pkt[16:20])
            if c is not None and c["ip"] in peers:
                sock.sendto(c["_keys"][1].seal(pkt), peers[c["ip"]])
        if sock in ready:
            msg, addr = sock.recvfrom(65535)
            c = by_ip.get(addr[0])
            if c is None or not msg:
                continue
            if msg[0] == 1:  # handshake initiation: answer (92 bytes) and (re)learn the endpoint
                peers[c["ip"]] = addr
                sock.sendto(struct.pack("<I", 2) + os.urandom(88), addr)
            elif msg[0] == 4 and len(msg) > 32:
                _deliver(tun, c["_keys"][0], msg)


def _pki(workdir: Path) -> dict[str, str]:
    """A throw-away CA with a server and a client certificate (EC P-256) for OpenVPN's TLS."""
    workdir.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    files = {n: str(workdir / n) for n in ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")}
    _sh("openssl", "req", "-x509", *ec, "-keyout", files["ca.key"], "-out", files["ca.crt"], "-days", "2",
        "-subj", "/CN=vpn-ca")
    for who in ("server", "client"):
        csr = str(workdir / f"{who}.csr")
        _sh("openssl", "req", *ec, "-keyout", files[f"{who}.key"], "-out", csr, "-subj", f"/CN={who}")
        _sh("openssl", "x509", "-req", "-in", csr, "-CA", files["ca.crt"], "-CAkey", files["ca.key"],
            "-CAcreateserial", "-out", files[f"{who}.crt"], "-days", "2")
    return files


def _openvpn(role: str, dev: str, proto: str, local: tuple[str, int], remote: tuple[str, int] | None,
             ifconfig: tuple[str, str], pki: dict[str, str], keepalive: int, log_path: Path) -> subprocess.Popen[bytes]:
    """One OpenVPN peer in point-to-point TLS mode on an existing TUN device (addresses set by us)."""
    cmd = ["openvpn", "--dev", dev, "--dev-type", "tun", "--proto", proto, "--local", local[0], "--lport", str(local[1]),
           "--ifconfig", *ifconfig, "--ifconfig-noexec", "--route-noexec", "--tun-mtu", str(MTU), "--mssfix", "0",
           f"--tls-{role}", "--ca", pki["ca.crt"], "--cert", pki[f"{role}.crt"], "--key", pki[f"{role}.key"],
           "--dh", "none", "--data-ciphers", "AES-256-GCM:CHACHA20-POLY1305", "--keepalive", str(keepalive),
           str(6 * keepalive), "--verb", "1"]
    if remote:
        cmd += ["--remote", remote[0], str(remote[1])]
    with open(log_path, "ab") as log_fh:
        return subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)


def run_openvpn(params: dict[str, Any]) -> None:
    """OpenVPN tunnels (Debian ``openvpn``, TLS point-to-point, one server port per client, UDP or TCP)
    carrying web traffic to the inner server. params: ``gateway_ip``, ``proto`` ('udp'|'tcp'), ``clients``
    (list of {ip, port, gw_port, inner, mode, start}), ``keepalive``, ``port``, ``tls``, ``certfile``/``keyfile``,
    ``scale``, ``seed``, ``until``, ``t0``, ``workdir``."""
    from p2pdetect.data.generator.web import run_web

    workdir = Path(params["workdir"])
    pki = _pki(workdir)
    clients = params["clients"]
    for i in range(len(clients)):
        for dev in (f"ovs{i}", f"ovc{i}"):
            _sh("ip", "tuntap", "add", "dev", dev, "mode", "tun")
    link_tunnels([(f"ovc{i}", c["inner"], f"ovs{i}") for i, c in enumerate(clients)], OPENVPN_INNER, _OPENVPN_BASE)
    procs = []
    tcp = params["proto"] == "tcp"
    try:
        for i, c in enumerate(clients):
            gw = (params["gateway_ip"], c["gw_port"])
            procs.append(_openvpn("server", f"ovs{i}", "tcp4-server" if tcp else "udp4", gw, None,
                                  (OPENVPN_INNER, c["inner"]), pki, params["keepalive"], workdir / f"server{i}.log"))
            procs.append(_openvpn("client", f"ovc{i}", "tcp4-client" if tcp else "udp4", (c["ip"], c["port"]), gw,
                                  (c["inner"], OPENVPN_INNER), pki, params["keepalive"], workdir / f"client{i}.log"))
        run_web(dict(params, server_ip=OPENVPN_INNER,
                     clients=[{"ip": c["inner"], "mode": c["mode"], "start": c["start"]} for c in clients]))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()

"""Network services with P2P's fan-out: a busy recursive resolver, NTP, and mDNS/SSDP discovery.

Why: a recursive resolver sends small UDP queries from random high ports to many servers, like a DHT
node; NTP clients exchange single small datagrams with several servers, port 123 on both sides for
ntpd-style clients; mDNS and SSDP send to multicast groups and answer from many devices, like
BitTorrent's local peer discovery. All speak their real wire formats (DNS, NTPv4, mDNS, SSDP/HTTPU).

Discovery listens for multicast with a packet socket rather than by joining the groups (see
:func:`_multicast_listener`): no IGMP reports, which on loopback would come from 0.0.0.0.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import random
import socket
import struct
import threading
import time
from typing import Any

from p2pdetect.data.generator.dns import _client as dns_client
from p2pdetect.data.generator.dns import _qname, answer, encode_query, serve

log = logging.getLogger(__name__)

MDNS, SSDP = ("224.0.0.251", 5353), ("239.255.255.250", 1900)
_NTP_EPOCH = 2208988800


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _ask(src_ip: str, server: tuple[str, int], name: str, qtype: int, timeout: float = 1.0) -> bytes | None:
    """One query from a fresh random port, as resolvers send upstream."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src_ip, 0))
        s.settimeout(timeout)
        s.sendto(encode_query(random.getrandbits(16), name, qtype), server)
        return s.recvfrom(4096)[0]
    except OSError:
        return None
    finally:
        s.close()


def run_resolver(params: dict[str, Any]) -> None:
    """A recursive resolver for many stub clients: a cache miss walks root -> TLD -> authoritative
    servers (real queries to each); hits answer at once. params: ``resolver_ip``, ``roots``, ``tlds``,
    ``auths`` (server addresses, all on port 53), ``clients`` (list of {ip, start}), ``hit_rate``,
    ``storminess``, ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    stop = threading.Event()
    ups = params["roots"] + params["tlds"] + params["auths"]
    servers = [threading.Thread(target=serve, args=(ip, 53, stop), daemon=True) for ip in ups]
    for t in servers:
        t.start()
    me = params["resolver_ip"]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((me, 53))
    sock.settimeout(0.3)
    delegations: dict[bytes, str] = {}  # zone -> the authoritative server a referral named

    def resolve(query: bytes, client: tuple[str, int]) -> None:
        labels, off = [], 12
        while off < len(query) and query[off]:
            labels.append(query[off + 1 : off + 1 + query[off]])
            off += 1 + query[off]
        zone = b".".join(labels[-2:])
        if rng.random() > params["hit_rate"]:
            if zone not in delegations or rng.random() < 0.1:  # expired: ask a root, then a TLD server
                _ask(me, (rng.choice(params["roots"]), 53), "com", 2)
                _ask(me, (rng.choice(params["tlds"]), 53), "example.com", 2)
                delegations[zone] = rng.choice(params["auths"])
            _ask(me, (delegations[zone], 53), _qname(rng), 1)
        resp = answer(query)
        if resp is not None:
            sock.sendto(resp, client)

    time.sleep(0.2)
    clients = []
    for spec in params["clients"]:
        def stub(spec: dict[str, Any] = spec, seed: int = rng.getrandbits(32)) -> None:
            _sleep_until(params["t0"] + spec["start"])
            dns_client(spec["ip"], (me, 53), random.Random(seed), params["until"], params.get("storminess", 1.0))

        clients.append(threading.Thread(target=stub, daemon=True))
    for t in clients:
        t.start()
    while time.time() < params["until"]:
        try:
            data, addr = sock.recvfrom(2048)
        except TimeoutError:
            continue
        pool.submit(resolve, data, addr)
    stop.set()
    pool.shutdown(wait=False, cancel_futures=True)
    sock.close()


def _ntp_packet(mode: int, stratum: int, now: float, origin: bytes = b"\0" * 8) -> bytes:
    """An NTPv4 packet (48 bytes): ``mode`` 3 = client, 4 = server."""
    def ts(t: float) -> bytes:
        return struct.pack("!II", int(t) + _NTP_EPOCH, int((t % 1) * 2**32))

    head = struct.pack("!BBbb", (0 << 6) | (4 << 3) | mode, stratum, 6, -23)
    root = struct.pack("!II4s", 0x10, 0x20, b"GPS\0" if stratum == 1 else b"\x7f\x40\x00\x01")
    return head + root + ts(now - 30) + origin + ts(now) + ts(now)


def run_ntp(params: dict[str, Any]) -> None:
    """NTP servers and clients that poll every server of their pool: a burst of 4 at start (iburst),
    then every 8-32 s (real polls are 64-1024 s; shortened to fit a run). ntpd-style clients send
    from port 123, chrony-style ones from a random port. params: ``servers``, ``clients`` (list of
    {ip, start, port123}), ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    stop = threading.Event()

    def server(ip: str, stratum: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 123))
        s.settimeout(0.3)
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(512)
            except TimeoutError:
                continue
            if len(data) >= 48 and data[0] & 7 == 3:
                s.sendto(_ntp_packet(4, stratum, time.time(), data[40:48]), addr)
        s.close()

    def client(spec: dict[str, Any], r: random.Random) -> None:
        _sleep_until(params["t0"] + spec["start"])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((spec["ip"], 123 if spec["port123"] else 0))
        s.settimeout(1.0)
        n = 0
        try:
            while time.time() < params["until"] - 1:
                for srv in params["servers"]:
                    if not spec["port123"]:  # chrony opens a fresh socket per request
                        s.close()
                        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        s.bind((spec["ip"], 0))
                        s.settimeout(1.0)
                    s.sendto(_ntp_packet(3, 0, time.time()), (srv, 123))
                    try:
                        s.recvfrom(512)
                    except TimeoutError:
                        pass
                n += 1
                _sleep_until(min(params["until"], time.time() + (2 if n < 4 else r.uniform(8, 32))))
        finally:
            s.close()

    threads = [threading.Thread(target=server, args=(ip, rng.choice([1, 2, 2, 3])), daemon=True)
               for ip in params["servers"]]
    threads += [threading.Thread(target=client, args=(c, random.Random(rng.getrandbits(32))), daemon=True)
                for c in params["clients"]]
    for t in threads:
        t.start()
    _sleep_until(params["until"])
    stop.set()


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def _mdns_query(service: str) -> bytes:
    return struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + _name(service) + struct.pack("!HH", 12, 1)


def _mdns_answer(service: str, device: str, ip: str) -> bytes:
    """A PTR -> SRV, TXT and A answer set for one device's ``service``."""
    inst = f"{device}.{service}"
    ptr = _name(service) + struct.pack("!HHIH", 12, 1, 4500, len(_name(inst))) + _name(inst)
    srv_rd = struct.pack("!HHH", 0, 0, 8009) + _name(f"{device}.local")
    srv = _name(inst) + struct.pack("!HHIH", 33, 0x8001, 120, len(srv_rd)) + srv_rd
    txt_rd = b"".join(bytes([len(t)]) + t for t in (b"id=" + device.encode(), b"ve=05", b"md=Device", b"st=0"))
    txt = _name(inst) + struct.pack("!HHIH", 16, 0x8001, 4500, len(txt_rd)) + txt_rd
    a = _name(f"{device}.local") + struct.pack("!HHIH", 1, 0x8001, 120, 4) + socket.inet_aton(ip)
    return struct.pack("!HHHHHH", 0, 0x8400, 0, 4, 0, 0) + ptr + srv + txt + a


def _multicast_listener() -> socket.socket:
    """A packet socket on ``lo`` that sees every datagram sent to a multicast group.

    Why not a group member: joining a group makes the kernel send IGMP reports, which on loopback leave
    from 0.0.0.0 and belong to no host; the datagrams themselves cross ``lo`` (and the capture) either way.
    A classic BPF filter (IPv4 destination in 224.0.0.0/4) keeps the rest of the traffic out of Python.
    """
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    insns = [(0x20, 0, 0, 16), (0x54, 0, 0, 0xF0000000), (0x15, 0, 1, 0xE0000000), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
    s.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HL", len(insns), ctypes.addressof(buf)))  # SO_ATTACH_FILTER (copied)
    s.bind(("lo", 0))
    s.settimeout(0.3)
    return s


def _datagrams(rx: socket.socket, until: float) -> Any:
    """(source ip, source port, group, group port, payload) of multicast UDP datagrams until ``until``."""
    while time.time() < until:
        try:
            pkt = rx.recv(4096)
        except TimeoutError:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) < ihl + 8 or pkt[9] != 17:
            continue
        sport, dport = struct.unpack_from("!HH", pkt, ihl)
        yield socket.inet_ntoa(pkt[12:16]), sport, socket.inet_ntoa(pkt[16:20]), dport, pkt[ihl + 8 :]


def _sender(ip: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255 if port == 5353 else 2)
    return s


def run_discovery(params: dict[str, Any]) -> None:
    """mDNS (queries with backoff, answers and announcements from devices) and SSDP (M-SEARCH, unicast
    replies, NOTIFY). params: ``hosts`` (searching hosts), ``devices`` (list of {ip, name, services,
    ssdp}), ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    until = params["until"]
    devices = params["devices"]
    mdns_tx = {d["ip"]: _sender(d["ip"], 5353) for d in devices}
    ssdp_tx = {d["ip"]: _sender(d["ip"], 1900) for d in devices if d["ssdp"]}
    lock = threading.Lock()

    def answer(src: str, sport: int, group: str, data: bytes) -> None:
        if group == MDNS[0] and len(data) >= 12 and not struct.unpack("!H", data[2:4])[0] & 0x8000:
            asked = data[12:].split(b"\x00", 1)[0]  # devices offering the service answer after 20-120 ms
            for d in devices:
                for svc in d["services"]:
                    if _name(svc)[:-1] == asked:
                        time.sleep(rng.uniform(0.02, 0.12))
                        with lock:
                            mdns_tx[d["ip"]].sendto(_mdns_answer(svc, d["name"], d["ip"]), MDNS)
        elif group == SSDP[0] and data.startswith(b"M-SEARCH"):  # unicast replies within MX seconds
            for d in devices:
                if d["ssdp"]:
                    msg = (f"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://{d['ip']}:49152/"
                           f"desc.xml\r\nSERVER: Linux/4.9 UPnP/1.0 {d['name']}/1.0\r\nST: upnp:rootdevice\r\n"
                           f"USN: uuid:{d['name']}::upnp:rootdevice\r\n\r\n").encode()
                    threading.Timer(rng.uniform(0.05, 1.5), ssdp_tx[d["ip"]].sendto, args=(msg, (src, sport))).start()

    def listen() -> None:
        rx = _multicast_listener()
        for src, sport, group, _dport, data in _datagrams(rx, until):
            if src not in mdns_tx:  # devices do not answer each other's announcements
                answer(src, sport, group, data)
        rx.close()

    def device(d: dict[str, Any], r: random.Random) -> None:  # announcements: mDNS on start, SSDP NOTIFY
        _sleep_until(params["t0"] + r.uniform(0, 5))
        while time.time() < until - 1:
            with lock:
                for svc in d["services"]:
                    mdns_tx[d["ip"]].sendto(_mdns_answer(svc, d["name"], d["ip"]), MDNS)
            if d["ssdp"]:
                for nt in ("upnp:rootdevice", f"uuid:{d['name']}", "urn:schemas-upnp-org:device:MediaRenderer:1"):
                    ssdp_tx[d["ip"]].sendto((f"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {nt}\r\n"
                                             f"NTS: ssdp:alive\r\nLOCATION: http://{d['ip']}:49152/desc.xml\r\n"
                                             f"USN: uuid:{d['name']}::{nt}\r\nCACHE-CONTROL: max-age=1800\r\n\r\n").encode(),
                                            SSDP)
            _sleep_until(min(until, time.time() + r.uniform(10, 40)))

    def host(ip: str, r: random.Random) -> None:  # browse services with backoff 1, 2, 4 ... s; M-SEARCH now and then
        _sleep_until(params["t0"] + r.uniform(0, 8))
        tx = _sender(ip, 5353)
        services = sorted({s for d in devices for s in d["services"]}) or ["_services._dns-sd._udp.local"]
        gap = 1.0
        while time.time() < until - 1:
            tx.sendto(_mdns_query(r.choice(services)), MDNS)
            if r.random() < 0.3:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((ip, 0))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
                s.sendto(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n"
                         b"ST: ssdp:all\r\n\r\n", SSDP)
                end = time.time() + 2.5
                s.settimeout(0.2)
                while time.time() < end:  # collect the replies, then close (late ones meet a closed port)
                    try:
                        s.recvfrom(4096)
                    except TimeoutError:
                        pass
                s.close()
            _sleep_until(min(until, time.time() + gap))
            gap = min(gap * 2, 30.0) if r.random() < 0.9 else 1.0
        tx.close()

    threads = [threading.Thread(target=listen, daemon=True)]
    threads += [threading.Thread(target=device, args=(d, random.Random(rng.getrandbits(32))), daemon=True) for d in devices]
    threads += [threading.Thread(target=host, args=(ip, random.Random(rng.getrandbits(32))), daemon=True)
                for ip in params["hosts"]]
    for t in threads:
        t.start()
    _sleep_until(until)

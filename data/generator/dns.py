"""DNS over UDP: a small authoritative-style server speaking real wire format, and stub clients.

Why: DNS is the bulk of short UDP flows on any network, and DHT/uTP are UDP too, so the negatives
need many small request/response UDP flows. Clients query from a fresh source port each time, as
stub resolvers with port randomisation do, in storms (page loads) separated by quiet spells.
"""

from __future__ import annotations

import hashlib
import logging
import random
import socket
import struct
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_WORDS = ("mail cdn static api img video news shop cloud edge login auth assets media search maps "
          "docs drive files update play store music chat meet app www m mobile ads track stats").split()
_TLDS = ("com", "net", "org", "io", "de", "co.uk", "fr", "nl", "info")
_QTYPES = (1, 1, 1, 28, 28, 65, 16, 15)  # A, AAAA, HTTPS, TXT, MX, weighted like real stubs


def _qname(rng: random.Random) -> str:
    labels = [rng.choice(_WORDS)] if rng.random() < 0.7 else []
    base = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
    return ".".join(labels + [base, rng.choice(_TLDS)])


def encode_query(qid: int, name: str, qtype: int) -> bytes:
    """A recursion-desired query for ``name``/``qtype`` in DNS wire format."""
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def answer(query: bytes) -> bytes | None:
    """The response to ``query``: A/AAAA records derived from the name, NXDOMAIN-free."""
    if len(query) < 17:
        return None
    qid, _flags, qd = struct.unpack("!HHH", query[:6])
    off = 12
    while off < len(query) and query[off] != 0:
        off += 1 + query[off]
    off += 1
    if qd != 1 or off + 4 > len(query):
        return None
    question = query[12 : off + 4]
    qtype = struct.unpack("!H", query[off : off + 2])[0]
    h = hashlib.sha256(question).digest()
    rrs = []
    if qtype == 1:
        for i in range(1 + h[0] % 4):
            rrs.append(struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + bytes([93 + i, h[1], h[2], h[3 + i]]))
    elif qtype == 28:
        rrs.append(struct.pack("!HHHIH", 0xC00C, 28, 1, 300, 16) + b"\x26\x06" + h[:14])
    elif qtype == 16:
        txt = b"v=spf1 include:_spf." + h[:6].hex().encode() + b".example ~all"
        rrs.append(struct.pack("!HHHIH", 0xC00C, 16, 1, 3600, len(txt) + 1) + bytes([len(txt)]) + txt)
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, len(rrs), 0, 0)
    return header + question + b"".join(rrs)


def serve(ip: str, port: int, stop: threading.Event) -> None:
    """Answer queries on ``ip:port`` until ``stop`` is set."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.3)
    while not stop.is_set():
        try:
            data, addr = s.recvfrom(2048)
        except TimeoutError:
            continue
        resp = answer(data)
        if resp is not None:
            time.sleep(random.uniform(0.0005, 0.02))  # resolver think time (cache hit or upstream)
            s.sendto(resp, addr)
    s.close()


def _client(ip: str, server: tuple[str, int], rng: random.Random, until: float, storminess: float) -> None:
    """Storms of queries from fresh ports, separated by quiet spells."""
    while time.time() < until - 1:
        burst = max(1, int(rng.expovariate(1 / (8 * storminess))))
        for _ in range(burst):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, 0))
            s.settimeout(2.0)
            try:
                s.sendto(encode_query(rng.getrandbits(16), _qname(rng), rng.choice(_QTYPES)), server)
                s.recvfrom(2048)
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(rng.expovariate(1 / 0.02))
        time.sleep(min(max(0.0, until - time.time()), rng.expovariate(1 / (6 / storminess))))


def run_dns(params: dict[str, Any]) -> None:
    """params: ``server_ip``, ``port``, ``clients`` (list of {ip, start}), ``storminess``, ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    stop = threading.Event()
    srv = threading.Thread(target=serve, args=(params["server_ip"], params["port"], stop), daemon=True)
    srv.start()
    time.sleep(0.2)

    def main(spec: dict[str, Any], seed: int) -> None:
        delay = params["t0"] + spec["start"] - time.time()
        if delay > 0:
            time.sleep(delay)
        _client(spec["ip"], (params["server_ip"], params["port"]), random.Random(seed), params["until"],
                params.get("storminess", 1.0))

    ts = [threading.Thread(target=main, args=(c, rng.getrandbits(32)), daemon=True) for c in params["clients"]]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=max(0.0, params["until"] - time.time() + 3))
    stop.set()
    srv.join(timeout=2)

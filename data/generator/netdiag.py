"""Network diagnostics: the ICMP of ordinary hosts (pings, traceroutes, a resolver that is gone).

Why: in the rest of the corpus nearly every ICMP flow is a peer's (port unreachable from a peer that
left, path MTU between peers): 4,530 P2P ICMP flows against 105 ordinary ones (session 26), so a flow
model learnt "ICMP" as a sign of P2P, and real ordinary ICMP (a console's relays, pings) scored at
the threshold. Ordinary hosts send and get ICMP all the time: monitoring pings, a traceroute, a stub
resolver whose server is down (each query answered by port unreachable), a datagram to a closed port.

Modes per client (``params['clients']``, each {ip, mode, targets, start, count, interval}):

- ``ping``: ICMP echo requests from a raw socket bound to the client, ``count`` at ``interval`` s to
  each target in turn (the target's kernel answers: echo replies); a monitor pings every few seconds,
  a user a handful at 1 s;
- ``trace``: UDP probes to ports 33434 and up on each target, three per hop as traceroute sends them
  (on one path every probe reaches the target, whose kernel answers port unreachable);
- ``dead-dns``: DNS queries to a resolver address where nothing listens, retried with back-off from a
  new port each time, as a stub resolver does (port unreachable each time).

The kernel rate-limits the ICMP errors it sends (net.ipv4.icmp_ratelimit), as real hosts do.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import Any

from p2pdetect.data.generator.dns import encode_query

#: The first destination port of a traceroute's UDP probes.
TRACE_PORT = 33434


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request (type 8) with its checksum."""
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(head + payload), ident, seq) + payload


def _sleep_until(t: float, until: float) -> bool:
    """Sleep until t; False when that is past ``until`` (the run's end)."""
    if t >= until:
        return False
    time.sleep(max(0.0, t - time.time()))
    return True


def _ping(c: dict[str, Any], rng: random.Random, t0: float, until: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.bind((c["ip"], 0))
    ident, t = rng.getrandbits(16), t0 + c["start"]
    payload = bytes(rng.getrandbits(8) for _ in range(rng.choice([16, 32, 56])))
    try:
        for seq in range(c["count"]):
            for target in c["targets"]:
                if not _sleep_until(t, until):
                    return
                s.sendto(echo_request(ident, seq, payload), (target, 0))
            t += c["interval"] * rng.uniform(0.95, 1.05)
    finally:
        s.close()


def _trace(c: dict[str, Any], rng: random.Random, t0: float, until: float) -> None:
    t = t0 + c["start"]
    for target in c["targets"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((c["ip"], 0))
        try:
            for probe in range(3 * c["count"]):   # three probes a hop, a port each
                if not _sleep_until(t, until):
                    return
                s.sendto(bytes(32), (target, TRACE_PORT + probe))
                t += rng.uniform(0.01, 0.08)
        finally:
            s.close()
        t += c["interval"] * rng.uniform(0.5, 1.5)


def _dead_dns(c: dict[str, Any], rng: random.Random, t0: float, until: float) -> None:
    t = t0 + c["start"]
    for _ in range(c["count"]):
        for target in c["targets"]:
            for wait in (1.0, 2.0):   # a stub's query and its retry, a new port each
                if not _sleep_until(t, until):
                    return
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.bind((c["ip"], 0))
                    s.sendto(encode_query(rng.getrandbits(16), rng.choice(["example.com", "updates.example.net"]),
                                          rng.choice([1, 28])), (target, 53))
                finally:
                    s.close()
                t += wait
        t += c["interval"] * rng.uniform(0.5, 1.5)


_MODES = {"ping": _ping, "trace": _trace, "dead-dns": _dead_dns}


def run_netdiag(params: dict[str, Any]) -> None:
    """Every client's diagnostics side by side until ``params['until']``.

    params: ``clients`` (list of {ip, mode, targets, start, count, interval}), ``seed``, ``t0``, ``until``.
    """
    rng = random.Random(params["seed"])
    threads = [threading.Thread(target=_MODES[c["mode"]], args=(c, random.Random(rng.getrandbits(32)),
                                                                 params["t0"], params["until"]), daemon=True)
               for c in params["clients"]]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, params["until"] - time.time()) + 1.0)

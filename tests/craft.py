"""Tiny pcap writer for hand-checkable test flows (Ethernet + IPv4 + TCP/UDP, no payload bytes)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


@dataclass
class Pkt:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    proto: int = 6
    payload: int = 0
    flags: int = ACK | PSH


def _frame(p: Pkt) -> tuple[bytes, int]:
    if p.proto == 6:
        l4 = struct.pack("!HHIIBBHHH", p.sport, p.dport, 1, 0, 0x50, p.flags, 65535, 0, 0)
    else:
        l4 = struct.pack("!HHHH", p.sport, p.dport, 8 + p.payload, 0)
    total = 20 + len(l4) + p.payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, p.proto, 0,
                     ipaddress.IPv4Address(p.src).packed, ipaddress.IPv4Address(p.dst).packed)
    eth = b"\x00" * 12 + b"\x08\x00"
    headers = eth + ip + l4
    return headers, len(headers) + p.payload


def write_pcap(path: str | Path, packets: list[Pkt]) -> Path:
    """Write packets (headers only; caplen < len like a snaplen-limited capture)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for p in sorted(packets, key=lambda p: p.ts):
        data, wire = _frame(p)
        sec = int(p.ts)
        out.append(struct.pack("<IIII", sec, int(round((p.ts - sec) * 1e6)), len(data), wire) + data)
    path = Path(path)
    path.write_bytes(b"".join(out))
    return path


def tcp_flow(t0: float, c: str, cport: int, s: str, sport: int, payloads: list[int]) -> list[Pkt]:
    """A TCP conversation: 3-way handshake, then payloads (positive = client->server,
    negative = server->client), 10 ms apart."""
    pk = [Pkt(t0, c, cport, s, sport, flags=SYN),
          Pkt(t0 + 0.01, s, sport, c, cport, flags=SYN | ACK),
          Pkt(t0 + 0.02, c, cport, s, sport, flags=ACK)]
    t = t0 + 0.02
    for size in payloads:
        t += 0.01
        if size >= 0:
            pk.append(Pkt(t, c, cport, s, sport, payload=size))
        else:
            pk.append(Pkt(t, s, sport, c, cport, payload=-size))
    return pk

"""Tiny pcap/pcapng writer for hand-checkable test flows: IPv4 or IPv6 + TCP/UDP, no payload
bytes, framed as Ethernet (optionally VLAN/QinQ tagged), Linux cooked v1/v2 or raw IP."""

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


def _l3(p: Pkt) -> tuple[bytes, int]:
    """IP + transport headers of a packet, and its IP length on the wire."""
    if p.proto == 6:
        l4 = struct.pack("!HHIIBBHHH", p.sport, p.dport, 1, 0, 0x50, p.flags, 65535, 0, 0)
    else:
        l4 = struct.pack("!HHHH", p.sport, p.dport, 8 + p.payload, 0)
    if ":" in p.src:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4) + p.payload, p.proto, 64,
                         ipaddress.IPv6Address(p.src).packed, ipaddress.IPv6Address(p.dst).packed)
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + p.payload, 0, 0, 64, p.proto, 0,
                         ipaddress.IPv4Address(p.src).packed, ipaddress.IPv4Address(p.dst).packed)
    return ip + l4, len(ip) + len(l4) + p.payload


#: LINKTYPE_* of each framing write_pcap knows.
LINKTYPES = {"eth": 1, "vlan": 1, "qinq": 1, "sll": 113, "sll2": 276, "raw": 101}


def _frame(p: Pkt, link: str = "eth") -> tuple[bytes, int]:
    """Link-layer frame (headers only) and its length on the wire."""
    l3, wire = _l3(p)
    etype = struct.pack("!H", 0x86DD if ":" in p.src else 0x0800)
    head = {
        "eth": b"\x00" * 12 + etype,
        "vlan": b"\x00" * 12 + b"\x81\x00\x00\x07" + etype,
        "qinq": b"\x00" * 12 + b"\x88\xa8\x00\x64\x81\x00\x00\x07" + etype,
        "sll": struct.pack("!HHH8s", 0, 1, 6, b"\x02" * 6) + etype,
        "sll2": etype + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, b"\x02" * 6),
        "raw": b"",
    }[link]
    return head + l3, len(head) + wire


def write_pcap(path: str | Path, packets: list[Pkt], link: str = "eth", snap: int | None = None,
               cut_last: int = 0) -> Path:
    """Write packets (headers only; caplen < len like a snaplen-limited capture).

    snap pads each record with zero payload up to that many bytes captured (as a capture
    with that snap length); cut_last drops that many bytes off the end (an unclosed capture).
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snap or 65535, LINKTYPES[link])]
    for p in sorted(packets, key=lambda p: p.ts):
        data, wire = _frame(p, link)
        if snap:
            data = (data + b"\x00" * snap)[:min(snap, wire)]
        sec = int(p.ts)
        out.append(struct.pack("<IIII", sec, int(round((p.ts - sec) * 1e6)), len(data), wire) + data)
    path = Path(path)
    blob = b"".join(out)
    path.write_bytes(blob[:len(blob) - cut_last])
    return path


def write_pcapng(path: str | Path, interfaces: list[tuple[str, list[Pkt]]]) -> Path:
    """A pcapng with one interface per (link, packets), their packets interleaved by time."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    records = []
    for i, (link, packets) in enumerate(interfaces):
        out.append(block(1, struct.pack("<HHI", LINKTYPES[link], 0, 65535)))
        records += [(p.ts, i, link, p) for p in packets]
    for ts, i, link, p in sorted(records, key=lambda r: (r[0], r[1])):
        data, wire = _frame(p, link)
        t = int(round(ts * 1e6))
        out.append(block(6, struct.pack("<IIIII", i, t >> 32, t & 0xFFFFFFFF, len(data), wire) + data))
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

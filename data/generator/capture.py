"""Header-only packet capture (namespace loopback or router uplink), a structural check of the result.

Why a check: nfstream reads a damaged capture without complaint, and a capture with
offload super-packets (> MTU) would teach the model sizes no wire carries. Both must fail loudly.
"""

from __future__ import annotations

import logging
import re
import signal
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import namespace

log = logging.getLogger(__name__)

SNAPLEN = 128  # headers only: Ethernet + IP + TCP with options, a few payload bytes at most

#: A client's talk with itself over 127.0.0.1 (BiglyBT's internal sockets) never reaches a wire; no
#: generated app uses 127.0.0.1, every host has an address of its own.
_NOT_HOST_INTERNAL = "not (src host 127.0.0.1 and dst host 127.0.0.1)"


def start(ns: str, pcap: Path, log_path: Path, iface: str = "lo", hosts: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start tcpdump on ``iface`` in namespace ``ns`` writing ``pcap``; returns once it listens.

    ``hosts``: a vantage point; only packets to or from these addresses are kept (empty: all)."""
    keep = f"({' or '.join(f'host {h}' for h in hosts)}) and " if hosts else ""
    proc = namespace.popen_in(
        ns, ["tcpdump", "-i", iface, "-n", "-Z", "root", "-s", str(SNAPLEN), "-U", "-w", str(pcap),
             keep + _NOT_HOST_INTERNAL],
        log_path,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        if "listening on" in log_path.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise GenerateError(f"tcpdump failed to start: {log_path.read_text(errors='replace').strip()}")
        time.sleep(0.05)
    raise GenerateError("tcpdump did not start listening within 10 s; check that tcpdump is installed")


def stop(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    """Stop tcpdump cleanly (SIGINT flushes the file); returns packets dropped by the kernel."""
    namespace.end(proc, signal.SIGINT)
    m = re.search(r"(\d+) packets? dropped by kernel", log_path.read_text(errors="replace"))
    return int(m.group(1)) if m else -1


@dataclass(frozen=True)
class PcapSummary:
    """What a structural scan of a pcap found."""

    packets: int
    max_frame: int
    oversized: int


#: Classic pcap magic numbers: (byte order, timestamp fraction units per second).
_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\x4d\x3c\xb2\xa1": ("<", 1e9),
          b"\xa1\xb2\xc3\xd4": (">", 1e6), b"\xa1\xb2\x3c\x4d": (">", 1e9)}


def _records(pcap: Path, data: bytes):
    """(record offset, next record's offset, timestamp in seconds, original length) of every
    record of the classic pcap bytes ``data``, in order (fewer than 16 bytes after the last are
    left unread). Raises GenerateError on a short or foreign file or a truncated record."""
    if len(data) < 24:
        raise GenerateError(f"{pcap} is not a pcap file (too short); the capture failed")
    fmt = _MAGIC.get(data[:4])
    if fmt is None:
        raise GenerateError(f"{pcap} is not a classic pcap file; the capture failed")
    rec, per_s = struct.Struct(fmt[0] + "IIII"), fmt[1]
    off, end = 24, len(data)
    while off + 16 <= end:
        sec, frac, incl, orig = rec.unpack_from(data, off)
        nxt = off + 16 + incl
        if nxt > end:
            raise GenerateError(f"{pcap} ends inside a packet record; the capture is truncated")
        yield off, nxt, sec + frac / per_s, orig
        off = nxt


def scan(pcap: Path, max_frame: int) -> PcapSummary:
    """Walk every record header of a classic pcap; count frames longer than ``max_frame``.

    Only record headers are read (payload is skipped), so this is cheap even for large files.
    Raises GenerateError on a truncated or foreign file.
    """
    data = pcap.read_bytes()
    n, biggest, oversized, off = 0, 0, 0, 24
    for _, off, _, orig in _records(pcap, data):
        n += 1
        biggest = max(biggest, orig)
        oversized += orig > max_frame
    if off != len(data):
        raise GenerateError(f"{pcap} has {len(data) - off} trailing bytes; the capture is damaged")
    return PcapSummary(packets=n, max_frame=biggest, oversized=oversized)


def cut_before(pcap: Path, out: Path, offset_s: float) -> int:
    """Write ``out`` as the classic pcap ``pcap`` without its first ``offset_s`` seconds (records
    stamped before the first record's time plus offset_s); returns how many records were kept.
    Raises GenerateError on a file scan() would refuse."""
    data = pcap.read_bytes()
    parts, start = [data[:24]], None
    for off, nxt, t, _ in _records(pcap, data):
        start = t if start is None else start
        if t >= start + offset_s:
            parts.append(data[off:nxt])
    out.write_bytes(b"".join(parts))
    return len(parts) - 1


def handshake_gaps(pcap: Path) -> list[tuple[str, str, float]]:
    """Every TCP SYN -> SYN/ACK gap in a classic Ethernet pcap, as (client, server, seconds).

    The gap at a capture point is the round trip from there to the server and back: on an ISP's
    uplink, the far side of a subscriber's outbound connection. The first SYN of each connection
    counts (a retransmitted SYN would hide the loss it suffered).
    """
    data = pcap.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    rec = struct.Struct(endian + "IIII")
    syn: dict[tuple[bytes, bytes], float] = {}
    out: list[tuple[str, str, float]] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = rec.unpack_from(data, off)
        pkt = data[off + 16: off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14 + 20 or pkt[12:14] != b"\x08\x00" or pkt[14 + 9] != 6:
            continue
        ihl = (pkt[14] & 0x0F) * 4
        tcp = pkt[14 + ihl:]
        if len(tcp) < 14:
            continue
        ts = sec + frac / (1e9 if nano else 1e6)
        src, dst = pkt[14 + 12:14 + 16] + tcp[0:2], pkt[14 + 16:14 + 20] + tcp[2:4]
        flags = tcp[13] & 0x12
        if flags == 0x02:
            syn.setdefault((src, dst), ts)
        elif flags == 0x12 and (dst, src) in syn:
            t0 = syn.pop((dst, src))
            out.append((_addr(dst), _addr(src), ts - t0))
    return out


def _addr(ip_port: bytes) -> str:
    return f"{'.'.join(str(b) for b in ip_port[:4])}:{int.from_bytes(ip_port[4:], 'big')}"

"""Capture files: find them, and validate them before the meter trusts them.

nfstream reads a capture with a corrupted record header as garbage without complaint, so
every file is walked record by record first (headers only, a few hundred ns a packet):
pcap and pcapng framing, truncation, and record headers that cannot be right.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from p2pdetect.errors import BadCaptureError

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")
#: Wireshark's own ceiling for one record; larger means a corrupted header.
MAX_RECORD = 262144

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAPNG_PACKET_BLOCKS = {2, 3, 6}


@dataclass(frozen=True)
class CaptureInfo:
    path: Path
    format: str       # "pcap" or "pcapng"
    packets: int
    bytes: int        # file size


def find_captures(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and directories into a sorted list of capture files, checking each exists."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in CAPTURE_SUFFIXES)
            if not files:
                raise BadCaptureError(f"{p}: directory holds no capture files "
                                      f"({', '.join(CAPTURE_SUFFIXES)}); point at a capture or a folder of them")
            found.extend(files)
        elif p.is_file():
            found.append(p)
        elif p.exists():
            raise BadCaptureError(f"{p}: not a regular file or directory; give a capture file")
        else:
            raise BadCaptureError(f"{p}: no such file or directory; check the path")
    return found


def validate_capture(path: str | os.PathLike, *, full: bool = True) -> CaptureInfo:
    """Walk a capture's record framing; raise BadCaptureError naming what is wrong.

    With full=False only the file header and first record are checked (packets = -1):
    a cheap fail-fast before metering, with the full walk run alongside the meter.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except OSError as err:
        raise BadCaptureError(f"{path}: cannot read ({err.strerror}); check the path and permissions") from err
    with fh:
        if size == 0:
            raise BadCaptureError(f"{path}: empty file (0 bytes); not a capture")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            magic = bytes(buf[:4])
            if magic in _PCAP_MAGIC:
                packets = _walk_pcap(path, buf, size, *_PCAP_MAGIC[magic], max_records=None if full else 1)
                fmt = "pcap"
            elif magic == _PCAPNG_MAGIC:
                packets = _walk_pcapng(path, buf, size) if full else -1
                fmt = "pcapng"
            else:
                raise BadCaptureError(f"{path}: not a pcap or pcapng capture (unknown magic {magic.hex()})")
    if packets == 0:
        raise BadCaptureError(f"{path}: capture holds no packets; nothing to extract")
    return CaptureInfo(path=path, format=fmt, packets=packets, bytes=size)


def _walk_pcap(path: Path, buf, size: int, endian: str, frac_limit: int,
               max_records: int | None = None) -> int:
    if size < 24:
        raise BadCaptureError(f"{path}: truncated pcap global header ({size} of 24 bytes)")
    rec = struct.Struct(endian + "IIII")
    unpack = rec.unpack_from
    off, n = 24, 0
    limit = size - 16
    while off <= limit:
        _, frac, incl, orig = unpack(buf, off)
        if incl > MAX_RECORD or frac >= frac_limit or incl > orig:
            raise BadCaptureError(
                f"{path}: corrupted record header at packet {n + 1} (byte {off}: "
                f"captured length {incl}, original length {orig}); the file is damaged, "
                f"re-capture it or cut it before that packet")
        off += 16 + incl
        n += 1
        if n == max_records and off <= size:
            return -1
    if off != size:
        raise BadCaptureError(
            f"{path}: truncated capture: packet {n if off > size else n + 1} is cut short at byte {size}; "
            f"the capture was not closed cleanly, cut it before that packet (e.g. editcap)")
    return n


def _walk_pcapng(path: Path, buf, size: int) -> int:
    if size < 12:
        raise BadCaptureError(f"{path}: truncated pcapng section header ({size} bytes)")
    off, n = 0, 0
    endian = "<"
    while off < size:
        if off + 12 > size:
            raise BadCaptureError(f"{path}: truncated capture: block at byte {off} is cut short")
        btype = struct.unpack_from(endian + "I", buf, off)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order may change per section
            bom = bytes(buf[off + 8:off + 12])
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                raise BadCaptureError(f"{path}: corrupted pcapng section header at byte {off}")
        blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64 and btype in _PCAPNG_PACKET_BLOCKS:
            raise BadCaptureError(f"{path}: corrupted block header at byte {off} (block length {blen}); "
                                  f"the file is damaged")
        if off + blen > size:
            raise BadCaptureError(f"{path}: truncated capture: block at byte {off} is cut short at byte {size}")
        if struct.unpack_from(endian + "I", buf, off + blen - 4)[0] != blen:
            raise BadCaptureError(f"{path}: corrupted block at byte {off} (trailing length mismatch)")
        if btype in _PCAPNG_PACKET_BLOCKS:
            n += 1
        off += blen
    return n

"""Capture files: find them, and walk their records before the meter trusts them.

nfstream reads a capture with a corrupted record header as garbage without complaint, so
every file is walked record by record first (headers only, about a microsecond a packet):
pcap and pcapng framing and record headers that cannot be right. The walk also keeps where
each record's bytes are, its lengths, time stamp and link type (Records), which
features.reader uses to decide whether the meter can read the file as it is.

A last record cut short (a capture not closed cleanly) is not damage: the complete records
before it are read, as tcpdump and tshark do, and the cut is reported (strict refuses it).
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

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
#: Compressed files are not captures until decompressed: (magic prefix, name, command).
_COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
               (b"\xfd7zXZ\x00", "xz", "unxz"), (b"BZh", "bzip2", "bunzip2"))


@dataclass(frozen=True)
class CaptureInfo:
    path: Path
    format: str       # "pcap" or "pcapng"
    packets: int      # complete records (-1: not counted, a quick check)
    bytes: int        # file size
    cut_record: int | None = None   # 1-based number of a last record cut short (not read)
    linktypes: tuple[int, ...] = ()  # link types of the records (pcapng: of the interfaces used)


@dataclass(frozen=True)
class Records:
    """Where each complete record of a capture is and what it holds (numpy, one row a record)."""

    info: CaptureInfo
    data: np.ndarray       # int64 file offset of the record's packet bytes
    caplen: np.ndarray     # int64 captured length
    wirelen: np.ndarray    # int64 original length on the wire
    ts_ns: np.ndarray      # int64 time stamp, ns since the epoch
    linktype: np.ndarray   # int32 LINKTYPE_* of the record's interface


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


def validate_capture(path: str | os.PathLike, *, full: bool = True, strict: bool = False) -> CaptureInfo:
    """Walk a capture's record framing; raise BadCaptureError naming what is wrong.

    With full=False only the file header and first record are checked (packets = -1): a
    cheap fail-fast before metering. A last record cut short is reported in cut_record
    (strict: refused); the complete records before it count.
    """
    if not full:
        return _open_walk(Path(path), quick=True, strict=strict).info
    return read_records(path, strict=strict).info


def read_records(path: str | os.PathLike, *, strict: bool = False) -> Records:
    """Every complete record of a capture (the full walk), for the reading path."""
    return _open_walk(Path(path), quick=False, strict=strict)


def _open_walk(path: Path, *, quick: bool, strict: bool) -> Records:
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
                walk = _walk_pcap(path, buf, size, *_PCAP_MAGIC[magic], quick=quick)
                fmt = "pcap"
            elif magic == _PCAPNG_MAGIC:
                walk = _walk_pcapng(path, buf, size, quick=quick)
                fmt = "pcapng"
            else:
                for prefix, kind, command in _COMPRESSED:
                    if bytes(buf[:len(prefix)]) == prefix:
                        raise BadCaptureError(f"{path}: a {kind}-compressed file, not a capture; "
                                              f"decompress it first ({command} -k {path.name})")
                raise BadCaptureError(f"{path}: not a pcap or pcapng capture (unknown magic {magic.hex()})")
    data, caplen, wirelen, ts_ns, linktype, cut = walk
    packets = -1 if quick else len(data)
    if cut is not None:
        if strict:
            raise BadCaptureError(f"{path}: truncated capture: record {cut} is cut short at byte {size} "
                                  f"(--strict); cut the file before it (e.g. editcap -r) or drop --strict")
    if packets == 0 or quick and len(data) == 0:
        why = f" (record {cut}, the first, is cut short)" if cut else ""
        raise BadCaptureError(f"{path}: capture holds no packets{why}; nothing to extract")
    info = CaptureInfo(path=path, format=fmt, packets=packets, bytes=size, cut_record=cut,
                       linktypes=tuple(sorted(set(linktype.tolist()))))
    return Records(info, data, caplen, wirelen, ts_ns, linktype)


def _arrays(data: array, caplen: array, wirelen: array, ts: array, link) -> tuple:
    n = len(data)
    lt = np.full(n, link, dtype=np.int32) if isinstance(link, int) else np.frombuffer(link, dtype=np.int32)
    return (np.frombuffer(data, dtype=np.int64), np.frombuffer(caplen, dtype=np.int64),
            np.frombuffer(wirelen, dtype=np.int64), np.frombuffer(ts, dtype=np.int64), lt)


def _walk_pcap(path: Path, buf, size: int, endian: str, frac_limit: int, *, quick: bool) -> tuple:
    if size < 24:
        raise BadCaptureError(f"{path}: truncated pcap global header ({size} of 24 bytes)")
    link = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
    unpack = struct.Struct(endian + "IIII").unpack_from
    starts = array("q")  # record header offsets; the fields are gathered after, vectorised
    append = starts.append
    off = 24
    limit = size - 16
    while off <= limit:
        _, frac, incl, orig = unpack(buf, off)
        if incl > MAX_RECORD or frac >= frac_limit or incl > orig:
            raise BadCaptureError(
                f"{path}: corrupted record header at packet {len(starts) + 1} (byte {off}: "
                f"captured length {incl}, original length {orig}); the file is damaged, "
                f"re-capture it or cut it before that packet")
        if off + 16 + incl > size:
            break
        append(off)
        off += 16 + incl
        if quick:
            break
    cut = None if off == size or quick and starts else len(starts) + 1
    hdr = np.frombuffer(starts, dtype=np.int64)
    raw = np.frombuffer(buf, dtype=np.uint8)
    fields = raw[hdr[:, None] + np.arange(16)].view(endian + "u4").astype(np.int64).reshape(-1, 4)
    ts = fields[:, 0] * 1_000_000_000 + fields[:, 1] * (1_000_000_000 // frac_limit)
    del raw
    return hdr + 16, fields[:, 2], fields[:, 3], ts, np.full(len(hdr), link, dtype=np.int32), cut


def _walk_pcapng(path: Path, buf, size: int, *, quick: bool) -> tuple:
    if size < 12:
        raise BadCaptureError(f"{path}: truncated pcapng section header ({size} bytes)")
    data, caplen, wirelen, ts, links = array("q"), array("q"), array("q"), array("q"), array("i")
    ifaces: list[tuple[int, int]] = []  # (link type, time stamp units per second) per interface
    off, endian, cut, last_ts = 0, "<", None, 0
    while off < size:
        if off + 12 > size:
            cut = len(data) + 1
            break
        btype = struct.unpack_from(endian + "I", buf, off)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order may change per section
            bom = bytes(buf[off + 8:off + 12])
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                raise BadCaptureError(f"{path}: corrupted pcapng section header at byte {off}")
            ifaces = []
        blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64 and btype in _PCAPNG_PACKET_BLOCKS:
            raise BadCaptureError(f"{path}: corrupted block header at byte {off} (block length {blen}); "
                                  f"the file is damaged")
        if off + blen > size:
            cut = len(data) + 1
            break
        if struct.unpack_from(endian + "I", buf, off + blen - 4)[0] != blen:
            raise BadCaptureError(f"{path}: corrupted block at byte {off} (trailing length mismatch)")
        if btype == 1:
            ifaces.append((struct.unpack_from(endian + "H", buf, off + 8)[0],
                           _tsresol(buf, off + 16, off + blen - 4, endian)))
        elif btype in _PCAPNG_PACKET_BLOCKS:
            if btype == 3:  # simple packet block: interface 0, no time stamp
                iface, orig = 0, struct.unpack_from(endian + "I", buf, off + 8)[0]
                incl, start, stamp = min(orig, blen - 16), off + 12, last_ts
            else:
                iface = struct.unpack_from(endian + ("I" if btype == 6 else "H"), buf, off + 8)[0]
                hi, lo, incl, orig = struct.unpack_from(endian + "IIII", buf, off + 12)
                start, stamp = off + 28, None
            if iface >= len(ifaces) or incl > blen:
                raise BadCaptureError(f"{path}: corrupted packet block at byte {off} (interface {iface} "
                                      f"not described, or captured length {incl} too long)")
            link, units = ifaces[iface]
            if stamp is None:
                raw = hi << 32 | lo
                stamp = raw * (1_000_000_000 // units) if 1_000_000_000 % units == 0 else \
                    int(raw * 1_000_000_000 / units)
            last_ts = stamp
            data.append(start)
            caplen.append(incl)
            wirelen.append(max(orig, incl))
            ts.append(stamp)
            links.append(link)
            if quick:
                break
        off += blen
    return (*_arrays(data, caplen, wirelen, ts, links), cut)


def _tsresol(buf, off: int, end: int, endian: str) -> int:
    """Time stamp units per second of an interface description block (if_tsresol, default µs)."""
    while off + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = buf[off + 4]
            return 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
        off += 4 + (length + 3) // 4 * 4
    return 1_000_000

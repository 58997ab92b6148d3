"""The reading path: hand the meter a capture it meters completely, rewriting it when needed.

nfstream's engine (libpcap + its own link-layer code) silently drops packets it cannot
decode: link types other than Ethernet, Linux cooked v1, raw IP, BSD null/loop and a few
more (LINKTYPE_LINUX_SLL2, what `tcpdump -i any` writes, is not among them), Ethernet frames
whose outer VLAN tag is 802.1ad (0x88a8, QinQ) or 0x9100, packets of a pcapng interface
whose link type differs from the first one's, and every IPv6 packet cut short by the snap
length (it wants 40 + payload length bytes captured, even for headers-only captures).

So each capture's records are decoded here first (numpy over all records: link header,
VLAN tags, IP version). When the meter would lose packets, the IP packets are written to a
temporary pcap as Ethernet frames (zero MAC addresses, no VLAN tags; a truncated IPv6
packet is padded with zeros to its full length, so its sizes stay right and no payload is
invented beyond zeros) and the meter reads that. Packets that are not IP (ARP, STP, …) or
whose link type cannot be decoded are counted as ignored and reported.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p2pdetect.features.captures import MAX_RECORD as MAX_SNAP, CaptureInfo, Records, read_records

log = logging.getLogger("p2pdetect.capture")

# LINKTYPE_* values (tcpdump.org/linktypes.html) this module decodes.
ETHERNET, RAW, NULL, LOOP, LINUX_SLL, LINUX_SLL2, IPV4, IPV6 = 1, 101, 0, 108, 113, 276, 228, 229
#: Link types nfstream's engine decodes itself (when a file holds only one of them).
METER_NATIVE = {ETHERNET, RAW, NULL, LINUX_SLL, IPV4, IPV6}
_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
_ETH_IP4, _ETH_IP6 = 0x0800, 0x86DD
#: Bytes of packet data copied per vectorised step (bounds the index arrays' memory).
_CHUNK_BYTES = 1 << 24


@dataclass(frozen=True)
class Decoded:
    """Each record's IP packet: where it starts, its IP version (0: not IP) and what the meter needs."""

    l3: np.ndarray          # int64 file offset of the IP header
    version: np.ndarray     # int8: 4, 6, or 0 (not IP / not decodable)
    l3_captured: np.ndarray  # int64 IP bytes captured
    l3_full: np.ndarray     # int64 IP bytes on the wire (IPv6: 40 + payload length)
    undecodable: int        # records of a link type this module does not know
    outer_tag: np.ndarray   # bool: Ethernet frame with an 802.1ad / 0x9100 outer tag


@dataclass
class PreparedCapture:
    """What the meter reads for one capture, and what the reading found. Close it when done."""

    info: CaptureInfo
    source: str             # path the meter reads (the capture, or a rewritten copy)
    ip_packets: int         # packets the meter can meter
    ignored: int            # packets no meter reads: not IP, or an unknown link type
    rewritten: str = ""     # why a rewritten copy is metered ("" when the capture is read as is)

    def close(self) -> None:
        if self.rewritten and self.source != str(self.info.path):
            try:
                os.unlink(self.source)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "PreparedCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _be16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return buf[pos].astype(np.int64) << 8 | buf[pos + 1]


def decode(buf: np.ndarray, rec: Records) -> Decoded:
    """Find every record's IP header (vectorised over records, per link type)."""
    n = len(rec.data)
    start, cap, lt = rec.data, rec.caplen, rec.linktype
    end = start + cap
    l3 = start.copy()
    etype = np.full(n, -1, dtype=np.int64)  # -1: the IP version nibble decides
    known = np.isin(lt, (ETHERNET, RAW, NULL, LOOP, LINUX_SLL, LINUX_SLL2, IPV4, IPV6))
    safe_last = max(len(buf) - 2, 0)

    def at(pos: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ok = mask & (pos + 2 <= end)
        out = np.full(n, -2, dtype=np.int64)
        out[ok] = _be16(buf, np.minimum(pos[ok], safe_last))
        return out

    eth = lt == ETHERNET
    etype = np.where(eth, at(start + 12, eth), etype)
    l3 = np.where(eth, start + 14, l3)
    sll = lt == LINUX_SLL
    etype = np.where(sll, at(start + 14, sll), etype)
    l3 = np.where(sll, start + 16, l3)
    sll2 = lt == LINUX_SLL2
    etype = np.where(sll2, at(start, sll2), etype)
    l3 = np.where(sll2, start + 20, l3)
    null = (lt == NULL) | (lt == LOOP)
    l3 = np.where(null, start + 4, l3)
    outer = eth & np.isin(etype, _VLAN_TYPES[1:])
    for _ in range(4):  # VLAN tag stacks (802.1Q, 802.1ad QinQ, 0x9100), any link type
        tagged = np.isin(etype, _VLAN_TYPES)
        if not tagged.any():
            break
        etype = np.where(tagged, at(l3 + 2, tagged), etype)
        l3 = np.where(tagged, l3 + 4, l3)
    has_ip_byte = known & (l3 < end)
    nibble = np.zeros(n, dtype=np.int64)
    nibble[has_ip_byte] = buf[np.minimum(l3[has_ip_byte], len(buf) - 1)] >> 4
    version = np.where(etype == _ETH_IP4, 4, np.where(etype == _ETH_IP6, 6, 0))
    version = np.where(etype == -1, np.where(np.isin(nibble, (4, 6)), nibble, 0), version)
    version = np.where(has_ip_byte & (nibble == version), version, 0).astype(np.int8)
    captured = np.maximum(end - l3, 0)
    full = np.maximum(rec.wirelen - (l3 - start), captured)
    v6 = (version == 6) & (captured >= 6)
    full[v6] = 40 + _be16(buf, l3[v6] + 4)
    v4 = (version == 4) & (captured >= 4)
    full[v4] = np.maximum(_be16(buf, l3[v4] + 2), captured[v4])
    return Decoded(l3, version, captured, full, int((~known).sum()), outer)


def prepare_capture(path: str | os.PathLike, *, strict: bool = False,
                    tmpdir: str | None = None) -> PreparedCapture:
    """Walk and decode a capture; rewrite it for the meter when the meter would lose packets.

    Warns (logging, once per capture) about a last record cut short and about packets no
    meter reads; raises BadCaptureError for a damaged file (and, with strict, a cut one).
    """
    rec = read_records(path, strict=strict)
    info = rec.info
    if info.cut_record is not None:
        log.warning("%s: record %d is cut short at the end of the file (a capture not closed "
                    "cleanly); read the %d complete records before it", info.path, info.cut_record,
                    info.packets)
    with open(info.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = np.frombuffer(mm, dtype=np.uint8)
        try:
            dec = decode(buf, rec)
            ip = dec.version > 0
            ignored = int((~ip).sum())
            reasons = _reasons(rec, dec, ip)
            prepared = PreparedCapture(info, str(info.path), int(ip.sum()), ignored, "; ".join(reasons))
            if reasons and ip.any():
                prepared.source = _rewrite(buf, rec, dec, ip, tmpdir)
        finally:
            del buf
    if ignored:
        unknown = sorted(set(rec.linktype.tolist()) - {ETHERNET, RAW, NULL, LOOP, LINUX_SLL,
                                                      LINUX_SLL2, IPV4, IPV6})
        what = f"link type {', '.join(map(str, unknown))} not decoded, or not IP" if unknown else "not IP"
        level = logging.WARNING if dec.undecodable or not ip.any() else logging.INFO
        log.log(level, "%s: %d of %d packets ignored (%s)%s", info.path, ignored, info.packets, what,
                "; no flow can come from this capture" if not ip.any() else "")
    if prepared.rewritten:
        log.info("%s: metered through a rewritten copy (%s)", info.path, prepared.rewritten)
    return prepared


def _reasons(rec: Records, dec: Decoded, ip: np.ndarray) -> list[str]:
    """Why the meter cannot read this capture as it is (empty: it can)."""
    reasons = []
    links = set(rec.linktype[ip].tolist())
    if links - METER_NATIVE:
        reasons.append("link type " + ", ".join(str(x) for x in sorted(links - METER_NATIVE)))
    if len(set(rec.linktype.tolist())) > 1:
        reasons.append("interfaces of different link types")
    if dec.outer_tag.any():
        reasons.append(f"{int(dec.outer_tag.sum())} QinQ/802.1ad-tagged frames")
    cut6 = (dec.version == 6) & (dec.l3_captured < dec.l3_full)
    if cut6.any():
        reasons.append(f"{int(cut6.sum())} IPv6 packets cut by the snap length")
    if rec.info.cut_record is not None:
        reasons.append(f"record {rec.info.cut_record} cut short")
    return reasons


def _rewrite(buf: np.ndarray, rec: Records, dec: Decoded, ip: np.ndarray, tmpdir: str | None) -> str:
    """Write the IP packets as an Ethernet pcap (ns time stamps) to a temporary file; its path.

    Vectorised in chunks of about _CHUNK_BYTES of packet data: headers are built as a
    structured array, packet bytes gathered with one fancy index per chunk.
    """
    idx = np.flatnonzero(ip)
    l3 = dec.l3[idx]
    cap = dec.l3_captured[idx]
    v6_cut = (dec.version[idx] == 6) & (cap < dec.l3_full[idx])
    out_len = np.where(v6_cut, dec.l3_full[idx], cap)   # IP bytes written (zero padded)
    wire = np.maximum(dec.l3_full[idx], out_len) + 14
    hdr = np.zeros(len(idx), dtype=[("sec", "<u4"), ("nsec", "<u4"), ("incl", "<u4"), ("orig", "<u4"),
                                    ("mac", "V12"), ("etype", ">u2")])
    ts = rec.ts_ns[idx]
    hdr["sec"], hdr["nsec"] = ts // 1_000_000_000, ts % 1_000_000_000
    hdr["incl"], hdr["orig"] = out_len + 14, wire
    hdr["etype"] = np.where(dec.version[idx] == 6, _ETH_IP6, _ETH_IP4)
    hbytes = hdr.view(np.uint8).reshape(len(idx), 30)
    fd, name = tempfile.mkstemp(prefix="p2pdetect-", suffix=".pcap", dir=tmpdir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, MAX_SNAP, ETHERNET))
            csum = np.cumsum(out_len)
            lo = 0
            while lo < len(idx):
                base = csum[lo - 1] if lo else 0
                hi = max(int(np.searchsorted(csum, base + _CHUNK_BYTES, side="right")), lo + 1)
                out.write(_chunk(buf, hbytes[lo:hi], l3[lo:hi], cap[lo:hi], out_len[lo:hi]))
                lo = hi
    except BaseException:
        os.unlink(name)
        raise
    return name


def _chunk(buf: np.ndarray, hbytes: np.ndarray, l3: np.ndarray, cap: np.ndarray,
           out_len: np.ndarray) -> bytes:
    """One chunk of output records: 30 header bytes, then the IP bytes, then zero padding."""
    rec_len = 30 + out_len
    ends = np.cumsum(rec_len)
    starts = ends - rec_len
    out = np.zeros(int(ends[-1]), dtype=np.uint8)
    out[(starts[:, None] + np.arange(30)).ravel()] = hbytes.ravel()
    copy = np.minimum(cap, out_len)
    total = int(copy.sum())
    if total:
        rel = np.arange(total) - np.repeat(np.cumsum(copy) - copy, copy)
        out[np.repeat(starts + 30, copy) + rel] = buf[np.repeat(l3, copy) + rel]
    return out.tobytes()

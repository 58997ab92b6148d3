"""Label audit: a second opinion on generated labels from tshark's dissectors (via pyshark).

Why: labels are assigned by construction, so a bug in the address plan would silently mislabel
flows. tshark recognises BitTorrent (plain handshakes, DHT, uTP), TLS, DNS, SSH and HTTP on its own;
wherever it does, it must agree with the label. It cannot recognise MSE over TCP, which is the
point of the product, so those flows are counted as 'unidentified' rather than disagreements.
pyshark reads ~500 packets/s, so only the first packets of each flow are dissected.
"""

from __future__ import annotations

import logging
import struct
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from p2pdetect.data import GenerateError
from p2pdetect.dissect import dissected
from p2pdetect.data.generator.evasion import WRAPPERS
from p2pdetect.data.generator.labels import LabelIndex, read_csv

log = logging.getLogger(__name__)

#: ``bt-tracker``: an HTTP request for a tracker's ``/announce`` or ``/scrape`` (BEP 3), which tshark
#: dissects as plain HTTP.
P2P_PROTOCOLS = frozenset({"bittorrent", "bt-dht", "bt-utp", "bt-tracker"})
OTHER_PROTOCOLS = frozenset({"tls", "dns", "ssh", "http", "quic"})
_PROTO = {1: "icmp", 6: "tcp", 17: "udp"}


FlowKey = tuple[str, int, str, int, int]


def _key(src: str, sport: int, dst: str, dport: int, proto: int) -> FlowKey:
    """Direction-free flow key."""
    return (src, sport, dst, dport, proto) if (src, sport) <= (dst, dport) else (dst, dport, src, sport, proto)


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def head_of_flows(pcap: Path, out: Path, per_flow: int, max_packets: int) -> dict[FlowKey, int]:
    """Copy the first ``per_flow`` packets of every IPv4 flow of ``pcap`` into ``out`` (at most
    ``max_packets`` in all); returns the packets kept per flow."""
    data = pcap.read_bytes()
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        raise GenerateError(f"{pcap} is not a little-endian classic pcap written by the generator")
    kept: dict[FlowKey, int] = {}
    parts = [data[:24]]
    off, total = 24, 0
    while off + 16 <= len(data) and total < max_packets:
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + incl]
        rec = data[off : off + 16 + incl]
        off += 16 + incl
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        sport = dport = 0
        if proto in (6, 17) and len(frame) >= 14 + ihl + 4:
            sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
        k = _key(_ip(frame[26:30]), sport, _ip(frame[30:34]), dport, proto)
        if kept.get(k, 0) < per_flow:
            kept[k] = kept.get(k, 0) + 1
            parts.append(rec)
            total += 1
    out.write_bytes(b"".join(parts))
    return kept


#: Fields that only a genuine message of the protocol carries (tshark also decodes by port alone,
#: e.g. a DHT packet to UDP 53 becomes "DNS", MSE bytes on TCP 443 become a TLS "record").
_EVIDENCE = {
    "tls": ("record_content_type", "handshake_type"),
    "http": ("request_method", "response_code"),
    "ssh": ("protocol", "message_code"),
    "quic": ("long_packet_type", "version"),
}


def _plausible(pkt: Any, name: str) -> bool:
    """Whether ``pkt``'s ``name`` layer is the protocol itself rather than a port-based guess."""
    layer = pkt[name]
    if name == "dns":  # a standard query or response with one question, as stub resolvers send
        return str(getattr(layer, "flags_opcode", "")) == "0" and str(getattr(layer, "count_queries", "")) == "1"
    if name in _EVIDENCE:
        fields = set(layer.field_names)
        return any(f in fields for f in _EVIDENCE[name])
    return True  # BitTorrent dissectors are heuristic or need the plaintext handshake


_TRACKER_GETS = (b"GET /announce", b"GET /scrape")


def _tracker_request(pkt: Any) -> bool:
    """Whether ``pkt`` is a BitTorrent tracker announce or scrape: an HTTP GET of /announce or /scrape.

    Read from the TCP payload: on a tracker's own port, with the request cut by the snaplen, tshark
    leaves the request undissected (only the response becomes HTTP).
    """
    payload = str(getattr(pkt.tcp, "payload", ""))
    try:
        head = bytes.fromhex(payload.replace(":", "")[: 2 * 16])
    except ValueError:
        return False
    return head.startswith(_TRACKER_GETS)


def _dissect(pcap: Path) -> dict[FlowKey, set[str]]:
    """Protocols tshark recognises per flow (only those in P2P_PROTOCOLS | OTHER_PROTOCOLS)."""
    found: dict[FlowKey, set[str]] = {}
    with dissected(str(pcap), custom_parameters=["--enable-heuristic", "bt_utp_udp"]) as cap:
        for pkt in cap:
            if "ip" not in pkt:
                continue
            proto = int(pkt.ip.proto)
            if proto in (6, 17) and ("tcp" if proto == 6 else "udp") not in pkt:
                continue  # a non-first IP fragment (a WAN path's MTU below the sender's): no ports
            layer = pkt.tcp if proto == 6 else pkt.udp if proto == 17 else None
            sport = int(layer.srcport) if layer is not None else 0
            dport = int(layer.dstport) if layer is not None else 0
            layers = {lyr.layer_name for lyr in pkt.layers}
            names = layers & (P2P_PROTOCOLS | OTHER_PROTOCOLS)
            # Port-based guesses come out malformed or without the protocol's own fields: not recognition.
            if "_ws.malformed" in layers:
                names = set()
            names = {n for n in names if _plausible(pkt, n)}
            if proto == 6 and _tracker_request(pkt):
                names.add("bt-tracker")
            found.setdefault(_key(pkt.ip.src, sport, pkt.ip.dst, dport, proto), set()).update(names)
    return found


def audit_capture(pcap: Path, labels_csv: Path, per_flow: int = 8, max_packets: int = 20000) -> dict[str, Any]:
    """Cross-check one capture's labels against tshark; returns counts and example disagreements."""
    index = LabelIndex(read_csv(labels_csv))
    with tempfile.TemporaryDirectory(prefix="p2pd-audit-") as tmp:
        head = Path(tmp) / "head.pcap"
        kept = head_of_flows(pcap, head, per_flow, max_packets)
        seen = _dissect(head)
    table: Counter[str] = Counter()
    unidentified_p2p: Counter[str] = Counter()
    disagreements: list[str] = []
    unlabelled = 0
    for k in kept:
        hits = {(r.label, r.app) for r in index.match(*k)}
        if len(hits) != 1:
            unlabelled += 1
            continue
        label, app = hits.pop()
        protos = seen.get(k, set())
        verdict = "p2p" if protos & P2P_PROTOCOLS else "other" if protos & OTHER_PROTOCOLS else "unidentified"
        if verdict == "other" and label == "p2p" and protos <= WRAPPERS.get(app, frozenset()):
            verdict = "wrapped"  # BitTorrent inside TLS or an SSH tunnel (data.generator.evasion): by design
        table[f"{label}->{verdict} ({_PROTO.get(k[4], str(k[4]))})"] += 1
        if verdict == "unidentified" and label == "p2p":
            unidentified_p2p[_PROTO.get(k[4], str(k[4]))] += 1
        elif verdict not in ("unidentified", "wrapped") and verdict != label:
            disagreements.append(f"{k[0]}:{k[1]}-{k[2]}:{k[3]}/{k[4]} label={label} tshark={sorted(protos)}")
    return {
        "pcap": pcap.name,
        "flows_audited": len(kept),
        "unlabelled_flows": unlabelled,
        "label_vs_tshark": dict(sorted(table.items())),
        "p2p_unidentified_by_tshark": dict(unidentified_p2p),
        "disagreements": len(disagreements),
        "disagreement_examples": disagreements[:10],
    }


def audit_dir(directory: Path, max_packets: int = 20000) -> dict[str, Any]:
    """Audit every ``<name>.pcap`` under ``directory`` (recursively) with a ``<name>.labels.csv`` beside it."""
    if not directory.is_dir():
        raise GenerateError(f"{directory} is not a directory; give the folder holding .pcap and .labels.csv files")
    pairs = [(p, p.with_suffix(".labels.csv")) for p in sorted(directory.rglob("*.pcap"))
             if p.with_suffix(".labels.csv").exists()]
    if not pairs:
        raise GenerateError(f"no <name>.pcap with a <name>.labels.csv found in {directory}")
    reports = []
    for pcap, lab in pairs:
        log.info("auditing %s", pcap.relative_to(directory))
        report = audit_capture(pcap, lab, max_packets=max_packets)
        report["pcap"] = str(pcap.relative_to(directory))
        reports.append(report)
    return {
        "captures": reports,
        "disagreements": sum(r["disagreements"] for r in reports),
        "p2p_unidentified_by_tshark": dict(sum((Counter(r["p2p_unidentified_by_tshark"]) for r in reports), Counter())),
    }

"""Proof that a capture is usable: every metered flow carries exactly one label, sizes fit the MTU.

Why nfstream: it is the meter the product trains on, so the flows checked here are exactly the
flows that will be joined to labels downstream.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.labels import LabelIndex, LabelRow

log = logging.getLogger(__name__)

_PROTO = {1: "icmp", 6: "tcp", 17: "udp"}


def join_flows(pcap: Path, rows: list[LabelRow], n_dissections: int = 20) -> dict[str, Any]:
    """Meter ``pcap`` with nfstream and join each flow to ``rows``.

    Returns totals, the unlabelled share (flows with zero or several distinct labels), and per
    app: flows, packets, bytes and the nDPI application names nfstream gave those flows.
    """
    from nfstream import NFStreamer

    index = LabelIndex(rows)
    apps: dict[str, dict[str, Any]] = {}
    by_label: dict[str, Counter[str]] = {}
    total = unlabelled = multi = 0
    examples: list[str] = []
    for f in NFStreamer(source=str(pcap), n_dissections=n_dissections, statistical_analysis=False):
        total += 1
        hits = {(r.label, r.app) for r in index.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)}
        if len(hits) != 1:
            unlabelled += not hits
            multi += len(hits) > 1
            if len(examples) < 5:
                examples.append(f"{f.src_ip}:{f.src_port}-{f.dst_ip}:{f.dst_port}/{f.protocol} hits={sorted(hits)}")
            continue
        label, app = hits.pop()
        a = apps.setdefault(app, {"label": label, "flows": 0, "packets": 0, "bytes": 0, "ndpi": Counter()})
        a["flows"] += 1
        a["packets"] += f.bidirectional_packets
        a["bytes"] += f.bidirectional_bytes
        guess = "~port" if f.application_confidence == 1 else ""  # nDPI guessed from the port only
        a["ndpi"][f"{_PROTO.get(f.protocol, f.protocol)}/{f.application_name or 'Unknown'}{guess}"] += 1
        c = by_label.setdefault(label, Counter())
        c["flows"] += 1
        c["bytes"] += f.bidirectional_bytes
    if examples:
        log.warning("flows without exactly one label, e.g.: %s", "; ".join(examples))
    for a in apps.values():
        a["ndpi"] = dict(a["ndpi"].most_common())
    return {
        "flows": total,
        "unlabelled_flows": unlabelled,
        "multi_labelled_flows": multi,
        "unlabelled_share": round((unlabelled + multi) / total, 6) if total else 0.0,
        "by_label": {k: dict(v) for k, v in sorted(by_label.items())},
        "apps": dict(sorted(apps.items())),
    }

"""Late-start views: a generated capture as a capture started in the middle of the traffic would
record it.

A generated capture starts before its clients do, so every flow is seen from its first packet:
the TCP handshake, the BitTorrent or MSE handshake, the first requests. A capture from the wild
(a tap switched on, a ring buffer, a trace of an hour of a busy link) starts in the middle: the
flows already running have no handshake in it, and the hosts' earlier flows are not there to give
host context. Scored by models trained without any such view, the P2P flows of captures cut 20 s
in lost 8 points of recall and 30 of bytes (BiglyBT left out; docs/evaluation.md, session 18).

`late_start_view` writes a finished capture without its first `offset_s` seconds, keeps its
labels file (labels are address pairs, so they still name every flow) and writes a summary like
the generator's, with network "late-start" and the source capture in `view_of`. Like the
vantage-point views (data.generator.vantage) it is cheap: no namespace, no client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import capture, labels, vantage

NETWORK = "late-start"

#: Where the view starts, as a share of the source capture's duration.
OFFSET_SHARE = 1 / 3


def late_start_view(run_dir: Path, offset_s: float, out_dir: Path,
                    rows: list[labels.LabelRow] | None = None) -> dict[str, Any]:
    """Write `out_dir` as the capture in run_dir without its first offset_s seconds; returns its
    summary. rows: the capture's label rows when the caller has read them already."""
    src = next((p for p in sorted(run_dir.glob("*.json")) if not p.name.startswith(".")), None)
    if src is None:
        raise GenerateError(f"{run_dir}: no generator summary (*.json) in it")
    s = json.loads(src.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{s['scenario']}.pcap.tmp"
    try:
        if not capture.cut_before(run_dir / s["pcap"], tmp, offset_s):
            raise GenerateError(f"{run_dir / s['pcap']}: nothing left after {offset_s:g} s")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return vantage.write_view(run_dir, s, tmp, out_dir, rows,
                              {"network": NETWORK, "view_of": str(Path(run_dir.name) / s["pcap"]),
                               "late_start_s": round(float(offset_s), 3),
                               "source_network": s.get("network", "loopback")})

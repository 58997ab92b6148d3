"""Verdict records: one flat JSON object per line, stable keys (DESIGN.md format), as Suricata's
EVE: `event_type` "flow" (one per flow and stage) or "host" (models.HostEvidence)."""

from __future__ import annotations

import json
import time

import numpy as np

from p2pdetect.serve.scorer import ScoredBatch
from p2pdetect.serve.sources import FINAL

#: Keys of a flow verdict record, in the order they are written.
VERDICT_KEYS = ["event_type", "ts_ms", "stage", "src_ip", "src_port", "dst_ip", "dst_port", "protocol",
                "first_seen_ms", "last_seen_ms", "packets", "bytes", "score", "verdict", "model"]

#: Keys of a host record, in the order they are written.
HOST_KEYS = ["event_type", "ts_ms", "ip", "endpoints", "peers", "p2p_peers", "flows", "bytes_up",
             "bytes_down", "first_seen_ms", "last_seen_ms", "score", "verdict", "model"]

_TEMPLATE = ('{"event_type": "flow", "ts_ms": %d, "stage": "%s", "src_ip": "%s", "src_port": %d, "dst_ip": "%s", '
             '"dst_port": %d, "protocol": %d, "first_seen_ms": %d, "last_seen_ms": %d, '
             '"packets": %d, "bytes": %d, "score": %s, "verdict": "%s", "model": %s}\n')


def verdict_lines(scored: ScoredBatch, model_id: str, *, alerts_only: bool = False,
                  ts_ms: int | None = None) -> list[str]:
    """JSON lines for a scored batch: its flows (alerts_only: P2P verdicts only), then the
    host records it carries (always: a host record is an alert)."""
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    model = json.dumps(model_id)
    c = scored.cols
    idx = np.flatnonzero(scored.verdicts == "p2p") if alerts_only else range(len(scored))
    stage = np.where(scored.stages == FINAL, "final", "early")
    cols = [stage, c["src_ip"], c["src_port"].tolist(), c["dst_ip"], c["dst_port"].tolist(),
            c["protocol"].tolist(), c["bidirectional_first_seen_ms"].tolist(),
            c["bidirectional_last_seen_ms"].tolist(), c["bidirectional_packets"].tolist(),
            c["bidirectional_bytes"].tolist(), np.round(scored.scores, 6).tolist(), scored.verdicts]
    lines = [_TEMPLATE % (ts, cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i],
                         cols[6][i], cols[7][i], cols[8][i], cols[9][i], repr(cols[10][i]),
                         cols[11][i], model) for i in idx]
    lines.extend(host_line(h, ts) for h in scored.hosts)
    return lines


def host_line(record: dict, ts_ms: int) -> str:
    """One host record as a JSON line, keys in HOST_KEYS order."""
    rec = {"ts_ms": ts_ms, **record}
    return json.dumps({k: rec[k] for k in HOST_KEYS}, separators=(", ", ": ")) + "\n"

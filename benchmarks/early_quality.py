"""Quality of *early* verdicts, measured through the real scorer (not a masked-column replay).

For each k in --packets, scores labelled captures with `ScoreConfig(early_packets=k,
early_seconds=0)` and compares the early verdicts — made from the meter's snapshot of each
flow at its k-th packet, exactly what `p2pdetect score` writes — with the labels. Flows that
end before k packets only get a final verdict; they are counted from that. Prints recall and
false-positive rate per k, to choose `--early-packets`.

    python benchmarks/early_quality.py out/fresh/s7001 out/fresh/s7002 --packets 4 8 16 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from p2pdetect.features.captures import find_captures
from p2pdetect.models import load_bundle
from p2pdetect.serve import FINAL, ScoreConfig, capture_source, run_scoring
from p2pdetect.serve.sinks import JsonLinesSink
from p2pdetect.training.labels import read_labels


def first_verdicts(cap: Path, bundle, k: int) -> list[dict]:
    """Each flow's first verdict (early at k packets, else final) as dicts."""
    import json

    config = ScoreConfig(early_packets=k, early_seconds=0)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "v.jsonl"
        run_scoring(capture_source(cap, bundle.extract_config, config), bundle, JsonLinesSink(out), config)
        seen, first = set(), []
        for v in map(json.loads, out.read_text().splitlines()):
            if v["event_type"] != "flow":
                continue
            key = (v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"], v["first_seen_ms"])
            if key not in seen:
                seen.add(key)
                first.append(v)
    return first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="captures or folders with <name>.labels.csv beside each")
    ap.add_argument("--packets", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--model")
    a = ap.parse_args()
    bundle = load_bundle(a.model)
    caps = [c for c in find_captures(a.inputs) if c.with_name(c.stem + ".labels.csv").is_file()]
    print(f"model {bundle.bundle_id}; {len(caps)} labelled captures")
    print(f"{'k':>4}{'p2p flows':>11}{'recall':>9}{'other flows':>13}{'FPR':>8}{'decided early':>15}")
    for k in a.packets:
        tp = fn = fp = tn = early = 0
        for cap in caps:
            labels = read_labels(cap.with_name(cap.stem + ".labels.csv"))
            for v in first_verdicts(cap, bundle, k):
                hit = labels.lookup(v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"])
                if hit is None:
                    continue
                early += v.get("stage") == "early"
                p2p = v["verdict"] == "p2p"
                if hit[0] == "p2p":
                    tp, fn = tp + p2p, fn + (not p2p)
                else:
                    fp, tn = fp + p2p, tn + (not p2p)
        print(f"{k:>4}{tp + fn:>11,}{tp / max(tp + fn, 1):>9.2%}{fp + tn:>13,}{fp / max(fp + tn, 1):>8.2%}"
              f"{early / max(tp + fn + fp + tn, 1):>15.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

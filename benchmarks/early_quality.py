"""Quality of *early* verdicts, measured through the real scorer (not a masked-column replay).

For each k in --packets, scores labelled captures with `ScoreConfig(early_packets=k,
early_seconds=0)` and compares the early verdicts — made from the meter's snapshot of each
flow at its k-th packet, exactly what `p2pdetect score` writes — with the labels. Flows that
end before k packets only get a final verdict; they are counted from that. Prints recall and
false-positive rate per k (and the final verdicts' recall beside), to choose `--early-packets`.
The model is the one given (--model, default the shipped one): in distribution when it trained
on these scenarios; benchmarks/early_ood.py gives the out-of-distribution figures.

    python benchmarks/early_quality.py out/fresh/s7001 out/fresh/s7002 --packets 4 8 16 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

from p2pdetect.features.captures import find_captures
from p2pdetect.models import load_bundle
from p2pdetect.serve import ScoreConfig, capture_source, run_scoring
from p2pdetect.serve.sinks import JsonLinesSink
from p2pdetect.training.labels import read_labels


def _key(v: dict) -> tuple:
    return v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"], v["first_seen_ms"]


def flow_verdicts(cap: Path, bundle, k: int) -> list[dict]:
    """Every flow verdict `p2pdetect score --early-packets k --early-seconds 0` writes for cap, in order."""
    config = ScoreConfig(early_packets=k, early_seconds=0)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "v.jsonl"
        run_scoring(capture_source(cap, bundle.extract_config, config), bundle, JsonLinesSink(out), config)
        return [v for v in map(json.loads, out.read_text().splitlines()) if v["event_type"] == "flow"]


def first_verdicts(cap: Path, bundle, k: int) -> list[dict]:
    """Each flow's first verdict (early at k packets, else final) as dicts."""
    seen, first = set(), []
    for v in flow_verdicts(cap, bundle, k):
        if _key(v) not in seen:
            seen.add(_key(v))
            first.append(v)
    return first


def tally(cap: Path, labels_csv: Path, bundle, k: int, counts: Counter | None = None,
          counts_p2p: Callable[[str], bool] = lambda app: True) -> Counter:
    """Confusion counts of cap's labelled flows: tp/fn/fp/tn of each flow's first verdict, early
    (first verdicts made early; early_tp/... count those alone), and final_tp/... of its final
    verdict, added to counts.

    counts_p2p(app) says whether a P2P flow with that app label counts (e.g. only one
    implementation's flows); ordinary flows always count, unlabelled ones never. Per P2P app
    label, "app <app> tp|fn" counts its first verdicts too (which kinds of flow are found late).
    """
    counts = Counter() if counts is None else counts
    labels = read_labels(labels_csv)
    first: dict[tuple, dict] = {}
    for v in flow_verdicts(cap, bundle, k):
        key = _key(v)
        first.setdefault(key, v)
        if v["stage"] != "final":
            continue
        hit = labels.lookup(v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"])
        if hit is None or (hit[0] == "p2p" and not counts_p2p(hit[1])):
            continue
        counts["early"] += first[key]["stage"] == "early"
        for prefix, verdict in (("", first[key]), ("final_", v)):
            p2p = verdict["verdict"] == "p2p"
            kind = ("tp" if p2p else "fn") if hit[0] == "p2p" else ("fp" if p2p else "tn")
            counts[prefix + kind] += 1
            if not prefix and first[key]["stage"] == "early":
                counts["early_" + kind] += 1
        if hit[0] == "p2p":
            counts[f"app {hit[1]} {'tp' if first[key]['verdict'] == 'p2p' else 'fn'}"] += 1
    return counts


def rates(c: Counter) -> dict:
    """Recall, FPR, share decided early, recall of the P2P flows decided early (first verdicts) and
    final recall/FPR from tally's counts."""
    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    pos, neg = c["tp"] + c["fn"], c["fp"] + c["tn"]
    return {"p2p_flows": pos, "other_flows": neg, "recall": ratio(c["tp"], pos), "fpr": ratio(c["fp"], neg),
            "decided_early": ratio(c["early"], pos + neg),
            "early_recall": ratio(c["early_tp"], c["early_tp"] + c["early_fn"]),
            "final_recall": ratio(c["final_tp"], c["final_tp"] + c["final_fn"]),
            "final_fpr": ratio(c["final_fp"], c["final_fp"] + c["final_tn"])}


def pct(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f} %"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="captures or folders with <name>.labels.csv beside each")
    ap.add_argument("--packets", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--model")
    a = ap.parse_args()
    bundle = load_bundle(a.model)
    caps = [c for c in find_captures(a.inputs) if c.with_name(c.stem + ".labels.csv").is_file()]
    print(f"model {bundle.bundle_id}; {len(caps)} labelled captures")
    print(f"{'k':>4}{'p2p flows':>11}{'recall':>10}{'other flows':>13}{'FPR':>9}{'decided early':>15}"
          f"{'final recall':>14}")
    for k in a.packets:
        counts: Counter = Counter()
        for cap in caps:
            tally(cap, cap.with_name(cap.stem + ".labels.csv"), bundle, k, counts)
        r = rates(counts)
        print(f"{k:>4}{r['p2p_flows']:>11,}{pct(r['recall']):>10}{r['other_flows']:>13,}{pct(r['fpr']):>9}"
              f"{pct(r['decided_early'], 1):>15}{pct(r['final_recall']):>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

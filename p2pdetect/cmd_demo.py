"""`p2pdetect demo`: the main job on the shipped samples — score them with the shipped model
and print a readable summary (flows, P2P verdicts, agreement with the samples' labels, top talkers)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="score the shipped sample captures with the shipped model",
                       description=__doc__)
    p.add_argument("--samples", default=str(SAMPLES), metavar="DIR",
                   help="captures to score (default: data/samples)")
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", default="out/demo", metavar="DIR",
                   help="where the verdict files go (default: out/demo)")
    p.set_defaults(func=run)


def _final_verdicts(path: Path) -> list[dict]:
    with open(path) as fh:
        return [v for v in map(json.loads, fh) if v.get("stage") == "final"]


def _trained_on(bundle) -> set[str]:
    """SHA-256 of every capture the bundle was trained on (its training fingerprint)."""
    caps = bundle.metadata.get("training", {}).get("captures", [])
    return {c["sha256"] for c in caps if isinstance(c, dict) and "sha256" in c}


def _sha256(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(args: argparse.Namespace) -> int:
    from p2pdetect.features.captures import find_captures
    from p2pdetect.models import load_bundle
    from p2pdetect.errors import OutputError
    from p2pdetect.serve import JsonLinesSink, ScoreConfig, capture_source, run_scoring
    from p2pdetect.training.labels import read_labels

    captures = find_captures([args.samples])
    bundle = load_bundle(args.model)
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{out}: cannot create the output directory ({err.strerror})") from err
    config = ScoreConfig()
    w = sys.stdout.write
    w(f"model {bundle.bundle_id} (threshold {bundle.threshold:.3f}); scoring {len(captures)} sample captures\n\n")
    w(f"{'capture':<28}{'flows':>7}{'p2p':>6}{'other':>7}{'early':>7}{'labelled p2p found':>20}"
      f"{'false alarms':>14}\n")
    talkers: dict[str, Counter] = defaultdict(Counter)
    seen = _trained_on(bundle)
    fitted = []
    files = []
    for cap in captures:
        dest = out / (cap.stem + ".verdicts.jsonl")
        summary = run_scoring(capture_source(cap, bundle.extract_config, config), bundle,
                              JsonLinesSink(str(dest), atomic=True, inputs=captures), config)
        finals = _final_verdicts(dest)
        files.append(dest)
        p2p = [v for v in finals if v["verdict"] == "p2p"]
        for v in p2p:
            for ip in (v["src_ip"], v["dst_ip"]):
                talkers[ip]["flows"] += 1
                talkers[ip]["bytes"] += v["bytes"]
        found = alarms = "-"
        sidecar = cap.with_name(cap.stem + ".labels.csv")
        if sidecar.is_file():
            labels = read_labels(sidecar)
            truth = [labels.lookup(v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"])
                     for v in finals]
            pos = [t is not None and t[0] == "p2p" for t in truth]
            neg = [t is not None and t[0] == "other" for t in truth]
            hit = sum(p and v["verdict"] == "p2p" for p, v in zip(pos, finals))
            fa = sum(n and v["verdict"] == "p2p" for n, v in zip(neg, finals))
            found = f"{hit}/{sum(pos)}"
            alarms = f"{fa}/{sum(neg)}"
        mark = ""
        if _sha256(cap) in seen:
            fitted.append(cap.name)
            mark = "*"
        w(f"{(cap.name + mark)[:27]:<28}{len(finals):>7}{len(p2p):>6}{len(finals) - len(p2p):>7}"
          f"{summary.early_verdicts:>7}{found:>20}{alarms:>14}\n")
        sys.stdout.flush()  # a row per capture as it is scored; a reader gone (`| head -3`) stops the demo
    if fitted:
        w("* the model was trained on this capture: its row shows training fit, not generalisation "
          "(see docs/evaluation.md for held-out figures)\n")
    w("\ntop P2P talkers (hosts in flows flagged p2p):\n")
    top = sorted(talkers.items(), key=lambda kv: (-kv[1]["bytes"], kv[0]))[:5]
    for ip, c in top:
        w(f"  {ip:<18}{c['flows']:>6} flows {c['bytes'] / 1e6:>10.2f} MB\n")
    if not top:
        w("  (none)\n")
    w(f"\nfull verdicts (JSON lines, one per flow and stage): {out}/*.verdicts.jsonl\n")
    return 0

"""First verdicts through the real scorer, out of distribution: each BitTorrent implementation
judged by a model trained without it (issue 8: "first-verdict recall at 4, 8, 16 and 32 packets").

For each implementation X of the corpus, the captures that hold X (training.groups, exactly as
`p2pdetect evaluate --group-by implementation` forms its groups) are left out; a bundle is trained
the way `make model` builds the shipped one (ExtractConfig(snapshot_packets=32), TrainConfig
defaults, training.build.build_bundle) on every other generated capture plus the nDPI-labelled
real captures (--ndpi, read with skip_bad), and saved to a temporary folder. The held-out captures
are then scored through the real scorer at each k (benchmarks.early_quality: ScoreConfig(
early_packets=k, early_seconds=0)), and per X and k it prints: the first-verdict recall over X's
P2P flows (the early verdict at the k-th packet, or the final one for a shorter flow), the FPR of
first verdicts over the ordinary flows of those captures, and the final verdicts' recall and FPR.
P2P flows of other implementations in the same captures are not counted. Only some of those
captures hold ordinary flows, so the P2P-free captures are scored too, in training.groups' folds
(each fold by a model trained on everything else; --no-ordinary skips them): their first-verdict
FPR is out of fold. The nDPI-labelled captures are always in training, never scored (their FPR is
`p2pdetect evaluate`'s). One training at a time, each model in a temporary folder while it scores.

    P2PDETECT_CACHE=.cache/flows python benchmarks/early_ood.py data/corpus/manifest.json \
        --ndpi ../shared/captures/ndpi --packets 4 8 16 32 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

if __package__ in (None, ""):  # run as a script: benchmarks/ is on sys.path, the repository root is not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.early_quality import pct, rates, tally
from p2pdetect.errors import BadConfigError, P2PDetectError
from p2pdetect.features.config import ExtractConfig
from p2pdetect.models import load_bundle
from p2pdetect.training.build import build_bundle
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.datasets import Dataset, concat_datasets, load_dataset
from p2pdetect.training.groups import REAL, capture_meta, group_units, implementation_of
from p2pdetect.training.make_model import NDPI

log = logging.getLogger("p2pdetect.early_ood")

#: Snapshot packets of the shipped model's training data (make_model's --early-packets default).
SNAPSHOT_PACKETS = 32


def load_corpus(manifest: Path, ndpi: Path | None, jobs: int, peers_in_progress: bool = False) -> Dataset:
    """The generated captures of a manifest and, where given, the nDPI-labelled real captures;
    unlabelled flows kept, as `make model` keeps them (the threshold's evidence replay sees them).
    peers_in_progress: extracted with ExtractConfig.peers_in_progress."""
    config = ExtractConfig(snapshot_packets=SNAPSHOT_PACKETS, peers_in_progress=peers_in_progress)
    parts = [load_dataset([manifest], config, n_jobs=jobs, keep_unlabelled=True)]
    if ndpi is not None:
        parts.append(load_dataset([ndpi], parts[0].config, labels_from_dpi=True, skip_bad=True, n_jobs=jobs,
                                  keep_unlabelled=True))
    return concat_datasets(parts)


def without(dataset: Dataset, held_out: list[str]) -> Dataset:
    """The dataset less every flow of the held-out captures."""
    caps = dataset.table.column("capture").to_numpy(zero_copy_only=False).astype(str)
    keep = ~np.isin(caps, held_out)
    held = set(held_out)
    return Dataset(table=dataset.table.filter(pa.array(keep)), config=dataset.config,
                   captures={n: i for n, i in dataset.captures.items() if n not in held},
                   skipped=dataset.skipped, unlabelled=dataset.unlabelled)


def units_of(dataset: Dataset, manifest: Path, wanted: list[str] | None, ordinary: bool) -> list[dict]:
    """training.groups' implementation units (the captures each implementation's model leaves out),
    the wanted ones; with ordinary, also the folds of captures without P2P (their FPR out of fold)."""
    units = [u for u in group_units(capture_meta(dataset, [manifest]), "implementation") if u["group"] != REAL]
    have = [u["implementation"] for u in units if u["implementation"] is not None]
    unknown = sorted(set(wanted or ()) - set(have))
    if unknown:
        raise BadConfigError(f"--implementations: {', '.join(unknown)} not in the corpus; it holds "
                             f"{', '.join(have) or 'no P2P implementation'}")
    return [u for u in units if (u["implementation"] is None and ordinary)
            or (u["implementation"] is not None and (not wanted or u["implementation"] in wanted))]


def measure(dataset: Dataset, unit: dict, ks: list[int], config: TrainConfig, workdir: Path) -> dict:
    """Train without the unit's captures, score them at each k: the model and tally's counts per k."""
    impl = unit["implementation"]
    t0 = time.perf_counter()
    rest = without(dataset, unit["held_out"])
    bundle = build_bundle(rest, workdir / "model", config, command=f"benchmarks/early_ood.py: {unit['group']} left out")
    bundle = load_bundle(bundle.path, num_threads=config.num_threads)
    log.info("%s left out: %s trained on %d captures in %.0f s (threshold %.4f); scoring its %d captures",
             unit["group"], bundle.bundle_id, len(set(rest.groups.tolist())), time.perf_counter() - t0,
             bundle.threshold, len(unit["test"]))

    def counts_p2p(app: str) -> bool:
        return impl is None or impl in implementation_of(app).split("+")

    counts = {}
    for k in ks:
        t1 = time.perf_counter()
        counts[k] = Counter()
        for cap in unit["test"]:
            tally(Path(cap), Path(dataset.captures[cap]["labels"]), bundle, k, counts[k], counts_p2p)
        r = rates(counts[k])
        log.info("%s k=%d: recall %s of %d (decided early: %s), FPR %s of %d, final recall %s (%.0f s)",
                 unit["group"], k, pct(r["recall"]), r["p2p_flows"], pct(r["early_recall"]), pct(r["fpr"]),
                 r["other_flows"], pct(r["final_recall"]), time.perf_counter() - t1)
    return {"model": bundle.bundle_id, "threshold": bundle.threshold, "counts": counts}


def pooled(units: list[dict], measured: list[dict]) -> list[dict]:
    """Per group (an implementation; the P2P-free folds together): captures, models and rates per k."""
    out: dict[str, dict] = {}
    for u, m in zip(units, measured):
        g = out.setdefault(u["group"], {"group": u["group"], "captures": 0, "models": [], "counts": {}})
        g["captures"] += len(u["test"])
        g["models"].append({"model": m["model"], "threshold": m["threshold"], "captures": len(u["test"])})
        for k, c in m["counts"].items():
            g["counts"].setdefault(k, Counter()).update(c)
    return [{**{k: v for k, v in g.items() if k != "counts"},
             "points": [{"k": k, **rates(c), "counts": dict(c)} for k, c in sorted(g["counts"].items())]}
            for g in out.values()]


def table(results: list[dict]) -> str:
    """The figures as a Markdown table."""
    lines = ["| left out | k | P2P flows | first-verdict recall | ordinary flows | first-verdict FPR "
             "| decided early | final recall | final FPR |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        folds = f", {len(r['models'])} folds" if len(r["models"]) > 1 else ""
        for p in r["points"]:
            lines.append(f"| {r['group']} ({r['captures']} captures{folds}) | {p['k']} | {p['p2p_flows']:,} "
                         f"| {pct(p['recall'])} | {p['other_flows']:,} | {pct(p['fpr'])} "
                         f"| {pct(p['decided_early'], 1)} | {pct(p['final_recall'])} | {pct(p['final_fpr'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path, help="the generated corpus manifest (data/corpus/manifest.json)")
    ap.add_argument("--ndpi", type=Path, default=NDPI,
                    help=f"real captures labelled by nDPI, in every model's training (default {NDPI}); "
                         f"'' leaves them out")
    ap.add_argument("--implementations", nargs="+", metavar="NAME", help="only these (default: every one)")
    ap.add_argument("--packets", type=int, nargs="+", default=[4, 8, 16, 32], metavar="K")
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    ap.add_argument("--jobs", type=int, default=1, help="captures metered in parallel on a cache miss (default 1)")
    ap.add_argument("--no-ordinary", action="store_true",
                    help="skip the folds of P2P-free captures (first-verdict FPR out of fold)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="early_ood: %(message)s", stream=sys.stderr)
    try:
        if not a.manifest.is_file() or a.manifest.suffix != ".json":
            raise BadConfigError(f"{a.manifest}: not a corpus manifest (.json); give data/corpus/manifest.json")
        ndpi = a.ndpi if str(a.ndpi) not in ("", ".") else None
        if ndpi is not None and not ndpi.is_dir():
            raise BadConfigError(f"--ndpi {ndpi}: no such folder; give the nDPI captures' folder, or '' for none")
        if any(k < 2 for k in a.packets):
            raise BadConfigError(f"--packets must be ints >= 2. Got {a.packets} instead.")
        if a.threads < 1 or a.jobs < 1:
            raise BadConfigError(f"--threads and --jobs must be ints >= 1. Got {a.threads}, {a.jobs} instead.")
        config = TrainConfig(num_threads=a.threads)
        dataset = load_corpus(a.manifest, ndpi, a.jobs)
        units = units_of(dataset, a.manifest, a.implementations, not a.no_ordinary)
        measured = []
        for u in units:  # one training at a time; each model lives only while its captures are scored
            with tempfile.TemporaryDirectory(prefix="early-ood-") as d:
                measured.append(measure(dataset, u, sorted(set(a.packets)), config, Path(d)))
        results = pooled(units, measured)
    except P2PDetectError as err:
        print(f"early_ood: error: {err}", file=sys.stderr)
        return 2
    print(table(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

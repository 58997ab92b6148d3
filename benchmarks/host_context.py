"""Host context per flow, with and without TCP connections in progress, side by side in one run:
python benchmarks/host_context.py [--reps N].

Times features.host_context.HostContext.transform (the per-flow loop of extraction and the scorer)
on the shipped samples' flows and their evidence snapshots at 32 packets, in meter order, tiled
N times (each copy on its own addresses and an hour later, so the state grows as on a busy link):

  ended flows only      ExtractConfig.peers_in_progress off (the default): snapshots read the state
  with in progress      peers_in_progress on: answered TCP snapshots enter it until their final row

Repeats are interleaved, with the cyclic collector off while timed (as the scorer keeps it out of
the way), and the best CPU time of each is kept; compare the ratio.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from p2pdetect.data.make_samples import SAMPLES
from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.extract import extract_capture
from p2pdetect.features.host_context import HostContext

NEED = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "bidirectional_last_seen_ms",
        "bidirectional_packets", "dst2src_packets", "bidirectional_bytes", "src2dst_bytes", "dst2src_bytes"]


def sample_rows(reps: int, need: list[str] = NEED, bundle=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The samples' rows (finals and 32-packet snapshots, meter order), tiled reps times; with a
    bundle, its model's scores of them too (column "score")."""
    cols: dict[str, list] = {c: [] for c in need + (["score"] if bundle is not None else [])}
    final: list = []
    for i, cap in enumerate(sorted(SAMPLES.glob("*.pcap"))):
        t = extract_capture(cap, ExtractConfig(snapshot_packets=32))
        for c in need:
            cols[c].append(t.column(c).to_numpy(zero_copy_only=False))
        if bundle is not None:
            cols["score"].append(bundle.predict_proba(t))
        final.append(t.column("stage").to_numpy(zero_copy_only=False).astype(str) == "final")
    one = {c: np.concatenate(v) for c, v in cols.items()}
    fin = np.concatenate(final)
    out = {}
    for c, v in one.items():
        if c.endswith("_seen_ms"):
            out[c] = np.concatenate([v + k * 3_600_000 for k in range(reps)])
        elif c.endswith("_ip"):
            out[c] = np.concatenate([np.array([f"{x}#{k}" for x in v], dtype=object) for k in range(reps)])
        else:
            out[c] = np.tile(v, reps)
    return out, np.tile(fin, reps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=40, help="copies of the samples' rows (default 40)")
    ap.add_argument("--runs", type=int, default=5, help="interleaved repeats (default 5)")
    args = ap.parse_args(argv)
    cols, final = sample_rows(args.reps)
    n = len(final)
    kinds = {"ended flows only": None, "with in progress": ~final}
    best = {k: float("inf") for k in kinds}
    for _ in range(args.runs):
        for k, evidence in kinds.items():
            gc.collect()
            gc.disable()   # as the scorer runs (service.collect_less): the collector's rescans aside
            t0 = time.process_time()
            HostContext().transform(cols, remember=final, evidence=evidence)
            best[k] = min(best[k], time.process_time() - t0)
            gc.enable()
    print(f"host context over {n:,} rows ({int(final.sum()):,} flows and {int((~final).sum()):,} "
          f"evidence snapshots), best of {args.runs} interleaved runs, CPU")
    base = best["ended flows only"]
    for k, s in best.items():
        print(f"  {k:18s} {s:7.3f} s  {s / n * 1e6:6.1f} us/row  {s / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

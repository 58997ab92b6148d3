"""Scoring throughput of a bundle on one thread: python benchmarks/inference.py [MODEL_DIR] [--flows T.parquet].

Times ModelBundle.predict_proba (matrix build + booster.predict) on large batches, the way
the scorer calls it. Columns come from a flow table when given (tiled up to --rows), else
from random values, which walk the trees about as deep as real flows do.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from p2pdetect.models.bundle import load_bundle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/inference.py")
    ap.add_argument("model", nargs="?", default=None, help="bundle (default: the shipped model)")
    ap.add_argument("--flows", help="Parquet flow table to take columns from")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    b = load_bundle(args.model, num_threads=1)
    rng = np.random.default_rng(0)
    if args.flows:
        import pyarrow.parquet as pq
        t = pq.read_table(args.flows, columns=b.feature_names)
        reps = -(-args.rows // max(t.num_rows, 1))
        cols = {c: np.tile(t.column(c).to_numpy(zero_copy_only=False), reps)[:args.rows] for c in b.feature_names}
    else:
        cols = {c: rng.lognormal(3, 2, args.rows) * rng.choice([-1, 1], args.rows, p=[0.05, 0.95])
                for c in b.feature_names}
    best = {}
    for batch in sorted({args.batch, args.rows}):
        rates = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for s in range(0, args.rows, batch):
                b.predict_proba({c: v[s:s + batch] for c, v in cols.items()})
            rates.append(args.rows / (time.perf_counter() - t0))
        best[batch] = max(rates)
        print(f"{b.bundle_id}: {b.booster.num_trees()} trees, {len(b.feature_names)} features, batch {batch:,}: "
              f"{best[batch]:,.0f} flows/s on one thread (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Model inference on one thread, every predictor side by side in one run:
python benchmarks/inference.py [MODEL_DIR] [--flows T.parquet] [--treelite].

Times what ModelBundle.predict_proba does per batch (pick the columns, build the matrix,
predict) on large batches, the way the scorer calls it, for:

  lightgbm, all features     booster.predict on the (n, 154) float32 matrix (bundle.matrix):
                             how the bundle scored before models/predictor.py
  lightgbm, used features    LightGBM on the model reduced to the features its splits use
                             (models.predictor.LightGBMPredictor: the fallback)
  lleaves                    that model compiled by lleaves (models.predictor.LleavesPredictor:
                             what predict_proba uses)
  tl2cgen (--treelite)       the same reduced model compiled to C by treelite + tl2cgen (gcc),
                             for comparison; not a dependency (pip install treelite tl2cgen)

Repeats are interleaved (A B C, A B C, ...) so that load from other work on a shared machine
hits all alike; compare the ratios. Rates are wall-clock (best run) and per CPU second of the
scoring thread (best run; less hurt by other processes than wall time, not immune). Rows come from the sample captures' flows (data/samples,
early snapshots included, tiled up to --rows), from a flow table (--flows), and from random
values. Every predictor's scores are checked against LightGBM's on the same rows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from p2pdetect.models.bundle import load_bundle
from p2pdetect.models.predictor import (
    ENV_CACHE,
    LightGBMPredictor,
    make_predictor,
    reduce_model,
    row_major,
)

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
Scorer = Callable[[dict], np.ndarray]


def _tl2cgen(text: str, used: list[int], names: list[str], work: Path) -> Scorer:
    """The reduced model compiled by tl2cgen, reading row-major float32 chunks."""
    import tl2cgen
    import treelite

    src = work / "reduced.txt"
    src.write_text(text)
    lib = work / "tl2cgen.so"
    tl2cgen.export_lib(treelite.frontend.load_lightgbm_model(str(src)), toolchain="gcc", libpath=str(lib),
                       nthread=1, verbose=False)
    pred = tl2cgen.Predictor(str(lib), nthread=1, verbose=False)

    def score(cols: dict) -> np.ndarray:
        columns = [cols[names[i]] for i in used]
        n, m = len(columns[0]), 4096
        out = np.empty(n)
        buf = np.empty((m, len(columns)), dtype=np.float32)
        for s in range(0, n, m):
            X = row_major(columns, s, min(n, s + m), buf)
            out[s:s + len(X)] = pred.predict(tl2cgen.DMatrix(X)).ravel()
        return out
    return score


def scorers(bundle, *, treelite: bool = False, work: Path | None = None) -> dict[str, Scorer]:
    """name -> function(dict of columns) -> P(p2p), each doing the whole per-batch job."""
    names = bundle.feature_names
    text, used = reduce_model(bundle.booster)
    fallback = LightGBMPredictor(text, used, num_threads=1)
    compiled = make_predictor(bundle.booster, kind="lleaves", num_threads=1)
    out: dict[str, Scorer] = {
        "lightgbm, all features": lambda cols: bundle.booster.predict(bundle.matrix(cols), num_threads=1),
        "lightgbm, used features": lambda cols: fallback.predict([cols[names[i]] for i in used]),
        "lleaves": lambda cols: compiled.predict([cols[names[i]] for i in compiled.used]),
    }
    if treelite:
        try:
            out["tl2cgen"] = _tl2cgen(text, used, names, work or Path(tempfile.mkdtemp()))
        except Exception as err:  # noqa: BLE001 - optional comparison: say why it is missing
            print(f"tl2cgen: skipped ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
    return out


def compare(bundle, table_cols: dict[str, np.ndarray], *, rows: int = 1_000_000, batch: int = 100_000,
            repeat: int = 3, funcs: dict[str, Scorer] | None = None) -> dict[str, dict]:
    """Best flows/s (of `repeat` interleaved runs) and max |score - LightGBM's| per scorer."""
    funcs = funcs or scorers(bundle)
    n0 = len(next(iter(table_cols.values())))
    idx = np.resize(np.arange(n0), rows)
    cols = {c: np.asarray(table_cols[c])[idx] for c in bundle.feature_names}
    first = {c: v[:n0] for c, v in cols.items()}
    ref = bundle.booster.predict(bundle.matrix(first), num_threads=1)
    res = {}
    for k, f in funcs.items():
        got = f(first)
        res[k] = {"rates": [], "cpu_rates": [], "max_diff": float(np.abs(got - ref).max()),
                  "verdicts_differ": int(((got >= bundle.threshold) != (ref >= bundle.threshold)).sum())}
    for _ in range(repeat):
        for k, f in funcs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            for s in range(0, rows, batch):
                f({c: v[s:s + batch] for c, v in cols.items()})
            res[k]["cpu_rates"].append(rows / (time.thread_time() - c0))
            res[k]["rates"].append(rows / (time.perf_counter() - t0))
    for r in res.values():
        r["best"], r["best_cpu"] = max(r["rates"]), max(r["cpu_rates"])
    return res


def print_comparison(title: str, res: dict[str, dict]) -> None:
    base = res["lightgbm, all features"]["best"]
    print(title)
    print(f"  {'':26}{'flows/s':>12}{'ratio':>7}{'per CPU s':>12}  max |diff|  verdicts differ  runs (flows/s)")
    for k, r in res.items():
        print(f"  {k:26}{r['best']:>12,.0f}{r['best'] / base:>6.2f}x{r['best_cpu']:>12,.0f}  {r['max_diff']:>10.1e}"
              f"  {r['verdicts_differ']:>15}  {', '.join(f'{x / 1e6:.2f}M' for x in r['rates'])}")


def compile_times(bundle) -> tuple[float, float]:
    """Seconds to make the lleaves predictor: compiling (no cache), and from the user cache."""
    t0 = time.perf_counter()
    old = os.environ.get(ENV_CACHE)
    os.environ[ENV_CACHE] = "off"
    try:
        make_predictor(bundle.booster, kind="lleaves")
    finally:
        if old is None:
            os.environ.pop(ENV_CACHE)
        else:
            os.environ[ENV_CACHE] = old
    cold = time.perf_counter() - t0
    make_predictor(bundle.booster, kind="lleaves")   # fills the cache
    t0 = time.perf_counter()
    make_predictor(bundle.booster, kind="lleaves")
    return cold, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/inference.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=None, help="bundle (default: the shipped model)")
    ap.add_argument("--flows", help="Parquet flow table to take rows from (default: the sample captures)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--treelite", action="store_true", help="also time tl2cgen (needs treelite, tl2cgen, gcc)")
    args = ap.parse_args(argv)
    b = load_bundle(args.model, num_threads=1)
    text, used = reduce_model(b.booster)
    cold, warm = compile_times(b)
    print(f"{b.bundle_id}: {b.booster.num_trees()} trees, {len(b.feature_names)} features, {len(used)} used by "
          f"its splits; one thread, batches of {args.batch:,}, {args.rows:,} rows, best of {args.repeat} "
          f"interleaved runs")
    print(f"lleaves predictor: compiled in {cold:.2f} s, loaded from the user cache in {warm:.2f} s "
          f"(both include the probe check against LightGBM)")
    funcs = scorers(b, treelite=args.treelite)
    if args.flows:
        import pyarrow.parquet as pq

        t = pq.read_table(args.flows, columns=b.feature_names)
        label = f"flows of {args.flows}"
    else:
        from p2pdetect.features.extract import extract_paths

        t = extract_paths([SAMPLES], b.extract_config, n_jobs=1)
        label = "flows of the sample captures (data/samples, early snapshots included)"
    cols = {c: t.column(c).to_numpy(zero_copy_only=False) for c in b.feature_names}
    print_comparison(f"{label}: {t.num_rows:,} rows tiled", compare(b, cols, rows=args.rows, batch=args.batch,
                                                                   repeat=args.repeat, funcs=funcs))
    rng = np.random.default_rng(0)
    n = 100_000
    rand = {c: rng.lognormal(3, 2, n) * rng.choice([-1, 1], n, p=[0.05, 0.95]) for c in b.feature_names}
    print_comparison("random values (lognormal, 5 % negative)",
                     compare(b, rand, rows=args.rows, batch=args.batch, repeat=args.repeat, funcs=funcs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training recipes compared out of distribution, over several seeds (issue 8: "capacity and
threshold chosen by the grouped evaluation, not fixed in advance").

For each recipe (a set of TrainConfig fields, --set NAME=VALUE ...; several recipes separated by
--recipe) and each seed, `p2pdetect evaluate --group-by KEY`'s leave-one-group-out figures are
computed (training.group_eval.group_out: the same units, training recipe, endpoint and host
evidence and figures as the report) on the corpus and, with --ndpi, the nDPI-labelled real
captures (their own group `real`, in folds). It prints, per recipe, seed and group, the model's
flow / byte / host recall, its false positives (flows) and the baseline's flow recall, then the
mean and the range over seeds per recipe and group. One model per cell moves by several points
from seed to seed (bagging and feature sampling), and the real false positives by a cluster of
flows at once: compare recipes on the mean of several seeds, never on one run.

    P2PDETECT_CACHE=.cache/flows python benchmarks/recipe_sweep.py data/corpus/manifest.json \
        --ndpi ../shared/captures/ndpi --group-by implementation --seeds 0 1 2 \
        --recipe --recipe --set num_leaves=7 --set max_rounds=80 --json out/sweep.json

(The first, empty --recipe is the TrainConfig defaults. --peers-in-progress extracts the corpus with
ExtractConfig.peers_in_progress for every recipe of the run.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: benchmarks/ is on sys.path, the repository root is not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.early_ood import load_corpus
from p2pdetect.errors import BadConfigError, P2PDetectError
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.group_eval import group_out
from p2pdetect.training.groups import GROUP_BYS

log = logging.getLogger("p2pdetect.recipe_sweep")

#: the figures kept per group: (name, path in a group row of group_out)
FIGURES = (("flow", ("model", "flow", "recall")), ("byte", ("model", "byte", "recall")),
           ("host", ("model", "host", "recall")), ("fp", ("model", "flow", "fp")),
           ("fpr", ("model", "flow", "fpr")), ("baseline", ("baseline", "flow", "recall")))


def parse_recipe(items: list[str]) -> dict:
    """NAME=VALUE strings -> TrainConfig keyword arguments, typed like the field's default."""
    known = {f.name: f.default for f in fields(TrainConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known or name in ("seed", "num_threads"):
            raise BadConfigError(f"--set {item!r}: expected NAME=VALUE with NAME a TrainConfig field "
                                 f"other than seed and num_threads ({', '.join(sorted(known))})")
        default = known[name]
        try:
            out[name] = (value.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)(value)
        except ValueError:
            raise BadConfigError(f"--set {item!r}: {value!r} is not a {type(default).__name__}") from None
    return out


def _get(row: dict, path: tuple) -> float | None:
    for key in path:
        row = (row or {}).get(key)
    return None if row is None else float(row)


def figures(section: dict) -> dict[str, dict]:
    """Group name -> the FIGURES of one group_out section (the pooled generator groups included)."""
    rows = section["groups"] + ([section["pooled"]] if "pooled" in section else [])
    return {r["group"]: {name: _get(r, path) for name, path in FIGURES} for r in rows if r.get("model")}


def summary(runs: list[dict]) -> dict[str, dict]:
    """Per group: mean, min and max of each figure over the seeds' runs."""
    out: dict[str, dict] = {}
    for group in dict.fromkeys(g for r in runs for g in r):
        out[group] = {}
        for name, _ in FIGURES:
            v = np.array([r[group][name] for r in runs if group in r and r[group][name] is not None], dtype=float)
            if len(v):
                out[group][name] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
    return out


def _fmt(name: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.0f}" if name == "fp" else f"{100 * v:.1f}"


def table(results: list[dict]) -> str:
    """Mean over seeds (min-max) per recipe and group, as Markdown."""
    names = [n for n, _ in FIGURES]
    lines = ["| recipe | seeds | group | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    for res in results:
        recipe = ", ".join(f"{k}={v}" for k, v in res["recipe"].items()) or "defaults"
        for group, figs in res["summary"].items():
            cells = [f"{_fmt(n, figs[n]['mean'])} ({_fmt(n, figs[n]['min'])}-{_fmt(n, figs[n]['max'])})"
                     if n in figs else "n/a" for n in names]
            lines.append(f"| {recipe} | {len(res['seeds'])} | {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest", type=Path, help="the corpus manifest (make dataset)")
    ap.add_argument("--ndpi", type=Path, default=None, help="nDPI-labelled real captures (their own group)")
    ap.add_argument("--group-by", choices=GROUP_BYS, default="implementation")
    ap.add_argument("--recipe", action="append_const", const="|", dest="marks", default=[],
                    help="start a recipe (the TrainConfig defaults, changed by the --set options after it)")
    ap.add_argument("--set", action="append", dest="marks", metavar="NAME=VALUE",
                    help="a TrainConfig field of the current recipe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--folds", type=int, default=5, help="folds of the real and P2P-free captures")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="extraction processes")
    ap.add_argument("--json", type=Path, help="write every run's figures and the summary here")
    ap.add_argument("--peers-in-progress", action="store_true",
                    help="extract with ExtractConfig.peers_in_progress (every recipe of the run)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        recipes, current = [], None
        for mark in args.marks:
            if mark == "|":
                current = []
                recipes.append(current)
            elif current is None:
                raise BadConfigError("--set before the first --recipe")
            else:
                current.append(mark)
        recipes = [parse_recipe(r) for r in recipes] or [{}]
        dataset = load_corpus(args.manifest, args.ndpi, args.jobs, args.peers_in_progress)
        inputs = [args.manifest] + ([args.ndpi] if args.ndpi else [])
        results = []
        for recipe in recipes:
            runs = []
            for seed in args.seeds:
                t0 = time.perf_counter()
                config = TrainConfig(**recipe, seed=seed, num_threads=args.threads)
                runs.append(figures(group_out(dataset, args.group_by, config, inputs=inputs, n_splits=args.folds)))
                log.info("recipe %s seed %d: %.0f s: %s", recipe or "defaults", seed, time.perf_counter() - t0,
                         "; ".join(f"{g} " + " ".join(f"{n} {_fmt(n, v)}" for n, v in figs.items())
                                   for g, figs in runs[-1].items()))
            results.append({"recipe": recipe, "seeds": args.seeds, "runs": runs, "summary": summary(runs)})
        print(table(results))
        if args.json:
            args.json.write_text(json.dumps({"group_by": args.group_by, "results": results}, indent=1))
    except P2PDetectError as err:
        print(f"recipe_sweep: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

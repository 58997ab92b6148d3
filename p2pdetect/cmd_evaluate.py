"""`p2pdetect evaluate`: a model bundle and labelled datasets in, metrics.json + report.html out."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("p2pdetect.evaluate")

#: which option sets which configuration field (errors name the option: p2pdetect.options)
CONFIG_OPTIONS = {"TrainConfig.num_threads": "--threads"}


def add_parser(sub) -> None:
    from p2pdetect.cmd_train import add_dataset_args

    p = sub.add_parser("evaluate", help="write an evaluation report (report.html + metrics.json)",
                       description="Score labelled datasets with a model bundle and write a self-contained "
                                   "HTML report and metrics.json into REPORT_DIR.")
    add_dataset_args(p)
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                   help="report directory to write (report.html + metrics.json; built beside it, then "
                        "renamed into place; only an earlier report or an empty directory is replaced)")
    p.add_argument("--ablation", action="store_true",
                   help="also run the port ablation: grouped cross-validation over the evaluated captures "
                        "with and without port features (trains 2 x FOLDS models)")
    p.add_argument("--group-by", choices=["implementation", "scenario", "network"], metavar="KEY",
                   help="lead the report with leave-one-group-out figures: for each implementation, scenario "
                        "or network condition, a model trained without it (the `train` recipe) scores its "
                        "captures, beside the Karagiannis et al. heuristic baseline; real (nDPI-labelled) "
                        "captures form the group `real`")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="folds for --ablation, and for real / P2P-free captures under --group-by (default 5)")
    p.add_argument("--early-packets", type=int, nargs="+", default=[4, 8, 16, 32], metavar="K",
                   help="packet counts at which first-verdict recall is measured through the real scorer "
                        "(default 4 8 16 32)")
    p.add_argument("--no-early", action="store_true",
                   help="skip the early-detection curve and the first-verdict measurement")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="LightGBM threads (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p2pdetect.models.bundle import load_bundle
    from p2pdetect.errors import BadConfigError
    from p2pdetect.training.config import TrainConfig
    from p2pdetect.training.datasets import load_dataset
    from p2pdetect.training.evaluate import evaluate
    from p2pdetect.training.report import check_report_path, write_report

    if args.folds < 2:
        raise BadConfigError(f"--folds must be an int >= 2. Got {args.folds} instead.")
    if any(k < 1 for k in args.early_packets):
        raise BadConfigError(f"--early-packets must be ints >= 1. Got {args.early_packets} instead.")
    check_report_path(args.output)
    bundle = load_bundle(args.model, num_threads=max(1, args.threads))
    # unlabelled flows stay in for the heuristic baseline (how endpoints behave); evaluate drops them
    dataset = load_dataset(args.datasets, bundle.extract_config, labels_from_dpi=args.labels_from_dpi,
                           n_jobs=args.jobs, skip_bad=args.skip_bad, use_cache=not args.no_cache,
                           keep_unlabelled=True)
    metrics = evaluate(bundle, dataset, ablation=args.ablation, n_splits=args.folds, early=not args.no_early,
                       train_config=TrainConfig(num_threads=max(1, args.threads)), group_by=args.group_by,
                       inputs=args.datasets)
    if not args.no_early:
        metrics["first_verdicts"] = _first_verdicts(bundle, dataset, args.early_packets)
    metrics["data"]["inputs"] = [str(d) for d in args.datasets]
    out = write_report(args.output, metrics)
    o = metrics["overall"]
    log.info("evaluate: recall %s, byte recall %s, FPR %s at threshold %.6g; wrote %s",
             _pct(o["flow"]["recall"]), _pct((o.get("byte") or {}).get("recall")), _pct(o["flow"]["fpr"]),
             bundle.threshold, out / "report.html")
    return 0


def _first_verdicts(bundle, dataset, ks: list[int]) -> dict:
    """First-verdict recall through the real scorer (serve/), per packet count k."""
    import json
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.compute as pc

    from p2pdetect.serve import ScoreConfig, capture_source, run_scoring
    from p2pdetect.serve.sinks import JsonLinesSink
    from p2pdetect.training.early import FIRST_VERDICT_MEANING, first_verdict_rates

    def score_capture(cap: str, k: int) -> list[dict]:
        config = ScoreConfig(early_packets=k, early_seconds=0)
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "v.jsonl"
            run_scoring(capture_source(cap, bundle.extract_config, config), bundle, JsonLinesSink(out), config)
            return [json.loads(line) for line in out.read_text().splitlines()]

    from p2pdetect.training.datasets import DPI

    t = dataset.table
    # captures with labels files (the scorer's verdicts are matched to them); nDPI-labelled real
    # captures hold a handful of P2P flows and would multiply the scorer runs by hundreds
    own = [name for name, info in dataset.captures.items() if info.get("labels") != DPI]
    keep = pc.and_(pc.not_equal(t.column("label").fill_null(""), ""), pc.is_in(t.column("capture"), pa.array(own)))
    if "stage" in t.column_names:
        keep = pc.and_(keep, pc.equal(t.column("stage"), "final"))
    t = t.filter(keep)
    log.info("evaluate: first verdicts through the scorer at %s packets", ", ".join(map(str, ks)))
    return {"meaning": FIRST_VERDICT_MEANING, "points": first_verdict_rates(t, score_capture, ks),
            "model": bundle.bundle_id}


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"

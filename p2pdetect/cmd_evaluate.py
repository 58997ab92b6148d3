"""`p2pdetect evaluate`: a model bundle and labelled datasets in, metrics.json + report.html out."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("p2pdetect.evaluate")


def add_parser(sub) -> None:
    from p2pdetect.cmd_train import add_dataset_args

    p = sub.add_parser("evaluate", help="write an evaluation report (report.html + metrics.json)",
                       description="Score labelled datasets with a model bundle and write a self-contained "
                                   "HTML report and metrics.json into REPORT_DIR.")
    add_dataset_args(p)
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    p.add_argument("--ablation", action="store_true",
                   help="also run the port ablation: grouped cross-validation over the evaluated captures "
                        "with and without port features (trains 2 x FOLDS models)")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="folds for --ablation (default 5)")
    p.add_argument("--no-early", action="store_true", help="skip the early-detection curve")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="LightGBM threads (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.bundle import load_bundle
    from p2pdetect.errors import BadConfigError
    from training.config import TrainConfig
    from training.datasets import load_dataset
    from training.evaluate import evaluate
    from training.report import check_report_path, write_report

    if args.folds < 2:
        raise BadConfigError(f"--folds must be an int >= 2. Got {args.folds} instead.")
    check_report_path(args.output)
    bundle = load_bundle(args.model, num_threads=max(1, args.threads))
    dataset = load_dataset(args.datasets, bundle.extract_config, labels_from_dpi=args.labels_from_dpi,
                           n_jobs=args.jobs, skip_bad=args.skip_bad, use_cache=not args.no_cache)
    metrics = evaluate(bundle, dataset, ablation=args.ablation, n_splits=args.folds, early=not args.no_early,
                       train_config=TrainConfig(num_threads=max(1, args.threads)))
    metrics["data"]["inputs"] = [str(d) for d in args.datasets]
    out = write_report(args.output, metrics)
    o = metrics["overall"]
    log.info("evaluate: recall %s, byte recall %s, FPR %s at threshold %.6g; wrote %s",
             _pct(o["flow"]["recall"]), _pct((o.get("byte") or {}).get("recall")), _pct(o["flow"]["fpr"]),
             bundle.threshold, out / "report.html")
    return 0


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"

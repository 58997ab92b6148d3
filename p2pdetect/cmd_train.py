"""`p2pdetect train`: labelled datasets in, a verified model bundle out."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from p2pdetect.options import add_peers_in_progress, jobs

log = logging.getLogger("p2pdetect.train")

#: which option sets which configuration field (errors name the option: p2pdetect.options)
CONFIG_OPTIONS = {"TrainConfig.target_fpr": "--target-fpr", "TrainConfig.seed": "--seed",
                  "TrainConfig.port_number_gain": "--port-number-gain",
                  "TrainConfig.num_threads": "--threads", "ExtractConfig.snapshot_packets": "--early-packets",
                  "ExtractConfig.peers_in_progress": "--peers-in-progress"}


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """DATASET arguments and how they are read (shared with `evaluate`)."""
    p.add_argument("datasets", nargs="+", metavar="DATASET",
                   help="flow table (.parquet, extracted with --labels), capture with its sidecar "
                        "X.labels.csv, directory of such captures, or corpus manifest (.json)")
    p.add_argument("--labels-from-dpi", action="store_true",
                   help="label captures without a labels file (and tables without labels) by nDPI's "
                        "application (P2P apps -> p2p, other identified apps -> other, Unknown dropped)")
    p.add_argument("--skip-bad", action="store_true",
                   help="warn about unreadable captures and leave them out instead of stopping")
    p.add_argument("--jobs", type=jobs, default=-1, metavar="N",
                   help="captures metered in parallel, -1 for one per core (default -1)")
    p.add_argument("--no-cache", action="store_true",
                   help="meter every capture again instead of using the flow cache "
                        "($P2PDETECT_CACHE or .cache/flows)")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model bundle on labelled captures or flow tables",
                       description="Train a LightGBM P2P detector on labelled datasets, split by capture, "
                                   "and write a model bundle (text model, metadata, SHA-256 manifest).")
    add_dataset_args(p)
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="model bundle directory to write (built beside it, then renamed into place; "
                        "only an earlier bundle or an empty directory is replaced)")
    p.add_argument("--target-fpr", type=float, default=0.003, metavar="RATE",
                   help="false-positive rate on validation flows the threshold aims at (default 0.003)")
    p.add_argument("--no-port-features", action="store_true",
                   help="train without the coarse port facts (the port ablation)")
    p.add_argument("--no-port-number-features", action="store_true",
                   help="train without the facts that say whether a flow's ports are below 1024 (to them a "
                        "peer listening on 443 or 25 is a server); how hosts use their ports stays")
    p.add_argument("--port-number-gain", type=float, default=0.3, metavar="G",
                   help="share of split gain a port-number fact counts, so the trees prefer how flows and "
                        "hosts behave to which port they use; 1 = as any feature (default 0.3)")
    p.add_argument("--timing-features", action="store_true",
                   help="also train on absolute timings (durations, inter-arrival times, RTT): they "
                        "describe the network path as much as the application, so they are off by default")
    p.add_argument("--sequence-features", action="store_true",
                   help="also train on the size and direction of each of the first packets and the sizes of "
                        "the first two payloads: they spell out one implementation's message layout, so "
                        "they are off by default")
    p.add_argument("--early-packets", type=int, default=32, metavar="N",
                   help="also train on each flow as it looks after N packets, so the scorer's early "
                        "verdicts (made at N packets) are as good as its final ones; 0 = final flows only "
                        "(default 32)")
    add_peers_in_progress(p, train=True)
    p.add_argument("--seed", type=int, default=0, help="split and LightGBM seed (default 0)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="LightGBM threads (default 2)")
    p.set_defaults(func=run)


def peers_in_progress(given: bool | None, datasets: list[str], early_packets: int) -> bool:
    """ExtractConfig.peers_in_progress for train: as given; else as the first flow table among the
    datasets was extracted, else on (the shipped recipe) when there are early snapshots to use."""
    if given is not None:
        return given
    from p2pdetect.features.table import flow_table_config

    for d in datasets:
        if str(d).lower().endswith(".parquet"):
            config = flow_table_config(d)
            if config is not None:
                return config.peers_in_progress
    return early_packets > 0


def run(args: argparse.Namespace) -> int:
    from p2pdetect.models.bundle import check_bundle_path
    from p2pdetect.training.build import build_bundle
    from p2pdetect.training.config import TrainConfig
    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.training.datasets import load_dataset

    extract = ExtractConfig(snapshot_packets=args.early_packets,
                            peers_in_progress=peers_in_progress(args.peers_in_progress, args.datasets,
                                                                args.early_packets))
    config = TrainConfig(target_fpr=args.target_fpr, port_features=not args.no_port_features,
                         port_number_features=not args.no_port_number_features,
                         port_number_gain=args.port_number_gain,
                         timing_features=args.timing_features,
                         sequence_features=args.sequence_features, seed=args.seed, num_threads=args.threads)
    check_bundle_path(args.output, inputs=args.datasets)
    dataset = load_dataset(args.datasets, extract, labels_from_dpi=args.labels_from_dpi, n_jobs=args.jobs,
                           skip_bad=args.skip_bad, use_cache=not args.no_cache, keep_unlabelled=True)
    build_bundle(dataset, args.output, config, sources=[str(d) for d in args.datasets],
                 command="p2pdetect " + shlex.join(sys.argv[1:]) if sys.argv else None)
    return 0

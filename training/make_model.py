"""Build the shipped default model (`make model`): python -m p2pdetect.training.make_model.

Training data, in order of preference for the P2P side:
  1. the generator's corpus, data/corpus/manifest.json (`make dataset`), labels by construction
     (without a manifest: the finished runs data/corpus/<scenario>-s<seed>/*.pcap);
  2. otherwise the committed samples, data/samples/*.pcap with their *.labels.csv sidecars;
plus the real ordinary traffic of ../shared/captures/ndpi/ (read in place, never copied),
labelled by nDPI through training.dpi_labels; that corpus holds deliberately broken files,
so it is read with skip_bad. Where it is absent the model is built without it (warned).
Seed 0, TrainConfig defaults, early snapshots at 32 packets and ExtractConfig.peers_in_progress
(--no-peers-in-progress: without it): the same inputs give the same model text.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from p2pdetect.errors import P2PDetectError

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "data" / "corpus" / "manifest.json"
SAMPLES = REPO / "data" / "samples"
NDPI = REPO.parent / "shared" / "captures" / "ndpi"

log = logging.getLogger("p2pdetect.make_model")


def _rel(p: Path) -> str:
    try:
        return os.path.relpath(p, Path.cwd())
    except ValueError:
        return str(p)


def _sidecar(p: Path) -> Path:
    return p.with_name(p.name.rsplit(".", 1)[0] + ".labels.csv")


def labelled_sources(corpus: Path = CORPUS, samples: Path = SAMPLES) -> list[str]:
    """The generator's captures with labels: the corpus manifest, else the sample captures."""
    if corpus.is_file():
        return [_rel(corpus)]
    runs = sorted(p for p in corpus.parent.glob("*-s*/*.pcap") if _sidecar(p).is_file())
    if runs:
        log.warning("make model: %s not found; training on the %d finished corpus runs in %s",
                    _rel(corpus), len(runs), _rel(corpus.parent))
        return [_rel(p) for p in runs]
    caps = sorted(p for p in samples.glob("*.pcap*")
                  if _sidecar(p).is_file())
    if caps:
        log.warning("make model: %s not found (run 'make dataset'); training on the %d sample captures "
                    "in %s instead", _rel(corpus), len(caps), _rel(samples))
        return [_rel(p) for p in caps]
    raise P2PDetectError(f"no labelled P2P captures: neither {_rel(corpus)} (make dataset) nor labelled "
                         f"samples in {_rel(samples)} (make samples)")


def main(argv: list[str] | None = None) -> int:
    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.training.build import build_bundle
    from p2pdetect.training.config import TrainConfig
    from p2pdetect.training.datasets import concat_datasets, load_dataset

    ap = argparse.ArgumentParser(prog="python -m p2pdetect.training.make_model", description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default=str(REPO / "models" / "default"))
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--ndpi", default=str(NDPI))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--early-packets", type=int, default=32,
                    help="also train on flows as they look after N packets (the scorer's early verdicts)")
    ap.add_argument("--peers-in-progress", action=argparse.BooleanOptionalAction, default=True,
                    help="count answered TCP connections in their hosts' peers from their early snapshot on "
                         "(the shipped model does; default: on)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="p2pdetect: %(message)s", stream=sys.stderr)
    try:
        sources = labelled_sources(Path(args.corpus))
        parts = [load_dataset(sources, ExtractConfig(snapshot_packets=args.early_packets,
                                                        peers_in_progress=args.peers_in_progress), keep_unlabelled=True)]
        ndpi = Path(args.ndpi)
        if ndpi.is_dir():
            parts.append(load_dataset([_rel(ndpi)], parts[0].config, labels_from_dpi=True, skip_bad=True,
                                      keep_unlabelled=True))
            sources.append(_rel(ndpi))
        else:
            log.warning("make model: %s not found; the model learns ordinary traffic from the generator only",
                        _rel(ndpi))
        dataset = concat_datasets(parts)
        build_bundle(dataset, args.output, TrainConfig(seed=args.seed), sources=sources,
                     command=f"make model (python -m p2pdetect.training.make_model --seed {args.seed}"
                             f"{'' if args.peers_in_progress else ' --no-peers-in-progress'})")
    except P2PDetectError as err:
        print(f"p2pdetect: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

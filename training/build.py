"""Dataset in, verified model bundle out: the one path `p2pdetect train` and `make model` share."""

from __future__ import annotations

import logging
import os

from p2pdetect.models.bundle import ModelBundle, save_bundle
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.datasets import Dataset
from p2pdetect.training.train import train_model

log = logging.getLogger("p2pdetect.train")


def build_bundle(dataset: Dataset, out: str | os.PathLike, config: TrainConfig | None = None,
                 *, sources: list[str] | None = None, command: str | None = None) -> ModelBundle:
    """Train on a dataset and save the bundle with its data fingerprint and metrics. Its
    unlabelled flows (load_dataset(keep_unlabelled=True)) never train; they feed the host
    evidence the threshold is chosen with (train_model's context)."""
    config = config or TrainConfig()
    dataset, context = dataset.without_unlabelled()
    result = train_model(dataset.table, dataset.config, config, strata=dataset.label_sources(),
                         context=context)
    training = {
        "sources": list(sources or []),
        "command": command,
        "train_config": config.to_dict(),
        **dataset.fingerprint(),
        "split": result.metrics.pop("split"),
    }
    bundle = save_bundle(out, result.booster, feature_names=result.feature_names,
                         extract_config=dataset.config, threshold=result.threshold,
                         target_fpr=config.target_fpr, training=training, metrics=result.metrics,
                         corroborate_peers=config.corroborate_peers)
    size = sum(p.stat().st_size for p in bundle.path.iterdir())
    log.info("train: wrote bundle %s to %s (%d trees, %.0f KB)", bundle.bundle_id, bundle.path,
             result.booster.num_trees(), size / 1024)
    return bundle

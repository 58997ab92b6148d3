"""Grouped cross-validation over captures: out-of-fold scores for the full and the no-port model.

Each fold trains on the other folds' captures (with its own inner capture split for early
stopping and threshold, exactly like `p2pdetect train`) and scores captures it never saw,
so every flow gets one honest out-of-fold verdict. The port ablation compares the two
feature sets on the same folds.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pyarrow as pa

from training.config import TrainConfig
from training.datasets import Dataset
from training.split import grouped_folds
from training.train import feature_matrix, train_model

log = logging.getLogger("p2pdetect.crossval")


def out_of_fold(dataset: Dataset, config: TrainConfig, n_splits: int = 5) -> dict:
    """Out-of-fold scores and verdicts per flow (each fold's own threshold)."""
    y, groups, strata = dataset.y, dataset.groups, dataset.label_sources()
    folds = grouped_folds(groups, y, n_splits, config.seed)
    scores = np.full(len(y), np.nan)
    hit = np.zeros(len(y), dtype=bool)
    thresholds = []
    for i, fold in enumerate(folds, 1):
        log.info("crossval: fold %d/%d (port features %s): %d training captures, %d test captures",
                 i, len(folds), "on" if config.port_features else "off",
                 len(fold.train_captures), len(fold.valid_captures))
        result = train_model(dataset.table.take(pa.array(fold.train)), dataset.config, config,
                             strata=strata[fold.train])
        s = result.booster.predict(feature_matrix(dataset.table, result.feature_names, fold.valid),
                                   num_threads=config.num_threads)
        scores[fold.valid] = s
        hit[fold.valid] = s >= result.threshold
        thresholds.append(result.threshold)
    return {"scores": scores, "hit": hit, "thresholds": thresholds, "folds": len(folds)}


def port_ablation(dataset: Dataset, config: TrainConfig | None = None, n_splits: int = 5) -> dict:
    """Grouped CV of the same training recipe with and without port features."""
    config = config or TrainConfig()
    return {name: out_of_fold(dataset, replace(config, port_features=ports), n_splits)
            for name, ports in (("with_ports", True), ("without_ports", False))}

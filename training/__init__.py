"""Datasets and labels, grouped splits, LightGBM training, threshold choice, evaluation reports.

Public names load lazily (importing training.labels must not pull in LightGBM or matplotlib).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "training.config",
    "Dataset": "training.datasets",
    "load_dataset": "training.datasets",
    "concat_datasets": "training.datasets",
    "grouped_split": "training.split",
    "grouped_folds": "training.split",
    "threshold_for_fpr": "training.threshold",
    "train_model": "training.train",
    "build_bundle": "training.build",
    "write_report": "training.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")

"""Datasets and labels, grouped splits, LightGBM training, threshold choice, evaluation reports.

Public names load lazily (importing training.labels must not pull in LightGBM or matplotlib).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "p2pdetect.training.config",
    "Dataset": "p2pdetect.training.datasets",
    "load_dataset": "p2pdetect.training.datasets",
    "concat_datasets": "p2pdetect.training.datasets",
    "grouped_split": "p2pdetect.training.split",
    "grouped_folds": "p2pdetect.training.split",
    "threshold_for_fpr": "p2pdetect.training.threshold",
    "train_model": "p2pdetect.training.train",
    "build_bundle": "p2pdetect.training.build",
    "write_report": "p2pdetect.training.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")

"""Grouped cross-validation over captures: out-of-fold scores for the full and the no-port model,
and leave-one-group-out models (an implementation, a scenario, a network left out of training).

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

from p2pdetect.errors import BadDatasetError
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.datasets import Dataset
from p2pdetect.training.split import grouped_folds
from p2pdetect.training.train import feature_matrix, train_model

log = logging.getLogger("p2pdetect.crossval")


def out_of_fold(dataset: Dataset, config: TrainConfig, n_splits: int = 5) -> dict:
    """Out-of-fold scores and verdicts per flow (each fold's own threshold)."""
    from p2pdetect.training.groups import source_captures

    y, groups, strata = dataset.y, dataset.groups, dataset.label_sources()
    folds = grouped_folds(source_captures(groups), y, n_splits, config.seed)
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
        s = with_host_evidence(dataset.table, fold.valid, s, result.threshold,
                               corroborate_peers=config.corroborate_peers)
        scores[fold.valid] = s
        hit[fold.valid] = s >= result.threshold
        thresholds.append(result.threshold)
    return {"scores": scores, "hit": hit, "thresholds": thresholds, "folds": len(folds)}


def port_ablation(dataset: Dataset, config: TrainConfig | None = None, n_splits: int = 5) -> dict:
    """Grouped CV of the same training recipe with and without port features."""
    config = config or TrainConfig()
    return {name: out_of_fold(dataset, replace(config, port_features=ports), n_splits)
            for name, ports in (("with_ports", True), ("without_ports", False))}


def with_host_evidence(table: pa.Table, rows: np.ndarray, scores: np.ndarray, threshold: float,
                       records: bool = False, corroborate_peers: int = 2):
    """Scores of rows as the scorer gives them: the model's, raised by the endpoint and host
    evidence of earlier flows and evidence snapshots of the same capture (models.host_evidence),
    in meter order; with records, also each capture's host records. Give every row of the
    captures, snapshots included, for the evidence the scorer has."""
    from p2pdetect.models.host_evidence import evidence_scores, table_columns

    if not len(rows):
        return (scores, {}) if records else scores
    out, recs = evidence_scores(table_columns(table, rows), scores, threshold,
                                corroborate_peers=corroborate_peers)
    return (out, recs) if records else out


def leave_group_out(dataset: Dataset, units: list[dict], config: TrainConfig) -> list[dict]:
    """One model per unit (training.groups.group_units), trained by `p2pdetect train`'s recipe on
    every capture the unit does not hold out, scoring the final rows of the unit's test captures.

    dataset may hold unlabelled rows (label ''): they never train, but they are scored, so the
    endpoint and host evidence sees every flow of a capture as the scorer would (in the test
    captures, and in the training captures for the threshold: train_model's context). Each result: the
    unit's keys, rows (indices into dataset.table: every final row of the test captures), scores,
    hit (at that model's own threshold), host_records (per capture), threshold, booster and
    feature_names; or skipped (a reason) when the captures left for training lack a class.
    """
    groups, strata = dataset.groups, dataset.label_sources()
    y = dataset.y
    labelled = dataset.table.column("label").to_numpy(zero_copy_only=False).astype(str) != ""
    final = np.ones(len(y), dtype=bool)
    if "stage" in dataset.table.column_names:
        final = dataset.table.column("stage").to_numpy(zero_copy_only=False) == "final"
    out = []
    for i, unit in enumerate(units, 1):
        held = np.isin(groups, unit["held_out"])
        train = np.flatnonzero(~held & labelled)
        every = np.flatnonzero(np.isin(groups, unit["test"]))   # snapshots too: they are evidence
        rows = every[final[every]]
        res = {**unit, "rows": rows}
        yt = y[train]
        if len(np.unique(groups[train])) < 2 or yt.sum() == 0 or yt.sum() == len(yt):
            res["skipped"] = (f"the captures left for training hold {int(yt.sum())} p2p and "
                              f"{int(len(yt) - yt.sum())} other flows in {len(np.unique(groups[train]))} captures: "
                              f"no model can be trained without this group")
            log.warning("group-out %s: %s", unit["group"], res["skipped"])
            out.append(res)
            continue
        log.info("group-out %d/%d: %s left out (%d captures); training on %d captures",
                 i, len(units), unit["group"], len(unit["held_out"]), len(np.unique(groups[train])))
        try:
            context = dataset.table.take(pa.array(np.flatnonzero(~held & ~labelled)))
            result = train_model(dataset.table.take(pa.array(train)), dataset.config, config, strata=strata[train],
                                 context=context)
        except BadDatasetError as err:
            res["skipped"] = str(err)
            log.warning("group-out %s: %s", unit["group"], err)
            out.append(res)
            continue
        s = result.booster.predict(feature_matrix(dataset.table, result.feature_names, every),
                                   num_threads=config.num_threads) if len(every) else np.zeros(0)
        s, recs = with_host_evidence(dataset.table, every, s, result.threshold, records=True,
                                     corroborate_peers=config.corroborate_peers)
        s = s[final[every]]
        res.update({"scores": s, "hit": s >= result.threshold, "threshold": float(result.threshold),
                    "host_records": recs,
                    "booster": result.booster, "feature_names": result.feature_names, "skipped": None})
        out.append(res)
    return out

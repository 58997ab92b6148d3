"""Training: grouped split, LightGBM with early stopping on held-out captures, threshold for a target FPR."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.config import ExtractConfig
from features.schema import feature_columns
from p2pdetect.errors import BadDatasetError
from training.config import TrainConfig
from training.split import Split, grouped_split
from training.threshold import rates_at, threshold_for_fpr

log = logging.getLogger("p2pdetect.train")


def model_features(config: ExtractConfig, port_features: bool = True) -> list[str]:
    """The model's input columns (DESIGN.md invariant 3: never identity columns)."""
    return feature_columns(config.splt_n, port_features=port_features)


def feature_matrix(table: pa.Table, names: list[str], rows: np.ndarray | None = None) -> np.ndarray:
    """float32 (n, F) matrix of the named columns (nulls as NaN), optionally a row subset."""
    if rows is not None:
        table = table.take(pa.array(rows))
    XT = np.empty((len(names), table.num_rows), dtype=np.float32)
    for j, name in enumerate(names):
        col = table.column(name)
        if col.null_count:
            col = col.cast(pa.float64()).fill_null(float("nan"))
        XT[j] = col.to_numpy()
    return XT.T


def _log_progress(period: int):
    def callback(env) -> None:
        if env.iteration % period == 0 or env.iteration + 1 == env.end_iteration:
            res = " ".join(f"{d}-{m}={v:.5f}" for d, m, v, _ in env.evaluation_result_list)
            log.info("train: round %d: %s", env.iteration + 1, res)
    callback.order = 10
    return callback


def fit_booster(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, names: list[str],
                config: TrainConfig):
    """LightGBM binary classifier, early-stopped on the validation flows."""
    import lightgbm as lgb

    pos = float(y.sum())
    spw = (len(y) - pos) / pos if (config.balance_classes and pos > 0) else 1.0
    params = config.lgb_params(scale_pos_weight=spw)
    dtrain = lgb.Dataset(X, y, feature_name=names, free_raw_data=True)
    dvalid = lgb.Dataset(Xv, yv, reference=dtrain)
    callbacks = [_log_progress(10)]
    # early stopping needs both classes on the validation side (the AUC is undefined otherwise)
    if 0 < yv.sum() < len(yv):
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False))
    else:
        log.warning("train: validation captures hold one class only; no early stopping")
    booster = lgb.train(params, dtrain, num_boost_round=config.max_rounds, valid_sets=[dvalid],
                        valid_names=["valid"], callbacks=callbacks)
    if booster.best_iteration and booster.best_iteration < booster.current_iteration():
        # keep only the trees up to the best round: a smaller, faster model
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    log.info("train: %d trees (scale_pos_weight=%.3g)", booster.num_trees(), spw)
    return booster


@dataclass
class TrainResult:
    booster: object
    feature_names: list[str]
    threshold: float
    split: Split
    metrics: dict


def train_model(table: pa.Table, extract_config: ExtractConfig, config: TrainConfig | None = None,
                split: Split | None = None) -> TrainResult:
    """Fit on the training captures, early-stop and pick the threshold on the validation captures."""
    config = config or TrainConfig()
    y = (table.column("label").to_numpy(zero_copy_only=False) == "p2p").astype(np.int8)
    if y.sum() == 0 or y.sum() == len(y):
        raise BadDatasetError(f"training needs both p2p and other flows; got {int(y.sum())} p2p of "
                              f"{len(y)} labelled flows")
    groups = table.column("capture").to_numpy(zero_copy_only=False).astype(str)
    split = split or grouped_split(groups, y, config.valid_fraction, config.seed)
    summ = split.summary(y)
    for side in ("train", "valid"):
        s = summ[side]
        log.info("split: %s: %d captures, %d flows (%d p2p)", side, s["captures"], s["flows"], s["p2p_flows"])
    names = model_features(extract_config, config.port_features)
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise BadDatasetError(f"flows lack feature column {missing[0]!r}; re-extract them with this p2pdetect")
    X, Xv = feature_matrix(table, names, split.train), feature_matrix(table, names, split.valid)
    yt, yv = y[split.train], y[split.valid]
    if yt.sum() == 0 or yt.sum() == len(yt):
        raise BadDatasetError("the training captures hold one class only after the split by capture; "
                              "add captures with both p2p and other flows")
    booster = fit_booster(X, yt, Xv, yv, names, config)
    scores = booster.predict(Xv, num_threads=config.num_threads)
    threshold = threshold_for_fpr(scores, yv, config.target_fpr)
    recall, fpr = rates_at(scores, yv, threshold)
    metrics = {"valid_recall": recall, "valid_fpr": fpr, "trees": booster.num_trees(),
               "valid_p2p_flows": int(yv.sum()), "valid_other_flows": int(len(yv) - yv.sum())}
    try:
        from sklearn.metrics import roc_auc_score
        metrics["valid_auc"] = float(roc_auc_score(yv, scores)) if 0 < yv.sum() < len(yv) else None
    except ValueError:
        metrics["valid_auc"] = None
    log.info("train: threshold %.6g for target FPR %.3g%%: validation recall %.4f, FPR %.4f%%",
             threshold, 100 * config.target_fpr, recall, 100 * fpr)
    metrics["split"] = {k: {kk: vv for kk, vv in v.items() if kk != "capture_names"} for k, v in summ.items()}
    metrics["split"]["valid"]["capture_names"] = summ["valid"]["capture_names"]
    return TrainResult(booster, names, threshold, split, metrics)

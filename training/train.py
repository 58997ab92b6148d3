"""Training: grouped split, LightGBM with early stopping on held-out captures, threshold for a target FPR."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import feature_columns
from p2pdetect.errors import BadDatasetError
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.split import Split, grouped_split
from p2pdetect.training.threshold import rates_at, threshold_for_fpr

log = logging.getLogger("p2pdetect.train")


def model_features(config: ExtractConfig, port_features: bool = True,
                   timing_features: bool = True, sequence_features: bool = True,
                   port_number_features: bool = True) -> list[str]:
    """The model's input columns (DESIGN.md invariant 3: never identity columns)."""
    return feature_columns(config.splt_n, port_features=port_features, timing_features=timing_features,
                           sequence_features=sequence_features, port_number_features=port_number_features)


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


def capture_weights(groups: np.ndarray, power: float) -> np.ndarray:
    """Per flow n^-power (n = flows of its capture), scaled to mean 1."""
    if power == 0 or len(groups) == 0:
        return np.ones(len(groups))
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = counts[inv].astype(np.float64) ** -power
    return w * (len(w) / w.sum())


def stratum_weights(y: np.ndarray, strata: np.ndarray | None, power: float) -> np.ndarray:
    """Per flow: 1 for P2P flows; for ordinary flows n_s^-power (n_s = ordinary flows of its
    stratum), scaled so the ordinary flows' total weight is unchanged."""
    w = np.ones(len(y))
    neg = y == 0
    if power == 0 or strata is None or not neg.any():
        return w
    _, inv, counts = np.unique(strata[neg], return_inverse=True, return_counts=True)
    wn = counts[inv].astype(np.float64) ** -power
    w[neg] = wn * (neg.sum() / wn.sum())
    return w


def fit_booster(X: np.ndarray, y: np.ndarray, Xv: np.ndarray | None, yv: np.ndarray | None,
                names: list[str], config: TrainConfig, w: np.ndarray | None = None,
                wv: np.ndarray | None = None, *, rounds: int | None = None, quiet: bool = False):
    """LightGBM binary classifier, early-stopped on the validation flows (or a fixed number of
    rounds per bag); with config.bags > 1 the average of that many, one forest (average_boosters).
    With config.isolated_weight > 0 it also trains on every flow as it looks with no history
    (with_isolated_copies); the validation flows stay as they are."""
    X, y, w = with_isolated_copies(X, y, w, names, config.isolated_weight)
    first = _fit_one(X, y, Xv, yv, names, config, w, wv, rounds=rounds, quiet=quiet, seed=config.seed)
    if config.bags == 1:
        return first
    rounds = first.num_trees()   # the first bag's early-stopped length serves them all
    rest = [_fit_one(X, y, None, None, names, config, w, rounds=rounds, quiet=True, seed=bag_seed(config.seed, b))
            for b in range(1, config.bags)]
    booster = average_boosters([first, *rest])
    if not quiet:
        log.info("train: %d bags of %d trees, averaged", config.bags, rounds)
    return booster


def with_isolated_copies(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, names: list[str],
                         weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X, y and w followed by a copy of every row as the flow would look if none of its
    endpoints or hosts had an earlier flow in the window (features.host_context.NO_HISTORY),
    weighing ``weight`` times the original; unchanged when weight is 0 or no column is context.

    In the corpus a P2P flow nearly always comes with its host's other flows, and a real ordinary
    flow often alone (small captures): without the copies the trees learn "no history" as a sign
    of ordinary traffic, and a P2P flow seen alone (a one-flow capture, a host's first flow, a
    sampled link) must then be told by its own shape against that."""
    from p2pdetect.features.host_context import NO_HISTORY

    cols = [(j, NO_HISTORY[c]) for j, c in enumerate(names) if c in NO_HISTORY]
    if weight <= 0 or not cols:
        return X, y, w
    Xi = np.array(X, dtype=np.float64, copy=True)
    for j, v in cols:
        Xi[:, j] = v
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    return np.vstack([X, Xi]), np.concatenate([y, y]), np.concatenate([w, w * weight])


def bag_seed(seed: int, bag: int) -> int:
    """The random seed of bag number ``bag`` (bag 0 keeps the configured seed)."""
    return seed + 100_003 * bag


def average_boosters(boosters: list):
    """One LightGBM booster whose raw score is the mean of the given boosters' raw scores.

    A booster's raw score is the sum of its trees' leaf values (the initial score is folded into
    the first tree), so the trees of all of them, each leaf value scaled by 1 / len(boosters),
    sum to the mean. The model text is rewritten (trees renumbered, leaf and internal values
    scaled) and read back by LightGBM, which recomputes the tree sizes; the header comes from the
    first booster (same features, objective and parameters but the seed)."""
    import lightgbm as lgb

    if len(boosters) == 1:
        return boosters[0]
    k = len(boosters)
    header = tail = ""
    trees: list[str] = []
    for i, booster in enumerate(boosters):
        head, _, rest = booster.model_to_string().partition("\nTree=")
        body, _, end = rest.partition("end of trees")
        if i == 0:
            header = "\n".join(ln for ln in head.split("\n") if not ln.startswith("tree_sizes="))
            tail = "end of trees" + end
        for tree in ("Tree=" + body).split("\n\n"):
            if not tree.strip():
                continue
            lines = []
            for line in tree.strip("\n").split("\n"):
                key, _, val = line.partition("=")
                if key == "Tree":
                    line = f"Tree={len(trees)}"
                elif key in ("leaf_value", "internal_value"):
                    line = key + "=" + " ".join(repr(float(v) / k) for v in val.split())
                lines.append(line)
            trees.append("\n".join(lines))
    return lgb.Booster(model_str=header + "\n\n" + "\n\n".join(trees) + "\n\n\n" + tail)


def _fit_one(X: np.ndarray, y: np.ndarray, Xv: np.ndarray | None, yv: np.ndarray | None,
             names: list[str], config: TrainConfig, w: np.ndarray | None = None,
             wv: np.ndarray | None = None, *, rounds: int | None = None, quiet: bool = False, seed: int = 0):
    """One LightGBM booster with the given random seed (fit_booster)."""
    import lightgbm as lgb

    w = np.ones(len(y)) if w is None else w
    pos = float(w[y == 1].sum())
    spw = float(w[y == 0].sum()) / pos if (config.balance_classes and pos > 0) else 1.0
    params = {**config.lgb_params(scale_pos_weight=spw, feature_names=names), "seed": seed}
    dtrain = lgb.Dataset(X, y, weight=w, feature_name=names, free_raw_data=True)
    if Xv is None:
        return lgb.train(params, dtrain, num_boost_round=rounds or config.max_rounds)
    dvalid = lgb.Dataset(Xv, yv, weight=wv, reference=dtrain)
    callbacks = [] if quiet else [_log_progress(10)]
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


def pick_threshold(scores: np.ndarray, y: np.ndarray, strata: np.ndarray | None,
                   target_fpr: float, min_negatives: int = 50) -> tuple[float, dict]:
    """Threshold meeting target_fpr on all negatives and on each stratum's (when it has enough)."""
    threshold = threshold_for_fpr(scores, y, target_fpr)
    per_stratum: dict[str, float] = {}
    if strata is not None:
        for name in np.unique(strata).tolist():
            m = strata == name
            if ((y == 0) & m).sum() >= min_negatives:  # a handful says nothing about a 0.5 % rate
                per_stratum[name] = threshold_for_fpr(scores[m], y[m], target_fpr)
        threshold = max([threshold, *per_stratum.values()])
    return threshold, per_stratum


def evidence_threshold(raise_scores, threshold: float, y: np.ndarray, strata: np.ndarray | None,
                       target_fpr: float, rounds: int = 3, floor: float = 0.5,
                       tol: float = 1e-4, corroborated: bool = True) -> tuple[float, dict, np.ndarray]:
    """The lowest threshold meeting target_fpr on the scores the scorer emits at it: the model's,
    raised by the endpoint and host evidence of the flows it called P2P and capped where
    uncorroborated (raise_scores(threshold)), starting from the model-only ``threshold``.

    The evidence depends on the threshold. Raising evidence only adds flagged flows, so a few
    rounds upwards settle a threshold that meets the target; corroboration removes some, so a
    bisection then looks below it (down to ``floor``) for the lowest one that still does
    (corroborated=False, the scorer without corroboration: no bisection, it could find none).
    Returns the threshold, its per-stratum thresholds and the emitted scores at it."""
    scores = raise_scores(threshold)
    new, per_stratum = pick_threshold(scores, y, strata, target_fpr)
    for _ in range(rounds):
        if new <= threshold:
            break
        threshold = new
        scores = raise_scores(threshold)
        new, per_stratum = pick_threshold(scores, y, strata, target_fpr)
    lo = floor if corroborated else threshold
    while threshold - lo > tol:
        mid = (lo + threshold) / 2
        s = raise_scores(mid)
        new, per = pick_threshold(s, y, strata, target_fpr)
        if new <= mid:
            threshold, scores, per_stratum = mid, s, per
        else:
            lo = mid
    return threshold, per_stratum, scores


def _choose_threshold(table: pa.Table, rows: np.ndarray, scores: np.ndarray, final: np.ndarray, y: np.ndarray,
                      strata: np.ndarray | None, config: TrainConfig, context: pa.Table, c_rows: np.ndarray,
                      c_scores: np.ndarray) -> dict:
    """The threshold one set of scores of ``rows`` gives (model-only, then as the scorer raises
    and caps them), on the final rows (y, strata: theirs); the early rows' scores beside."""
    raise_scores = _evidence_raiser(table, rows, scores, final, config.corroborate_peers,
                                    context, c_rows, c_scores)
    early = scores[~final] if (~final).any() else None
    scores = scores[final]
    threshold, per_stratum = pick_threshold(scores, y, strata, config.target_fpr)
    out = {}
    if raise_scores is not None:
        out["model_only"] = float(threshold)
        threshold, per_stratum, scores = evidence_threshold(raise_scores, threshold, y, strata, config.target_fpr,
                                                            corroborated=config.corroborate_peers > 1)
    return {**out, "threshold": threshold, "per_stratum": per_stratum, "scores": scores, "early_scores": early}


def _out_of_fold(X: np.ndarray, y: np.ndarray, groups: np.ndarray, w: np.ndarray, names: list[str],
                 config: TrainConfig, rounds: int, Xc: np.ndarray, cgroups: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Scores of every flow by a model that did not see its capture, and of every context row
    (Xc, of captures cgroups) by the model of its capture's fold (None if a fold has one class)."""
    from p2pdetect.training.split import grouped_folds

    scores, c_scores = np.zeros(len(y)), np.zeros(len(Xc))
    for fold in grouped_folds(groups, y, config.threshold_folds, config.seed):
        yt = y[fold.train]
        if yt.sum() == 0 or yt.sum() == len(yt):
            return None
        b = fit_booster(X[fold.train], yt, None, None, names, config, w[fold.train], rounds=rounds, quiet=True)
        scores[fold.valid] = b.predict(X[fold.valid], num_threads=config.num_threads)
        cm = np.isin(cgroups, groups[fold.valid])
        if cm.any():
            c_scores[cm] = b.predict(Xc[cm], num_threads=config.num_threads)
    return scores, c_scores


def _evidence_raiser(table: pa.Table, rows: np.ndarray, scores: np.ndarray, keep: np.ndarray,
                     corroborate_peers: int, context: pa.Table, c_rows: np.ndarray, c_scores: np.ndarray):
    """threshold -> the scores of ``rows`` as the scorer emits them at that threshold (raised by
    host evidence, capped where uncorroborated: models.host_evidence), per capture in meter
    order, of the rows ``keep`` marks; the context rows (c_rows of context: unlabelled flows of
    the same captures, scored c_scores) feed the evidence too. None when the table lacks the
    columns the evidence reads."""
    from p2pdetect.models.host_evidence import EVIDENCE_COLUMNS, evidence_scores, table_columns

    if any(c not in table.column_names for c in EVIDENCE_COLUMNS + ["capture", "flow_index"]):
        return None
    cols = table_columns(table, rows)
    if len(c_rows):
        ccols = table_columns(context, c_rows)
        cols = {k: np.concatenate([v, ccols[k] if k in ccols else np.full(len(c_rows), "final")])
                for k, v in cols.items()}
        scores, keep = np.r_[scores, c_scores], np.r_[keep, np.zeros(len(c_rows), dtype=bool)]
    return lambda threshold: evidence_scores(cols, scores, threshold,
                                             corroborate_peers=corroborate_peers)[0][keep]


@dataclass
class TrainResult:
    booster: object
    feature_names: list[str]
    threshold: float
    split: Split
    metrics: dict


def train_model(table: pa.Table, extract_config: ExtractConfig, config: TrainConfig | None = None,
                split: Split | None = None, strata: np.ndarray | None = None,
                context: pa.Table | None = None) -> TrainResult:
    """Fit on the training captures, early-stop and pick the threshold on the validation captures.

    strata (per flow, e.g. where its labels came from) makes the threshold meet the target FPR
    on the validation negatives of every stratum, not only on all of them pooled: the real
    captures' ordinary flows must not pay for the generated ones being easy. context: the
    unlabelled flows of the same captures (Dataset.without_unlabelled); they never train nor
    count, but they are scored and feed the host evidence the threshold is chosen with, as the
    scorer sees every flow.
    """
    config = config or TrainConfig()
    y = (table.column("label").to_numpy(zero_copy_only=False) == "p2p").astype(np.int8)
    if y.sum() == 0 or y.sum() == len(y):
        raise BadDatasetError(f"training needs both p2p and other flows; got {int(y.sum())} p2p of "
                              f"{len(y)} labelled flows")
    from p2pdetect.training.groups import source_captures

    # a vantage-point view shares its source's flows: they split together (training.groups)
    groups = source_captures(table.column("capture").to_numpy(zero_copy_only=False))
    split = split or grouped_split(groups, y, config.valid_fraction, config.seed)
    summ = split.summary(y)
    for side in ("train", "valid"):
        s = summ[side]
        log.info("split: %s: %d captures, %d flows (%d p2p)", side, s["captures"], s["flows"], s["p2p_flows"])
    names = model_features(extract_config, config.port_features, config.timing_features,
                           config.sequence_features, config.port_number_features)
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise BadDatasetError(f"flows lack feature column {missing[0]!r}; re-extract them with this p2pdetect")
    X, Xv = feature_matrix(table, names, split.train), feature_matrix(table, names, split.valid)
    yt, yv = y[split.train], y[split.valid]
    if yt.sum() == 0 or yt.sum() == len(yt):
        raise BadDatasetError("the training captures hold one class only after the split by capture; "
                              "add captures with both p2p and other flows")
    stage_w = np.ones(len(y))
    if "stage" in table.column_names:
        stage_w[table.column("stage").to_numpy(zero_copy_only=False) == "early"] = config.early_weight
    strata = None if strata is None else np.asarray(strata).astype(str)
    stage_w *= stratum_weights(y, strata, config.stratum_weight_power)
    w = capture_weights(groups[split.train], config.capture_weight_power) * stage_w[split.train]
    wv = capture_weights(groups[split.valid], config.capture_weight_power) * stage_w[split.valid]
    booster = fit_booster(X, yt, Xv, yv, names, config, w, wv)
    scores = booster.predict(Xv, num_threads=config.num_threads)
    metrics: dict = {"trees": booster.num_trees()}
    try:
        from sklearn.metrics import roc_auc_score
        metrics["valid_auc"] = float(roc_auc_score(yv, scores)) if 0 < yv.sum() < len(yv) else None
    except ValueError:
        metrics["valid_auc"] = None
    runs = None
    if context is None or not context.num_rows:
        context = table.slice(0, 0)
    Xc = feature_matrix(context, names) if context.num_rows else np.zeros((0, len(names)))
    cgroups = source_captures(context.column("capture").to_numpy(zero_copy_only=False))
    if config.threshold_folds >= 2:
        # threshold from out-of-fold scores of every capture (many more negatives than the
        # validation side alone), then the final model on all captures with the same rounds
        rounds = booster.num_trees() // config.bags   # per bag
        Xall = feature_matrix(table, names)
        wall = capture_weights(groups, config.capture_weight_power) * stage_w
        runs = []
        for r in range(config.threshold_runs):
            # each run its own grouped folds and booster seeds
            oof = _out_of_fold(Xall, y, groups, wall, names, replace(config, seed=config.seed + r), rounds,
                               Xc, cgroups)
            if oof is None:
                runs = None
                break
            runs.append(oof)
        if runs is None:
            log.warning("train: too few captures of each class for %d threshold folds; the threshold comes "
                        "from the validation captures", config.threshold_folds)
        else:
            basis = f"out-of-fold scores of all captures ({config.threshold_folds} grouped folds)"
            if config.threshold_runs > 1:
                basis = f"the median of {config.threshold_runs} runs of {basis}"
            booster = fit_booster(Xall, y, None, None, names, config, wall, rounds=rounds)
            log.info("train: final model: %d trees on all %d captures (%d sources and their views)",
                     booster.num_trees(), len(set(table.column("capture").to_pylist())), len(set(groups)))
    if runs is None:
        basis = "validation captures"
        c_scores = np.zeros(len(Xc))
        cm = np.isin(cgroups, groups[split.valid])
        if cm.any():
            c_scores[cm] = booster.predict(Xc[cm], num_threads=config.num_threads)
        runs = [(scores, c_scores)]
        rows, t_y, t_strata = split.valid, yv, None if strata is None else strata[split.valid]
    else:
        cm = np.ones(len(Xc), dtype=bool)
        rows, t_y, t_strata = np.arange(table.num_rows), y, strata
    c_rows = np.flatnonzero(cm)
    final = np.ones(len(rows), dtype=bool)
    if "stage" in table.column_names:
        # the threshold is for whole flows (final verdicts); early snapshots are scored with it
        # too, and their rates are reported beside
        final = table.column("stage").to_numpy(zero_copy_only=False)[rows] == "final"
    if (~final).any():
        e_y = t_y[~final]
        t_y = t_y[final]
        t_strata = None if t_strata is None else t_strata[final]
    chosen = [_choose_threshold(table, rows, t_scores, final, t_y, t_strata, config, context, c_rows,
                                c_scores[c_rows]) for t_scores, c_scores in runs]
    order = np.argsort([c["threshold"] for c in chosen], kind="stable")
    pick = chosen[order[(len(chosen) - 1) // 2]]   # the median run (the lower of two middles)
    threshold, per_stratum, t_scores, e_scores = (pick["threshold"], pick["per_stratum"], pick["scores"],
                                                  pick["early_scores"])
    if "model_only" in pick:
        metrics["threshold_model_only"] = pick["model_only"]
        basis += ", raised by host evidence as the scorer raises them"
    if len(chosen) > 1:
        metrics["threshold_runs"] = [c["threshold"] for c in chosen]
        log.info("train: thresholds of the %d out-of-fold runs: %s", len(chosen),
                 " ".join(f"{c['threshold']:.6g}" for c in chosen))
    recall, fpr = rates_at(t_scores, t_y, threshold)
    metrics.update({"threshold_basis": basis, "threshold_recall": recall, "threshold_fpr": fpr,
                    "threshold_p2p_flows": int(t_y.sum()), "threshold_other_flows": int(len(t_y) - t_y.sum()),
                    "threshold_by_stratum": per_stratum, "trees": booster.num_trees()})
    if t_strata is not None:
        metrics["fpr_by_stratum"] = {n: rates_at(t_scores[t_strata == n], t_y[t_strata == n], threshold)[1]
                                     for n in np.unique(t_strata).tolist()}
    log.info("train: threshold %.6g for target FPR %.3g%% on %s: recall %.4f, FPR %.4f%%",
             threshold, 100 * config.target_fpr, basis, recall, 100 * fpr)
    if e_scores is not None:
        e_recall, e_fpr = rates_at(e_scores, e_y, threshold)
        metrics.update({"early_recall": e_recall, "early_fpr": e_fpr})
        log.info("train: early snapshots at that threshold: recall %.4f, FPR %.4f%%", e_recall, 100 * e_fpr)
    metrics["split"] = {k: {kk: vv for kk, vv in v.items() if kk != "capture_names"} for k, v in summ.items()}
    metrics["split"]["valid"]["capture_names"] = summ["valid"]["capture_names"]
    return TrainResult(booster, names, threshold, split, metrics)

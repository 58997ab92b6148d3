"""Evaluation: score labelled flows with a bundle and compute everything the report shows.

The result is one JSON-able dict (metrics.json); training.report renders it as HTML.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pyarrow as pa

from p2pdetect.features.schema import port_feature_columns
from p2pdetect.models.host_evidence import score_table
from p2pdetect.errors import BadDatasetError
from p2pdetect.training import metrics as M
from p2pdetect.training.datasets import Dataset
from p2pdetect.training.early import early_curve
from p2pdetect.training.early import __doc__ as EARLY_DOC
from p2pdetect.training.baseline import __doc__ as BASELINE_DOC
from p2pdetect.training.baseline import karagiannis
from p2pdetect.training.group_eval import flow_list, host_flags
from p2pdetect.training.groups import capture_meta, scenario_of
from p2pdetect.training.importance import by_group, importance

log = logging.getLogger("p2pdetect.evaluate")

ABLATION_METHOD = ("grouped cross-validation over the evaluated captures: the training recipe of "
                   "`p2pdetect train` (TrainConfig defaults, the bundle's target FPR) is run per fold "
                   "with and without the port features; every flow is scored by a model that never "
                   "saw its capture")


BASELINE_METHOD = " ".join(BASELINE_DOC.split("\n\n", 1)[0].split())


def in_distribution(bundle, dataset: Dataset) -> dict:
    """Whether these captures are fresh seeds of scenarios the bundle trained on ("in distribution")."""
    train = bundle.metadata.get("training") or {}
    names = [c.get("name") for c in train.get("captures", []) if isinstance(c, dict) and c.get("name")]
    trained = {scenario_of(n) for n in names}
    here = capture_meta(dataset)
    evaluated = {m["scenario"] for m in here.values() if not m["real"]}
    return {"training_scenarios": sorted(trained), "evaluated_scenarios": sorted(evaluated),
            "in_distribution": bool(evaluated) and evaluated <= trained,
            "real_captures": sum(m["real"] for m in here.values())}


def _np(table, name):
    return table.column(name).to_numpy(zero_copy_only=False)


def seen_in_training(bundle, dataset: Dataset) -> set[str]:
    """Evaluated captures in the bundle's training fingerprint (by SHA-256; by name if no hash)."""
    train = bundle.metadata.get("training") or {}
    caps = [c for c in train.get("captures", []) if isinstance(c, dict)]
    shas = {c.get("sha256") for c in caps if c.get("sha256")}
    # flow tables whose capture files are gone have no SHA-256: fall back to the capture name
    names = {c.get("name") for c in caps if not c.get("sha256")}
    return {name for name, info in dataset.captures.items()
            if (info.get("sha256") in shas) or (not info.get("sha256") and name in names)}


def by_source(source: np.ndarray, y: np.ndarray, hit: np.ndarray, byts: np.ndarray) -> dict:
    """Rates per label source (e.g. FPR on nDPI-identified ordinary flows of real captures)."""
    return {name: {"flow": M.rates(y[source == name], hit[source == name]),
                   "byte": M.rates(y[source == name], hit[source == name], byts[source == name])}
            for name in np.unique(source).tolist()}


def _unknown(y, hit, ndpi, proto) -> dict:
    """Recall on P2P flows nDPI calls Unknown (all, and over TCP: MSE-encrypted BitTorrent)."""
    out = {}
    for key, m in (("all", (y == 1) & (ndpi == "Unknown")),
                   ("tcp", (y == 1) & (ndpi == "Unknown") & (proto == 6))):
        out[key] = {"flows": int(m.sum()), "recall": M._div(float(hit[m].sum()), float(m.sum()))}
    return {"flows": out["all"]["flows"], "recall": out["all"]["recall"], "tcp": out["tcp"]}


def _section(y, scores, threshold, byts, app, ndpi, proto) -> dict:
    out = M.summary(y, scores, threshold, byts)
    out["p2p_ndpi_unknown"] = _unknown(y, scores >= threshold, ndpi, proto)
    return out


def _whole_table_verdicts(bundle, dataset: Dataset) -> dict:
    """What needs every flow of a capture, unlabelled ones too (they are part of how endpoints
    and hosts behave): the heuristic baseline (over whole flows) and the scorer's scores with
    endpoint and host evidence (early rows read it, as the scorer's early verdicts do).

    Returns the dataset with labelled rows only, and per labelled row: baseline (bool; False for
    early rows), scores; plus the host records per capture."""
    t = dataset.table
    final = np.ones(t.num_rows, dtype=bool)
    if "stage" in t.column_names:
        final = _np(t, "stage").astype(str) == "final"
    base = np.zeros(t.num_rows, dtype=bool)
    base[final] = karagiannis(t.filter(pa.array(final))).flow
    scores, records = score_table(bundle, t)   # model + endpoint/host evidence, as `score` gives
    labelled = _np(t, "label").astype(str) != ""
    if not labelled.all():
        dataset = replace(dataset, table=t.filter(pa.array(labelled)))
    return {"dataset": dataset, "baseline": base[labelled], "scores": scores[labelled], "host_records": records}


def evaluate(bundle, dataset: Dataset, *, ablation: bool = False, train_config=None,
             n_splits: int = 5, early: bool = True, group_by: str | None = None, inputs=()) -> dict:
    """Every metric of the evaluation report, as one JSON-able dict.

    Final rows (whole flows) give every metric; early rows (snapshots at the bundle's
    snapshot_packets, when its extract config has them) give the early-verdict section.
    Unlabelled rows (load_dataset(keep_unlabelled=True)) only inform the heuristic baseline.
    With group_by, the out-of-distribution section (training.group_eval) leads the report.
    """
    everything = dataset
    whole = _whole_table_verdicts(bundle, dataset)
    dataset, base_all, scores_all = whole["dataset"], whole["baseline"], whole["scores"]
    early_rows, full, final_mask = None, dataset, None
    scores, early_scores = scores_all, None
    if "stage" in dataset.table.column_names:
        stage = _np(dataset.table, "stage").astype(str)
        if (stage == "early").any():
            early_rows = dataset.table.filter(pa.array(stage == "early"))
            final_mask = stage == "final"
            dataset = replace(dataset, table=dataset.table.filter(pa.array(final_mask)))
            scores, early_scores = scores_all[final_mask], scores_all[stage == "early"]
    base = base_all if final_mask is None else base_all[final_mask]
    table = dataset.table
    if table.num_rows == 0:
        raise BadDatasetError("no labelled flows to evaluate (every flow was unlabelled); give labels "
                              "files, or --labels-from-dpi for captures nDPI can name")
    y = dataset.y.astype(int)
    thr = bundle.threshold
    hit = scores >= thr
    byts = _np(table, "bidirectional_bytes").astype(np.float64)
    groups = dataset.groups
    app = np.where(_np(table, "app").astype(str) == "", "(none)", _np(table, "app").astype(str))
    ndpi = _np(table, "application_name").astype(str)
    proto = _np(table, "protocol")
    seen = seen_in_training(bundle, dataset)
    seen_flow = np.isin(groups, list(seen)) if seen else np.zeros(len(y), dtype=bool)
    log.info("evaluate: %d flows (%d p2p) from %d captures; %d captures seen in training",
             len(y), int(y.sum()), len(dataset.captures), len(seen))

    out: dict = {
        "model": {"bundle_id": bundle.bundle_id, "path": str(bundle.path), "threshold": thr,
                  "target_fpr": bundle.target_fpr, "port_features": bundle.port_features,
                  "port_number_features": bundle.port_number_features,
                  "trees": bundle.booster.num_trees()},
        "data": {"captures": len(dataset.captures), **dataset.label_counts(), "skipped": dataset.skipped,
                 "seen_in_training": {"captures": sorted(seen), "flows": int(seen_flow.sum())},
                 "byte_weight": "bidirectional_bytes (transport payload bytes, nfstream accounting mode 3)"},
        "overall": _section(y, scores, thr, byts, app, ndpi, proto),
    }
    source = dataset.label_sources()
    out["overall"]["by_label_source"] = by_source(source, y, hit, byts)
    cap, sip, dip = groups, _np(table, "src_ip").astype(str), _np(table, "dst_ip").astype(str)
    hflag = host_flags(whole["host_records"], cap, sip, dip)
    out["overall"]["host"] = M.host_rates(cap, sip, dip, y == 1, y == 1, hit, hflag)
    out["overall"]["recall_at_fpr"] = M.recall_at_fpr(y, scores)
    out["overall"]["distribution"] = in_distribution(bundle, dataset)
    out["baseline"] = {"method": BASELINE_METHOD, "flow": M.rates(y, base), "byte": M.rates(y, base, byts),
                       "host": M.host_rates(cap, sip, dip, y == 1, y == 1, base),
                       "by_label_source": by_source(source, y, base, byts)}
    out["per_capture_baseline"] = M.by_group(groups, y, base, byts)
    if group_by:
        from p2pdetect.training.config import TrainConfig
        from p2pdetect.training.group_eval import group_out

        cfg = train_config or TrainConfig()
        cfg = replace(cfg, port_features=bool(bundle.port_features),
                      port_number_features=bool(bundle.port_number_features),
                      port_number_gain=float(bundle.port_number_gain),
                      timing_features=bool(bundle.timing_features),
                      sequence_features=bool(bundle.sequence_features),
                      corroborate_peers=int(bundle.evidence.get("corroborate_peers", 1)),
                      **({"target_fpr": float(bundle.target_fpr)} if bundle.target_fpr is not None else {}))
        out["out_of_distribution"] = group_out(everything, group_by, cfg, inputs=inputs, n_splits=n_splits)
    def matrix(rows):
        return bundle.matrix(table.take(pa.array(rows)))

    for key, kind, m in (("flows_missed", "missed", (y == 1) & ~hit), ("flows_false_positive", "false_positive",
                                                                     (y == 0) & hit)):
        out[key] = flow_list(table, np.flatnonzero(m), scores[m], thr, bundle.booster, bundle.feature_names,
                             base[m], "this model", kind, limit=60, matrix=matrix)
    if seen_flow.any() and not seen_flow.all():
        u = ~seen_flow
        out["unseen_only"] = _section(y[u], scores[u], thr, byts[u], app[u], ndpi[u], proto[u])
    c = M.curves(y, scores)
    out["curves"] = {"roc": c["roc"], "pr": c["pr"], "roc_auc": c["roc_auc"], "pr_auc": c["pr_auc"]}
    out["histograms"] = M.histograms(y, scores)
    out["calibration"] = M.calibration(y, scores)
    out["per_capture"] = M.by_group(groups, y, hit, byts, extra={"seen_in_training": seen_flow})
    out["per_app"] = M.by_group(app, y, hit, byts)
    p2p = y == 1
    pname = np.where(proto == 6, " over TCP", np.where(proto == 17, " over UDP", ""))
    key = np.char.add(ndpi.astype(str), pname.astype(str))
    out["p2p_by_ndpi_app"] = M.by_group(key[p2p], y[p2p], hit[p2p], byts[p2p]) if p2p.any() else []
    imp = importance(bundle, bundle.matrix(table))
    out["importance"] = imp
    out["importance_groups"] = by_group(imp)
    if early_rows is not None:
        ye = (_np(early_rows, "label").astype(str) == "p2p").astype(int)
        se = early_scores
        eb = _np(early_rows, "bidirectional_bytes").astype(np.float64)
        ea = np.where(_np(early_rows, "app").astype(str) == "", "(none)", _np(early_rows, "app").astype(str))
        out["early_verdicts"] = {
            "packets": bundle.extract_config.snapshot_packets,
            "flows_reaching": int(len(ye)),
            **_section(ye, se, thr, eb, ea, _np(early_rows, "application_name").astype(str),
                       _np(early_rows, "protocol")),
            "meaning": "Flows as the scorer's early verdict sees them: a snapshot at the packet "
                       "count above (counters so far, host context as it stands), scored at the "
                       "bundle's threshold. Flows that end before it only get a final verdict."}
    if early:
        out["early_detection"] = {"meaning": " ".join(EARLY_DOC.split("\n\n", 1)[1].split()),
                                  "points": early_curve(bundle, table, y)}
    if ablation:
        out["ablation"] = _ablation(full, final_mask, bundle, train_config, n_splits, y, byts, app, ndpi, proto,
                                    source)
    return out


def _ablation(dataset, final_mask, bundle, train_config, n_splits, y, byts, app, ndpi, proto, source) -> dict:
    """Grouped CV with and without port features. The folds train on every row the dataset
    has (early snapshots too, like the shipped model); the metrics are on final rows, with the
    early rows' recall and FPR beside them."""

    from p2pdetect.training.config import TrainConfig
    from p2pdetect.training.crossval import port_ablation

    cfg = replace(train_config or TrainConfig(), port_number_gain=float(bundle.port_number_gain))
    if bundle.target_fpr is not None:
        cfg = replace(cfg, target_fpr=float(bundle.target_fpr))
    runs = port_ablation(dataset, cfg, n_splits)
    res: dict = {"method": ABLATION_METHOD, "port_features": port_feature_columns(cfg.port_number_features),
                 "train_config": cfg.to_dict()}
    early_y = None
    if final_mask is not None:
        early_y = dataset.y[~final_mask].astype(int)
    for name, run in runs.items():
        early_sec = None
        if final_mask is not None:
            early_sec = M.rates(early_y, run["hit"][~final_mask])
            run = {**run, "scores": run["scores"][final_mask], "hit": run["hit"][final_mask]}
        s = run["scores"]
        sec = M.summary(y, s, 0.5, byts)
        # the rates at each fold's own threshold (the verdicts a deployed model would give)
        sec["flow"] = M.rates(y, run["hit"])
        sec["byte"] = M.rates(y, run["hit"], byts)
        sec["p2p_ndpi_unknown"] = _unknown(y, run["hit"], ndpi, proto)
        sec["threshold"] = None
        sec["fold_thresholds"] = [float(t) for t in run["thresholds"]]
        sec["folds"] = run["folds"]
        sec["per_app"] = M.by_group(app, y, run["hit"], byts)
        sec["by_label_source"] = by_source(source, y, run["hit"], byts)
        if early_sec is not None:
            sec["early_verdicts"] = early_sec
        res[name] = sec
    a, b = res["with_ports"]["flow"], res["without_ports"]["flow"]
    if a["recall"] is not None and b["recall"] is not None:
        res["recall_drop_points"] = round(100 * (a["recall"] - b["recall"]), 3)
    return res

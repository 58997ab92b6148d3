"""Out-of-distribution figures: leave-one-group-out models beside the heuristic baseline.

For `evaluate --group-by implementation|scenario|network`: every group's captures are scored by a
model trained (with `p2pdetect train`'s recipe) on every capture not in the group, and by the
Karagiannis et al. baseline (training.baseline) on the same flows and hosts. Per group: P2P flow
recall, byte recall, FPR, host recall and host FPR for both, recall at FPR 0.1/0.5/1 % for the
model, and the missed and falsely flagged flows with the features that pushed their scores.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from p2pdetect.training import metrics as M
from p2pdetect.training.crossval import leave_group_out
from p2pdetect.training.datasets import Dataset
from p2pdetect.training.groups import REAL, capture_meta, group_units, implementation_of
from p2pdetect.training.train import feature_matrix

log = logging.getLogger("p2pdetect.evaluate")

METHOD = ("leave-one-group-out: for each group value, a model is trained with `p2pdetect train`'s recipe "
          "(the TrainConfig below) on every capture that is not in the group, and scores the group's "
          "captures at its own threshold; the heuristic baseline (Karagiannis et al., IMC 2004, no training) "
          "judges the same flows and hosts. A capture holding two implementations is in both of their groups. "
          "Captures without P2P (implementation grouping) and real captures (labels from nDPI) are scored "
          "in grouped folds of their own, so their FPR is out of fold too. A host is an IP in a capture; a "
          "P2P host has a P2P flow of the group, an ordinary host has no P2P flow; a host is flagged when "
          "any of its flows is.")

FLOW_LIST_LIMIT = 25   # missed and falsely flagged flows kept per group and kind
TOP_FEATURES = 3


def _np(table, name):
    return table.column(name).to_numpy(zero_copy_only=False)


def _impl_per_flow(app: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(app.astype(str), return_inverse=True)
    return np.array([implementation_of(a) for a in uniq.tolist()], dtype=object)[inv] if len(app) else app


def _holds(impl: np.ndarray, name: str) -> np.ndarray:
    """Per flow: does its implementation label name `name` (a flow between two implementations,
    `biglybt+libtorrent`, belongs to both)."""
    uniq, inv = np.unique(impl.astype(str), return_inverse=True)
    return np.array([name in u.split("+") for u in uniq.tolist()], dtype=bool)[inv] if len(impl) else impl.astype(bool)


def host_flags(records: dict[str, list[dict]], capture: np.ndarray, src_ip: np.ndarray,
               dst_ip: np.ndarray) -> np.ndarray:
    """Host-level verdicts for each flow's source, then each flow's destination (2n values):
    does a host record of the scorer (models.host_evidence) call that host P2P."""
    flagged = {(cap, r["ip"]) for cap, recs in (records or {}).items() for r in recs if r.get("verdict") == "p2p"}
    if not flagged:
        return np.zeros(2 * len(capture), dtype=bool)
    caps = np.asarray(capture).astype(str).tolist()
    return np.array([(c, ip) in flagged for c, ip in zip(caps + caps, np.r_[src_ip, dst_ip].astype(str).tolist())],
                    dtype=bool)


def _figures(y, hit, byts, cap, sip, dip, counted, labelled, hflag=None) -> dict:
    """Flow, byte and host rates of one detector on a group's rows (counted: flows that count;
    hosts are those with a labelled flow, flagged by a hit among those or by hflag)."""
    lab = labelled
    hf = None if hflag is None else np.r_[hflag[:len(y)][lab], hflag[len(y):][lab]]
    return {"flow": M.rates(y[counted], hit[counted]), "byte": M.rates(y[counted], hit[counted], byts[counted]),
            "host": M.host_rates(cap[lab], sip[lab], dip[lab], (counted & (y == 1))[lab], (y == 1)[lab], hit[lab], hf)}


def _top_features(booster, names, X) -> list[str]:
    contrib = np.asarray(booster.predict(X, pred_contrib=True))[:, :-1]
    out = []
    for row in contrib:
        top = np.argsort(-np.abs(row))[:TOP_FEATURES]
        out.append(", ".join(f"{names[j]} {row[j]:+.2f}" for j in top))
    return out


def flow_list(table, rows: np.ndarray, scores: np.ndarray, threshold: float, booster, names, baseline_hit,
              group: str, kind: str, limit: int = FLOW_LIST_LIMIT, matrix=None) -> list[dict]:
    """The worst missed (largest first) or falsely flagged (highest score first) flows of a group,
    with the features that pushed each score most (LightGBM pred_contrib, log-odds).

    matrix(rows) gives the model's feature matrix for table rows (default: the named columns).
    """
    if not len(rows):
        return []
    byts = _np(table, "bidirectional_bytes")[rows]
    order = np.argsort(-byts, kind="stable") if kind == "missed" else np.argsort(-scores, kind="stable")
    pick = order[:limit]
    matrix = matrix or (lambda r: feature_matrix(table, names, r))
    feats = _top_features(booster, names, matrix(rows[pick]))
    cols = {c: _np(table, c)[rows[pick]] for c in ("capture", "src_ip", "src_port", "dst_ip", "dst_port", "protocol",
                                                   "bidirectional_packets", "bidirectional_bytes", "app",
                                                   "application_name")}
    return [{"group": group, "kind": kind, "capture": str(cols["capture"][i]).rsplit("/", 1)[-1],
             "flow": f"{cols['src_ip'][i]}:{cols['src_port'][i]} - {cols['dst_ip'][i]}:{cols['dst_port'][i]}"
                     f"/{ {6: 'tcp', 17: 'udp'}.get(int(cols['protocol'][i]), cols['protocol'][i]) }",
             "packets": int(cols["bidirectional_packets"][i]), "bytes": int(cols["bidirectional_bytes"][i]),
             "app": str(cols["app"][i]), "ndpi": str(cols["application_name"][i]),
             "score": round(float(scores[pick][i]), 4), "threshold": round(float(threshold), 4),
             "baseline": bool(baseline_hit[i]) if baseline_hit is not None else None,
             "top_features": feats[i]} for i in range(len(pick))]


def group_out(dataset: Dataset, group_by: str, config, *, inputs=(), n_splits: int = 5) -> dict:
    """The out-of-distribution section of metrics.json (see module doc).

    dataset: every flow, unlabelled ones and early snapshots included (the folds train on the
    labelled rows like `train`; the baseline and the endpoint/host evidence see every whole flow
    of a capture; the figures count labelled whole flows).
    """
    from p2pdetect.training.baseline import karagiannis

    meta = capture_meta(dataset, inputs)
    units = group_units(meta, group_by, n_splits, config.seed)
    t = dataset.table
    final = np.ones(t.num_rows, dtype=bool)
    if "stage" in t.column_names:
        final = _np(t, "stage").astype(str) == "final"
    baseline_hit = np.zeros(t.num_rows, dtype=bool)
    baseline_hit[final] = karagiannis(t.filter(pa.array(final))).flow
    labelled = _np(t, "label").astype(str) != ""
    results = leave_group_out(dataset, units, config)
    y = dataset.y.astype(int)
    byts = _np(t, "bidirectional_bytes").astype(np.float64)
    cap, sip, dip = _np(t, "capture").astype(str), _np(t, "src_ip").astype(str), _np(t, "dst_ip").astype(str)
    impl = _impl_per_flow(_np(t, "app"))
    acc: dict[str, dict] = {}
    for r in results:
        rows = r["rows"]
        g = acc.setdefault(r["group"], {"rows": [], "scores": [], "hit": [], "counted": [], "hflag": [],
                                        "skipped": [], "captures": 0, "thresholds": [], "missed": [],
                                        "false_positives": []})
        g["captures"] += len(r["test"])
        counted = labelled[rows] & ((y[rows] == 0) | (_holds(impl[rows], r["implementation"]) if r["implementation"]
                                                       else True))
        if r["skipped"]:
            g["skipped"].append(r["skipped"])
            scores, hit = np.full(len(rows), np.nan), np.zeros(len(rows), dtype=bool)
            hflag = np.zeros((2, len(rows)), dtype=bool)
        else:
            scores, hit = r["scores"], r["hit"]
            hflag = host_flags(r["host_records"], cap[rows], sip[rows], dip[rows]).reshape(2, -1)
            g["thresholds"].append(r["threshold"])
            for kind, m in (("missed", counted & (y[rows] == 1) & ~hit), ("false_positive", counted & (y[rows] == 0) & hit)):
                key = "missed" if kind == "missed" else "false_positives"
                g[key] += flow_list(t, rows[m], scores[m], r["threshold"], r["booster"], r["feature_names"],
                                    baseline_hit[rows[m]], r["group"], kind)
        for k, v in (("rows", rows), ("scores", scores), ("hit", hit), ("counted", counted), ("hflag", hflag)):
            g[k].append(v)
    keys = ("rows", "scores", "hit", "counted")
    out_groups, pooled = [], {k: [] for k in keys + ("hflag",)}
    for name, g in acc.items():
        rows, scores, hit, counted = (np.concatenate(g[k]) for k in keys)
        hflag = np.concatenate(g["hflag"], axis=1)
        scored = ~np.isnan(scores)
        row = _group_row(name, g, rows, scores, hit, counted, hflag, scored, y, labelled, byts, cap, sip, dip,
                         baseline_hit)
        out_groups.append(row)
        if name != REAL:
            for k, v in (("rows", rows), ("scores", scores), ("hit", hit), ("counted", counted)):
                pooled[k].append(v[scored])
            pooled["hflag"].append(hflag[:, scored])
    out_groups.sort(key=lambda r: (r["group"] == REAL, r["group"]))
    sec = {"group_by": group_by, "method": METHOD, "train_config": config.to_dict(),
           "captures": {name: m for name, m in sorted(meta.items())}, "groups": out_groups}
    if pooled["rows"]:
        rows, scores, hit, counted = (np.concatenate(pooled[k]) for k in keys)
        sec["pooled"] = _group_row("all generator groups", {"captures": None, "skipped": [], "thresholds": []},
                                   rows, scores, hit, counted, np.concatenate(pooled["hflag"], axis=1),
                                   np.ones(len(rows), bool), y, labelled, byts, cap, sip, dip, baseline_hit)
    missed = [f for g in acc.values() for f in g["missed"]]
    fps = [f for g in acc.values() for f in g["false_positives"]]
    sec["flows_missed"], sec["flows_false_positive"] = missed, fps
    return sec


def _group_row(name, g, rows, scores, hit, counted, hflag, scored, y, labelled, byts, cap, sip, dip,
               baseline_hit) -> dict:
    yr, br, cr, sr, dr, lr = y[rows], byts[rows], cap[rows], sip[rows], dip[rows], labelled[rows]
    # side by side on the same flows: those a model scored (all of them when no model could be trained)
    s = scored if scored.any() else np.ones(len(rows), dtype=bool)
    row = {"group": name, "captures": g["captures"], "flows": int((counted & s).sum()),
           "p2p_flows": int((counted & s & (yr == 1)).sum()), "other_flows": int((counted & s & (yr == 0)).sum()),
           "skipped": g["skipped"], "thresholds": g["thresholds"],
           "baseline": _figures(yr[s], baseline_hit[rows][s], br[s], cr[s], sr[s], dr[s], counted[s], lr[s])}
    if scored.any():
        row["model"] = _figures(yr[s], hit[s], br[s], cr[s], sr[s], dr[s], counted[s], lr[s],
                                np.r_[hflag[0][s], hflag[1][s]])
        m = s & counted
        row["model"]["recall_at_fpr"] = M.recall_at_fpr(yr[m], scores[m])
        row["model"]["roc_auc"] = M.curves(yr[m], scores[m])["roc_auc"]
    else:
        row["model"] = None
    return row

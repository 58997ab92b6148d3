"""Evaluation metrics over flows: rates at a threshold (flow- or byte-weighted), curves, groups.

Pure numpy/sklearn functions of (y, score[, weight]); every number in an evaluation report
comes from here, so the hand-computed test cases cover the report.
"""

from __future__ import annotations

import numpy as np


def _div(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def rates(y: np.ndarray, hit: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Confusion counts (weighted sums when weights are given) and the rates built from them.

    precision = tp/(tp+fp), recall = tp/(tp+fn), fpr = fp/(fp+tn), f1 = 2pr/(p+r);
    a rate with an empty denominator is None.
    """
    y = np.asarray(y).astype(bool)
    hit = np.asarray(hit).astype(bool)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    tp = float(w[y & hit].sum())
    fp = float(w[~y & hit].sum())
    fn = float(w[y & ~hit].sum())
    tn = float(w[~y & ~hit].sum())
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    out = {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall,
           "f1": f1, "fpr": _div(fp, fp + tn)}
    if weights is None:
        out.update({k: int(out[k]) for k in ("tp", "fp", "fn", "tn")})
    return out


def _thin(*arrays: np.ndarray, max_points: int = 400) -> list[list[float]]:
    n = len(arrays[0])
    if n > max_points:
        idx = np.unique(np.linspace(0, n - 1, max_points).astype(int))
        arrays = tuple(a[idx] for a in arrays)
    return [np.round(a.astype(float), 6).tolist() for a in arrays]


def curves(y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """ROC and precision-recall curves with their areas (None where one class is absent)."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    y = np.asarray(y).astype(int)
    if not 0 < y.sum() < len(y):
        return {"roc_auc": None, "pr_auc": None, "roc": None, "pr": None}
    fpr, tpr, _ = roc_curve(y, scores, sample_weight=weights)
    prec, rec, _ = precision_recall_curve(y, scores, sample_weight=weights)
    return {
        "roc_auc": float(auc(fpr, tpr)),
        "pr_auc": float(average_precision_score(y, scores, sample_weight=weights)),
        "roc": dict(zip(("fpr", "tpr"), _thin(fpr, tpr))),
        "pr": dict(zip(("recall", "precision"), _thin(rec[::-1], prec[::-1]))),
    }


def calibration(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict:
    """Mean score vs fraction of p2p flows per equal-width score bin (empty bins left out)."""
    y = np.asarray(y).astype(float)
    s = np.clip(np.asarray(scores, dtype=np.float64), 0, 1)
    b = np.minimum((s * bins).astype(int), bins - 1)
    n = np.bincount(b, minlength=bins)
    keep = n > 0
    mean_score = np.bincount(b, weights=s, minlength=bins)[keep] / n[keep]
    frac = np.bincount(b, weights=y, minlength=bins)[keep] / n[keep]
    return {"mean_score": mean_score.round(6).tolist(), "fraction_p2p": frac.round(6).tolist(),
            "flows": n[keep].tolist()}


def histograms(y: np.ndarray, scores: np.ndarray, bins: int = 50) -> dict:
    """Score histogram per class over [0, 1]."""
    edges = np.linspace(0, 1, bins + 1)
    y = np.asarray(y).astype(bool)
    return {"edges": edges.round(6).tolist(),
            "p2p": np.histogram(scores[y], edges)[0].tolist(),
            "other": np.histogram(scores[~y], edges)[0].tolist()}


def by_group(groups: np.ndarray, y: np.ndarray, hit: np.ndarray, weights: np.ndarray | None = None,
             extra: dict[str, np.ndarray] | None = None) -> list[dict]:
    """Per group (capture, app): flows per class, recall on p2p flows, FPR on other flows.

    Vectorised with one np.unique over the group keys; extra boolean columns (e.g. "seen in
    training") are reported as any() per group.
    """
    groups = np.asarray(groups).astype(str)
    y = np.asarray(y).astype(bool)
    hit = np.asarray(hit).astype(bool)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    names, inv = np.unique(groups, return_inverse=True)
    k = len(names)
    cnt = lambda m: np.bincount(inv, weights=m.astype(float), minlength=k)  # noqa: E731
    pos, neg = cnt(y), cnt(~y)
    tp, fp = cnt(y & hit), cnt(~y & hit)
    bpos, btp = np.bincount(inv, weights=w * y, minlength=k), np.bincount(inv, weights=w * (y & hit), minlength=k)
    rows = []
    for i, name in enumerate(names.tolist()):
        row = {"name": name, "flows": int(pos[i] + neg[i]), "p2p": int(pos[i]), "other": int(neg[i]),
               "recall": _div(tp[i], pos[i]), "fpr": _div(fp[i], neg[i]),
               "byte_recall": _div(btp[i], bpos[i]) if weights is not None else None,
               "false_positives": int(fp[i]), "missed": int(pos[i] - tp[i])}
        for key, col in (extra or {}).items():
            row[key] = bool(np.asarray(col)[inv == i].any())
        rows.append(row)
    return rows


def summary(y: np.ndarray, scores: np.ndarray, threshold: float, byte_weights: np.ndarray | None = None) -> dict:
    """Flow- and byte-weighted rates at the threshold, plus curves' areas."""
    hit = np.asarray(scores) >= threshold
    out = {"threshold": float(threshold), "flows": int(len(y)), "p2p_flows": int(np.sum(y)),
           "other_flows": int(len(y) - np.sum(y)), "flow": rates(y, hit)}
    if byte_weights is not None:
        out["byte"] = rates(y, hit, byte_weights)
    c = curves(y, scores)
    out["roc_auc"], out["pr_auc"] = c["roc_auc"], c["pr_auc"]
    return out


def host_rates(capture: np.ndarray, src_ip: np.ndarray, dst_ip: np.ndarray, positive: np.ndarray,
               p2p: np.ndarray, hit: np.ndarray, host_flag: np.ndarray | None = None) -> dict:
    """Host-level recall and FPR; a host is an IP in a capture (either end of its flows).

    A P2P host has a flow in positive (the P2P flows counted); an ordinary host has no P2P
    flow at all (p2p: any p2p-labelled flow); hosts with only uncounted P2P flows are left
    out. A host is flagged when any of its flows is a hit, or host_flag says so (2n values: a
    host-level verdict for each flow's source, then for each flow's destination).
    """
    cap2 = np.r_[np.asarray(capture), np.asarray(capture)].astype(str)
    ip2 = np.r_[np.asarray(src_ip), np.asarray(dst_ip)].astype(str)
    if len(cap2) == 0:
        return {"p2p_hosts": 0, "other_hosts": 0, "found": 0, "flagged_other": 0, "recall": None, "fpr": None}
    code = np.unique(np.char.add(np.char.add(cap2, "\x00"), ip2), return_inverse=True)[1]
    k = int(code.max()) + 1

    def anyof(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=bool)
        m2 = m if len(m) == len(code) else np.r_[m, m]   # per flow: counts for both of its hosts
        return np.bincount(code, weights=m2.astype(float), minlength=k) > 0

    pos, other = anyof(positive), ~anyof(p2p)
    flag = anyof(hit) | (anyof(host_flag) if host_flag is not None else False)
    return {"p2p_hosts": int(pos.sum()), "other_hosts": int(other.sum()), "found": int((pos & flag).sum()),
            "flagged_other": int((other & flag).sum()), "recall": _div((pos & flag).sum(), pos.sum()),
            "fpr": _div((other & flag).sum(), other.sum())}


#: False-positive rates the report gives recall at.
RECALL_AT_FPR = (0.001, 0.005, 0.01)


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, fprs=RECALL_AT_FPR) -> list[dict]:
    """Recall at the most permissive threshold whose FPR on these flows stays within each rate."""
    from p2pdetect.training.threshold import threshold_for_fpr

    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for f in fprs:
        if not 0 < y.sum() < len(y):
            out.append({"fpr_target": f, "threshold": None, "recall": None, "fpr": None})
            continue
        t = threshold_for_fpr(scores, y, f)
        hit = scores >= t
        out.append({"fpr_target": f, "threshold": float(t), "recall": float(hit[y == 1].mean()),
                    "fpr": float(hit[y == 0].mean())})
    return out

"""Decision threshold: the lowest score cut whose false-positive rate stays within a target."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("p2pdetect.train")


def threshold_for_fpr(scores: np.ndarray, y: np.ndarray, target_fpr: float,
                      weights: np.ndarray | None = None) -> float:
    """Smallest threshold t with FPR(score >= t) <= target_fpr on these flows.

    With n negatives, at most floor(target_fpr * n) of them may score at or above t, so t is
    the next float above the (k+1)-th highest negative score. The most permissive cut that
    keeps the target gives the highest recall the validation flows allow. Without negatives
    the threshold is 0.5 (warned). Weights, when given, count flows by weight (e.g. bytes).
    """
    scores = np.asarray(scores, dtype=np.float64)
    neg = np.asarray(y).astype(int) == 0
    if not neg.any():
        log.warning("threshold: no negative (other) validation flows; using 0.5")
        return 0.5
    s = scores[neg]
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)[neg]
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    allowed = target_fpr * w.sum()
    # cum[i]: weight of negatives scoring >= s[i] when the cut is exactly s[i] (ties included)
    cum = np.cumsum(w)
    # The cut just above s[i] admits the negatives strictly above s[i]: cum of the previous distinct
    # value. Find the first distinct score whose strictly-above weight would exceed the budget.
    last_of_value = np.r_[s[1:] != s[:-1], True]
    for_cut_at = cum[last_of_value]           # weight admitted by cutting at each distinct value
    values = s[last_of_value]
    over = np.flatnonzero(for_cut_at > allowed + 1e-12)
    if len(over) == 0:
        return float(values[-1]) if values[-1] > 0 else 0.0
    v = values[over[0]]
    t = float(np.nextafter(v, np.inf))
    if t > 1.0:
        log.warning("threshold: a negative validation flow scores 1.0; no threshold reaches FPR %.4g", target_fpr)
        return 1.0
    return t


def rates_at(scores: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    """(recall, FPR) at a threshold."""
    y = np.asarray(y).astype(int)
    hit = np.asarray(scores) >= threshold
    pos, neg = y == 1, y == 0
    recall = float(hit[pos].mean()) if pos.any() else float("nan")
    fpr = float(hit[neg].mean()) if neg.any() else float("nan")
    return recall, fpr

"""Global feature importance: LightGBM gain, and mean |SHAP| from pred_contrib=True."""

from __future__ import annotations

import numpy as np

from p2pdetect.features.schema import feature_group


def importance(bundle, X: np.ndarray, max_rows: int = 20000, seed: int = 0) -> list[dict]:
    """Per feature: gain share and mean |SHAP| over up to max_rows flows, sorted by |SHAP|."""
    booster = bundle.booster
    gain = booster.feature_importance(importance_type="gain").astype(np.float64)
    gain_share = gain / gain.sum() if gain.sum() > 0 else gain
    if len(X) > max_rows:
        X = X[np.random.default_rng(seed).choice(len(X), max_rows, replace=False)]
    if len(X):
        contrib = booster.predict(X, pred_contrib=True, num_threads=bundle.num_threads)
        shap = np.abs(contrib[:, :-1]).mean(axis=0)  # last column is the expected value
    else:
        shap = np.zeros(len(gain))
    rows = [{"feature": name, "group": feature_group(name), "gain": float(g), "gain_share": float(gs),
             "mean_abs_shap": float(s)}
            for name, g, gs, s in zip(bundle.feature_names, gain, gain_share, shap)]
    return sorted(rows, key=lambda r: (-r["mean_abs_shap"], -r["gain"]))


def by_group(rows: list[dict]) -> list[dict]:
    """Importance summed per feature group (counter, stat, flag, splt, derived, port, host)."""
    acc: dict[str, dict] = {}
    for r in rows:
        g = acc.setdefault(r["group"], {"group": r["group"], "gain_share": 0.0, "mean_abs_shap": 0.0})
        g["gain_share"] += r["gain_share"]
        g["mean_abs_shap"] += r["mean_abs_shap"]
    return sorted(acc.values(), key=lambda g: -g["mean_abs_shap"])

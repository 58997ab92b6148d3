"""Early detection: how good the verdict is when only the first k packets' sizes are known.

For each k the first-N packet columns beyond k (splt_{ps,dir,piat_ms}_{i}, i >= k) are set to
the meter's padding value -1 and the features derived from that sequence (splt_packets,
splt_ps_entropy, splt_dir_changes, splt_up_share, hs_*) are recomputed from the masked
sequence with features.derived.derive_features, the same code extraction uses.

What the curve does NOT do: the flow counters, size/IAT statistics, TCP flag counts and host
context still describe the whole flow (they cannot be rewound from a flow record). So it
measures how much the packet-sequence evidence alone degrades as it shortens, an upper bound
on what a scorer deciding after k packets would reach; it is not a replay of a live scorer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.derived import derive_features
from features.schema import DERIVED_FEATURES, SPLT_KINDS

#: Derived features computed from the first-N packet sequence (the rest use counters).
SEQUENCE_FEATURES = [f for f in DERIVED_FEATURES if f.startswith(("splt_", "hs_"))]
_METER_INPUTS = ("protocol", "src_port", "dst_port", "src2dst_bytes", "dst2src_bytes",
                 "src2dst_packets", "dst2src_packets")


def default_ks(splt_n: int) -> list[int]:
    return [k for k in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 128, 255) if k < splt_n] + [splt_n]


def _col(table, name: str) -> np.ndarray:
    if isinstance(table, pa.Table):
        return table.column(name).to_numpy(zero_copy_only=False)
    return np.asarray(table[name])


def masked_columns(table, feature_names: list[str], splt_n: int, k: int) -> dict[str, np.ndarray]:
    """The model's feature columns as if only the first k packets had been seen (see module doc)."""
    cols = {name: _col(table, name) for name in feature_names}
    blocks = {kind: np.column_stack([_col(table, f"splt_{kind}_{i}") for i in range(splt_n)])
              for kind in SPLT_KINDS}
    for kind in SPLT_KINDS:
        blocks[kind][:, k:] = -1
        for i in range(k, splt_n):
            name = f"splt_{kind}_{i}"
            if name in cols:
                cols[name] = blocks[kind][:, i]
    meter = {name: _col(table, name) for name in _METER_INPUTS}
    meter["splt_ps"], meter["splt_dir"] = blocks["ps"], blocks["dir"]
    derived = derive_features(meter)
    for name in SEQUENCE_FEATURES:
        if name in cols:
            cols[name] = derived[name]
    return cols


def early_curve(bundle, table, y: np.ndarray, ks: list[int] | None = None) -> list[dict]:
    """Recall, FPR (at the bundle's threshold) and ROC AUC per number of packets seen."""
    from training.metrics import curves, rates

    splt_n = bundle.extract_config.splt_n
    out = []
    for k in ks or default_ks(splt_n):
        scores = bundle.predict_proba(masked_columns(table, bundle.feature_names, splt_n, k))
        r = rates(y, scores >= bundle.threshold)
        out.append({"k": k, "recall": r["recall"], "fpr": r["fpr"], "precision": r["precision"],
                    "roc_auc": curves(y, scores)["roc_auc"]})
    return out

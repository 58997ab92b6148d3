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

from p2pdetect.features.derived import derive_features
from p2pdetect.features.schema import DERIVED_FEATURES, SPLT_KINDS

#: Derived features computed from the first-N packet sequence (the rest use counters).
SEQUENCE_FEATURES = [f for f in DERIVED_FEATURES if f.startswith(("splt_", "hs_"))]
_METER_INPUTS = ("protocol", "src_port", "dst_port", "src2dst_bytes", "dst2src_bytes",
                 "src2dst_packets", "dst2src_packets", "bidirectional_duration_ms", "bidirectional_mean_ps",
                 "bidirectional_max_ps", "bidirectional_mean_piat_ms", "bidirectional_max_piat_ms")


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
    meter["splt_ps"], meter["splt_dir"], meter["splt_piat_ms"] = blocks["ps"], blocks["dir"], blocks["piat_ms"]
    derived = derive_features(meter)
    for name in SEQUENCE_FEATURES:
        if name in cols:
            cols[name] = derived[name]
    return cols


def early_curve(bundle, table, y: np.ndarray, ks: list[int] | None = None) -> list[dict]:
    """Recall, FPR (at the bundle's threshold) and ROC AUC per number of packets seen."""
    from p2pdetect.training.metrics import curves, rates

    splt_n = bundle.extract_config.splt_n
    out = []
    for k in ks or default_ks(splt_n):
        scores = bundle.predict_proba(masked_columns(table, bundle.feature_names, splt_n, k))
        r = rates(y, scores >= bundle.threshold)
        out.append({"k": k, "recall": r["recall"], "fpr": r["fpr"], "precision": r["precision"],
                    "roc_auc": curves(y, scores)["roc_auc"]})
    return out


#: Packet counts at which the report gives first-verdict recall through the real scorer.
FIRST_VERDICT_PACKETS = (4, 8, 16, 32)

FIRST_VERDICT_MEANING = ("Each flow's first verdict as `p2pdetect score` writes it with --early-packets k "
                         "(early at the k-th packet from the meter's snapshot, or final for a flow that ends "
                         "sooner), compared with the flow's label. Measured through the real scorer on the "
                         "evaluated captures with labels files (not the nDPI-labelled ones), with the "
                         "evaluated model.")


def first_verdict_rates(table, score_capture, ks=FIRST_VERDICT_PACKETS) -> list[dict]:
    """Recall, FPR and share decided early, per k, of each flow's first verdict.

    table: labelled whole flows (capture, 5-tuple, bidirectional_first_seen_ms, label);
    score_capture(capture_path, k) -> verdict dicts (flow records) as the scorer writes them.
    The layering keeps the scorer out of training/: the command line passes it in.
    """
    from pathlib import Path

    key_cols = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol", "bidirectional_first_seen_ms")
    caps = _col(table, "capture").astype(str)
    labels = _col(table, "label").astype(str)
    keys = list(zip(caps.tolist(), *(_col(table, c).tolist() for c in key_cols)))
    lookup = dict(zip(keys, labels.tolist()))
    files = [c for c in dict.fromkeys(caps.tolist()) if Path(c).is_file()]
    out = []
    for k in ks:
        tp = fn = fp = tn = early = 0
        for cap in files:
            seen = set()
            for v in score_capture(cap, k):
                if v.get("event_type", "flow") != "flow":
                    continue
                key = (cap, v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"], v["first_seen_ms"])
                if key in seen:
                    continue
                seen.add(key)
                label = lookup.get(key)
                if label is None:
                    continue
                early += v.get("stage") == "early"
                p2p = v["verdict"] == "p2p"
                if label == "p2p":
                    tp, fn = tp + p2p, fn + (not p2p)
                else:
                    fp, tn = fp + p2p, tn + (not p2p)
        n = tp + fn + fp + tn
        out.append({"k": k, "captures": len(files), "p2p_flows": tp + fn, "other_flows": fp + tn,
                    "recall": tp / (tp + fn) if tp + fn else None, "fpr": fp / (fp + tn) if fp + tn else None,
                    "decided_early": early / n if n else None})
    return out

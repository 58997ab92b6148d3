"""FlowFeaturizer: the one implementation of every feature, for batch extraction and live scoring.

It turns batches of metered flows (in meter order) into flow-table columns: identity,
audit, the first-N packet columns, nfstream statistics, derived features and host context.
Extraction feeds it a whole capture; the scorer feeds it micro-batches; the rows are the
same (DESIGN.md invariant 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.derived import derive_features
from p2pdetect.features.host_context import HostContext
from p2pdetect.features.meter import columns_from_flows, columns_from_rows
from p2pdetect.features.schema import (
    AUDIT_COLUMNS,
    COUNTER_FEATURES,
    FLAG_FEATURES,
    IDENTITY_COLUMNS,
    SPLT_KINDS,
    STAT_FEATURES,
    feature_columns,
)


class FlowFeaturizer:
    """Stateful featuriser for one stream of flows (one capture, or one live interface)."""

    def __init__(self, config: ExtractConfig | None = None, *, capture: str = "") -> None:
        self.config = config if config is not None else ExtractConfig()
        self.capture = capture
        self.host_context = HostContext(self.config.host_window_s)
        self.flows_seen = 0

    @property
    def columns(self) -> list[str]:
        """Every column `transform` returns, in table order."""
        return IDENTITY_COLUMNS + AUDIT_COLUMNS + feature_columns(self.config.splt_n)

    def transform(self, flows: Sequence, *, remember=True, evidence=None) -> dict[str, np.ndarray]:
        """Columns for a batch of nfstream NFlow objects, in meter order."""
        return self.transform_columns(columns_from_flows(flows, self.config.splt_n), remember=remember,
                                      evidence=evidence)

    def transform_rows(self, rows: Sequence[tuple], *, remember=True, evidence=None) -> dict[str, np.ndarray]:
        """Columns for a batch of flows given as features.meter.flow_row tuples."""
        return self.transform_columns(columns_from_rows(rows, self.config.splt_n), remember=remember,
                                      evidence=evidence)

    def transform_columns(self, meter: dict[str, np.ndarray], *, remember=True, evidence=None
                          ) -> dict[str, np.ndarray]:
        """Columns for a batch given as meter columns (features.meter.columns_from_*).

        remember=False featurises flows that have not ended yet (early snapshots): host
        context is read but not updated and flow_index does not advance (see HostContext);
        a bool array gives it per row, for a chunk as the meter handed it over. A
        snapshot's flow_index is the number of ended flows before it. evidence (bool per row)
        marks the evidence snapshots among them (the model's snapshot_packets): with
        config.peers_in_progress their answered TCP connections enter host context as in
        progress (features.host_context).
        """
        n = len(meter["protocol"])
        final = np.broadcast_to(np.asarray(remember, dtype=bool), (n,))
        before = np.cumsum(final) - final
        out: dict[str, np.ndarray] = {
            "capture": np.full(n, self.capture, dtype=object),
            "flow_index": (self.flows_seen + before).astype(np.int64),
            "stage": np.where(final, "final", "early").astype(object),
        }
        self.flows_seen += int(final.sum())
        for c in IDENTITY_COLUMNS[3:] + AUDIT_COLUMNS + COUNTER_FEATURES + STAT_FEATURES + FLAG_FEATURES:
            out[c] = meter[c]
        for kind in SPLT_KINDS:
            block = meter[f"splt_{kind}"]
            for i in range(self.config.splt_n):
                out[f"splt_{kind}_{i}"] = block[:, i]
        out.update(derive_features(meter))
        # a snapshot's counters stop at the snapshot: the model may treat the stages apart
        out["is_snapshot"] = (~final).astype(np.int64)
        out.update(self.host_context.transform(
            meter, remember=final, evidence=evidence if self.config.peers_in_progress else None))
        return {c: out[c] for c in self.columns}

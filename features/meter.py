"""nfstream meter: build the streamer from an ExtractConfig and turn flows into numpy columns.

The per-packet work stays in nfstream's C engine; this module only touches each *flow* once
(its values list), then builds columns in bulk. No NFPlugin runs here: any plugin roughly
halves the meter's packet rate (DESIGN.md).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from nfstream import NFStreamer

from features.config import ExtractConfig
from features.schema import (
    AUDIT_COLUMNS,
    COUNTER_FEATURES,
    FLAG_FEATURES,
    STAT_FEATURES,
)

_STR_COLUMNS = ["src_ip", "dst_ip", "application_name", "application_category_name"]
_INT_COLUMNS = (["src_port", "dst_port", "protocol", "ip_version",
                 "bidirectional_first_seen_ms", "bidirectional_last_seen_ms",
                 "application_is_guessed"]
                + COUNTER_FEATURES + FLAG_FEATURES)
_FLOAT_COLUMNS = STAT_FEATURES
_SPLT_SOURCES = {"ps": "splt_ps", "dir": "splt_direction", "piat_ms": "splt_piat_ms"}

assert set(AUDIT_COLUMNS) <= set(_STR_COLUMNS + _INT_COLUMNS)


def make_streamer(source: str, config: ExtractConfig, **live: object) -> NFStreamer:
    """An NFStreamer with the project's meter settings (live options: bpf_filter, snapshot_length…)."""
    return NFStreamer(source=source, **config.streamer_kwargs(), **live)


_KEY_INDEX: dict[str, int] | None = None


def _key_index(flow) -> dict[str, int]:
    global _KEY_INDEX
    if _KEY_INDEX is None:
        _KEY_INDEX = {k: i for i, k in enumerate(flow.keys())}
    return _KEY_INDEX


def flow_rows(flows: Iterable) -> list[list]:
    """One values list per nfstream flow (cheap: no per-field Python work)."""
    return [f.values() for f in flows]


def columns_from_rows(rows: Sequence[list], splt_n: int, keys: dict[str, int] | None = None
                      ) -> dict[str, np.ndarray]:
    """Meter columns for a batch of flows given as nfstream values lists.

    SPLT lists become (n, splt_n) int/float arrays, padded with -1 like nfstream does.
    """
    if keys is None:
        keys = _KEY_INDEX
    n = len(rows)
    cols: dict[str, np.ndarray] = {}
    if n == 0:
        for c in _STR_COLUMNS:
            cols[c] = np.array([], dtype=object)
        for c in _INT_COLUMNS:
            cols[c] = np.array([], dtype=np.int64)
        for c in _FLOAT_COLUMNS:
            cols[c] = np.array([], dtype=np.float64)
        for k in _SPLT_SOURCES:
            cols[f"splt_{k}"] = np.empty((0, splt_n), dtype=np.float64 if k == "piat_ms" else np.int64)
        return cols
    assert keys is not None
    fields = list(zip(*rows))
    for c in _STR_COLUMNS:
        cols[c] = np.array(fields[keys[c]], dtype=object)
    for c in _INT_COLUMNS:
        cols[c] = np.asarray(fields[keys[c]], dtype=np.int64)
    for c in _FLOAT_COLUMNS:
        cols[c] = np.asarray(fields[keys[c]], dtype=np.float64)
    for k, src in _SPLT_SOURCES.items():
        arr = np.asarray(fields[keys[src]], dtype=np.float64 if k == "piat_ms" else np.int64)
        cols[f"splt_{k}"] = arr.reshape(n, splt_n)
    return cols


def columns_from_flows(flows: Sequence, splt_n: int) -> dict[str, np.ndarray]:
    """Meter columns for a batch of NFlow objects (live scorer and tests)."""
    flows = list(flows)
    keys = _key_index(flows[0]) if flows else _KEY_INDEX
    return columns_from_rows(flow_rows(flows), splt_n, keys)


def keys_of(flow) -> dict[str, int]:
    """Index of each nfstream field in a flow's values list."""
    return _key_index(flow)

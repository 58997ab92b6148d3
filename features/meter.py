"""nfstream meter: build the streamer from an ExtractConfig and turn flows into numpy columns.

The per-packet work stays in nfstream's C engine (in its own process); this module touches
each *flow* once (one C-level attribute fetch), then builds columns in bulk. No NFPlugin runs here: any plugin roughly
halves the meter's packet rate (DESIGN.md).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Iterable, Sequence

import numpy as np
from nfstream import NFStreamer

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import (
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


#: The nfstream fields the flow table uses, fetched per flow by one C-level attrgetter.
FIELDS = _STR_COLUMNS + _INT_COLUMNS + _FLOAT_COLUMNS + list(_SPLT_SOURCES.values())
_INDEX = {k: i for i, k in enumerate(FIELDS)}
flow_row = attrgetter(*FIELDS)


def flow_rows(flows: Iterable) -> list[tuple]:
    """One tuple of FIELDS per nfstream flow (a single C call per flow)."""
    return list(map(flow_row, flows))


def columns_from_rows(rows: Sequence[tuple], splt_n: int) -> dict[str, np.ndarray]:
    """Meter columns for a batch of flows given as flow_row tuples.

    SPLT lists become (n, splt_n) arrays, padded with -1 like nfstream does.
    """
    n = len(rows)
    fields = list(zip(*rows)) if n else [()] * len(FIELDS)
    cols: dict[str, np.ndarray] = {}
    for c in _STR_COLUMNS:
        cols[c] = np.array(fields[_INDEX[c]], dtype=object)
    for c in _INT_COLUMNS:
        cols[c] = np.asarray(fields[_INDEX[c]], dtype=np.int64)
    for c in _FLOAT_COLUMNS:
        cols[c] = np.asarray(fields[_INDEX[c]], dtype=np.float64)
    for k, src in _SPLT_SOURCES.items():
        arr = np.asarray(fields[_INDEX[src]], dtype=np.float64 if k == "piat_ms" else np.int64)
        cols[f"splt_{k}"] = arr.reshape(n, splt_n)
    return cols


def columns_from_flows(flows: Iterable, splt_n: int) -> dict[str, np.ndarray]:
    """Meter columns for a batch of NFlow objects."""
    return columns_from_rows(flow_rows(flows), splt_n)

"""The Parquet flow table: columns to Arrow, safe writes (p2pdetect.outputs), versioned reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import META_CONFIG, META_SCHEMA_VERSION, SCHEMA_VERSION
from p2pdetect.errors import BadDatasetError
from p2pdetect.outputs import open_output


def to_arrow(cols: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table from numpy columns (object arrays become strings)."""
    arrays = {}
    for name, a in cols.items():
        if a.dtype == object:
            arrays[name] = pa.array(a.tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(a)
    return pa.table(arrays)


def with_metadata(table: pa.Table, config: ExtractConfig) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[META_SCHEMA_VERSION] = str(SCHEMA_VERSION).encode()
    meta[META_CONFIG] = json.dumps(config.to_dict()).encode()
    return table.replace_schema_metadata(meta)


def write_flow_table(table: pa.Table, path: str | os.PathLike, config: ExtractConfig, *,
                     inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Write a flow table with its schema version and extract settings: a file atomically, a
    device, FIFO or standard output as a stream (p2pdetect.outputs); never over an input."""
    table = with_metadata(table, config)
    with open_output(path, inputs=inputs) as fh:
        pq.write_table(table, fh, compression="zstd")


def flow_table_config(path: str | os.PathLike) -> ExtractConfig | None:
    """The extract settings a flow table was written with, from its schema alone (None when it
    is not a readable flow table: read_flow_table says why)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    if META_CONFIG not in meta:
        return None
    try:
        return ExtractConfig.from_dict(json.loads(meta[META_CONFIG]))
    except (ValueError, TypeError):
        return None


def read_flow_table(path: str | os.PathLike) -> tuple[pa.Table, ExtractConfig]:
    """Read a flow table written by this project; refuse other files and other versions."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise BadDatasetError(f"{path}: not a readable Parquet flow table ({err}); "
                              f"make one with 'p2pdetect extract'") from err
    meta = table.schema.metadata or {}
    version = meta.get(META_SCHEMA_VERSION)
    if version is None:
        raise BadDatasetError(f"{path}: Parquet file is not a p2pdetect flow table (no schema version); "
                              f"make one with 'p2pdetect extract'")
    if int(version) != SCHEMA_VERSION:
        raise BadDatasetError(f"{path}: flow table schema version {int(version)}, this p2pdetect reads "
                              f"version {SCHEMA_VERSION}; re-extract it with 'p2pdetect extract'")
    config = ExtractConfig.from_dict(json.loads(meta.get(META_CONFIG, b"{}")))
    return table, config

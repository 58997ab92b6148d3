"""The Parquet flow table: columns to Arrow, atomic writes, versioned reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.config import ExtractConfig
from features.schema import META_CONFIG, META_SCHEMA_VERSION, SCHEMA_VERSION
from p2pdetect.errors import BadDatasetError, OutputError


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


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before long work) when an output file cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name for the output")
    return _check_parent(path)


def check_output_dir(path: str | os.PathLike, what: str, replaceable) -> Path:
    """Fail early when an output directory (a model bundle, a report) cannot be written.

    An existing directory may be replaced only when replaceable(path) says it holds an
    earlier output of the same kind (or nothing); anything else is refused.
    """
    path = Path(path)
    _check_parent(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{path}: exists and is not a directory; choose another {what} directory")
        if any(True for _ in path.iterdir()) and not replaceable(path):
            raise OutputError(f"{path}: directory exists and is not a {what}; choose a new or empty directory")
    return path


def _check_parent(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: directory {parent} does not exist; create it or choose another output path")
    try:  # a real probe: access() says yes to root even on read-only file systems
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{path}: cannot write in {parent} ({err.strerror}); "
                          f"choose another output path") from err
    return path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename into place: no half-written output, ever."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror or err}); check free space and permissions") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_flow_table(table: pa.Table, path: str | os.PathLike, config: ExtractConfig) -> None:
    """Write a flow table with its schema version and extract settings, atomically."""
    table = with_metadata(table, config)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


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

"""Cache of extracted flow tables, keyed by capture SHA-256 + extract config + schema version.

Metering is the slow part of training and evaluation (about 100k packets/s per core); the
same capture with the same settings always gives the same table, so it is kept as Parquet
under `$P2PDETECT_CACHE` or `.cache/flows/` in the repository (git-ignored). A cache that
cannot be written is skipped with a debug note, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import SCHEMA_VERSION
from p2pdetect.outputs import umask

log = logging.getLogger("p2pdetect.cache")

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    env = os.environ.get("P2PDETECT_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache" / "flows"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_key(sha256: str, config: ExtractConfig) -> str:
    blob = json.dumps({"capture": sha256, "config": config.to_dict(), "schema": SCHEMA_VERSION},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / key[:2] / f"{key}.parquet"


def get(sha256: str, config: ExtractConfig, name: str) -> pa.Table | None:
    """The cached table for this capture content and config, its capture column set to name."""
    path = _path(cache_key(sha256, config))
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    i = table.column_names.index("capture")
    return table.set_column(i, "capture", pa.array([name] * table.num_rows, pa.string()))


def put(sha256: str, config: ExtractConfig, table: pa.Table) -> None:
    path = _path(cache_key(sha256, config))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600 files; a cache others share needs the umask
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        log.debug("flow cache not written (%s): %s", path, err)

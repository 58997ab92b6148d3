"""Batch extraction: captures in, one flow table out; files in parallel across cores."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
from joblib import Parallel, delayed

from features.captures import CaptureInfo, find_captures, validate_capture
from features.config import ExtractConfig
from features.featurize import FlowFeaturizer
from features.meter import columns_from_rows, keys_of, make_streamer
from features.table import to_arrow
from p2pdetect.errors import BadCaptureError


@dataclass(frozen=True)
class CaptureResult:
    """One capture's flows and what it cost to meter it."""

    info: CaptureInfo | None
    table: pa.Table | None
    seconds: float
    error: str | None = None

    @property
    def flows(self) -> int:
        return 0 if self.table is None else self.table.num_rows


def extract_capture(path: str | os.PathLike, config: ExtractConfig | None = None,
                    *, name: str | None = None) -> pa.Table:
    """Flow table of one capture: validated, metered by nfstream, featurised in meter order."""
    config = config or ExtractConfig()
    info = validate_capture(path)
    return _extract_validated(info, config, name if name is not None else str(path))


def _extract_validated(info: CaptureInfo, config: ExtractConfig, name: str) -> pa.Table:
    try:
        streamer = make_streamer(str(info.path), config)
        rows, keys = [], None
        for flow in streamer:
            if keys is None:
                keys = keys_of(flow)
            rows.append(flow.values())
    except (ValueError, OSError, RuntimeError) as err:
        raise BadCaptureError(f"{info.path}: the meter cannot read this capture ({err})") from err
    featurizer = FlowFeaturizer(config, capture=name)
    if keys is None:  # packets, but no IP flow among them (e.g. only ARP)
        return to_arrow(featurizer.transform_columns(columns_from_rows([], config.splt_n)))
    return to_arrow(featurizer.transform_rows(rows, keys))


def _worker(path: Path, config: ExtractConfig, skip_bad: bool) -> CaptureResult:
    t0 = time.perf_counter()
    try:
        info = validate_capture(path)
        table = _extract_validated(info, config, str(path))
    except BadCaptureError as err:
        if not skip_bad:
            raise
        return CaptureResult(None, None, time.perf_counter() - t0, error=str(err))
    return CaptureResult(info, table, time.perf_counter() - t0)


def extract_paths(paths: Iterable[str | os.PathLike], config: ExtractConfig | None = None, *,
                  n_jobs: int = -1, skip_bad: bool = False,
                  on_result: Callable[[CaptureResult, int, int], None] | None = None,
                  ) -> pa.Table:
    """One flow table from capture files and directories (each capture its own host context).

    Files run in parallel (joblib, one meter per file: every meter reads its whole file, so
    splitting one file across meters does not pay). With skip_bad, unreadable captures are
    reported through on_result and left out instead of stopping the run.
    """
    config = config or ExtractConfig()
    files = find_captures(paths)
    if not skip_bad:  # fail fast, before minutes of metering
        for f in files:
            validate_capture(f)
    n_workers = min(len(files), os.cpu_count() or 1) if n_jobs == -1 else max(1, min(n_jobs, len(files)))
    tables = []
    if n_workers == 1:
        results = (_worker(f, config, skip_bad) for f in files)
    else:
        results = Parallel(n_jobs=n_workers, return_as="generator")(
            delayed(_worker)(f, config, skip_bad) for f in files)
    for done, res in enumerate(results, 1):
        if res.table is not None:
            tables.append(res.table)
        if on_result is not None:
            on_result(res, done, len(files))
    if not tables:
        raise BadCaptureError("no readable capture among the inputs; nothing to extract")
    return pa.concat_tables(tables)

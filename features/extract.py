"""Batch extraction: captures in, one flow table out; files in parallel across cores."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from p2pdetect.features.captures import CaptureInfo, find_captures, validate_capture
from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.featurize import FlowFeaturizer
from p2pdetect.features.reader import prepare_capture
from p2pdetect.features.snapshot_meter import FINAL, MeterSpec, evidence_stages, run_meter
from p2pdetect.features.table import to_arrow
from p2pdetect.errors import BadCaptureError

#: Flows featurised at a time while the meter runs.
CHUNK = 4096


@dataclass(frozen=True)
class CaptureResult:
    """One capture's flows and what it cost to meter it."""

    path: Path
    info: CaptureInfo | None
    table: pa.Table | None
    seconds: float
    error: str | None = None
    ignored: int = 0    # packets no meter reads (not IP, unknown link type)

    @property
    def flows(self) -> int:
        return 0 if self.table is None else self.table.num_rows


def extract_capture(path: str | os.PathLike, config: ExtractConfig | None = None,
                    *, name: str | None = None, strict: bool = False) -> pa.Table:
    """Flow table of one capture: validated, metered by nfstream, featurised in meter order."""
    return _extract(Path(path), config or ExtractConfig(), name if name is not None else str(path),
                    strict)[1]


def _extract(path: Path, config: ExtractConfig, name: str,
             strict: bool = False) -> tuple[CaptureInfo, pa.Table, int]:
    """Meter one capture and featurise its flows in chunks while the meter runs.

    The capture is walked and decoded first (features.reader: a damaged file never reaches
    the meter; a link type or truncation the meter would lose packets to is rewritten into
    a temporary copy). The scorer's meter loop (features.snapshot_meter) runs in this
    process, so extraction reports flows in exactly the scorer's order; each chunk of flows
    is featurised as it is handed over (host context is stateful and in order, so chunks give
    the same rows). Returns the capture's info, its flows and the packets no meter reads.
    """
    with prepare_capture(path, strict=strict) as prepared:
        featurizer = FlowFeaturizer(config, capture=name)
        chunks = _Chunks(featurizer)
        _meter(path, prepared.source, config, chunks)
        table = pa.concat_tables(chunks.pieces) if chunks.pieces else to_arrow(featurizer.transform_rows([]))
    return prepared.info, table, prepared.ignored


class _Chunks:
    """The meter's channel, in process: featurises each chunk as it is handed over.

    Rows keep the meter's order; an early snapshot reads host context as it stands
    (remember=False), a final flow enters it: what the live scorer does, chunk by chunk.
    """

    def __init__(self, featurizer: FlowFeaturizer | None, snapshots: bool = False) -> None:
        self.featurizer = featurizer
        self.snapshots = snapshots
        self.pieces: list[pa.Table] = []
        self.rows: list[tuple] = []     # without a featurizer: final flows' rows (and snapshots')
        self.stages = bytearray()       # their stages, with snapshots
        self.error: str | None = None

    def put(self, msg: tuple) -> None:
        if msg[0] == "error":
            self.error = msg[1]
        if msg[0] != "flows":
            return
        rows, stages = msg[1], msg[2]
        if self.featurizer is None:
            if self.snapshots:
                self.rows.extend(rows)
                self.stages += stages
            else:
                self.rows.extend(r for r, s in zip(rows, stages) if s == FINAL)
            return
        stage = np.frombuffer(bytes(stages), dtype=np.uint8)
        self.pieces.append(to_arrow(self.featurizer.transform_rows(
            rows, remember=stage == FINAL, evidence=evidence_stages(stage))))


def _meter(path: Path, source: str, config: ExtractConfig, chunks: _Chunks, early: bool = True) -> None:
    """Meter ``source`` into ``chunks``: every flow's final row, plus an early row per flow that
    reaches config.snapshot_packets packets when that is set (an evidence snapshot; with
    early=False not also an early verdict's)."""
    spec = MeterSpec(source=source, live=False, streamer_kwargs=config.streamer_kwargs(),
                     early_packets=config.snapshot_packets if early else 0, early_seconds=0.0,
                     chunk_flows=CHUNK, chunk_wait_s=3600.0, evidence_packets=config.snapshot_packets)
    try:
        run_meter(spec, chunks, [False])
    except (ValueError, OSError, RuntimeError) as err:
        raise BadCaptureError(f"{path}: the meter cannot read this capture ({err})") from err
    if chunks.error:
        raise BadCaptureError(f"{path}: the meter cannot read this capture ({chunks.error})")


def meter_rows(path: str | os.PathLike, config: ExtractConfig | None = None) -> list[tuple]:
    """Every flow of a capture file as features.meter.flow_row tuples, in meter order: the rows
    extraction and the scorer featurise, for feeding the scorer or a featurizer by hand."""
    path = Path(path)
    config = replace(config or ExtractConfig(), snapshot_packets=0)
    with prepare_capture(path) as prepared:
        chunks = _Chunks(None)
        _meter(path, prepared.source, config, chunks)
    return chunks.rows


def meter_stream(path: str | os.PathLike, config: ExtractConfig | None = None) -> tuple[list[tuple], bytes]:
    """Every row the scorer's meter hands over for a capture file with no early verdicts, in
    order, and its stage (features.snapshot_meter): final flows, and the evidence snapshots at
    config.snapshot_packets that the scorer's host evidence reads. Fed to the scorer
    (serve.chunks_from_rows(rows, stages=stages)), they give `score`'s final verdicts."""
    path = Path(path)
    config = config or ExtractConfig()
    with prepare_capture(path) as prepared:
        chunks = _Chunks(None, snapshots=True)
        _meter(path, prepared.source, config, chunks, early=False)
    return chunks.rows, bytes(chunks.stages)


def _worker(path: Path, config: ExtractConfig, skip_bad: bool, strict: bool = False) -> CaptureResult:
    t0 = time.perf_counter()
    try:
        info, table, ignored = _extract(path, config, str(path), strict)
    except BadCaptureError as err:
        if not skip_bad:
            raise
        return CaptureResult(path, None, None, time.perf_counter() - t0, error=str(err))
    return CaptureResult(path, info, table, time.perf_counter() - t0, ignored=ignored)


def extract_each(files: list[Path], config: ExtractConfig, *, n_jobs: int = -1,
                 skip_bad: bool = False, strict: bool = False) -> Iterator[CaptureResult]:
    """Meter capture files in parallel, one result per file, in input order.

    One meter per file: every meter reads its whole file, so splitting one file across meters
    does not pay. The meter runs in the worker itself (the scorer's loop, Python per packet),
    so the workers are forked processes.
    """
    n_workers = min(len(files), os.cpu_count() or 1) if n_jobs == -1 else max(1, min(n_jobs, len(files)))
    if n_workers <= 1:
        yield from (_worker(f, config, skip_bad, strict) for f in files)
        return
    yield from _in_processes(files, config, skip_bad, n_workers, strict)


def _in_processes(files: list[Path], config: ExtractConfig, skip_bad: bool,
                  n_workers: int, strict: bool = False) -> Iterator[CaptureResult]:
    """_worker in forked worker processes, results in input order. The workers are our own
    children, forked (not exec'd like loky's), so whatever the caller arranged for children
    (p2pdetect.signals: they die with the parent) holds for them; an abandoned or failed
    iteration kills them instead of waiting for the captures they are still metering."""
    pool = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork"))
    try:
        yield from pool.map(_worker, files, repeat(config), repeat(skip_bad), repeat(strict))
    except BaseException:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def extract_paths(paths: Iterable[str | os.PathLike], config: ExtractConfig | None = None, *,
                  n_jobs: int = -1, skip_bad: bool = False, strict: bool = False,
                  on_result: Callable[[CaptureResult, int, int], None] | None = None,
                  ) -> pa.Table:
    """One flow table from capture files and directories (each capture its own host context).

    Files run in parallel (extract_each). With skip_bad, unreadable captures are reported
    through on_result and left out instead of stopping the run.
    """
    config = config or ExtractConfig()
    files = find_captures(paths)
    if not skip_bad:  # fail fast on the usual mistakes, before minutes of metering
        for f in files:
            validate_capture(f, full=False, strict=strict)
    tables = []
    for done, res in enumerate(extract_each(files, config, n_jobs=n_jobs, skip_bad=skip_bad,
                                            strict=strict), 1):
        if res.table is not None:
            tables.append(res.table)
        if on_result is not None:
            on_result(res, done, len(files))
    if not tables:
        raise BadCaptureError("no readable capture among the inputs; nothing to extract")
    return pa.concat_tables(tables)

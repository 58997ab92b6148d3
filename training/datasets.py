"""Datasets: flow tables, captures with labels, folders of them, corpus manifests -> labelled flows.

A DATASET argument is one of:
  * a Parquet flow table from `p2pdetect extract ... --labels` (label '' = unlabelled);
  * a capture `X.pcap` labelled by its sidecar `X.labels.csv`;
  * a directory of such captures (searched recursively);
  * a corpus manifest JSON `{"captures": [{"pcap": rel, "labels": rel, ...}]}`, paths
    relative to the manifest.
With labels_from_dpi, captures without a labels file (and flow tables without a label
column) are labelled by nDPI through training.dpi_labels; sidecar labels still win.
Unlabelled flows are dropped. Captures are metered in parallel and cached (training.cache).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from p2pdetect.features.captures import CAPTURE_SUFFIXES, find_captures
from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.extract import extract_each
from p2pdetect.features.table import read_flow_table
from p2pdetect.errors import BadCaptureError, BadDatasetError, BadLabelsError
from p2pdetect.training import cache
from p2pdetect.training.dpi_labels import dpi_labels
from p2pdetect.training.labels import join_labels, read_labels

log = logging.getLogger("p2pdetect.dataset")

DPI = "dpi"


@dataclass(frozen=True)
class CaptureSource:
    """A capture and where its labels come from (a CSV path, or DPI)."""

    path: Path
    labels: Path | str   # Path to a labels CSV, or DPI


@dataclass
class Dataset:
    """Labelled flows (label is 'p2p' or 'other') and a fingerprint of where they came from."""

    table: pa.Table
    config: ExtractConfig
    captures: dict[str, dict] = field(default_factory=dict)  # capture name -> sha256, labels, counts
    skipped: list[str] = field(default_factory=list)
    unlabelled: int = 0

    @property
    def y(self) -> np.ndarray:
        return (self.table.column("label").to_numpy(zero_copy_only=False) == "p2p").astype(np.int8)

    @property
    def groups(self) -> np.ndarray:
        return self.table.column("capture").to_numpy(zero_copy_only=False).astype(str)

    def label_sources(self) -> np.ndarray:
        """Per flow: 'nDPI' where its capture was labelled by nDPI, else 'labels file'."""
        dpi = [name for name, info in self.captures.items() if info.get("labels") == DPI]
        groups = self.groups
        return np.where(np.isin(groups, dpi), "nDPI", "labels file") if dpi else np.full(len(groups), "labels file")

    def label_counts(self) -> dict[str, int]:
        y = self.y
        return {"p2p": int(y.sum()), "other": int(len(y) - y.sum()), "unlabelled_dropped": self.unlabelled}

    def without_unlabelled(self) -> tuple[Dataset, pa.Table]:
        """(the labelled flows, with their counts, and the unlabelled rows) of a dataset loaded with
        keep_unlabelled: the unlabelled rows never train, but training scores them for the host
        evidence its threshold is chosen with, as the scorer sees every flow."""
        labelled = pc.not_equal(self.table.column("label").fill_null(""), "")
        table = self.table.filter(labelled)
        captures = {name: dict(info) for name, info in self.captures.items()}
        _count(table, captures)
        return replace(self, table=table, captures=captures), self.table.filter(pc.invert(labelled))

    def fingerprint(self) -> dict:
        """Capture names, SHA-256 and label counts: what a bundle records about its data."""
        return {"captures": [{"name": name, **info} for name, info in sorted(self.captures.items())],
                "label_counts": self.label_counts(), "skipped": list(self.skipped)}


def _sidecar(capture: Path) -> Path:
    return capture.with_name(capture.name.rsplit(".", 1)[0] + ".labels.csv")


def _capture_source(path: Path, labels_from_dpi: bool, labels: Path | None = None) -> CaptureSource:
    side = labels if labels is not None else _sidecar(path)
    if side.is_file():
        return CaptureSource(path, side)
    if labels_from_dpi and labels is None:
        return CaptureSource(path, DPI)
    raise BadLabelsError(f"{side}: no labels file for capture {path}; create it, or pass "
                         f"--labels-from-dpi to label captures without one by nDPI")


def _manifest_sources(path: Path, labels_from_dpi: bool) -> list[CaptureSource]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadDatasetError(f"{path}: not a readable corpus manifest ({err}); expected JSON "
                              f"{{\"captures\": [{{\"pcap\": ..., \"labels\": ...}}]}}") from err
    entries = doc.get("captures") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadDatasetError(f"{path}: manifest has no \"captures\" list; expected "
                              f"{{\"captures\": [{{\"pcap\": ..., \"labels\": ...}}]}}")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("pcap"), str):
            raise BadDatasetError(f"{path}: captures[{i}] has no \"pcap\" path")
        pcap = path.parent / e["pcap"]
        if not pcap.is_file():
            raise BadDatasetError(f"{path}: captures[{i}]: {pcap} does not exist; regenerate the corpus")
        labels = path.parent / e["labels"] if isinstance(e.get("labels"), str) else None
        out.append(_capture_source(pcap, labels_from_dpi, labels))
    return out


def resolve(inputs: list[str | os.PathLike], labels_from_dpi: bool = False) -> tuple[list[Path], list[CaptureSource]]:
    """Flow tables and labelled captures named by DATASET arguments (checked, nothing read yet)."""
    tables: list[Path] = []
    captures: list[CaptureSource] = []
    for arg in map(Path, inputs):
        if arg.is_dir():
            try:
                files = find_captures([arg])
            except BadCaptureError as err:
                raise BadDatasetError(str(err)) from err
            captures.extend(_capture_source(f, labels_from_dpi) for f in files)
        elif not arg.exists():
            raise BadDatasetError(f"{arg}: no such file or directory; give a flow table, capture, "
                                  f"directory or corpus manifest")
        elif arg.suffix.lower() == ".parquet":
            tables.append(arg)
        elif arg.suffix.lower() == ".json":
            captures.extend(_manifest_sources(arg, labels_from_dpi))
        elif arg.suffix.lower() in CAPTURE_SUFFIXES:
            captures.append(_capture_source(arg, labels_from_dpi))
        else:
            raise BadDatasetError(f"{arg}: not a flow table (.parquet), capture ({', '.join(CAPTURE_SUFFIXES)}), "
                                  f"directory or corpus manifest (.json)")
    return tables, captures


def extract_cached(paths: list[Path], config: ExtractConfig, *, n_jobs: int = -1, skip_bad: bool = False,
                   use_cache: bool = True) -> tuple[dict[Path, pa.Table], dict[Path, str], list[str]]:
    """Flow tables per capture (from the cache where possible), their SHA-256, skipped errors."""
    shas = {p: cache.file_sha256(p) for p in paths}
    tables: dict[Path, pa.Table] = {}
    todo = []
    for p in paths:
        hit = cache.get(shas[p], config, str(p)) if use_cache else None
        if hit is not None:
            tables[p] = hit
        else:
            todo.append(p)
    log.info("dataset: %d captures, %d from the flow cache, %d to meter", len(paths), len(tables), len(todo))
    skipped: list[str] = []
    if todo:
        t0 = time.perf_counter()
        for res in extract_each(todo, config, n_jobs=n_jobs, skip_bad=skip_bad):
            if res.error is not None:
                log.warning("skipped: %s", res.error)
                skipped.append(res.error)
                continue
            tables[res.path] = res.table
            if use_cache:
                cache.put(shas[res.path], config, res.table)
        log.info("dataset: metered %d captures in %.1f s", len(todo) - len(skipped), time.perf_counter() - t0)
    return tables, shas, skipped


def _with_labels(table: pa.Table, label: np.ndarray, app: np.ndarray) -> pa.Table:
    for name in ("label", "app"):
        if name in table.column_names:
            table = table.drop_columns([name])
    return (table.append_column("label", pa.array(label.tolist(), pa.string()))
                 .append_column("app", pa.array(app.tolist(), pa.string())))


def _np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def label_by_dpi(table: pa.Table) -> pa.Table:
    """label/app columns from nDPI's application_name (see training.dpi_labels)."""
    names = _np(table, "application_name")
    return _with_labels(table, dpi_labels(names, _np(table, "application_is_guessed")), names.astype(object))


def label_by_csv(table: pa.Table, labels_path: Path) -> pa.Table:
    cols = {c: _np(table, c) for c in ("src_ip", "src_port", "dst_ip", "dst_port", "protocol")}
    label, app, _ = join_labels(cols, read_labels(labels_path))
    return _with_labels(table, label, app)


def load_dataset(inputs: list[str | os.PathLike], config: ExtractConfig | None = None, *,
                 labels_from_dpi: bool = False, n_jobs: int = -1, skip_bad: bool = False,
                 use_cache: bool = True, keep_unlabelled: bool = False) -> Dataset:
    """Labelled flows from DATASET arguments; unlabelled flows dropped unless keep_unlabelled."""
    table_paths, sources = resolve(inputs, labels_from_dpi)
    parts: list[pa.Table] = []
    captures: dict[str, dict] = {}
    for tp in table_paths:
        table, tconf = read_flow_table(tp)
        if config is None:
            config = tconf
        elif not tconf.same_features(config):
            raise BadDatasetError(f"{tp}: extracted with {tconf.to_dict()}, other inputs with "
                                  f"{config.to_dict()}; re-extract with the same settings")
        if "label" not in table.column_names:
            if not labels_from_dpi:
                raise BadDatasetError(f"{tp}: flow table has no label column; extract it with --labels, "
                                      f"or pass --labels-from-dpi")
            table = label_by_dpi(table)
            how = DPI
        else:
            how = f"table {tp.name}"
        parts.append(table)
        for name in dict.fromkeys(_np(table, "capture").tolist()):
            p = Path(name)
            captures[name] = {"sha256": cache.file_sha256(p) if p.is_file() else None, "labels": how}
    config = config or ExtractConfig()
    if sources:
        tables, shas, skipped = extract_cached([s.path for s in sources], config, n_jobs=n_jobs,
                                               skip_bad=skip_bad, use_cache=use_cache)
    else:
        tables, shas, skipped = {}, {}, []
    for s in sources:
        if s.path not in tables:
            continue
        t = label_by_dpi(tables[s.path]) if s.labels == DPI else label_by_csv(tables[s.path], s.labels)
        parts.append(t)
        captures[str(s.path)] = {"sha256": shas[s.path], "labels": DPI if s.labels == DPI else str(s.labels)}
    if not parts:
        raise BadDatasetError("no readable flows among the inputs")
    cols = parts[0].column_names
    try:
        table = pa.concat_tables([p.select(cols) for p in parts], promote_options="permissive")
    except (KeyError, pa.ArrowInvalid) as err:
        raise BadDatasetError(f"inputs have different flow-table columns ({err}); re-extract them "
                              f"with this p2pdetect") from err
    labelled = pc.not_equal(table.column("label").fill_null(""), "")
    unlabelled = table.num_rows - int(pc.sum(labelled).as_py() or 0)
    if not keep_unlabelled:
        table = table.filter(labelled)
    _count(table, captures)
    log.info("dataset: %d labelled flows (%d p2p) from %d captures; %d unlabelled flows dropped",
             table.num_rows, int(pc.sum(pc.equal(table.column("label"), "p2p")).as_py() or 0),
             len(captures), unlabelled)
    return Dataset(table=table, config=config, captures=captures, skipped=skipped, unlabelled=unlabelled)


def _count(table: pa.Table, captures: dict[str, dict]) -> None:
    """Labelled flows per capture and class (one np.unique, not a pass per capture)."""
    names, inv = np.unique(_np(table, "capture").astype(str), return_inverse=True)
    p2p = _np(table, "label").astype(str) == "p2p"
    flows = np.bincount(inv, minlength=len(names))
    pos = np.bincount(inv, weights=p2p, minlength=len(names)).astype(int)
    at = {n: i for i, n in enumerate(names.tolist())}
    for name, info in captures.items():
        i = at.get(name)
        info["flows"] = int(flows[i]) if i is not None else 0
        info["p2p"] = int(pos[i]) if i is not None else 0
        info["other"] = info["flows"] - info["p2p"]


def concat_datasets(parts: list[Dataset]) -> Dataset:
    """One dataset from several loaded with the same extract config (e.g. strict + skip_bad)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise BadDatasetError("no datasets to combine")
    config = parts[0].config
    for p in parts[1:]:
        if p.config != config:
            raise BadDatasetError("datasets were extracted with different settings; re-extract them alike")
    cols = parts[0].table.column_names
    table = pa.concat_tables([p.table.select(cols) for p in parts], promote_options="permissive")
    captures: dict[str, dict] = {}
    for p in parts:
        captures.update(p.captures)
    return Dataset(table=table, config=config, captures=captures,
                   skipped=[s for p in parts for s in p.skipped], unlabelled=sum(p.unlabelled for p in parts))

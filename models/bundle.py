"""Model bundles: a LightGBM text model, JSON metadata and a SHA-256 manifest, in one directory.

Loading never unpickles anything (DESIGN.md invariant 6): it checks the manifest's hashes, the
flow-table schema version and the feature list before the booster is parsed from text, and
refuses anything else with one BadModelError line that says what to do.

Layout::

    MODEL_DIR/model.txt        booster.save_model() text
    MODEL_DIR/metadata.json    bundle id, features, extract config, threshold, evidence settings,
                               data, metrics
    MODEL_DIR/MANIFEST.sha256  "<sha256>  <file>" per file above (sha256sum -c compatible)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import (PORT_NUMBER_FEATURES, SCHEMA_VERSION, TIMING_FEATURES, feature_columns,
                                       port_feature_columns, sequence_feature_columns)
from p2pdetect.errors import BadConfigError, BadModelError, OutputError
from p2pdetect.models.predictor import column_major, make_predictor
from p2pdetect.outputs import check_output_dir, commit_dir, new_output_dir

log = logging.getLogger("p2pdetect.model")

#: The shipped model, inside the package directory.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"

#: Bump when the bundle layout or a metadata key's meaning changes.
BUNDLE_FORMAT = 1
MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST.sha256"
BUNDLE_FILES = (MODEL_FILE, METADATA_FILE)
LABELS = np.array(["other", "p2p"], dtype=object)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that make and read a bundle (recorded for audits)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("p2pdetect", "lightgbm", "numpy", "pyarrow", "scikit-learn", "nfstream"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


class ModelBundle:
    """A loaded, verified model: scores flows and turns scores into verdicts."""

    def __init__(self, path: Path, booster, metadata: dict, *, num_threads: int = 1) -> None:
        self.path = Path(path)
        self.booster = booster
        self.metadata = metadata
        self.bundle_id: str = metadata["bundle_id"]
        self.threshold: float = float(metadata["threshold"])
        self.target_fpr: float | None = metadata.get("target_fpr")
        self.feature_names: list[str] = list(metadata["feature_names"])
        self.extract_config: ExtractConfig = ExtractConfig.from_dict(metadata["extract_config"])
        #: models.host_evidence.HostEvidence settings the threshold was chosen with (bundles
        #: older than the key were made without corroboration)
        self.evidence: dict = dict(metadata.get("evidence", {"corroborate_peers": 1}))
        self.num_threads = num_threads
        self._predictor = None

    def __repr__(self) -> str:
        return f"ModelBundle({self.bundle_id!r}, path={str(self.path)!r}, threshold={self.threshold:.4g})"

    @property
    def port_features(self) -> bool:
        """Whether the model sees the coarse port facts (False for the port-ablation model)."""
        return set(port_feature_columns(port_numbers=False)) <= set(self.feature_names)

    @property
    def port_number_features(self) -> bool:
        """Whether the model sees which ports are below 1024 (TrainConfig.port_number_features)."""
        return set(PORT_NUMBER_FEATURES) <= set(self.feature_names)

    @property
    def port_number_gain(self) -> float:
        """The share of split gain the port-number facts counted in training
        (TrainConfig.port_number_gain; 1 for bundles trained before the setting existed)."""
        cfg = self.metadata.get("training", {}).get("train_config") or {}
        return float(cfg.get("port_number_gain", 1.0))

    @property
    def timing_features(self) -> bool:
        """Whether the model sees absolute timings (False for the timing-ablation model)."""
        return set(TIMING_FEATURES) <= set(self.feature_names)

    @property
    def sequence_features(self) -> bool:
        """Whether the model sees each of the first packets' size and direction."""
        return set(sequence_feature_columns(self.extract_config.splt_n)) <= set(self.feature_names)

    def _columns(self, cols, names: list[str]) -> list[np.ndarray]:
        """The named columns of a dict of numpy columns or a pyarrow.Table, as numpy (NaN for nulls)."""
        is_table = hasattr(cols, "column_names")
        have = set(cols.column_names) if is_table else cols.keys()
        missing = [c for c in self.feature_names if c not in have]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise BadModelError(f"flows lack feature column {missing[0]!r}{more} that model {self.bundle_id} "
                                f"needs; extract them with the bundle's extract config")
        if not is_table:
            return [cols[name] for name in names]
        out = []
        for name in names:
            col = cols.column(name)
            if col.null_count:
                col = col.cast("float64").fill_null(float("nan"))
            out.append(col.to_numpy())
        return out

    def matrix(self, cols) -> np.ndarray:
        """(n, F) float32 matrix of the feature columns, in the model's order (NaN for nulls),
        column-major (models.predictor.column_major)."""
        return column_major(self._columns(cols, self.feature_names))

    @property
    def predictor(self):
        """What scores flows (models.predictor): the model compiled by lleaves, or LightGBM.
        Made on first use (a compile takes about a second, then comes from the user's cache)."""
        if self._predictor is None:
            self._predictor = make_predictor(self.booster, num_threads=self.num_threads)
        return self._predictor

    def predict_proba(self, cols) -> np.ndarray:
        """P(p2p) per flow; cols: dict of numpy columns or a pyarrow.Table with the feature columns."""
        columns = self._columns(cols, self.feature_names)
        if not len(columns[0]):
            return np.empty(0, dtype=np.float64)
        pred = self.predictor
        return pred.predict([columns[i] for i in pred.used])

    def verdicts(self, scores: np.ndarray) -> np.ndarray:
        """Object array of "p2p" / "other" (p2p where score >= threshold)."""
        return LABELS[(np.asarray(scores) >= self.threshold).astype(np.intp)]


def _fail(path: Path, what: str) -> BadModelError:
    return BadModelError(f"{path}: {what}")


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        text = (path / MANIFEST_FILE).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise _fail(path, f"not a model bundle (no {MANIFEST_FILE}); give a directory written by "
                          f"'p2pdetect train'") from err
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot read {MANIFEST_FILE} ({err}); re-create the bundle") from err
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or name not in BUNDLE_FILES:
            raise _fail(path, f"{MANIFEST_FILE} is malformed (line {line[:60]!r}); re-create the bundle")
        hashes[name] = digest
    missing = [f for f in BUNDLE_FILES if f not in hashes]
    if missing:
        raise _fail(path, f"{MANIFEST_FILE} lists no hash for {missing[0]}; re-create the bundle")
    return hashes


def _read_verified(path: Path, name: str, digest: str) -> bytes:
    try:
        data = (path / name).read_bytes()
    except OSError as err:
        raise _fail(path, f"bundle file {name} is missing or unreadable ({err.strerror}); "
                          f"re-create the bundle") from err
    if _sha256(data) != digest:
        raise _fail(path, f"{name} does not match its SHA-256 in {MANIFEST_FILE} (tampered or truncated); "
                          f"re-create the bundle or restore it from a trusted copy")
    return data


def _check_metadata(path: Path, meta: object) -> dict:
    if not isinstance(meta, dict):
        raise _fail(path, f"{METADATA_FILE} is not a JSON object; re-create the bundle")
    need = ("bundle_format", "bundle_id", "schema_version", "feature_names", "extract_config", "threshold")
    missing = [k for k in need if k not in meta]
    if missing:
        raise _fail(path, f"{METADATA_FILE} lacks {missing[0]!r}; re-create the bundle")
    if meta["bundle_format"] != BUNDLE_FORMAT:
        raise _fail(path, f"bundle format {meta['bundle_format']!r}, this p2pdetect reads format "
                          f"{BUNDLE_FORMAT}; re-train the model with this version")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise _fail(path, f"model was trained on flow-table schema version {meta['schema_version']!r}, "
                          f"this p2pdetect extracts version {SCHEMA_VERSION}; re-train the model")
    try:
        config = ExtractConfig.from_dict(meta["extract_config"])
    except (BadConfigError, TypeError, AttributeError) as err:
        raise _fail(path, f"bundle's extract config is invalid ({err}); re-create the bundle") from err
    names = meta["feature_names"]
    allowed = [feature_columns(config.splt_n, port_features=p, timing_features=t, sequence_features=q,
                               port_number_features=n)
               for p in (True, False) for t in (True, False) for q in (True, False) for n in (True, False)]
    if names not in allowed:
        extra = [n for n in names if n not in allowed[0]] if isinstance(names, list) else []
        hint = f" (unknown feature {extra[0]!r})" if extra else ""
        raise _fail(path, f"bundle's feature list does not match this p2pdetect's feature columns{hint}; "
                          f"re-train the model with this version")
    thr = meta["threshold"]
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0.0 <= thr <= 1.0:
        raise _fail(path, f"bundle's threshold {thr!r} is not a number in [0, 1]; re-create the bundle")
    ev = meta.get("evidence", {})
    peers = ev.get("corroborate_peers", 1) if isinstance(ev, dict) else None
    if (not isinstance(ev, dict) or set(ev) - {"corroborate_peers"} or not isinstance(peers, int)
            or isinstance(peers, bool) or peers < 1):
        raise _fail(path, f"bundle's evidence settings {ev!r} are not {{'corroborate_peers': int >= 1}}; "
                          f"re-create the bundle")
    return meta


#: Libraries whose version changes the features a bundle sees: the meter and the feature code.
FEATURE_LIBRARIES = ("nfstream", "p2pdetect")


def _check_libraries(path: Path, meta: dict) -> None:
    """Warn when the bundle was made with another meter or feature code than the one running.

    Features may then differ slightly (a meter fix, a changed feature): the schema version
    and the feature list (checked before) refuse a bundle whose columns differ; a version
    difference alone is a warning, with what to do about it.
    """
    made = meta.get("libraries")
    if not isinstance(made, dict):
        return
    running = library_versions()
    for lib in FEATURE_LIBRARIES:
        then, now = made.get(lib), running.get(lib)
        if then and now and then != now:
            log.warning("%s: model trained with %s %s, running %s; its features may differ a little: "
                        "re-train with this version to be sure", path, lib, then, now)


def load_bundle(path: str | os.PathLike | None = None, *, num_threads: int = 1) -> ModelBundle:
    """Load and verify a bundle (None = the shipped default model)."""
    import lightgbm as lgb

    path = Path(DEFAULT_MODEL_DIR if path is None else path)
    if not path.is_dir():
        if path == DEFAULT_MODEL_DIR:
            raise _fail(path, "the shipped default model is missing; build it with 'make model' "
                              "or give --model MODEL_DIR")
        raise _fail(path, "no such model bundle directory; give a directory written by 'p2pdetect train'")
    hashes = _read_manifest(path)
    raw_meta = _read_verified(path, METADATA_FILE, hashes[METADATA_FILE])
    raw_model = _read_verified(path, MODEL_FILE, hashes[MODEL_FILE])
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"{METADATA_FILE} is not valid JSON ({err}); re-create the bundle") from err
    meta = _check_metadata(path, meta)
    _check_libraries(path, meta)
    try:
        booster = lgb.Booster(model_str=raw_model.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError, ValueError) as err:
        raise _fail(path, f"{MODEL_FILE} is not a LightGBM text model ({str(err).splitlines()[0]}); "
                          f"re-create the bundle") from err
    if booster.feature_name() != meta["feature_names"]:
        raise _fail(path, f"{MODEL_FILE}'s features differ from {METADATA_FILE}'s feature list; "
                          f"re-create the bundle")
    return ModelBundle(path, booster, meta, num_threads=num_threads)


def check_bundle_path(path: str | os.PathLike, *, inputs=()) -> Path:
    """Fail early (before training) when a bundle cannot be written at path (nor over inputs)."""
    return check_output_dir(path, "model bundle", lambda p: (p / MANIFEST_FILE).is_file(), inputs=inputs)


def save_bundle(path: str | os.PathLike, booster, *, feature_names: list[str],
                extract_config: ExtractConfig, threshold: float, target_fpr: float | None,
                training: dict, metrics: dict, corroborate_peers: int = 2) -> ModelBundle:
    """Write a bundle atomically (temp dir, then rename) and return it loaded and verified.
    corroborate_peers is the host-evidence setting the threshold was chosen with."""
    path = check_bundle_path(path)
    if booster.feature_name() != list(feature_names):
        raise ValueError("booster feature names differ from feature_names")
    model_text = booster.model_to_string().encode("utf-8")
    created = datetime.now(timezone.utc)
    meta = {
        "bundle_format": BUNDLE_FORMAT,
        "bundle_id": f"p2pdetect-{created:%Y%m%dT%H%M%SZ}-{_sha256(model_text)[:10]}",
        "created": created.isoformat(timespec="seconds"),
        "schema_version": SCHEMA_VERSION,
        "feature_names": list(feature_names),
        "port_features": set(port_feature_columns(port_numbers=False)) <= set(feature_names),
        "port_number_features": set(PORT_NUMBER_FEATURES) <= set(feature_names),
        "timing_features": set(TIMING_FEATURES) <= set(feature_names),
        "sequence_features": set(sequence_feature_columns(extract_config.splt_n)) <= set(feature_names),
        "extract_config": extract_config.to_dict(),
        "threshold": float(threshold),
        "target_fpr": None if target_fpr is None else float(target_fpr),
        "evidence": {"corroborate_peers": int(corroborate_peers)},
        "training": training,
        "metrics": metrics,
        "libraries": library_versions(),
    }
    meta_bytes = (json.dumps(meta, indent=2, sort_keys=False, default=_json_default) + "\n").encode("utf-8")
    tmp = new_output_dir(path)
    try:
        (tmp / MODEL_FILE).write_bytes(model_text)
        (tmp / METADATA_FILE).write_bytes(meta_bytes)
        manifest = "".join(f"{_sha256(data)}  {name}\n"
                           for name, data in ((MODEL_FILE, model_text), (METADATA_FILE, meta_bytes)))
        (tmp / MANIFEST_FILE).write_text(manifest, encoding="utf-8")
        check_bundle_path(path)  # still a bundle (or nothing) to replace
        commit_dir(tmp, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write the bundle ({err.strerror or err}); "
                          f"check free space and permissions") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_bundle(path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


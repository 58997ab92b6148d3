"""Fast scoring of a bundle's LightGBM model: compiled with lleaves when it can, LightGBM otherwise.

A forest of 40 small trees costs LightGBM ~1.5 µs a flow, most of it per-row overhead and
memory traffic over all 154 feature columns when the trees read about half of them. Two things
make scoring several times faster, with the same scores:

1. The model is rewritten over the features its splits use (`reduce_model`): the same trees,
   split features renumbered, serialised by LightGBM itself. The feature matrix then holds only
   those columns.
2. lleaves (LLVM via llvmlite) compiles that model text to native code for this CPU. It reads a
   row-major float64 matrix, built chunk by chunk so that it stays in cache. Values pass through
   float32 first, as they do for LightGBM (bundle.matrix) and as the model was trained, so every
   comparison with a split threshold goes the same way and scores equal LightGBM's (to ~1e-16).

Safety (invariant 6, docs/architecture.md): nothing executable ever comes from a bundle. The
model is compiled from the verified model.txt; the object code is cached under the user's cache
directory (`cache_dir`), named by a hash of the reduced model text, the lleaves/llvmlite versions
and the CPU, kept with its SHA-256 (an object cut short or altered is compiled afresh), and used
only from a directory that is the user's own and not writable by others. Before
use, a compiled predictor must score probe rows that take every branch of every split (values at,
just below and just above each threshold, NaN, zeros, infinities) as the LightGBM booster does;
if it cannot be built or disagrees, scoring falls back to LightGBM with one warning per process.

P2PDETECT_PREDICTOR=lightgbm forces LightGBM (benchmarks compare both); =lleaves makes a failure
to compile an error instead of a fallback. P2PDETECT_PREDICTOR_CACHE names another cache
directory ("off": compile every time, cache nothing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("p2pdetect.model")

ENV_KIND = "P2PDETECT_PREDICTOR"
ENV_CACHE = "P2PDETECT_PREDICTOR_CACHE"
KINDS = ("auto", "lleaves", "lightgbm")
#: Rows per chunk of the row-major matrix the compiled model reads (1.9 MB at 78 features, float32
#: and float64 together: in cache; 1024-4096 measure alike, 8192 slower).
CHUNK_ROWS = 2048
#: lleaves compiles trees in blocks of this many (its default: 34) to spare the instruction cache;
#: a forest of up to this many trees is compiled as one block (40 trees: ~1.5x faster).
MAX_UNBLOCKED_TREES = 64
#: Largest acceptable difference from the LightGBM booster's score on the probe rows.
PROBE_TOLERANCE = 1e-9
PROBE_ROWS = 4096
#: Compiled models kept in the cache (the least recently used go first).
CACHE_KEEP = 32
#: LightGBM reads every |value| <= kZeroThreshold (1e-35f) as 0 (its C API's dense row
#: functions); lleaves compares the value as it is.
ZERO_THRESHOLD = np.float32(1e-35)
#: Bump when the cached object's meaning changes (compile options, reduction).
CACHE_FORMAT = 2

_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


# --- the model over the features its splits use --------------------------------------------------

def _used_features(model_text: str) -> list[int]:
    lines = model_text.split("\n")
    return sorted({int(x) for line in lines if line.startswith("split_feature=") for x in line[14:].split()})


def reduce_model(booster) -> tuple[str, list[int]]:
    """(model text over the used features only, their indices in the booster's feature list).

    The trees are unchanged; each split's feature index is renumbered, and the header's feature
    names and ranges keep the used ones. The text goes through LightGBM once more, so it is
    LightGBM's own serialisation (tree sizes included), as lleaves expects.
    """
    import lightgbm as lgb

    text = booster.model_to_string()
    used = _used_features(text)
    if not used:   # no split at all (constant model): nothing to reduce
        return text, list(range(booster.num_feature()))
    pos = {f: i for i, f in enumerate(used)}
    out = []
    in_trees = True
    for line in text.split("\n"):
        if line == "end of trees":
            in_trees = False
        key, _, val = line.partition("=")
        if not in_trees:
            pass
        elif key == "max_feature_idx":
            line = f"max_feature_idx={len(used) - 1}"
        elif key in ("feature_names", "feature_infos"):
            parts = val.split(" ")
            line = f"{key}=" + " ".join(parts[i] for i in used)
        elif key == "split_feature":
            line = "split_feature=" + " ".join(str(pos[int(x)]) for x in val.split())
        elif key == "tree_sizes":   # byte sizes of the old tree texts: LightGBM recomputes them
            continue
        out.append(line)
    return lgb.Booster(model_str="\n".join(out)).model_to_string(), used


# --- feature rows ---------------------------------------------------------------------------------

def column_major(columns: Sequence[np.ndarray]) -> np.ndarray:
    """(rows, k) float32 matrix of the columns, column-major (LightGBM reads it without a copy).

    Filled one contiguous row of its transpose per column: ~10x faster to build than a
    row-major matrix of all rows."""
    XT = np.empty((len(columns), len(columns[0])), dtype=np.float32)
    for j, col in enumerate(columns):
        XT[j] = col
    return XT.T


def row_major(columns: Sequence[np.ndarray], start: int, stop: int, out: np.ndarray) -> np.ndarray:
    """columns[j][start:stop] as rows of out (a C-order float32 (rows, k) buffer); the filled part.

    Column by column into the row-major buffer: in cache, twice as fast as transposing a
    column-major matrix (numpy's transposing copy is slow)."""
    X = out[:stop - start]
    for j, col in enumerate(columns):
        X[:, j] = col[start:stop]
    return X


class LightGBMPredictor:
    """LightGBM's own predict on the reduced model (the fallback, and the reference)."""

    kind = "lightgbm"

    def __init__(self, model_text: str, used: list[int], *, num_threads: int = 1) -> None:
        import lightgbm as lgb

        self.booster = lgb.Booster(model_str=model_text)
        self.used = used
        self.num_threads = num_threads

    def predict(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """P(p2p) per row; columns: one 1-D array per used feature, in `used` order."""
        return self.booster.predict(column_major(columns), num_threads=self.num_threads)


class LleavesPredictor:
    """The reduced model compiled to native code by lleaves."""

    kind = "lleaves"

    def __init__(self, model_text: str, used: list[int], *, num_threads: int = 1,
                 cache: Path | None = None) -> None:
        self.used = used
        self.num_threads = num_threads
        # columns with a split threshold within LightGBM's zero threshold: there a tiny value
        # and 0 take different branches, so tiny values are made 0 first, as LightGBM does
        self._zero_cols = [f for f, ts in split_thresholds(model_text).items()
                           if any(abs(t) <= ZERO_THRESHOLD for t in ts)]
        self.cached = cache is not None and cache.exists()   # object code loaded, not compiled
        t0 = time.perf_counter()
        self.model = _compile(model_text, cache)
        if not self.cached:
            log.debug("compiled the model (%d trees) with lleaves in %.1f s%s", self.model.num_trees(),
                     time.perf_counter() - t0, f", cached in {cache.parent}" if cache is not None else "")

    def predict(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """P(p2p) per row; columns: one 1-D array per used feature, in `used` order.

        With num_threads > 1, each thread scores its own contiguous share of the rows (lleaves
        releases the GIL while it runs)."""
        n = len(columns[0])
        out = np.empty(n, dtype=np.float64)
        parts = min(self.num_threads, n // CHUNK_ROWS)
        if parts <= 1:
            self._predict_rows(columns, 0, n, out)
            return out
        from concurrent.futures import ThreadPoolExecutor

        bounds = np.linspace(0, n, parts + 1).astype(int)
        with ThreadPoolExecutor(parts) as pool:
            list(pool.map(lambda i: self._predict_rows(columns, bounds[i], bounds[i + 1], out), range(parts)))
        return out

    def _predict_rows(self, columns: Sequence[np.ndarray], start: int, stop: int, out: np.ndarray) -> None:
        m = min(stop - start, CHUNK_ROWS)
        X32 = np.empty((m, len(columns)), dtype=np.float32)
        X = np.empty((m, len(columns)), dtype=np.float64)
        for s in range(start, stop, m):
            w = min(stop, s + m) - s
            # float32 first (as LightGBM and training see the values), then float64 for lleaves
            X32w = row_major(columns, s, s + w, X32)
            for j in self._zero_cols:
                c = X32w[:, j]
                c[np.abs(c) <= ZERO_THRESHOLD] = 0.0
            np.copyto(X[:w], X32w)
            out[s:s + w] = self.model.predict(X[:w], n_jobs=1)


def _compile(model_text: str, cache: Path | None):
    """lleaves.Model compiled from the text; object code from/to `cache` when given."""
    import lleaves

    with tempfile.TemporaryDirectory(prefix="p2pdetect-model-") as d:
        src = Path(d) / "model.txt"
        src.write_text(model_text, encoding="utf-8")
        model = lleaves.Model(model_file=str(src))
        options = {**_target(), "fblocksize": max(34, min(model.num_trees(), MAX_UNBLOCKED_TREES))}
        if cache is not None and cache.exists():
            model.compile(cache=str(cache), **options)
            return model
        if cache is None:
            model.compile(**options)
            return model
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp_sum = tmp.with_suffix(".sum")
        try:
            model.compile(cache=str(tmp), **options)
            os.chmod(tmp, 0o600)
            tmp_sum.write_text(_digest(tmp) + "\n", encoding="ascii")
            os.replace(tmp_sum, _sum_file(cache))   # the checksum first: an object without one is not used
            os.replace(tmp, cache)
        except OSError as err:   # the cache is a convenience: compiled anyway
            log.debug("predictor cache %s not written: %s", cache, err)
        finally:
            tmp.unlink(missing_ok=True)
            tmp_sum.unlink(missing_ok=True)
        return model


def _target() -> dict:
    import llvmlite.binding as llvm

    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return {"target_cpu": llvm.get_host_cpu_name(), "target_cpu_features": features}


# --- the cache of compiled models -----------------------------------------------------------------

def cache_dir() -> Path | None:
    """Where compiled models are kept: $P2PDETECT_PREDICTOR_CACHE, else the user cache directory.

    None (compile every time) when caching is off, or the directory cannot be made, or it is
    not the user's own or others may write to it (object code from there would run as ours).
    """
    env = os.environ.get(ENV_CACHE)
    if env is not None and env.strip().lower() in ("", "off", "0", "none"):
        return None
    try:
        if env:
            path = Path(env)
        else:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            path = Path(base) / "p2pdetect" / "predictors"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(path):
            _warn_once(f"cache:{path}", "%s is not yours alone (owner or write permission): compiled models "
                       "are not cached there; fix its permissions or set %s", path, ENV_CACHE)
            return None
    except (OSError, RuntimeError) as err:   # RuntimeError: no home directory
        log.debug("no predictor cache: %s", err)
        return None
    return path


def _private(path: Path) -> bool:
    st = path.lstat()
    return not path.is_symlink() and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _cache_key(model_text: str) -> str:
    target = _target()
    parts = [f"format={CACHE_FORMAT}", f"lleaves={_version('lleaves')}", f"llvmlite={_version('llvmlite')}",
             f"cpu={target['target_cpu']}", f"features={target['target_cpu_features']}", model_text]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def _cache_file(model_text: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    path = d / f"{_cache_key(model_text)}.o"
    if path.exists():
        try:   # ours alone, and whole (its SHA-256 as written): else compile afresh
            ok = _private(path) and _sum_file(path).read_text(encoding="ascii").strip() == _digest(path)
        except (OSError, UnicodeDecodeError):
            ok = False
        if ok:
            os.utime(path)   # recently used: pruned last
        else:
            path.unlink(missing_ok=True)
    return path


def _sum_file(obj: Path) -> Path:
    return obj.with_suffix(".sha256")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prune(d: Path, keep: int = CACHE_KEEP) -> None:
    try:
        files = sorted(d.glob("*.o"), key=lambda p: p.stat().st_mtime, reverse=True)
        for p in files[keep:]:
            p.unlink(missing_ok=True)
        kept = {p.stem for p in files[:keep]}
        for p in d.glob("*.sha256"):
            if p.stem not in kept:
                p.unlink(missing_ok=True)
    except OSError:
        pass


# --- the probe: every branch of every split -------------------------------------------------------

def split_thresholds(model_text: str) -> dict[int, list[float]]:
    """Split feature index -> the thresholds of its splits, from LightGBM model text."""
    thresholds: dict[int, list[float]] = {}
    feats: list[int] = []
    for line in model_text.split("\n"):
        if line.startswith("split_feature="):
            feats = [int(x) for x in line[14:].split()]
        elif line.startswith("threshold="):
            for f, t in zip(feats, line[10:].split()):
                thresholds.setdefault(f, []).append(float(t))
    return thresholds


def probe_matrix(model_text: str, n_features: int, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """(rows, n_features) float32 rows that take both sides of every split, and the missing-value paths.

    Each feature's values come from its thresholds (as float32: rounded to nearest, the next
    float below and above), NaN, +-0, +-inf, tiny values around LightGBM's zero threshold and
    small integers (categorical splits), drawn at random per cell.
    """
    thresholds = split_thresholds(model_text)
    common = np.array([np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-36, -1e-36, 1.0, 2.0, 3.0, -1.0],
                      dtype=np.float32)
    rng = np.random.default_rng(seed)
    X = np.zeros((rows, n_features), dtype=np.float32)
    for f in range(n_features):
        t = np.array(thresholds.get(f, []), dtype=np.float64)
        with np.errstate(over="ignore"):
            t32 = t.astype(np.float32)
        cands = np.concatenate([common, t32, np.nextafter(t32, np.float32(-np.inf)),
                                np.nextafter(t32, np.float32(np.inf))])
        X[:, f] = rng.choice(cands, rows)
    return X


def _agrees(pred, reference_booster, model_text: str, used: list[int], n_features: int) -> float:
    """Largest |score difference| between pred and the reference booster on the probe rows."""
    P = probe_matrix(model_text, len(used))
    full = np.zeros((len(P), n_features), dtype=np.float32)
    full[:, used] = P
    want = reference_booster.predict(full, num_threads=1)
    got = pred.predict([P[:, j] for j in range(len(used))])
    diff = np.abs(got - want)
    return float(np.nanmax(diff)) if len(diff) else 0.0


# --- choosing one ---------------------------------------------------------------------------------

def make_predictor(booster, *, kind: str | None = None, num_threads: int = 1):
    """The fastest predictor that scores exactly as `booster` does (see the module doc).

    kind: "auto" (default; $P2PDETECT_PREDICTOR overrides it): lleaves when it is installed,
    compiles and passes the probe, else LightGBM with one warning; "lleaves": the same, but
    raise instead of falling back; "lightgbm": LightGBM on the reduced model.
    """
    kind = (kind or os.environ.get(ENV_KIND) or "auto").strip().lower()
    if kind not in KINDS:
        raise ValueError(f"predictor kind {kind!r}: use one of {', '.join(KINDS)} (${ENV_KIND})")
    text, used = reduce_model(booster)
    if kind == "lightgbm":
        return LightGBMPredictor(text, used, num_threads=num_threads)
    try:
        cache = _cache_file(text)
        pred = LleavesPredictor(text, used, num_threads=num_threads, cache=cache)
        diff = _agrees(pred, booster, text, used, booster.num_feature())
        if not diff <= PROBE_TOLERANCE:
            if cache is not None:
                cache.unlink(missing_ok=True)
            raise RuntimeError(f"compiled model scores differ from LightGBM's by up to {diff:.3g} on probe rows")
        if cache is not None:
            _prune(cache.parent)
        return pred
    except Exception as err:   # noqa: BLE001 - any failure of the optional compiler: LightGBM scores
        if kind == "lleaves":
            raise
        if isinstance(err, ImportError):
            _warn_once("import", "lleaves is not installed (%s): scoring with LightGBM, about 3x slower; "
                       "install p2pdetect's dependencies to compile the model", err)
        else:
            _warn_once(f"compile:{type(err).__name__}", "could not compile the model with lleaves (%s): "
                       "scoring with LightGBM, about 3x slower", str(err).splitlines()[0] if str(err) else
                       type(err).__name__)
        return LightGBMPredictor(text, used, num_threads=num_threads)

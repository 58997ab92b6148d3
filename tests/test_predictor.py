"""The compiled predictor (lleaves) scores exactly as LightGBM does, and falls back to it safely."""

from __future__ import annotations

import logging
import os

import lightgbm as lgb
import numpy as np
import pytest

from p2pdetect.features.extract import extract_paths
from p2pdetect.models import load_bundle
from p2pdetect.models import predictor as P
from p2pdetect.models.predictor import (
    LightGBMPredictor,
    LleavesPredictor,
    make_predictor,
    probe_matrix,
    reduce_model,
)

from conftest import SAMPLES

pytest.importorskip("lleaves", reason="lleaves is a dependency: `make setup` installs it")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Compiled models go to a test directory; warnings are fresh for each test."""
    monkeypatch.setenv(P.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(P.ENV_KIND, raising=False)
    monkeypatch.setattr(P, "_warned", set())


@pytest.fixture(scope="module")
def shipped():
    return load_bundle()


@pytest.fixture(scope="module")
def sample_flows(shipped):
    """Every flow of the sample captures, final verdicts and early snapshots (the scorer's rows)."""
    table = extract_paths([SAMPLES], shipped.extract_config, n_jobs=1)
    assert table.num_rows > 500 and "early" in set(table.column("stage").to_pylist())
    return table


def _columns(bundle, table, used):
    return [table.column(bundle.feature_names[i]).to_numpy() for i in used]


def test_compiled_scores_equal_lightgbm_on_the_sample_flows(shipped, sample_flows):
    pred = make_predictor(shipped.booster, kind="lleaves")
    assert isinstance(pred, LleavesPredictor)
    assert len(pred.used) < len(shipped.feature_names)   # the reduced model reads fewer columns
    want = shipped.booster.predict(shipped.matrix(sample_flows), num_threads=1)
    got = pred.predict(_columns(shipped, sample_flows, pred.used))
    assert np.abs(got - want).max() <= 1e-6
    assert ((got >= shipped.threshold) == (want >= shipped.threshold)).all()
    assert 0 < (want >= shipped.threshold).sum() < len(want)   # both verdicts occur
    # through the bundle, a table and a dict of columns alike, in chunks of several sizes
    assert np.array_equal(shipped.predict_proba(sample_flows), got)
    cols = {c: sample_flows.column(c).to_numpy() for c in shipped.feature_names}
    for rows in (1, P.CHUNK_ROWS - 1, P.CHUNK_ROWS + 3):
        idx = np.resize(np.arange(sample_flows.num_rows), rows)
        part = shipped.predict_proba({c: v[idx] for c, v in cols.items()})
        assert np.array_equal(part, got[idx])


def test_reduced_model_is_the_same_model(shipped, sample_flows):
    text, used = reduce_model(shipped.booster)
    reduced = lgb.Booster(model_str=text)
    assert reduced.num_trees() == shipped.booster.num_trees()
    assert reduced.feature_name() == [shipped.feature_names[i] for i in used]
    X = shipped.matrix(sample_flows)
    assert np.array_equal(reduced.predict(np.ascontiguousarray(X[:, used])), shipped.booster.predict(X))
    lgb_pred = make_predictor(shipped.booster, kind="lightgbm")
    assert isinstance(lgb_pred, LightGBMPredictor)
    assert np.array_equal(lgb_pred.predict(_columns(shipped, sample_flows, used)), shipped.booster.predict(X))


def test_probe_takes_every_branch_and_scores_agree(shipped):
    text, used = reduce_model(shipped.booster)
    X = probe_matrix(text, len(used))
    assert np.isnan(X).any() and np.isinf(X).any()
    # every node of every tree is reached by some probe row, so every leaf value is checked
    leaves = lgb.Booster(model_str=text).predict(X, pred_leaf=True)
    n_leaves = [int(line.split("=")[1]) for line in text.split("\n") if line.startswith("num_leaves=")]
    reached = [len(np.unique(leaves[:, t])) for t in range(leaves.shape[1])]
    assert sum(reached) >= 0.95 * sum(n_leaves)
    pred = LleavesPredictor(text, used)
    assert P._agrees(pred, shipped.booster, text, used, len(shipped.feature_names)) <= 1e-12


def _nudged(text: str) -> str:
    """The model with its first split threshold away from zero moved just below the float32 value at or
    under it (a threshold within LightGBM's zero threshold sees only 0 on either side of it)."""
    lines = text.split("\n")
    i, k = next((i, k) for i, line in enumerate(lines) if line.startswith("threshold=")
                for k, v in enumerate(line[10:].split()) if abs(float(v)) > 1e-30)
    values = lines[i][10:].split()
    t = float(values[k])
    t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    values[k] = repr(float(np.nextafter(float(t32), -np.inf)))
    lines[i] = "threshold=" + " ".join(values)
    return "\n".join(lines)


def test_probe_catches_a_model_that_differs_by_one_threshold(shipped):
    text, used = reduce_model(shipped.booster)
    wrong = LleavesPredictor(_nudged(text), used)
    assert P._agrees(wrong, shipped.booster, text, used, len(shipped.feature_names)) > P.PROBE_TOLERANCE


def test_disagreeing_compiled_model_falls_back_to_lightgbm_with_one_warning(shipped, tmp_path, monkeypatch,
                                                                          caplog):
    real = P.LleavesPredictor
    monkeypatch.setattr(P, "LleavesPredictor",
                        lambda text, used, **kw: real(_nudged(text), used, **kw))
    with caplog.at_level(logging.WARNING, logger="p2pdetect.model"):
        first = make_predictor(shipped.booster)
        second = make_predictor(shipped.booster)
    assert isinstance(first, LightGBMPredictor) and isinstance(second, LightGBMPredictor)
    warnings = [r for r in caplog.records if "could not compile" in r.getMessage()]
    assert len(warnings) == 1 and "differ from LightGBM" in warnings[0].getMessage()
    assert not list((tmp_path / "cache").glob("*.o"))   # a bad object is not kept
    with pytest.raises(RuntimeError, match="differ"):
        make_predictor(shipped.booster, kind="lleaves")


def test_without_lleaves_lightgbm_scores(shipped, sample_flows, monkeypatch, caplog):
    monkeypatch.setitem(__import__("sys").modules, "lleaves", None)   # import lleaves -> ImportError
    with caplog.at_level(logging.WARNING, logger="p2pdetect.model"):
        pred = make_predictor(shipped.booster)
    assert isinstance(pred, LightGBMPredictor)
    assert any("lleaves is not installed" in r.getMessage() for r in caplog.records)
    want = shipped.booster.predict(shipped.matrix(sample_flows))
    assert np.array_equal(pred.predict(_columns(shipped, sample_flows, pred.used)), want)


def test_environment_chooses_lightgbm_and_refuses_unknown_kinds(shipped, monkeypatch):
    monkeypatch.setenv(P.ENV_KIND, "lightgbm")
    assert isinstance(make_predictor(shipped.booster), LightGBMPredictor)
    monkeypatch.setenv(P.ENV_KIND, "treelite")
    with pytest.raises(ValueError, match="auto, lleaves, lightgbm"):
        make_predictor(shipped.booster)


def test_compiled_model_is_cached_privately_and_reused(shipped, sample_flows, tmp_path):
    first = make_predictor(shipped.booster)
    cached = list((tmp_path / "cache").glob("*.o"))
    assert isinstance(first, LleavesPredictor) and not first.cached and len(cached) == 1
    assert cached[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0
    second = make_predictor(shipped.booster)
    assert isinstance(second, LleavesPredictor) and second.cached
    cols = _columns(shipped, sample_flows, first.used)
    assert np.array_equal(first.predict(cols), second.predict(cols))


def test_truncated_cached_model_is_compiled_afresh(shipped, sample_flows, tmp_path):
    first = make_predictor(shipped.booster)
    (obj,) = (tmp_path / "cache").glob("*.o")
    assert obj.with_suffix(".sha256").is_file()
    obj.write_bytes(obj.read_bytes()[:100])   # a disk that filled up, say
    second = make_predictor(shipped.booster)
    assert isinstance(second, LleavesPredictor) and not second.cached
    cols = _columns(shipped, sample_flows, first.used)
    assert np.array_equal(first.predict(cols), second.predict(cols))
    assert isinstance(make_predictor(shipped.booster), LleavesPredictor)
    assert make_predictor(shipped.booster).cached   # re-written whole


def test_cache_others_may_write_to_is_not_used(shipped, tmp_path, monkeypatch, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv(P.ENV_CACHE, str(shared))
    with caplog.at_level(logging.WARNING, logger="p2pdetect.model"):
        pred = make_predictor(shipped.booster)
    assert isinstance(pred, LleavesPredictor) and not pred.cached
    assert not list(shared.iterdir())
    assert any("not yours alone" in r.getMessage() for r in caplog.records)


def test_cache_keeps_the_most_recent_models(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    for i in range(P.CACHE_KEEP + 5):
        f = d / f"{i:03d}.o"
        f.write_bytes(b"x")
        f.with_suffix(".sha256").write_text("y")
        os.utime(f, (1000 + i, 1000 + i))
    P._prune(d)
    left = sorted(p.name for p in d.glob("*.o"))
    assert len(left) == P.CACHE_KEEP and left[0] == "005.o"
    assert sorted(p.stem for p in d.glob("*.sha256")) == [p[:-2] for p in left]


def test_constant_model_without_splits(tmp_path):
    X = np.random.default_rng(0).random((50, 3))
    y = np.r_[np.zeros(25), np.ones(25)]
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 100}, lgb.Dataset(X, y),
                        num_boost_round=2)
    text, used = reduce_model(booster)
    assert used == [0, 1, 2]
    pred = make_predictor(booster)
    assert np.allclose(pred.predict([X[:, j] for j in used]), booster.predict(X), atol=1e-12)


def test_no_home_directory_compiles_without_a_cache(shipped, monkeypatch):
    monkeypatch.delenv(P.ENV_CACHE)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(P.Path, "home", staticmethod(no_home))
    assert P.cache_dir() is None
    pred = make_predictor(shipped.booster)
    assert isinstance(pred, LleavesPredictor) and not pred.cached


def test_threads_share_the_rows_and_score_alike(shipped, sample_flows):
    one = make_predictor(shipped.booster, num_threads=1)
    two = make_predictor(shipped.booster, num_threads=2)
    idx = np.resize(np.arange(sample_flows.num_rows), 5 * P.CHUNK_ROWS + 7)
    cols = [c[idx] for c in _columns(shipped, sample_flows, one.used)]
    assert np.array_equal(one.predict(cols), two.predict(cols))


def test_tiny_values_take_lightgbms_zero_branch():
    """LightGBM reads |x| <= 1e-35 as 0; a split between -1 and 0 sits at -1e-35, where lleaves
    alone would send -1e-35 left and LightGBM right."""
    rng = np.random.default_rng(0)
    x = rng.choice(np.array([-1.0, 0.0, 1.0]), 3000)
    y = (x < 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 3, "min_child_samples": 5, "verbose": -1},
                        lgb.Dataset(x[:, None], y), num_boost_round=3)
    text, used = reduce_model(booster)
    assert any(abs(t) <= P.ZERO_THRESHOLD for ts in P.split_thresholds(text).values() for t in ts)
    probe = np.array([-1e-35, 1e-35, -1e-36, 0.0, -1.0, 1.0, np.nan], dtype=np.float32)
    got = LleavesPredictor(text, used).predict([probe])
    assert np.array_equal(got, booster.predict(probe[:, None]))

"""Model bundles: round trip, and refusal of tampered, truncated or incompatible bundles."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import SCHEMA_VERSION, feature_columns
from p2pdetect.models import DEFAULT_MODEL_DIR, ModelBundle, load_bundle, save_bundle
from p2pdetect.models.bundle import MANIFEST_FILE, METADATA_FILE, MODEL_FILE
from p2pdetect.errors import BadModelError, OutputError
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.synthetic import synthetic_table
from p2pdetect.training.train import feature_matrix, train_model


@pytest.fixture(scope="module")
def trained():
    table = synthetic_table(n_captures=5, flows_per_capture=100, seed=2)
    return table, train_model(table, ExtractConfig(), TrainConfig(max_rounds=10, num_threads=1))


@pytest.fixture
def bundle_dir(tmp_path, trained):
    _, res = trained
    path = tmp_path / "model"
    save_bundle(path, res.booster, feature_names=res.feature_names, extract_config=ExtractConfig(),
                threshold=res.threshold, target_fpr=0.005, training={"captures": []}, metrics={"x": 1})
    return path


def _rewrite(path, name, data: bytes, *, fix_manifest: bool) -> None:
    (path / name).write_bytes(data)
    if fix_manifest:
        lines = []
        for f in (MODEL_FILE, METADATA_FILE):
            lines.append(f"{hashlib.sha256((path / f).read_bytes()).hexdigest()}  {f}\n")
        (path / MANIFEST_FILE).write_text("".join(lines))


def test_round_trip_scores_like_the_booster(bundle_dir, trained):
    table, res = trained
    b = load_bundle(bundle_dir)
    assert isinstance(b, ModelBundle)
    assert b.feature_names == feature_columns(32, timing_features=False, sequence_features=False)  # the training default
    assert b.port_features and b.port_number_features
    assert b.threshold == pytest.approx(res.threshold)
    assert b.extract_config == ExtractConfig()
    assert b.metadata["schema_version"] == SCHEMA_VERSION
    assert b.bundle_id.startswith("p2pdetect-")
    assert set(b.metadata["libraries"]) >= {"lightgbm", "numpy"}
    expected = res.booster.predict(feature_matrix(table, res.feature_names))
    from_table = b.predict_proba(table)
    from_dict = b.predict_proba({c: table.column(c).to_numpy() for c in b.feature_names})
    np.testing.assert_allclose(from_table, expected, rtol=1e-6)
    np.testing.assert_allclose(from_dict, expected, rtol=1e-6)
    v = b.verdicts(from_table)
    assert v.dtype == object and set(v) <= {"p2p", "other"}
    assert ((from_table >= b.threshold) == (v == "p2p")).all()
    assert b.predict_proba({c: np.array([]) for c in b.feature_names}).shape == (0,)


def test_a_model_without_port_numbers_loads_and_says_so(tmp_path, trained):
    """`train --no-port-number-features`: the bundle loads, keeps the other port facts and says so."""
    table, _ = trained
    res = train_model(table, ExtractConfig(), TrainConfig(max_rounds=5, num_threads=1, port_number_features=False))
    save_bundle(tmp_path / "m", res.booster, feature_names=res.feature_names, extract_config=ExtractConfig(),
                threshold=res.threshold, target_fpr=0.005, training={"captures": []}, metrics={})
    b = load_bundle(tmp_path / "m")
    assert b.port_features and not b.port_number_features
    assert json.loads((tmp_path / "m" / METADATA_FILE).read_text())["port_number_features"] is False
    assert "dst_port_wellknown" not in b.feature_names and "dst_host_high_port_peers" in b.feature_names
    assert b.port_number_gain == 1.0   # trained before the setting existed: the port facts at full gain


def test_a_bundle_says_how_much_gain_its_port_number_facts_counted(tmp_path, trained):
    table, _ = trained
    cfg = TrainConfig(max_rounds=5, num_threads=1, port_number_gain=0.3)
    res = train_model(table, ExtractConfig(), cfg)
    save_bundle(tmp_path / "m", res.booster, feature_names=res.feature_names, extract_config=ExtractConfig(),
                threshold=res.threshold, target_fpr=0.003, training={"train_config": cfg.to_dict()}, metrics={})
    assert load_bundle(tmp_path / "m").port_number_gain == 0.3


def test_bundle_is_plain_text_and_json(bundle_dir):
    assert sorted(p.name for p in bundle_dir.iterdir()) == sorted([MODEL_FILE, METADATA_FILE, MANIFEST_FILE])
    assert (bundle_dir / MODEL_FILE).read_text().startswith("tree")
    json.loads((bundle_dir / METADATA_FILE).read_text())


def test_missing_feature_column_is_named(bundle_dir):
    b = load_bundle(bundle_dir)
    cols = {c: np.zeros(3) for c in b.feature_names if c != "splt_ps_entropy"}
    with pytest.raises(BadModelError, match="'splt_ps_entropy'"):
        b.predict_proba(cols)


def test_tampered_model_refused(bundle_dir):
    text = (bundle_dir / MODEL_FILE).read_text()
    (bundle_dir / MODEL_FILE).write_text(text.replace("threshold=", "threshold=1", 1))
    with pytest.raises(BadModelError, match="does not match its SHA-256"):
        load_bundle(bundle_dir)


def test_tampered_metadata_refused(bundle_dir):
    meta = json.loads((bundle_dir / METADATA_FILE).read_text())
    meta["threshold"] = 0.0
    (bundle_dir / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BadModelError, match="metadata.json does not match"):
        load_bundle(bundle_dir)


def test_truncated_model_refused(bundle_dir):
    data = (bundle_dir / MODEL_FILE).read_bytes()
    (bundle_dir / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(BadModelError, match="tampered or truncated"):
        load_bundle(bundle_dir)


def test_truncated_model_with_matching_manifest_refused(bundle_dir):
    data = (bundle_dir / MODEL_FILE).read_bytes()
    _rewrite(bundle_dir, MODEL_FILE, data[:200], fix_manifest=True)
    with pytest.raises(BadModelError, match="model.txt"):
        load_bundle(bundle_dir)


def test_different_feature_list_refused(bundle_dir):
    meta = json.loads((bundle_dir / METADATA_FILE).read_text())
    meta["feature_names"] = meta["feature_names"][:-1] + ["src_port"]
    _rewrite(bundle_dir, METADATA_FILE, json.dumps(meta).encode(), fix_manifest=True)
    with pytest.raises(BadModelError, match="feature list does not match.*'src_port'"):
        load_bundle(bundle_dir)


def test_other_schema_version_refused(bundle_dir):
    meta = json.loads((bundle_dir / METADATA_FILE).read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    _rewrite(bundle_dir, METADATA_FILE, json.dumps(meta).encode(), fix_manifest=True)
    with pytest.raises(BadModelError, match="schema version"):
        load_bundle(bundle_dir)


def test_evidence_settings_travel_with_the_threshold(bundle_dir):
    """The threshold was chosen with the bundle's host-evidence settings; the scorer uses them."""
    assert load_bundle(bundle_dir).evidence == {"corroborate_peers": 2}
    meta = json.loads((bundle_dir / METADATA_FILE).read_text())
    del meta["evidence"]   # a bundle made before the key: chosen without corroboration
    _rewrite(bundle_dir, METADATA_FILE, json.dumps(meta).encode(), fix_manifest=True)
    assert load_bundle(bundle_dir).evidence == {"corroborate_peers": 1}
    for bad in ({"corroborate_peers": 0}, {"corroborate_peers": "2"}, {"peers": 2}, [2]):
        meta["evidence"] = bad
        _rewrite(bundle_dir, METADATA_FILE, json.dumps(meta).encode(), fix_manifest=True)
        with pytest.raises(BadModelError, match="evidence settings"):
            load_bundle(bundle_dir)


def test_missing_manifest_and_missing_dir_refused(bundle_dir, tmp_path):
    (bundle_dir / MANIFEST_FILE).unlink()
    with pytest.raises(BadModelError, match="not a model bundle"):
        load_bundle(bundle_dir)
    with pytest.raises(BadModelError, match="no such model bundle"):
        load_bundle(tmp_path / "nope")


def test_error_messages_are_one_line(bundle_dir):
    (bundle_dir / MODEL_FILE).write_text("garbage")
    with pytest.raises(BadModelError) as info:
        load_bundle(bundle_dir)
    assert "\n" not in str(info.value)


def test_save_replaces_a_bundle_but_not_other_directories(bundle_dir, trained, tmp_path):
    _, res = trained
    kw = dict(feature_names=res.feature_names, extract_config=ExtractConfig(), threshold=0.7,
              target_fpr=0.01, training={}, metrics={})
    b = save_bundle(bundle_dir, res.booster, **kw)
    assert b.threshold == 0.7 and load_bundle(bundle_dir).threshold == 0.7
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not a model bundle"):
        save_bundle(other, res.booster, **kw)
    assert (other / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_default_model_dir_is_in_the_package():
    assert DEFAULT_MODEL_DIR.name == "default" and DEFAULT_MODEL_DIR.parent.name == "models"


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / MANIFEST_FILE).exists(), reason="no shipped model yet (make model)")
def test_shipped_default_model_loads_and_is_small():
    b = load_bundle()
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert size < 8_000_000
    assert b.metadata["training"]["captures"]


def test_scoring_throughput_is_measured(bundle_dir, trained):
    """Batched scoring speed on one thread (printed; the floor is loose because CI cores are shared)."""
    table, _ = trained
    b = load_bundle(bundle_dir)
    cols = {c: np.tile(table.column(c).to_numpy(), 200) for c in b.feature_names}
    n = len(cols[b.feature_names[0]])
    t0 = time.perf_counter()
    b.predict_proba(cols)
    rate = n / (time.perf_counter() - t0)
    print(f"scored {n} flows at {rate:,.0f} flows/s")
    assert rate > 50_000

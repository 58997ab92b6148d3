"""Training: grouped splits, threshold choice, config validation, nDPI labels, the train command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import (IDENTITY_COLUMNS, PORT_NUMBER_FEATURES, feature_columns, port_feature_columns,
                                       sequence_feature_columns)
from p2pdetect.features.table import write_flow_table
from p2pdetect.errors import BadConfigError, BadDatasetError
from p2pdetect.training.config import TrainConfig
from p2pdetect.training.dpi_labels import dpi_label, dpi_labels
from p2pdetect.training.split import grouped_folds, grouped_split
from p2pdetect.training.synthetic import synthetic_table
from p2pdetect.training.threshold import rates_at, threshold_for_fpr
from p2pdetect.training.train import fit_booster, train_model

FAST = TrainConfig(max_rounds=15, num_threads=1)


@pytest.fixture(scope="module")
def table():
    return synthetic_table(n_captures=8, flows_per_capture=120, seed=1)


@pytest.fixture(scope="module")
def flow_table_path(tmp_path_factory, table):
    path = tmp_path_factory.mktemp("flows") / "flows.parquet"
    write_flow_table(table, path, ExtractConfig())
    return path


def _groups(n_caps=10, per=30, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"cap{i}" for i in range(n_caps)], per)
    y = (rng.random(len(groups)) < 0.3).astype(int)
    return groups, y


def test_grouped_split_keeps_each_capture_on_one_side():
    groups, y = _groups()
    s = grouped_split(groups, y, valid_fraction=0.3, seed=3)
    assert not set(groups[s.train]) & set(groups[s.valid])
    assert set(groups[s.train]) | set(groups[s.valid]) == set(groups)
    assert len(s.train) + len(s.valid) == len(groups)
    assert set(s.valid_captures) == set(groups[s.valid])
    assert y[s.valid].sum() > 0 and (y[s.valid] == 0).sum() > 0
    summary = s.summary(y)
    assert summary["train"]["captures"] + summary["valid"]["captures"] == 10
    assert summary["valid"]["flows"] == len(s.valid)


def test_grouped_split_puts_both_classes_in_validation_when_captures_hold_one_class():
    groups = np.repeat(["p1", "p2", "p3", "o1", "o2", "o3"], 10)
    y = np.repeat([1, 1, 1, 0, 0, 0], 10)
    s = grouped_split(groups, y, valid_fraction=0.2)
    assert {0, 1} <= set(y[s.valid]) and {0, 1} <= set(y[s.train])


def test_grouped_split_needs_two_captures():
    with pytest.raises(BadDatasetError, match="at least 2 captures"):
        grouped_split(np.array(["a"] * 5), np.array([0, 1, 0, 1, 0]))


def test_grouped_folds_test_each_capture_once():
    groups, y = _groups(n_caps=7)
    folds = grouped_folds(groups, y, n_splits=3)
    tested = [c for f in folds for c in f.valid_captures]
    assert sorted(tested) == sorted(set(groups))
    for f in folds:
        assert not set(groups[f.train]) & set(groups[f.valid])


def test_splits_do_not_depend_on_how_the_capture_paths_are_spelt():
    """The same captures named relative to one directory, to another, or absolutely get the same
    folds, validation captures and real/P2P-free evaluation folds (they once sorted as strings)."""
    from p2pdetect.training.groups import _folds

    rng = np.random.default_rng(0)
    tails = [f"corpus/s{i}/x.pcap" for i in range(12)] + [f"ndpi/c{i}.pcap" for i in range(8)]
    spellings = {"relative": [("data/" if t.startswith("corpus") else "../shared/") + t for t in tails],
                 "absolute": [("/work/main/data/" if t.startswith("corpus") else "/work/shared/") + t for t in tails],
                 "elsewhere": [("/srv/p/data/" if t.startswith("corpus") else "/srv/shared/") + t for t in tails]}
    per_capture = rng.integers(5, 30, len(tails))
    cap = np.repeat(np.arange(len(tails)), per_capture)
    y = (rng.random(len(cap)) < np.where(cap < 12, 0.6, 0.0)).astype(int)

    def shape(names):
        groups = np.array(names, dtype=object)[cap]
        s = grouped_split(groups, y, valid_fraction=0.25, seed=1)
        folds = grouped_folds(groups, y, n_splits=4, seed=1)
        idx = {n: i for i, n in enumerate(names)}
        return (s.valid.tolist(), [f.valid.tolist() for f in folds],
                [sorted(idx[n] for n in f) for f in _folds(names[12:], 3, seed=1)])

    shapes = {k: shape(v) for k, v in spellings.items()}
    assert shapes["relative"] == shapes["absolute"] == shapes["elsewhere"]


def test_threshold_for_fpr_hand_case():
    # ten negatives scoring 0.0 .. 0.9, two positives
    scores = np.r_[np.arange(10) / 10, 0.85, 0.95]
    y = np.r_[np.zeros(10), 1, 1]
    t = threshold_for_fpr(scores, y, 0.1)       # one negative (0.9) may pass
    assert 0.8 < t <= 0.8 + 1e-12
    assert rates_at(scores, y, t) == (1.0, 0.1)
    t0 = threshold_for_fpr(scores, y, 0.0)      # no negative may pass: just above 0.9
    assert 0.9 < t0 < 0.9 + 1e-12
    assert rates_at(scores, y, t0) == (0.5, 0.0)


def test_threshold_for_fpr_ties_do_not_overshoot():
    scores = np.array([0.5, 0.5, 0.5, 0.1, 0.9])
    y = np.array([0, 0, 0, 0, 1])
    t = threshold_for_fpr(scores, y, 0.3)       # 1.2 negatives allowed; the tie at 0.5 holds 3
    assert rates_at(scores, y, t)[1] == 0.0 and t > 0.5


def test_threshold_without_negatives_is_half():
    assert threshold_for_fpr(np.array([0.2, 0.9]), np.array([1, 1]), 0.01) == 0.5


def test_train_config_validates_with_the_error_template():
    with pytest.raises(BadConfigError, match=r"The 'num_leaves' parameter of TrainConfig must be an int in "
                                              r"\[2, 1024\]. Got 1 instead."):
        TrainConfig(num_leaves=1)
    with pytest.raises(BadConfigError, match="target_fpr"):
        TrainConfig(target_fpr=1.5)
    with pytest.raises(TypeError):
        TrainConfig(0.1)  # keyword-only


@pytest.mark.parametrize("name,guessed,label", [
    ("BitTorrent", 0, "p2p"), ("eDonkey", 0, "p2p"), ("Gnutella", 0, "p2p"), ("TLS.Google", 0, "other"),
    ("DNS", 0, "other"), ("Unknown", 0, ""), ("TLS", 1, ""), ("BitTorrent", 1, ""),
    ("HTTP.BitTorrent", 0, "p2p"), ("Bitcoin", 0, ""), ("ETHEREUM", 0, ""), ("bittorrent", 0, "p2p"),
])
def test_dpi_label_mapping(name, guessed, label):
    assert dpi_label(name, guessed) == label


def test_dpi_labels_vectorised_matches_scalar():
    names = np.array(["BitTorrent", "TLS", "Unknown", "TLS", "Soulseek"], dtype=object)
    guessed = np.array([0, 0, 0, 1, 0])
    assert dpi_labels(names, guessed).tolist() == ["p2p", "other", "", "", "p2p"]


def test_train_model_uses_only_model_features(table):
    res = train_model(table, ExtractConfig(), FAST)
    assert res.feature_names == feature_columns(32, timing_features=False, sequence_features=False)  # the training default
    assert not set(res.feature_names) & set(IDENTITY_COLUMNS)
    assert res.booster.feature_name() == res.feature_names
    assert 0.0 <= res.threshold <= 1.0
    assert not set(res.split.train_captures) & set(res.split.valid_captures)
    no_port = train_model(table, ExtractConfig(), TrainConfig(max_rounds=5, num_threads=1, port_features=False))
    assert not set(no_port.feature_names) & set(port_feature_columns())
    with_seq = train_model(table, ExtractConfig(), TrainConfig(max_rounds=5, num_threads=1, sequence_features=True))
    assert set(sequence_feature_columns(32)) <= set(with_seq.feature_names)
    assert not set(sequence_feature_columns(32)) & set(res.feature_names)
    assert set(port_feature_columns()) <= set(res.feature_names)
    # without which port a flow uses (below 1024 or not), how a host uses its ports stays
    no_numbers = train_model(table, ExtractConfig(), TrainConfig(max_rounds=5, num_threads=1,
                                                                 port_number_features=False))
    assert not set(PORT_NUMBER_FEATURES) & set(no_numbers.feature_names)
    assert set(port_feature_columns()) - set(PORT_NUMBER_FEATURES) <= set(no_numbers.feature_names)


def test_port_number_gain_makes_the_trees_lean_less_on_which_port_a_flow_uses():
    # the label follows a behaviour (a noisy score) and, nearly as well, the port number
    rng = np.random.default_rng(0)
    behaviour = rng.normal(size=4000)
    y = (behaviour + rng.normal(scale=0.5, size=4000) > 0).astype(np.int8)
    X = np.c_[behaviour, (y == 0) ^ (rng.random(4000) < 0.2)].astype(np.float64)
    names = ["host_behaviour", "dst_port_wellknown"]

    def port_number_share(gain: float) -> float:
        b = fit_booster(X, y, None, None, names, TrainConfig(num_threads=1, port_number_gain=gain), rounds=20)
        g = b.feature_importance("gain")
        return g[1] / g.sum()

    full, soft = port_number_share(1.0), port_number_share(0.1)
    assert full > 0.05 and soft < full / 2
    assert TrainConfig(port_number_gain=1.0).lgb_params(1.0, names).get("feature_contri") is None
    assert TrainConfig(port_number_gain=0.5).lgb_params(1.0, names)["feature_contri"] == [1.0, 0.5]
    with pytest.raises(ValueError, match="port_number_gain"):
        TrainConfig(port_number_gain=0)


def test_isolated_copies_teach_the_trees_a_flow_without_history():
    from p2pdetect.features.host_context import NO_HISTORY
    from p2pdetect.training.train import with_isolated_copies

    # the label shows in a flow-shape feature and, more sharply, in the host's evidence
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.5).astype(np.int8)
    shape = y + rng.normal(scale=0.6, size=4000)
    fanout = np.where(y == 1, rng.integers(20, 40, 4000), rng.integers(0, 3, 4000))
    ratio = np.where(y == 1, 1.0, 0.2)
    names = ["ps_mean_over_max", "src_host_fanout", "src_ep_ip_port_ratio"]
    X = np.c_[shape, fanout, ratio]
    Xi, yi, wi = with_isolated_copies(X, y, None, names, 0.5)
    assert Xi.shape == (8000, 3) and (yi[4000:] == y).all() and (wi == np.r_[np.ones(4000), np.full(4000, 0.5)]).all()
    assert (Xi[4000:, 0] == shape).all() and (Xi[4000:, 1] == NO_HISTORY["src_host_fanout"]).all()
    assert np.isnan(Xi[4000:, 2]).all()
    assert with_isolated_copies(X, y, None, names, 0.0)[0] is X
    # alone, a P2P flow is told by its shape only when the trees trained on flows alone
    alone = np.c_[shape, np.zeros(4000), np.full(4000, np.nan)]
    cfg = dict(num_threads=1, min_child_samples=5)

    def recall_alone(weight: float) -> float:
        b = fit_booster(X, y, None, None, names, TrainConfig(isolated_weight=weight, **cfg), rounds=20)
        return float((b.predict(alone)[y == 1] >= 0.5).mean())

    assert recall_alone(0.0) < 0.2 and recall_alone(0.5) > 0.7
    with pytest.raises(ValueError, match="isolated_weight"):
        TrainConfig(isolated_weight=-1)


def test_bagged_model_is_one_forest_scoring_the_mean_of_its_bags(table):
    from p2pdetect.training.train import average_boosters, bag_seed, feature_matrix

    names = feature_columns(32, timing_features=False, sequence_features=False)
    X = feature_matrix(table, names)
    y = (table.column("label").to_numpy(zero_copy_only=False) == "p2p").astype(np.int8)
    cfg = TrainConfig(max_rounds=6, num_threads=1, bags=3)
    bags = [fit_booster(X, y, None, None, names, TrainConfig(max_rounds=6, num_threads=1, seed=bag_seed(0, b)),
                        rounds=6, quiet=True) for b in range(3)]
    raw = np.mean([b.predict(X, raw_score=True) for b in bags], axis=0)
    assert not np.allclose(bags[0].predict(X, raw_score=True), bags[1].predict(X, raw_score=True))
    merged = average_boosters(bags)
    assert merged.num_trees() == 18 and merged.feature_name() == names
    np.testing.assert_allclose(merged.predict(X, raw_score=True), raw, rtol=0, atol=1e-9)
    # fit_booster with bags=3 is that same forest; train_model keeps bags x rounds trees
    via_config = fit_booster(X, y, None, None, names, cfg, rounds=6, quiet=True)
    np.testing.assert_allclose(via_config.predict(X, raw_score=True), raw, rtol=0, atol=1e-9)
    res = train_model(table, ExtractConfig(), TrainConfig(max_rounds=5, num_threads=1, bags=2, threshold_folds=0))
    assert res.booster.num_trees() % 2 == 0



def test_threshold_runs_keep_the_median_run_and_the_same_final_model(table):
    """threshold_runs=3: three out-of-fold runs (seed, seed + 1, seed + 2), the median threshold;
    the first run is the one-run threshold and the final model does not change."""
    one = train_model(table, ExtractConfig(), FAST)
    three = train_model(table, ExtractConfig(), replace(FAST, threshold_runs=3))
    runs = three.metrics["threshold_runs"]
    assert len(runs) == 3 and runs[0] == one.threshold
    assert three.threshold == sorted(runs)[1]
    assert three.booster.model_to_string() == one.booster.model_to_string()
    assert "median of 3 runs" in three.metrics["threshold_basis"]
    assert "threshold_runs" not in one.metrics
    with pytest.raises(BadConfigError):
        TrainConfig(threshold_runs=0)

def test_train_model_refuses_one_class(table):
    import pyarrow.compute as pc
    only_other = table.filter(pc.equal(table.column("label"), "other"))
    with pytest.raises(BadDatasetError, match="both p2p and other"):
        train_model(only_other, ExtractConfig(), FAST)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "p2pdetect", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_train_cli_writes_a_loadable_bundle(flow_table_path, tmp_path):
    from p2pdetect.models import load_bundle

    out = tmp_path / "model"
    r = _cli("train", str(flow_table_path), "-o", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "split: train:" in r.stderr and "threshold" in r.stderr
    b = load_bundle(out)
    meta = b.metadata
    assert meta["training"]["label_counts"]["p2p"] > 0
    assert meta["training"]["split"]["valid"]["captures"] >= 1
    assert meta["target_fpr"] == 0.003 == TrainConfig().target_fpr
    assert meta["training"]["train_config"]["port_number_gain"] == 0.3 == TrainConfig().port_number_gain
    # a flow table keeps the settings it was extracted with (this one: no connections in progress)
    assert meta["extract_config"]["peers_in_progress"] is False


def test_train_counts_connections_in_progress_as_the_shipped_model_unless_told_or_given_a_table(
        flow_table_path, tmp_path):
    from p2pdetect.cmd_train import peers_in_progress
    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.features.table import flow_table_config, read_flow_table, write_flow_table

    captures = ["a.pcap", str(tmp_path)]
    assert peers_in_progress(None, captures, 32) is True          # train extracts: the shipped recipe
    assert peers_in_progress(None, captures, 0) is False          # no snapshot to count them from
    assert peers_in_progress(False, captures, 32) is False        # --no-peers-in-progress
    assert peers_in_progress(True, [str(flow_table_path)], 32) is True
    assert flow_table_config(flow_table_path).peers_in_progress is False
    assert peers_in_progress(None, [str(flow_table_path), "a.pcap"], 32) is False   # as extracted
    table, _ = read_flow_table(flow_table_path)
    on = tmp_path / "on.parquet"
    write_flow_table(table, on, ExtractConfig(snapshot_packets=32, peers_in_progress=True))
    assert peers_in_progress(None, [str(on)], 32) is True
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert flow_table_config(junk) is None and peers_in_progress(None, [str(junk)], 32) is True


@pytest.mark.parametrize("args,needle", [
    (["train", "/nonexistent/flows.parquet", "-o", "{out}"], "no such file"),
    (["train", "{bad_json}", "-o", "{out}"], "manifest"),
    (["train", "{txt}", "-o", "{out}"], "not a flow table"),
    (["train", "{flows}", "-o", "/nonexistent-dir/model"], "does not exist"),
    (["train", "{flows}", "-o", "{out}", "--target-fpr", "2"], "--target-fpr must be"),
    (["train", "{flows}", "-o", "{out}", "--port-number-gain", "0"], "--port-number-gain must be"),
    (["train", "{pcap}", "-o", "{out}"], "labels"),
])
def test_train_cli_bad_inputs_exit_2_one_line(args, needle, tmp_path, flow_table_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "cap.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    subs = {"out": str(tmp_path / "model"), "bad_json": str(tmp_path / "bad.json"),
            "txt": str(tmp_path / "notes.txt"), "flows": str(flow_table_path), "pcap": str(tmp_path / "cap.pcap")}
    r = _cli(*[a.format(**subs) for a in args])
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("p2pdetect: error:") and needle in lines[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.glob(".model*"))


REPO = Path(__file__).resolve().parent.parent
NDPI = REPO.parent / "shared" / "captures" / "ndpi"
SAMPLES = REPO / "data" / "samples"


@pytest.mark.skipif(not (NDPI / "bittorrent_utp.pcap").is_file(), reason=f"{NDPI} is absent (real nDPI captures)")
def test_dpi_labelled_real_captures(tmp_path):
    from p2pdetect.training.datasets import load_dataset

    ds = load_dataset([NDPI / "bittorrent_utp.pcap", NDPI / "dns.pcap"], labels_from_dpi=True, use_cache=False,
                      n_jobs=1)
    counts = ds.label_counts()
    assert counts["p2p"] >= 1 and counts["other"] >= 1
    assert all(info["sha256"] and info["labels"] == "dpi" for info in ds.captures.values())
    with pytest.raises(BadDatasetError, match="no such file"):
        load_dataset([NDPI / "nope.pcap"], labels_from_dpi=True)


@pytest.mark.skipif(not list(SAMPLES.glob("*.labels.csv")), reason="no labelled sample captures in data/samples")
def test_manifest_and_sidecar_labels(tmp_path):
    import json

    from p2pdetect.training.datasets import load_dataset

    pcap = sorted(SAMPLES.glob("*.pcap"))[0]
    labels = pcap.with_name(pcap.name.rsplit(".", 1)[0] + ".labels.csv")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"captures": [{"pcap": str(pcap), "labels": str(labels)}]}))
    a = load_dataset([manifest], use_cache=False, n_jobs=1)
    b = load_dataset([pcap], use_cache=False, n_jobs=1)
    assert a.table.num_rows == b.table.num_rows > 0
    assert set(a.table.column("label").to_pylist()) <= {"p2p", "other"}


@pytest.mark.skipif(not (NDPI / "dns.pcap").is_file(), reason=f"{NDPI} is absent (real nDPI captures)")
def test_flow_cache_is_keyed_by_content_and_config(tmp_path, monkeypatch):
    import shutil

    from p2pdetect.training import cache
    from p2pdetect.training.datasets import extract_cached

    monkeypatch.setenv("P2PDETECT_CACHE", str(tmp_path / "cache"))
    a = tmp_path / "a.pcap"
    shutil.copyfile(NDPI / "dns.pcap", a)
    first, shas, _ = extract_cached([a], ExtractConfig(), n_jobs=1)
    assert len(list((tmp_path / "cache").rglob("*.parquet"))) == 1
    b = tmp_path / "b.pcap"  # same bytes, other name: a cache hit, named after b
    shutil.copyfile(a, b)
    hit = cache.get(shas[a], ExtractConfig(), str(b))
    assert hit is not None and set(hit.column("capture").to_pylist()) == {str(b)}
    assert hit.schema.equals(first[a].schema)
    for name in hit.column_names[1:]:
        x, y = hit.column(name).to_numpy(zero_copy_only=False), first[a].column(name).to_numpy(zero_copy_only=False)
        assert (x == y).all() or np.allclose(x.astype(float), y.astype(float), equal_nan=True), name
    assert cache.get(shas[a], ExtractConfig(splt_n=8), str(b)) is None


def test_pick_threshold_meets_the_target_in_every_stratum():
    from p2pdetect.training.train import pick_threshold

    rng = np.random.default_rng(0)
    easy = rng.random(1000) * 0.2              # generated negatives: low scores
    hard = rng.random(100) * 0.9               # real negatives: spread out
    scores = np.r_[easy, hard, np.full(50, 0.95)]
    y = np.r_[np.zeros(1100), np.ones(50)]
    strata = np.array(["gen"] * 1000 + ["real"] * 100 + ["gen"] * 50)
    pooled, _ = pick_threshold(scores, y, None, 0.01)
    t, per = pick_threshold(scores, y, strata, 0.01)
    assert set(per) == {"gen", "real"} and t == max(per.values()) >= pooled
    assert rates_at(scores[strata == "real"], y[strata == "real"], t)[1] <= 0.01
    assert rates_at(scores[strata == "real"], y[strata == "real"], pooled)[1] > 0.01


def test_the_threshold_counts_the_false_positives_host_evidence_adds():
    """A negative the evidence raises above the threshold is a false positive of the scorer too."""
    from p2pdetect.training.train import evidence_threshold, pick_threshold

    rng = np.random.default_rng(1)
    scores = np.r_[rng.random(1000) * 0.8, np.full(100, 0.97)]
    y = np.r_[np.zeros(1000), np.ones(100)]
    # below 0.9, flagged P2P hosts raise 5 % of the negatives (their other flows) to 0.95
    victims = rng.choice(1000, 50, replace=False)

    def raise_scores(t: float) -> np.ndarray:
        out = scores.copy()
        if t < 0.9:
            out[victims] = 0.95
        return out

    start, _ = pick_threshold(scores, y, None, 0.01)
    assert start < 0.9 and rates_at(raise_scores(start), y, start)[1] > 0.01
    t, _, raised = evidence_threshold(raise_scores, start, y, None, 0.01)
    assert t > start and rates_at(raised, y, t)[1] <= 0.01 and rates_at(raised, y, t)[0] == 1.0


def test_the_threshold_goes_below_the_model_only_one_when_corroboration_removes_false_positives():
    """Negatives the evidence caps (uncorroborated) do not count; the lowest threshold that meets
    the target on the emitted scores is found, not the model-only one."""
    from p2pdetect.training.train import evidence_threshold, pick_threshold

    rng = np.random.default_rng(2)
    scores = np.r_[rng.random(1000) * 0.6, rng.uniform(0.7, 0.9, 50), rng.uniform(0.75, 1.0, 200)]
    y = np.r_[np.zeros(1050), np.ones(200)]

    def raise_scores(t: float) -> np.ndarray:   # the 50 high negatives are lone flows: capped
        out = scores.copy()
        out[1000:1050] = np.minimum(out[1000:1050], np.nextafter(t, 0))
        return out

    start, _ = pick_threshold(scores, y, None, 0.01)
    assert start > 0.85
    t, _, emitted = evidence_threshold(raise_scores, start, y, None, 0.01)
    recall, fpr = rates_at(emitted, y, t)
    assert 0.55 < t < 0.6 and recall == 1.0 and 0.005 < fpr <= 0.01
    # nothing goes below the floor
    assert evidence_threshold(raise_scores, start, y, None, 0.01, floor=0.8)[0] == pytest.approx(0.8, abs=1e-4)
    # without corroboration nothing is capped: no replay below the model-only threshold
    asked = []
    t, _, _ = evidence_threshold(lambda th: asked.append(th) or scores, start, y, None, 0.01, corroborated=False)
    assert t == start and min(asked) == start


def test_make_model_prefers_the_manifest_then_corpus_runs_then_samples(tmp_path):
    from p2pdetect.errors import P2PDetectError
    from p2pdetect.training.make_model import labelled_sources

    corpus, samples = tmp_path / "corpus", tmp_path / "samples"
    corpus.mkdir(), samples.mkdir()
    with pytest.raises(P2PDetectError, match="no labelled P2P captures"):
        labelled_sources(corpus / "manifest.json", samples)
    (samples / "a.pcap").write_bytes(b"x"), (samples / "a.labels.csv").write_text("x")
    (samples / "b.pcap").write_bytes(b"x")  # no labels: not used
    assert [Path(p).name for p in labelled_sources(corpus / "manifest.json", samples)] == ["a.pcap"]
    run = corpus / "web-s1"
    run.mkdir()
    (run / "web.pcap").write_bytes(b"x"), (run / "web.labels.csv").write_text("x")
    assert [Path(p).name for p in labelled_sources(corpus / "manifest.json", samples)] == ["web.pcap"]
    (corpus / "manifest.json").write_text("{}")
    assert [Path(p).name for p in labelled_sources(corpus / "manifest.json", samples)] == ["manifest.json"]


def test_stratum_weights_even_out_the_label_sources_ordinary_flows():
    from p2pdetect.training.train import stratum_weights

    y = np.array([0] * 90 + [0] * 10 + [1] * 5)
    strata = np.array(["labels file"] * 90 + ["nDPI"] * 10 + ["labels file"] * 5)
    np.testing.assert_array_equal(stratum_weights(y, strata, 0.0), np.ones(105))
    np.testing.assert_array_equal(stratum_weights(y, None, 1.0), np.ones(105))
    w = stratum_weights(y, strata, 1.0)
    assert w[:90].sum() == pytest.approx(w[90:100].sum())   # each source's negatives weigh the same
    assert w[:100].sum() == pytest.approx(100)                # in all, as much as before
    assert (w[100:] == 1).all()                                # P2P flows untouched
    half = stratum_weights(y, strata, 0.5)
    assert w[90] > half[90] > 1 > half[0] > w[0]
    with pytest.raises(BadConfigError):
        TrainConfig(stratum_weight_power=1.5)


def test_unlabelled_flows_of_the_captures_feed_the_evidence_the_threshold_is_chosen_with():
    """The scorer sees every flow: an unlabelled flow that corroborates a host makes that host's
    ordinary flow a false positive in the threshold's replay too."""
    from p2pdetect.training.train import _evidence_raiser

    def table(rows):
        sip, sport, dip, dport, idx = zip(*rows)
        n = len(rows)
        return pa.table({"capture": ["c"] * n, "flow_index": list(idx), "stage": ["final"] * n,
                         "src_ip": list(sip), "src_port": list(sport), "dst_ip": list(dip), "dst_port": list(dport),
                         "protocol": [17] * n, "bidirectional_first_seen_ms": [i * 1000 for i in idx],
                         "bidirectional_last_seen_ms": [i * 1000 + 10 for i in idx], "src2dst_bytes": [100] * n,
                         "dst2src_bytes": [100] * n, "bidirectional_packets": [4] * n})

    labelled = table([("10.0.0.1", 40000, "10.0.0.9", 50000, 2)])      # an ordinary flow the model calls P2P
    context = table([("10.0.0.1", 40001, "10.0.0.8", 50001, 1)])       # an unlabelled one before it, called P2P
    keep = np.ones(1, dtype=bool)
    alone = _evidence_raiser(labelled, np.arange(1), np.array([0.9]), keep, 2, context, np.zeros(0, int), np.zeros(0))
    seen = _evidence_raiser(labelled, np.arange(1), np.array([0.9]), keep, 2, context, np.arange(1), np.array([0.95]))
    assert alone(0.8)[0] < 0.8 <= seen(0.8)[0] == 0.9


def test_without_unlabelled_splits_the_rows_and_recounts_the_captures():
    from p2pdetect.training.datasets import Dataset

    t = pa.table({"capture": ["a", "a", "a", "b"], "label": ["p2p", "", "other", None]})
    ds = Dataset(table=t, config=ExtractConfig(), captures={"a": {}, "b": {}}, unlabelled=2)
    labelled, context = ds.without_unlabelled()
    assert labelled.table.column("label").to_pylist() == ["p2p", "other"] and context.num_rows == 2
    assert labelled.captures == {"a": {"flows": 2, "p2p": 1, "other": 1}, "b": {"flows": 0, "p2p": 0, "other": 0}}
    assert ds.captures == {"a": {}, "b": {}}   # the original is left alone

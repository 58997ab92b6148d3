"""Evaluation: metrics against hand-computed cases, the report's content, the evaluate command."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.schema import feature_columns
from p2pdetect.features.table import write_flow_table
from p2pdetect.training import metrics as M
from p2pdetect.training.datasets import Dataset
from p2pdetect.training.early import masked_columns
from p2pdetect.training.evaluate import evaluate
from p2pdetect.training.report import SECTIONS, write_report
from p2pdetect.training.synthetic import synthetic_table

# ten flows, two captures: (label, score, bytes, capture, app)
HAND = [
    (1, 0.90, 1000, "a.pcap", "bt"), (1, 0.80, 3000, "a.pcap", "bt"), (1, 0.30, 1000, "b.pcap", "bt"),
    (1, 0.95, 5000, "b.pcap", "bt"), (0, 0.70, 100, "a.pcap", "web"), (0, 0.20, 100, "a.pcap", "web"),
    (0, 0.10, 100, "b.pcap", "web"), (0, 0.05, 100, "b.pcap", "dns"), (0, 0.40, 100, "b.pcap", "dns"),
    (0, 0.01, 100, "b.pcap", "dns"),
]
THRESHOLD = 0.5
# at 0.5: tp = 3 (0.9, 0.8, 0.95), fn = 1 (0.3), fp = 1 (0.7), tn = 5


def test_rates_hand_case():
    y = np.array([r[0] for r in HAND])
    s = np.array([r[1] for r in HAND])
    w = np.array([r[2] for r in HAND], dtype=float)
    r = M.rates(y, s >= THRESHOLD)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (3, 1, 1, 5)
    assert r["precision"] == pytest.approx(0.75) and r["recall"] == pytest.approx(0.75)
    assert r["f1"] == pytest.approx(0.75) and r["fpr"] == pytest.approx(1 / 6)
    b = M.rates(y, s >= THRESHOLD, w)
    assert b["recall"] == pytest.approx(9000 / 10000)
    assert b["fpr"] == pytest.approx(100 / 600)
    assert M.rates(np.array([0, 0]), np.array([False, False]))["recall"] is None


def test_curves_and_calibration_hand_case():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    c = M.curves(y, s)
    assert c["roc_auc"] == pytest.approx(0.75)
    cal = M.calibration(y, s, bins=2)
    assert cal["flows"] == [3, 1] and cal["fraction_p2p"] == pytest.approx([1 / 3, 1.0])
    assert M.curves(np.array([1, 1]), np.array([0.2, 0.3]))["roc_auc"] is None


def test_by_group_hand_case():
    groups = np.array(["a", "a", "b", "b", "b"])
    y = np.array([1, 0, 1, 1, 0])
    hit = np.array([True, True, False, True, False])
    rows = {r["name"]: r for r in M.by_group(groups, y, hit)}
    assert rows["a"]["recall"] == 1.0 and rows["a"]["fpr"] == 1.0 and rows["a"]["false_positives"] == 1
    assert rows["b"]["recall"] == 0.5 and rows["b"]["fpr"] == 0.0 and rows["b"]["missed"] == 1


class _StubBooster:
    def __init__(self, names):
        self.names = names

    def num_trees(self):
        return 1

    def feature_importance(self, importance_type="gain"):
        return np.arange(len(self.names), dtype=float)

    def predict(self, X, pred_contrib=False, num_threads=1):
        return np.zeros((len(X), len(self.names) + 1))


class _StubBundle:
    """Scores come from the test's own column, so every metric can be computed by hand."""

    def __init__(self, names):
        self.bundle_id, self.path, self.threshold, self.target_fpr = "stub", Path("."), THRESHOLD, 0.005
        self.feature_names, self.port_features, self.num_threads = names, True, 1
        self.port_number_features, self.port_number_gain = True, 0.5
        self.timing_features = self.sequence_features = False
        self.extract_config = ExtractConfig()
        self.evidence = {"corroborate_peers": 1}   # every flow on its own score: metrics by hand
        self.booster = _StubBooster(names)
        self.metadata = {"training": {"captures": [{"name": "a.pcap", "sha256": "aa" * 32}]}}

    def matrix(self, cols):
        return np.zeros((len(cols["hand_score"] if isinstance(cols, dict) else cols.column("hand_score")), 3))

    def predict_proba(self, cols):
        return np.asarray(cols["hand_score"] if isinstance(cols, dict) else cols.column("hand_score").to_numpy())


def _hand_dataset() -> Dataset:
    cols = {
        "capture": [r[3] for r in HAND], "label": ["p2p" if r[0] else "other" for r in HAND],
        "app": [r[4] for r in HAND], "hand_score": [r[1] for r in HAND],
        "bidirectional_bytes": [r[2] for r in HAND], "application_name": ["Unknown"] * 4 + ["TLS"] * 6,
        "protocol": [6, 6, 6, 17] + [6] * 6,
        # ten one-flow conversations between distinct hosts: the heuristic baseline flags none
        "src_ip": [f"10.0.0.{i}" for i in range(10)], "dst_ip": [f"10.1.0.{i}" for i in range(10)],
        "src_port": [40000 + i for i in range(10)], "dst_port": [443] * 10, "bidirectional_packets": [10] * 10,
        "flow_index": list(range(10)), "bidirectional_first_seen_ms": [1000 * i for i in range(10)],
        "bidirectional_last_seen_ms": [1000 * i + 500 for i in range(10)], "src2dst_bytes": [r[2] // 2 for r in HAND],
        "dst2src_bytes": [r[2] - r[2] // 2 for r in HAND],
    }
    caps = {"a.pcap": {"sha256": "aa" * 32}, "b.pcap": {"sha256": "bb" * 32}}
    return Dataset(table=pa.table(cols), config=ExtractConfig(), captures=caps)


def test_evaluate_report_metrics_match_the_hand_case(tmp_path):
    m = evaluate(_StubBundle(["bytes_ratio", "is_udp", "splt_ps_0"]), _hand_dataset(), early=False)
    o = m["overall"]
    assert (o["flow"]["tp"], o["flow"]["fp"], o["flow"]["fn"], o["flow"]["tn"]) == (3, 1, 1, 5)
    assert o["flow"]["recall"] == pytest.approx(0.75) and o["flow"]["fpr"] == pytest.approx(1 / 6)
    assert o["byte"]["recall"] == pytest.approx(0.9)
    assert o["p2p_ndpi_unknown"] == {"flows": 4, "recall": pytest.approx(0.75),
                                     "tcp": {"flows": 3, "recall": pytest.approx(2 / 3)}}
    assert {r["name"] for r in m["p2p_by_ndpi_app"]} == {"Unknown over TCP", "Unknown over UDP"}
    # a.pcap's SHA-256 is in the (stub) training fingerprint: flagged, and b.pcap reported alone
    assert m["data"]["seen_in_training"] == {"captures": ["a.pcap"], "flows": 4}
    u = m["unseen_only"]["flow"]
    assert (u["tp"], u["fp"], u["fn"], u["tn"]) == (1, 0, 1, 4)
    caps = {r["name"]: r for r in m["per_capture"]}
    assert caps["a.pcap"]["seen_in_training"] and not caps["b.pcap"]["seen_in_training"]
    assert caps["a.pcap"]["recall"] == 1.0 and caps["a.pcap"]["fpr"] == 0.5
    apps = {r["name"]: r for r in m["per_app"]}
    assert apps["bt"]["recall"] == 0.75 and apps["web"]["fpr"] == pytest.approx(1 / 3) and apps["dns"]["fpr"] == 0
    out = write_report(tmp_path / "report", m)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["overall"]["flow"]["precision"] == pytest.approx(0.75)
    page = (out / "report.html").read_text()
    assert "75.00%" in page and "a.pcap" in page


def test_early_masking_pads_and_recomputes_derived():
    t = synthetic_table(n_captures=1, flows_per_capture=50, seed=4)
    names = feature_columns(32)
    cols = masked_columns(t, names, 32, 3)
    assert (cols["splt_ps_3"] == -1).all() and (cols["splt_dir_31"] == -1).all()
    assert (cols["splt_ps_0"] == t.column("splt_ps_0").to_numpy()).all()
    assert (cols["splt_packets"] <= 3).all()
    full = masked_columns(t, names, 32, 32)
    for c in names:
        np.testing.assert_array_equal(np.asarray(full[c], dtype=float), t.column(c).to_numpy().astype(float))


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """A report from a real bundle trained on synthetic flows, through the CLI."""
    d = tmp_path_factory.mktemp("eval")
    flows = d / "flows.parquet"
    write_flow_table(synthetic_table(n_captures=6, flows_per_capture=100, seed=5), flows, ExtractConfig())
    r = _cli("train", str(flows), "-o", str(d / "model"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    r = _cli("evaluate", "--model", str(d / "model"), str(flows), "-o", str(d / "report"), "--ablation",
             "--folds", "2", "--threads", "1", "--group-by", "implementation")
    assert r.returncode == 0, r.stderr
    return d / "report"


def test_report_has_every_section_and_embedded_plots(real_report):
    page = (real_report / "report.html").read_text()
    for s in SECTIONS:
        assert f"id='{s}'" in page, s
    assert page.count('<img src="data:image/png;base64,') >= 7
    assert "http://" not in page and "https://" not in page  # opens offline
    m = json.loads((real_report / "metrics.json").read_text())
    assert m["ablation"]["without_ports"]["folds"] == 2
    assert {"with_ports", "without_ports", "recall_drop_points"} <= set(m["ablation"])
    assert [p["k"] for p in m["early_detection"]["points"]][-1] == 32
    assert m["data"]["seen_in_training"]["captures"]  # evaluated on its own training data: flagged
    assert "were in this model's training data" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(real_report, tmp_path):
    png = tmp_path / "out.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
                        "--window-size=1200,3000", (real_report / "report.html").resolve().as_uri()],
                       capture_output=True, timeout=120, cwd=tmp_path)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 3000)
    assert len(data) > 50_000  # text, tables and plots, not a blank page


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "p2pdetect", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("args,needle", [
    (["evaluate", "--model", "{model}", "/nonexistent.parquet", "-o", "{out}"], "no such file"),
    (["evaluate", "--model", "{tmp}/nomodel", "{flows}", "-o", "{out}"], "no such model bundle"),
    (["evaluate", "--model", "{model}", "{flows}", "-o", "/nonexistent-dir/report"], "does not exist"),
    (["evaluate", "--model", "{model}", "{junk}", "-o", "{out}"], "not a readable Parquet"),
    (["evaluate", "--model", "{model}", "{flows}", "-o", "{out}", "--ablation", "--folds", "1"], "--folds"),
])
def test_evaluate_cli_bad_inputs_exit_2_one_line(args, needle, tmp_path, real_report):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    subs = {"model": str(real_report.parent / "model"), "flows": str(real_report.parent / "flows.parquet"),
            "out": str(tmp_path / "report"), "tmp": str(tmp_path), "junk": str(junk)}
    r = _cli(*[a.format(**subs) for a in args])
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("p2pdetect: error:") and needle in lines[-1], lines[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "report").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_evaluate_refuses_a_dataset_without_labelled_flows():
    from p2pdetect.errors import BadDatasetError

    empty = _hand_dataset()
    empty.table = empty.table.slice(0, 0)
    with pytest.raises(BadDatasetError, match="no labelled flows"):
        evaluate(_StubBundle(["bytes_ratio"]), empty, early=False)


# ---- leave-one-group-out (--group-by) and the heuristic baseline beside it ----

def _two_implementations() -> Dataset:
    """Synthetic captures: two hold libtorrent, two biglybt, three hold no P2P at all."""
    import pyarrow.compute as pc

    from p2pdetect.training.datasets import Dataset as DS

    def renamed(t, prefix, app):
        caps = t.column("capture").to_numpy(zero_copy_only=False).astype(str)
        t = t.set_column(t.column_names.index("capture"), "capture",
                         pa.array(np.char.replace(caps, "synthetic-", prefix).tolist()))
        if app:
            lab = t.column("label").to_numpy(zero_copy_only=False)
            apps = np.where(lab == "p2p", app, t.column("app").to_numpy(zero_copy_only=False))
            t = t.set_column(t.column_names.index("app"), "app", pa.array(apps.tolist(), pa.string()))
        return t

    lt = renamed(synthetic_table(n_captures=2, flows_per_capture=120, seed=11), "lt-", "libtorrent-mse")
    bg = renamed(synthetic_table(n_captures=2, flows_per_capture=120, seed=12), "bg-", "biglybt-mse")
    od = renamed(synthetic_table(n_captures=3, flows_per_capture=120, p2p_share=0.0, seed=13), "od-", None)
    table = pa.concat_tables([lt, bg, od])
    names = dict.fromkeys(table.column("capture").to_numpy(zero_copy_only=False).tolist())
    assert pc.sum(pc.equal(od.column("label"), "p2p")).as_py() in (0, None)
    return DS(table=table, config=ExtractConfig(), captures={n: {"sha256": None, "labels": "table"} for n in names})


def test_group_units_hold_out_every_capture_of_an_implementation(tmp_path):
    from p2pdetect.training.groups import ORDINARY, REAL, capture_meta, group_units, implementation_of

    assert implementation_of("libtorrent-mse") == "libtorrent" and implementation_of("bittorrent-utp") == "libtorrent"
    assert implementation_of("biglybt-mse") == "biglybt"
    ds = _two_implementations()
    ds.captures["od-02.pcap"]["labels"] = "dpi"          # a real capture: its own group
    meta = capture_meta(ds)
    assert meta["lt-00.pcap"]["implementations"] == ["libtorrent"] and meta["od-00.pcap"]["implementations"] == []
    assert meta["lt-00.pcap"]["network"] == "loopback" and meta["od-02.pcap"]["real"]
    units = group_units(meta, "implementation", n_splits=2)
    by = {}
    for u in units:
        by.setdefault(u["group"], []).append(u)
    assert set(by) == {"libtorrent", "biglybt", ORDINARY, REAL}
    assert by["libtorrent"][0]["held_out"] == ["lt-00.pcap", "lt-01.pcap"]
    assert sorted(c for u in by[ORDINARY] for c in u["test"]) == ["od-00.pcap", "od-01.pcap"]
    assert len(by[ORDINARY]) == 2 and by[REAL][0]["test"] == ["od-02.pcap"]
    # a manifest entry (or the capture's JSON summary) names scenario, implementations and network
    (tmp_path / "x.pcap").write_bytes(b"")
    (tmp_path / "m.json").write_text(json.dumps({"captures": [{"pcap": "x.pcap", "scenario": "p2p-wan",
                                                               "implementations": ["biglybt", "libtorrent"],
                                                               "network": "wan-mid"}]}))
    one = Dataset(table=ds.table.slice(0, 0), config=ExtractConfig(), captures={str(tmp_path / "x.pcap"): {}})
    m = capture_meta(one, [tmp_path / "m.json"])[str(tmp_path / "x.pcap")]
    assert m == {"scenario": "p2p-wan", "implementations": ["biglybt", "libtorrent"], "network": "wan-mid",
                 "real": False, "source": str(tmp_path / "x.pcap")}
    with pytest.raises(Exception, match="--group-by must be one of"):
        group_units(meta, "colour")


def test_a_vantage_view_leaves_with_its_source(tmp_path):
    """A view (one peer's packets of a capture) is held out, and split, with the capture it comes from."""
    from p2pdetect.training.groups import capture_meta, group_units, source_captures

    for d, extra in (("run", {}), ("run-vantage-10.0.0.1", {"vantage_of": "run/x.pcap"})):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.pcap").write_bytes(b"")
        net = "vantage" if extra else "wan-mid"
        (tmp_path / d / "x.json").write_text(json.dumps({"scenario": "p2p-x", "implementations": ["biglybt"],
                                                          "network": net, **extra}))
    src, view = str(tmp_path / "run" / "x.pcap"), str(tmp_path / "run-vantage-10.0.0.1" / "x.pcap")
    ds = Dataset(table=pa.table({"capture": pa.array([], pa.string()), "label": pa.array([], pa.string()),
                                 "app": pa.array([], pa.string())}),
                 config=ExtractConfig(), captures={src: {}, view: {}})
    meta = capture_meta(ds)
    assert meta[view]["source"] == src and meta[src]["source"] == src
    by = {u["group"]: u for u in group_units(meta, "network")}
    assert sorted(by["wan-mid"]["held_out"]) == sorted([src, view]) and by["wan-mid"]["test"] == [src]
    assert by["vantage"]["held_out"] == [view]
    assert source_captures(np.array([view, src, view])).tolist() == [src, src, src]


def test_leave_one_implementation_out_beside_the_baseline():
    from p2pdetect.training.config import TrainConfig
    from p2pdetect.training.group_eval import group_out

    ds = _two_implementations()
    sec = group_out(ds, "implementation", TrainConfig(num_threads=1, threshold_folds=0), n_splits=2)
    groups = {g["group"]: g for g in sec["groups"]}
    assert set(groups) == {"libtorrent", "biglybt", "ordinary (no P2P)"}
    y = ds.y
    caps = ds.groups
    lt = groups["libtorrent"]
    assert lt["p2p_flows"] == int(y[np.char.startswith(caps, "lt-")].sum()) and lt["captures"] == 2
    assert lt["model"] is not None and not lt["skipped"] and len(lt["thresholds"]) == 1
    for who in ("model", "baseline"):
        assert 0 <= lt[who]["flow"]["recall"] <= 1 and lt[who]["host"]["p2p_hosts"] > 0
    assert [p["fpr_target"] for p in lt["model"]["recall_at_fpr"]] == [0.001, 0.005, 0.01]
    od = groups["ordinary (no P2P)"]
    assert od["p2p_flows"] == 0 and od["other_flows"] == 360 and od["model"]["flow"]["fpr"] is not None
    assert od["captures"] == 3 and len(od["thresholds"]) == 2         # two folds, each its own model
    assert sec["pooled"]["flows"] == sum(g["flows"] for g in sec["groups"])
    for f in sec["flows_missed"] + sec["flows_false_positive"]:
        assert f["top_features"].count(",") == 2 and "/" in f["flow"]


def test_report_leads_with_out_of_distribution(real_report):
    m = json.loads((real_report / "metrics.json").read_text())
    o = m["out_of_distribution"]
    # every synthetic capture holds the one implementation: no model can be trained without it
    (g,) = o["groups"]
    assert g["group"] == "libtorrent" and g["model"] is None and "no model can be trained" in g["skipped"][0]
    assert g["baseline"]["flow"]["recall"] is not None
    assert m["baseline"]["flow"]["tp"] + m["baseline"]["flow"]["fn"] == m["data"]["p2p"]
    assert m["overall"]["host"]["p2p_hosts"] > 0 and len(m["overall"]["recall_at_fpr"]) == 3
    page = (real_report / "report.html").read_text()
    assert page.index("id='out-of-distribution'") < page.index("id='summary'")
    assert "no model can be trained without this group" in page


def test_leave_one_out_models_are_trained_with_the_evaluated_bundles_settings(monkeypatch):
    import p2pdetect.training.group_eval as group_eval

    seen = {}

    def fake_group_out(dataset, group_by, config, inputs=(), n_splits=5):
        seen["config"] = config
        return {"group_by": group_by, "groups": []}

    monkeypatch.setattr(group_eval, "group_out", fake_group_out)
    m = evaluate(_StubBundle(["bytes_ratio", "is_udp", "splt_ps_0"]), _hand_dataset(), early=False,
                 group_by="implementation")
    cfg = seen["config"]
    assert m["out_of_distribution"]["group_by"] == "implementation"
    assert (cfg.port_number_gain, cfg.port_number_features, cfg.target_fpr, cfg.corroborate_peers) == (0.5, True, 0.005, 1)

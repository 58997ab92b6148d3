"""Helpers for the scorer tests that conftest.py does not have: a stand-in model bundle, verdict
parsing, the committed samples' own counts, and crafted or synthetic captures.

Paths, the corpus/root markers and the CLI runner live in conftest.py (ROOT, SAMPLES, needs_ndpi,
needs_root, run_cli). Nothing here needs the shared nDPI corpus: the stand-in is trained on the
labelled flows of the committed samples (data/samples, real clients, labelled by construction).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from conftest import ROOT, SAMPLES
from craft import tcp_flow, write_pcap

#: the committed samples the stand-in learns from; each has <name>.labels.csv beside it
STAND_IN_SAMPLES = ["p2p-tcp-mse", "p2p-utp", "web", "mixed-home"]


def sample(name: str) -> Path:
    """A committed sample capture, e.g. sample("mixed-home")."""
    return SAMPLES / f"{name}.pcap"


def sample_facts(name: str) -> dict:
    """The sample's own record (<name>.json, written when it was made): 'packets' (as captured)
    and 'flows' (as nfstream meters them), so expected counts follow `make samples`."""
    return json.loads((SAMPLES / f"{name}.json").read_text())


def build_stand_in_bundle(path: Path, extract_config=None):
    """Train and save a tiny bundle on the samples' labelled flows (about a second)."""
    import lightgbm as lgb

    from p2pdetect.features import ExtractConfig, feature_columns
    from p2pdetect.features.extract import extract_capture
    from p2pdetect.models import save_bundle
    from p2pdetect.training.labels import label_table

    config = extract_config or ExtractConfig()
    names = feature_columns(config.splt_n)
    X, y = [], []
    for name in STAND_IN_SAMPLES:
        t = label_table(extract_capture(sample(name), config), "auto")  # labels from <name>.labels.csv
        labels = np.array(t.column("label").to_pylist(), dtype=object)
        keep = labels != ""  # (a flow no label row matches is left out)
        X.append(np.column_stack([t.column(n).to_numpy(zero_copy_only=False).astype(np.float32)
                                  for n in names])[keep])
        y.append((labels[keep] == "p2p").astype(int))
    X, y = np.vstack(X), np.concatenate(y)
    assert 0 < y.sum() < len(y), "the samples must hold both classes"
    booster = lgb.train({"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 2, "verbose": -1,
                         "num_threads": 1, "seed": 1},
                        lgb.Dataset(X, y, feature_name=names), num_boost_round=20)
    return save_bundle(path, booster, feature_names=names, extract_config=config, threshold=0.5,
                       target_fpr=None, training={"stand_in": True, "samples": STAND_IN_SAMPLES}, metrics={})


def read_verdicts(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_flow_capture(path: Path, packets: int = 100) -> Path:
    """A capture holding exactly one TCP flow of `packets` packets (handshake, then full-size
    segments both ways between BitTorrent's usual ports, 10 ms apart; no FIN, so it ends
    when the capture does)."""
    assert packets >= 3
    payloads = [1448 if i % 2 else -1448 for i in range(packets - 3)]
    return write_pcap(path, tcp_flow(1_700_000_000.0, "10.0.0.1", 51413, "10.0.0.2", 6881, payloads))


def synthetic_capture(path: Path, packets: int, seed: int = 3) -> Path:
    """A big capture from benchmarks/synth_capture.py (many interleaved TCP flows, 0.5-60 s long)."""
    spec = importlib.util.spec_from_file_location("synth_capture", ROOT / "benchmarks" / "synth_capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_capture(path, packets, seed=seed)



def offline_flows(path, bundle):
    """Batch extraction of a capture with the bundle's settings: one final row per flow
    (a bundle trained on early snapshots records snapshot_packets; scoring compares finals)."""
    from dataclasses import replace

    from p2pdetect.features.extract import extract_capture

    return extract_capture(path, replace(bundle.extract_config, snapshot_packets=0))


def offline_scores(path, bundle):
    """What the scorer's final verdicts must say: batch extraction with the bundle's settings
    (its snapshots are host evidence), the model, then the endpoint and host evidence in meter
    order. Returns (flow table of the final rows, their scores, host records)."""
    import pyarrow as pa

    from p2pdetect.features.extract import extract_capture
    from p2pdetect.models.host_evidence import score_table

    table = extract_capture(path, bundle.extract_config)
    scores, hosts = score_table(bundle, table)
    final = np.flatnonzero(table.column("stage").to_numpy(zero_copy_only=False) == "final")
    return table.take(pa.array(final)), scores[final], next(iter(hosts.values()), [])


_KEY = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol")


def in_table_order(final, table):
    """Final verdicts (records, or a dict of record columns) in the order of the offline flow
    table's rows, matched by flow (5-tuple and first packet time): the scorer writes a held
    verdict (models.HostEvidence hold_s) when it is released, not in meter order."""
    def keys(cols, first):
        return list(zip(*(cols[c] for c in _KEY), cols[first]))
    if isinstance(final, dict):
        got = keys({c: np.asarray(v).tolist() for c, v in final.items()}, "bidirectional_first_seen_ms")
    else:
        got = keys({c: [v[c] for v in final] for c in _KEY + ("first_seen_ms",)}, "first_seen_ms")
    want = keys({c: table.column(c).to_pylist() for c in _KEY + ("bidirectional_first_seen_ms",)},
                "bidirectional_first_seen_ms")
    pos = {k: i for i, k in enumerate(got)}
    assert len(pos) == len(got) == len(want), "final verdicts and offline flows differ in number or repeat"
    return [pos[k] for k in want]


"""The scorer's core, in process: config, micro-batching, the meter process, scoring, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from p2pdetect.features.extract import meter_rows, meter_stream
from p2pdetect.errors import BadConfigError
from p2pdetect.serve import (EARLY, EVIDENCE, FINAL, JsonLinesSink, MeterChunk, ScoreConfig, ScoreMetrics, StreamScorer,
                   VERDICT_KEYS, HOST_KEYS, capture_source, chunks_from_rows, micro_batches, run_scoring,
                   score_stream, verdict_lines)
from serve_support import (build_stand_in_bundle, in_table_order, offline_flows, offline_scores, one_flow_capture, sample,
                           sample_facts)

# Every input is committed or made here; nothing needs the shared nDPI corpus.
# mixed-home: real clients browsing, streaming, resolving names and joining swarms, both classes.
# (It replaces nDPI's 1kxun.pcap, whose many flows longer than 10 s made early_seconds=10 fire:
# mixed-home spans more than 10 s, so that trigger fires here too, for every flow still open in
# the meter 10 s after it began, beside early_packets=32 for its larger flows.)
CAPTURE = sample("mixed-home")
FACTS = sample_facts("mixed-home")  # its own packet and flow counts, as recorded when it was made
FLOWS, PACKETS = FACTS["flows"], FACTS["packets"]  # 124 flows, 6,306 packets today


@pytest.fixture(scope="module")
def one_flow(tmp_path_factory):
    """Exactly one 100-packet TCP flow, crafted (it replaces nDPI's bittorrent_tcp_miss.pcapng, one
    100-packet BitTorrent flow: the samples hold no capture of a single flow)."""
    return one_flow_capture(tmp_path_factory.mktemp("cap") / "one-flow.pcap", packets=100)


@pytest.fixture(scope="module", params=["shipped", "stand-in", "in-progress"])
def bundle(request, tmp_path_factory):
    """The shipped model (models/default), a stand-in trained on the samples' labelled flows, and
    one whose host context counts TCP connections in progress from their evidence snapshot."""
    from p2pdetect.features import ExtractConfig
    from p2pdetect.models import load_bundle

    if request.param == "shipped":
        return load_bundle()
    config = ExtractConfig(snapshot_packets=32, peers_in_progress=True) if request.param == "in-progress" else None
    return build_stand_in_bundle(tmp_path_factory.mktemp("model") / "bundle", config)


def _run(source, bundle, config, tmp_path, metrics=None, *, event_type="flow"):
    """Score a source into a file; the summary and its records of one event_type."""
    out = tmp_path / "v.jsonl"
    summary = run_scoring(source, bundle, JsonLinesSink(out), config, metrics)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return summary, [r for r in records if r["event_type"] == event_type]


# config ------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "'batch_size' parameter of ScoreConfig must be an int in"),
    ({"max_wait_s": -1}, "'max_wait_s' parameter of ScoreConfig must be a number in"),
    ({"early_packets": 1}, "'early_packets' parameter of ScoreConfig must be 0 .off. or an int"),
    ({"early_seconds": "10"}, "'early_seconds' parameter of ScoreConfig must be a number"),
    ({"alerts_only": 1}, "'alerts_only' parameter of ScoreConfig must be a bool. Got 1 instead"),
])
def test_score_config_rejects_bad_values(kw, match):
    with pytest.raises(BadConfigError, match=match):
        ScoreConfig(**kw)


def test_score_config_is_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        ScoreConfig(512)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ScoreConfig().batch_size = 3  # type: ignore[misc]


# batching ----------------------------------------------------------------------------
def _chunk(n, t=0.0):
    return MeterChunk([(i,) for i in range(n)], bytes([FINAL]) * n, t)


def test_micro_batches_split_on_size_and_keep_every_flow():
    batches = list(micro_batches([_chunk(300), _chunk(300), _chunk(50)], batch_size=256, max_wait_s=10))
    assert [len(b) for b in batches] == [256, 256, 138]


def test_micro_batches_flush_when_the_source_is_drained():
    out = []
    def source():
        yield _chunk(3)
        assert not out      # more may come: keep filling
        yield _chunk(4)
        yield None          # nothing queued: score what is there now
        assert out == [7]
        yield _chunk(2)
    for b in micro_batches(source(), batch_size=512, max_wait_s=10):
        out.append(len(b))
    assert out == [7, 2]


def test_micro_batches_flush_on_age_under_a_steady_trickle():
    now = [0.0]
    def source():
        for i in range(5):
            now[0] = i * 0.1
            yield _chunk(1)
    sizes = [len(b) for b in micro_batches(source(), batch_size=512, max_wait_s=0.2, clock=lambda: now[0])]
    assert sizes == [3, 2]


# the scorer core, fed by a list ---------------------------------------------------------
def test_score_stream_from_a_list_equals_batch_extraction(bundle):
    rows, stages = meter_stream(CAPTURE, bundle.extract_config)   # finals and evidence snapshots
    assert set(stages) == ({FINAL, EVIDENCE} if bundle.extract_config.snapshot_packets else {FINAL})
    chunks = list(chunks_from_rows(rows, chunk_flows=50, stages=stages))
    scorer = StreamScorer(bundle, capture=str(CAPTURE))
    scored = list(score_stream(micro_batches(chunks, batch_size=64, max_wait_s=1), scorer))
    scores = np.concatenate([s.scores for s in scored])
    cols = {c: np.concatenate([s.cols[c] for s in scored]) for c in scored[0].cols}
    table, offline = offline_scores(CAPTURE, bundle)[:2]
    assert len(scores) == len(offline) == FLOWS
    order = in_table_order(cols, table)
    np.testing.assert_array_equal(scores[order], offline)
    assert len(scored[-1]) > 0 and order != sorted(order)   # verdicts held to the end of the stream


def test_early_snapshots_do_not_change_final_scores(bundle):
    rows, stages = meter_stream(CAPTURE, bundle.extract_config)
    finals = list(chunks_from_rows(rows, chunk_flows=40, stages=stages))
    early = list(chunks_from_rows(meter_rows(CAPTURE, bundle.extract_config)[:30], chunk_flows=30, stage=EARLY))
    mixed = finals[:2] + early + finals[2:]  # early snapshots interleaved with finals
    scorer = StreamScorer(bundle, capture=str(CAPTURE))
    scored = list(score_stream(micro_batches(mixed, batch_size=100, max_wait_s=1), scorer))
    stages = np.concatenate([s.stages for s in scored])
    scores = np.concatenate([s.scores for s in scored])
    cols = {c: np.concatenate([s.cols[c] for s in scored])[stages == FINAL] for c in scored[0].cols}
    table, offline = offline_scores(CAPTURE, bundle)[:2]
    assert (stages == EARLY).sum() == 30
    np.testing.assert_array_equal(scores[stages == FINAL][in_table_order(cols, table)], offline)


# the meter process --------------------------------------------------------------------
def test_meter_gives_early_then_final_and_final_equals_offline(bundle, tmp_path):
    config = ScoreConfig(early_packets=32, early_seconds=10)
    summary, verdicts = _run(capture_source(CAPTURE, bundle.extract_config, config), bundle, config, tmp_path)
    final = [v for v in verdicts if v.get("stage") == "final"]
    early = [v for v in verdicts if v.get("stage") == "early"]
    assert summary.flows == summary.final_verdicts == len(final) == FLOWS
    assert summary.early_verdicts == len(early) > 0
    assert summary.packets == PACKETS
    offline, scores, _ = offline_scores(CAPTURE, bundle)
    final = [final[i] for i in in_table_order(final, offline)]
    assert [v["score"] for v in final] == np.round(scores, 6).tolist()
    assert any(v["packets"] < 32 for v in early)  # the 10 s trigger fired too, not only the 32-packet one
    # an early verdict is a snapshot: at most 32 packets or about 10 s of flow, before its final one
    for v in early:
        assert v["packets"] <= 32 or v["last_seen_ms"] - v["first_seen_ms"] <= 10_000 + 1000
    keys = {(v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"], v["first_seen_ms"])
            for v in final}
    assert all((v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["protocol"], v["first_seen_ms"])
               in keys for v in early)


def test_early_packet_trigger_fires_at_exactly_n_packets(bundle, one_flow, tmp_path):
    config = ScoreConfig(early_packets=8, early_seconds=0)
    summary, verdicts = _run(capture_source(one_flow, bundle.extract_config, config), bundle, config, tmp_path)
    # (order: early snapshots are scored in groups, so a short flow's final line may come first)
    assert sorted((v.get("stage"), v["packets"]) for v in verdicts) == [("early", 8), ("final", 100)]


def test_no_early_verdicts_when_both_triggers_are_off(bundle, tmp_path):
    config = ScoreConfig(early_packets=0, early_seconds=0)
    summary, verdicts = _run(capture_source(CAPTURE, bundle.extract_config, config), bundle, config, tmp_path)
    assert {v.get("stage") for v in verdicts} == {"final"} and summary.early_verdicts == 0


# verdicts and metrics ------------------------------------------------------------------
def test_verdict_records_are_flat_with_stable_keys(bundle, tmp_path):
    config = ScoreConfig()
    _, verdicts = _run(capture_source(CAPTURE, bundle.extract_config, config), bundle, config, tmp_path)
    assert len(verdicts) >= FLOWS
    for v in verdicts:
        assert list(v) == VERDICT_KEYS
        assert v["model"] == bundle.bundle_id and v["verdict"] in ("p2p", "other")
        assert all(not isinstance(x, (dict, list)) for x in v.values())


def test_alerts_only_keeps_p2p_verdicts(bundle):
    flows = meter_rows(CAPTURE, bundle.extract_config)
    scored = list(score_stream(micro_batches(chunks_from_rows(flows), 512, 1),
                               StreamScorer(bundle, capture="x")))[0]
    scored.verdicts[:3] = "p2p"
    records = [json.loads(x) for x in verdict_lines(scored, "m", alerts_only=True)]
    flows = [r for r in records if r["event_type"] == "flow"]
    assert len(flows) == int((scored.verdicts == "p2p").sum()) >= 3
    assert all(r["verdict"] == "p2p" for r in records)
    assert len(records) == len(flows) + len(scored.hosts)  # host records are alerts too


def test_metrics_count_packets_flows_and_verdicts(bundle, tmp_path):
    registry = CollectorRegistry()
    metrics = ScoreMetrics(registry)
    config = ScoreConfig()
    summary, verdicts = _run(capture_source(CAPTURE, bundle.extract_config, config), bundle, config,
                             tmp_path, metrics)
    get = registry.get_sample_value
    assert get("p2pdetect_packets_total") == PACKETS
    assert get("p2pdetect_flows_total") == FLOWS
    total = sum(get("p2pdetect_verdicts_total", {"verdict": v, "stage": s}) or 0
                for v in ("p2p", "other") for s in ("early", "final"))
    assert total == len(verdicts)  # flow verdicts
    assert get("p2pdetect_verdicts_total", {"verdict": "other", "stage": "final"}) + \
        get("p2pdetect_verdicts_total", {"verdict": "p2p", "stage": "final"}) == FLOWS
    assert get("p2pdetect_scoring_latency_seconds_count") > 0
    assert get("p2pdetect_batch_flows_sum") == len(verdicts)


def test_host_records_batch_equals_stream(bundle, tmp_path):
    """Host records from the scorer equal those of batch extraction + model + evidence."""
    config = ScoreConfig(early_packets=0, early_seconds=0)
    _, hosts = _run(capture_source(CAPTURE, bundle.extract_config, config), bundle, config, tmp_path,
                    event_type="host")
    _, _, offline = offline_scores(CAPTURE, bundle)
    assert [{k: v for k, v in h.items() if k != "ts_ms"} for h in hosts] == offline
    for h in hosts:
        assert list(h) == HOST_KEYS and h["verdict"] == "p2p" and h["endpoints"]

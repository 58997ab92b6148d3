"""The scorer's metrics and live-capture checks that need no traffic: counters fed by the
meter's own reports, the metrics server's address, the filter that keeps the scorer's own
scrapes out of what it scores, and the CAP_NET_RAW check (the capability, not the user id)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from conftest import ROOT, needs_root, run_cli
from p2pdetect.errors import BadConfigError
from p2pdetect.serve import ScoreConfig, ScoreMetrics, capture_source
from p2pdetect.serve.metrics import check_metrics_address, serve_metrics
from p2pdetect.serve.sources import MeterStats, check_bpf, live_filter
from serve_support import build_stand_in_bundle, sample


def _one_line_error(res, fragment: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect: error: "), res.stderr
    assert fragment in lines[0], lines[0]


def test_meter_counters_are_recorded_as_they_come_and_per_meter():
    metrics = ScoreMetrics(CollectorRegistry())
    get = metrics.registry.get_sample_value
    metrics.meter(MeterStats(packets=10, bytes=1400, active=3))
    assert (get("p2pdetect_packets_total"), get("p2pdetect_bytes_total"), get("p2pdetect_active_flows")) \
        == (10, 1400, 3)
    metrics.meter(MeterStats(packets=25, bytes=3000, ignored=2, dropped=1, active=1))
    assert (get("p2pdetect_packets_total"), get("p2pdetect_bytes_total")) == (25, 3000)
    assert (get("p2pdetect_packets_ignored_total"), get("p2pdetect_packets_dropped_total")) == (2, 1)
    assert get("p2pdetect_active_flows") == 1
    metrics.meter(MeterStats(packets=25, bytes=3000))  # a repeated report adds nothing
    assert get("p2pdetect_packets_total") == 25
    metrics.new_meter()  # the next capture's meter counts from 0 again
    metrics.meter(MeterStats(packets=5, bytes=500))
    assert (get("p2pdetect_packets_total"), get("p2pdetect_bytes_total")) == (30, 3500)


def test_capture_run_counts_every_packet_and_byte(tmp_path):
    """End to end on a committed sample: the counters equal the capture's own totals."""
    from p2pdetect.features import ExtractConfig
    from p2pdetect.features.reader import prepare_capture
    from p2pdetect.models import load_bundle
    from p2pdetect.serve import JsonLinesSink, run_scoring

    build_stand_in_bundle(tmp_path / "model", ExtractConfig())
    bundle = load_bundle(tmp_path / "model")
    cap = sample("p2p-utp")
    with prepare_capture(cap) as prepared:
        frames = prepared.ip_packets
    metrics = ScoreMetrics(CollectorRegistry())
    config = ScoreConfig()
    run_scoring(capture_source(cap, bundle.extract_config, config), bundle,
                JsonLinesSink(tmp_path / "v.jsonl"), config, metrics)
    get = metrics.registry.get_sample_value
    assert get("p2pdetect_packets_total") == frames
    # bytes: every metered frame's length on the wire, as tshark reads them
    lengths = subprocess.run(["tshark", "-r", str(cap), "-T", "fields", "-e", "frame.len", "ip or ipv6"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert get("p2pdetect_bytes_total") == sum(map(int, lengths)) > 0
    assert get("p2pdetect_active_flows") == 0  # the meter ended: every flow was handed over


def test_live_filter_leaves_the_metrics_port_out():
    assert live_filter(None) is None and live_filter("udp") == "udp"
    assert live_filter(None, 19100) == "not (tcp port 19100)"
    assert live_filter("udp or icmp", 19100) == "(udp or icmp) and not (tcp port 19100)"
    check_bpf(live_filter("udp or icmp", 19100))  # what the meter is given compiles


def test_metrics_bind_this_host_only_by_default():
    assert check_metrics_address("::1") == "::1"
    with pytest.raises(BadConfigError, match="--metrics-address must be an IP address"):
        check_metrics_address("localhost:9")
    server, thread = serve_metrics(ScoreMetrics(CollectorRegistry()).registry, 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"p2pdetect_bytes_total 0.0" in body
    finally:
        server.shutdown()
    server, thread = serve_metrics(ScoreMetrics(CollectorRegistry()).registry, 0, "::1")  # IPv6 too
    try:
        port = server.server_address[1]
        assert b"p2pdetect_packets_total" in urllib.request.urlopen(f"http://[::1]:{port}/metrics",
                                                                    timeout=5).read()
    finally:
        server.shutdown()


def test_bad_metrics_address_is_one_line_exit_2(tmp_path):
    out = tmp_path / "v.jsonl"
    res = run_cli("score", str(sample("web")), "--metrics-port", "19100", "--metrics-address", "everywhere",
                  "-o", str(out))
    _one_line_error(res, "--metrics-address must be an IP address")
    assert not out.exists()


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_root_without_cap_net_raw_fails_early_in_one_line():
    """Root whose bounding set lacks CAP_NET_RAW (a container without NET_RAW) is refused up
    front, instead of failing later inside the meter with "Unable to activate source."."""
    res = subprocess.run(["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw",
                          sys.executable, "-m", "p2pdetect", "score", "--interface", "lo"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    _one_line_error(res, "needs CAP_NET_RAW, which this root process lacks")

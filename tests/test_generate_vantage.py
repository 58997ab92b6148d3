"""Vantage-point views of a generated capture (data.generator.vantage): one host's packets, labels kept."""

import json
import shutil
from pathlib import Path

import pytest

from p2pdetect.data.generator import labels, vantage

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples"

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")


def test_pick_hosts_prefers_peers_over_trackers():
    rows = labels.read_csv(SAMPLE / "mixed-home.labels.csv")
    hosts = vantage.p2p_hosts(rows)
    assert hosts, "the sample holds P2P peers"
    trackers = {r.src_ip for r in rows if "tracker" in r.app} | {r.dst_ip for r in rows if "tracker" in r.app}
    peers = {ip for r in rows if r.label == "p2p" and "tracker" not in r.app for ip in (r.src_ip, r.dst_ip)}
    assert set(hosts) == peers and not (set(hosts) & (trackers - peers))
    assert len(vantage.pick_hosts(rows, 2)) == 2 and vantage.pick_hosts(rows, 1) == hosts[:1]


def test_view_keeps_only_the_host_and_every_flow_labelled(tmp_path):
    run = tmp_path / "mixed-home-s1"
    run.mkdir()
    for f in ("mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"):
        shutil.copy(SAMPLE / f, run / f)
    rows = labels.read_csv(run / "mixed-home.labels.csv")
    ip = vantage.pick_hosts(rows, 1)[0]
    out = tmp_path / "view"
    s = vantage.vantage_view(run, ip, out)
    orig = json.loads((run / "mixed-home.json").read_text())
    assert s["network"] == "vantage" and s["vantage_host"] == ip
    assert s["vantage_of"] == "mixed-home-s1/mixed-home.pcap"
    assert 0 < s["flows"] < orig["flows"] and s["unlabelled_flows"] == 0
    assert s["by_label"]["p2p"]["flows"] > 0
    assert json.loads((out / "mixed-home.json").read_text()) == s
    assert sorted(p.name for p in out.iterdir()) == ["mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"]
    from p2pdetect.features.extract import extract_capture
    t = extract_capture(out / "mixed-home.pcap")
    ips = set(t.column("src_ip").to_pylist()) | set(t.column("dst_ip").to_pylist())
    assert ip in ips and all(ip in (a, b) for a, b in zip(t.column("src_ip").to_pylist(), t.column("dst_ip").to_pylist()))


def test_no_view_of_a_host_the_capture_never_saw(tmp_path):
    """Labels name every planned pair; an uplink capture never sees two remote peers trade. A view of
    such a peer would be an empty capture: none is written."""
    run = tmp_path / "mixed-home-s1"
    run.mkdir()
    for f in ("mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"):
        shutil.copy(SAMPLE / f, run / f)
    out = tmp_path / "view"
    assert vantage.vantage_view(run, "192.0.2.77", out) is None
    assert not out.exists()

"""WAN paths and the ISP vantage point: the delay line's link model, address plans that stay exact
after NAT, and real runs whose handshakes take the configured round trip at the router's uplink.

The end-to-end tests need root (network namespaces, TUN devices, iptables, tcpdump) and skip otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import GenerateConfig, namespace, scenarios, topology
from p2pdetect.data.generator.capture import handshake_gaps
from p2pdetect.data.generator.delayline import Link
from p2pdetect.data.generator.labels import read_csv
from tests.test_generate import _namespaces, _procs_mentioning

REPO = Path(__file__).resolve().parents[1]
needs_wan = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables-restore") is None,
    reason="WAN runs need root (netns, TUN, tcpdump) and iptables ('make setup' installs it)")
_ALLOWED = [ipaddress.ip_network(n) for n in (topology.OUTSIDE_NET, topology.PUBLIC_NET, topology.NAT_PUBLIC_NET,
                                              topology.NAT_LAN_NET)]


def test_config_checks_path_values() -> None:
    with pytest.raises(GenerateError, match=r"The 'rtt_ms' parameter of GenerateConfig must be a number in \[1, 1000\]"):
        GenerateConfig(rtt_ms=0)
    with pytest.raises(GenerateError, match=r"The 'loss_pct' parameter .* needs rtt_ms"):
        GenerateConfig(loss_pct=1.0)
    with pytest.raises(GenerateError, match=r"The 'network' parameter of GenerateConfig must be one of"):
        GenerateConfig(network="wan")
    assert GenerateConfig(rtt_ms=60, jitter_ms=5, loss_pct=0.5).path() == {"rtt_ms": 60.0, "jitter_ms": 5.0,
                                                                        "loss_pct": 0.5}


def test_link_holds_for_its_delay_shapes_its_rate_and_loses_its_share() -> None:
    rng = random.Random(1)
    link = Link(rate_bps=12e6, delay_s=0.030, jitter_s=0.005, loss=0.02, queue_s=100.0)
    arrivals = [link.send(0.0, 1500, rng) for _ in range(20_000)]
    kept = [a for a in arrivals if a is not None]
    assert 0.017 < 1 - len(kept) / len(arrivals) < 0.023  # the configured 2 % loss
    assert kept == sorted(kept)  # jitter never reorders
    assert 0.026 < kept[0] < 0.036  # 1 ms to send, 30 +- 5 ms on the wire
    assert kept[-1] == pytest.approx(len(kept) * 0.001 + 0.030, abs=0.006)  # 1500 B at 12 Mbit/s = 1 ms each
    tiny = Link(rate_bps=8e3, queue_s=0.5)  # 1000 B/s: the queue holds half a second
    assert tiny.send(0.0, 600, rng) is not None and tiny.send(0.0, 600, rng) is None
    small = Link(mtu=1280)
    assert small.send(0.0, 1400, rng) is None and small.counts["too_big"] == 1


@pytest.mark.parametrize("scenario,seed", [("home-isp", s) for s in range(4)] + [("home-isp-impl", s) for s in range(4)])
def test_home_isp_addresses_are_documentation_ranges_and_public_pairs_name_one_app(scenario: str, seed: int) -> None:
    plan = scenarios.build(scenario, seed, 30, 1.0)
    net = topology.for_config(plan, "loopback", seed, None)
    assert net is not None and net.name == "wan-mid"  # the ISP's vantage point always has WAN paths
    nat = [h for h in net.hosts.values() if h["nat"]]
    assert nat and any(h["role"] == "inside" and not h["nat"] for h in net.hosts.values())
    assert len({h["public"] for h in nat}) < len(nat) or len(nat) == len(plan.homes[0]["hosts"])
    owner: dict[tuple[str, str, int], str] = {}
    for app in net.plan.apps:
        for r in app.rows:
            for ip in (r.src_ip, r.dst_ip):
                assert any(ipaddress.ip_address(ip) in n for n in _ALLOWED), ip
                assert not ipaddress.ip_address(ip).is_loopback
            key = (min(r.src_ip, r.dst_ip), max(r.src_ip, r.dst_ip), r.protocol)
            assert owner.setdefault(key, app.name) == app.name, key
    # private NAT addresses never appear in labels: the uplink only sees the public one
    assert not any(ipaddress.ip_address(r.src_ip) in ipaddress.ip_network(topology.NAT_LAN_NET)
                   for r in net.plan.rows())


def test_fixed_path_puts_the_round_trip_on_the_wan_side() -> None:
    plan = scenarios.build("web", 0, 30, 1.0)
    net = topology.for_config(plan, "loopback", 0, {"rtt_ms": 200.0, "jitter_ms": 10.0, "loss_pct": 0.0})
    assert net is not None and net.name == "wan-high"
    for h in net.hosts.values():
        one_way = 0.0 if h["role"] == "inside" else 100.0
        assert h["up"]["delay_ms"] == h["down"]["delay_ms"] == one_way
    assert topology.for_config(plan, "loopback", 0, None) is None
    assert topology.classify(60, 1.5) == "lossy" and topology.classify(10, 0) == "wan-low"


@needs_wan
def test_rtt_60_gives_60_ms_handshakes_at_the_uplink_and_the_configured_loss(tmp_path: Path) -> None:
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "p2pdetect", "generate", "--scenario", "web", "--duration", "12",
                             "--rtt-ms", "60", "--loss", "0.5", "-o", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    ns = f"p2pd-gen-{proc.pid}"
    assert ns not in _namespaces() and topology.router_ns(ns) not in _namespaces()
    assert _procs_mentioning(f"{ns}-") == []
    summary = json.loads((tmp_path / "web.json").read_text())
    assert summary["network"] == "wan-mid" and summary["vantage_point"] == "isp-router-uplink"
    assert summary["path"] == {"rtt_ms": 60.0, "jitter_ms": 0.0, "loss_pct": 0.5}
    assert summary["unlabelled_share"] == 0.0
    # Subscribers open every connection here, so each SYN -> SYN/ACK gap is the WAN round trip.
    gaps = [g for _, _, g in handshake_gaps(tmp_path / "web.pcap")]
    assert len(gaps) >= 20
    assert 0.051 <= statistics.median(gaps) <= 0.069, statistics.median(gaps)
    wan = summary["delay_line"]["wan"]
    loss = wan["lost"] / (wan["lost"] + wan["sent"] + wan["queue_drop"])
    assert 0.002 <= loss <= 0.009, wan
    for r in read_csv(tmp_path / "web.labels.csv"):
        assert not ipaddress.ip_address(r.src_ip).is_loopback
    assert time.time() - started < 120


@needs_wan
def test_remove_stale_takes_a_dead_runs_router_namespace_too() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs, like a SIGKILLed generator's
    names = [f"p2pd-gen-{dead.pid}", f"p2pd-gen-{dead.pid}{topology.ROUTER_SUFFIX}"]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
    namespace.remove_stale()
    assert not set(names) & set(_namespaces())


@needs_wan
def test_home_isp_sigterm_removes_both_namespaces_and_the_delay_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pdetect.data.generator", "--scenario", "home-isp", "--duration", "30", "--scale", "0.1",
         "-o", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ns = f"p2pd-gen-{proc.pid}"
    deadline = time.time() + 90  # start-up takes longer on a loaded machine
    while time.time() < deadline and not _procs_mentioning(f"{ns}-"):
        time.sleep(0.2)
    assert {ns, topology.router_ns(ns)} <= set(_namespaces()), "the generator never started its workers"
    assert _procs_mentioning(f"{ns}-") and [c for c in _procs_mentioning("p2pdetect.data.generator.delayline") if ns in c]
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "interrupted" in err
    assert ns not in _namespaces() and topology.router_ns(ns) not in _namespaces()
    assert _procs_mentioning(f"{ns}-") == []
    assert list(tmp_path.iterdir()) == []

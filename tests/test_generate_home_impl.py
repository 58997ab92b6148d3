"""Homes running a client other than libtorrent beside browsing and chat (mixed-home-impl): plan and a short run;
the plans of the other -impl twins (mixed-office-impl, home-isp-impl).

Why: the ordinary flows of a P2P host (its browsing, its TLS chat on a random high port) came only from
mixed-home, whose client is libtorrent; a model trained without libtorrent then flagged such flows, which
inherit their host's P2P look. The run needs root and is skipped otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from test_generate import needs_root

from p2pdetect.data.generator import GenerateConfig, scenarios
from p2pdetect.data.generator.labels import LabelIndex, read_csv


def _plan(seed: int):
    apps = {a.name: a for a in scenarios.build("mixed-home-impl", seed, 30, 1.0).apps}
    [swarm] = [a for a in apps.values() if a.label == "p2p"]
    return apps, swarm


def test_plan_runs_the_swarm_on_hosts_that_also_chat():
    for seed in range(6):
        apps, swarm = _plan(seed)
        peers = swarm.params["peers"]
        assert {p["impl"] for p in peers} <= {"webtorrent", "biglybt", "ctorrent"}
        chatters = {c["ip"] for c in apps["https-chat"].params["clients"]}
        members = [p for p in peers if p["ip"] in chatters]
        assert members and not any(p["seed"] for p in members)  # home users download


@pytest.mark.parametrize("scenario", ["mixed-office-impl", "home-isp-impl"])
def test_the_impl_twins_run_the_swarm_on_hosts_that_also_browse(scenario):
    """An office's or an ISP's torrenting hosts in a swarm of other clients: no libtorrent, and the
    swarm members are leechers among the hosts that browse."""
    for seed in range(6):
        plan = scenarios.build(scenario, seed, 30, 1.0)
        [swarm] = [a for a in plan.apps if a.label == "p2p"]
        peers = swarm.params["peers"]
        assert {p["impl"] for p in peers} <= {"webtorrent", "biglybt", "ctorrent"}
        [browse] = [a for a in plan.apps if a.name in ("https-mixed", "https-browse")]
        browsers = {c["ip"] for c in browse.params["clients"]}
        members = [p for p in peers if p["ip"] in browsers]
        assert members and not any(p["seed"] for p in members)


@needs_root
def test_a_home_torrenter_has_p2p_and_ordinary_flows(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    _, swarm = _plan(1901)
    [summary] = generate(GenerateConfig(scenario="mixed-home-impl", duration=25, seed=1901, scale=1.0, out_dir=tmp_path))
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    idx = LabelIndex(read_csv(tmp_path / "mixed-home-impl.labels.csv"))
    by_host: dict[str, set[str]] = defaultdict(set)
    for f in NFStreamer(source=str(tmp_path / "mixed-home-impl.pcap"), statistical_analysis=False):
        [row] = idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)
        for ip in (f.src_ip, f.dst_ip):
            by_host[ip].add(row.label if row.label == "p2p" else row.app)
    homes = {p["ip"] for p in swarm.params["peers"]} & {ip for ip, kinds in by_host.items() if "https-chat" in kinds}
    assert any("p2p" in by_host[ip] for ip in homes)  # one machine: a swarm peer that also chats

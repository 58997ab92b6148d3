"""Swarms whose peers all listen on one port (p2p-one-port): the plan, and a short real run.

Why: real swarms are full of clients left at their default port (6881, 51413), so "many peers on one
destination port" is P2P as well as a server browser's shape; our other swarms randomise peer ports,
and a model trained on them alone could learn "diverse remote ports = P2P". The run needs root
(network namespaces, tc, tcpdump) and is skipped otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from test_generate import needs_root

from p2pdetect.data.generator import GenerateConfig, scenarios
from p2pdetect.data.generator.labels import LabelIndex, read_csv


def test_plan_puts_every_peer_of_a_swarm_on_one_default_port() -> None:
    for seed in range(5):
        plan = scenarios.build("p2p-one-port", seed, 30, 1.0)
        assert sorted(a.params["transport"] for a in plan.apps) == ["tcp", "utp"]
        for app in plan.apps:
            assert len({p["port"] for p in app.params["peers"]}) == 1
            assert app.params["peers"][0]["port"] in (6881, 6889, 51413)
            assert app.label == "p2p" and all(r.label == "p2p" for r in app.rows)


@needs_root
def test_one_port_swarms_trade_over_tcp_and_utp_to_the_shared_port(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    plan = scenarios.build("p2p-one-port", 1, 20, 0.5)
    ports = {a.name: a.params["peers"][0]["port"] for a in plan.apps}
    [summary] = generate(GenerateConfig(scenario="p2p-one-port", duration=20, seed=1, scale=0.5, out_dir=tmp_path))
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    idx = LabelIndex(read_csv(tmp_path / "p2p-one-port.labels.csv"))
    volume: dict[tuple[str, int], int] = defaultdict(int)
    protos: dict[frozenset[str], set[int]] = defaultdict(set)
    for f in NFStreamer(source=str(tmp_path / "p2p-one-port.pcap"), statistical_analysis=False):
        [row] = idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)
        assert row.label == "p2p"
        if f.protocol != 1:
            # every connection and datagram is to the one listen port; a packet after a flow's FIN or RST
            # (a late ACK, a retransmitted FIN) starts a new nfstream flow from the listener's side
            assert ports[row.app] in (f.src_port, f.dst_port)
            volume[(row.app, f.protocol)] += f.bidirectional_bytes
            protos[frozenset((f.src_ip, f.dst_ip))].add(f.protocol)
    assert volume[("libtorrent-mse", 6)] > 1_000_000 and volume[("libtorrent-utp", 17)] > 1_000_000
    assert any(p == {6, 17} for p in protos.values())  # TCP and DHT to the same peer

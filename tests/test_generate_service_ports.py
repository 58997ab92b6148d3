"""Swarms of implementations other than libtorrent on service ports (p2p-service-ports): plan and a short run.

Why: real peers listen on 443, 80 or 8080 to pass firewalls. Only libtorrent's p2p-mixed-ports did so
before, so a model trained without libtorrent learnt "a service port is not P2P" and missed 70 % of
those flows. With WebTorrent, BiglyBT and ctorrent peers on service ports too, leave-one-implementation-out
keeps behaviour on a service port in training. The run needs root and is skipped otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from test_generate import needs_root

from p2pdetect.data.generator import GenerateConfig, scenarios
from p2pdetect.data.generator.labels import LabelIndex, read_csv
from p2pdetect.data.generator.scenarios import _COMMON_PORTS


@pytest.mark.parametrize("scenario,low,high", [("p2p-service-ports", 0.5, 0.9), ("p2p-service-ports-only", 1.0, 1.0)])
def test_plan_puts_independent_implementations_on_service_ports(scenario: str, low: float, high: float) -> None:
    """Most peers of p2p-service-ports listen on a service port; every peer of its -only variant does."""
    on_service = total = 0
    for seed in range(8):
        [app] = scenarios.build(scenario, seed, 30, 1.0).apps
        impls = {p["impl"] for p in app.params["peers"]}
        assert impls >= {"webtorrent", "biglybt", "ctorrent"} and "libtorrent" not in impls
        on_service += sum(p["port"] in _COMMON_PORTS for p in app.params["peers"])
        total += len(app.params["peers"])
    assert low <= on_service / total <= high


@needs_root
def test_service_port_peers_trade_over_their_service_port(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    [app] = scenarios.build("p2p-service-ports", 1, 25, 1.0).apps
    listening = {(p["ip"], p["port"]) for p in app.params["peers"] if p["port"] in _COMMON_PORTS}
    [summary] = generate(GenerateConfig(scenario="p2p-service-ports", duration=25, seed=1, scale=1.0,
                                        out_dir=tmp_path))
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    idx = LabelIndex(read_csv(tmp_path / "p2p-service-ports.labels.csv"))
    to_service: dict[str, int] = defaultdict(int)
    for f in NFStreamer(source=str(tmp_path / "p2p-service-ports.pcap"), statistical_analysis=False):
        [row] = idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)
        assert row.label == "p2p" and "libtorrent" not in row.app
        if f.protocol == 6 and (f.dst_ip, f.dst_port) in listening:
            to_service[row.app] += f.bidirectional_bytes
    assert sum(to_service.values()) > 1_000_000  # pieces flow over connections to 443/80/25...
    assert len(to_service) >= 2  # between more than one pair of implementations

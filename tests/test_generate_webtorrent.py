"""WebTorrent in the generator: plans and labels anywhere; a short real swarm with root, Node and its packages.

The real run proves what the engine is there for: WebTorrent's own TCP, uTP and DHT flows appear in
the capture between the addresses the plan gave them (every socket bound to its peer's address),
each flow carries exactly one label naming WebTorrent, tshark decodes the DHT and uTP flows as such,
and no libtorrent takes part in the WebTorrent-only scenario.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from p2pdetect.data.generator import GenerateConfig, clients, scenarios, webtorrent
from p2pdetect.data.generator.labels import LabelIndex, read_csv
from test_generate import _namespaces, _procs_mentioning

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="generating captures needs root (netns, tc, tcpdump)")
needs_node = pytest.mark.skipif(webtorrent.missing() is not None,
                                reason=f"WebTorrent cannot run here: {webtorrent.missing()}")


def _peers(plan: scenarios.Plan) -> list[dict]:
    return [p for a in plan.apps if a.params["kind"] == "bt-swarm" for p in a.params["peers"]]


def test_webtorrent_udp_is_labelled_utp_between_listen_ports_and_dht_where_a_dht_socket_takes_part() -> None:
    a = {"impl": "webtorrent", "ip": "127.18.0.2", "port": 40001, "dht_port": 40002, "enc": "forced", "transport": "both"}
    b = {"impl": "webtorrent", "ip": "127.18.0.3", "port": 50001, "dht_port": 50002, "enc": "prefer", "transport": "both"}
    lt = {"impl": "libtorrent", "ip": "127.18.0.4", "port": 60001, "enc": "prefer", "transport": "tcp"}
    ct = {"impl": "ctorrent", "ip": "127.18.0.5", "port": 7000, "enc": "plain", "transport": "tcp"}
    from p2pdetect.data.generator.webtorrent_scenarios import swarm_pair_rows

    idx = LabelIndex(swarm_pair_rows(a, b) + swarm_pair_rows(a, lt) + swarm_pair_rows(a, ct))

    def app(*flow: object) -> list[str]:
        return [r.app for r in idx.match(*flow)]

    assert app("127.18.0.3", 50001, "127.18.0.2", 40001, 17) == ["webtorrent-utp"]
    assert app("127.18.0.2", 40002, "127.18.0.3", 50002, 17) == ["webtorrent-dht"]
    assert app("127.18.0.2", 40001, "127.18.0.3", 50002, 17) == ["webtorrent-dht"]
    assert app("127.18.0.2", 33333, "127.18.0.3", 50001, 6) == ["webtorrent-mse"]
    assert app("127.18.0.2", 40002, "127.18.0.4", 60001, 17) == ["libtorrent+webtorrent-dht"]
    assert app("127.18.0.2", 40001, "127.18.0.4", 60001, 17) == ["libtorrent+webtorrent-utp"]
    assert app("127.18.0.5", 41000, "127.18.0.2", 40001, 6) == ["ctorrent+webtorrent-refused"]
    assert app("127.18.0.2", 40001, "127.18.0.3", 12345, 17) == []  # no WebTorrent socket sends from there
    assert clients.implementations_of("libtorrent+webtorrent-dht") == ["libtorrent", "webtorrent"]


@pytest.mark.parametrize("seed", range(4))
def test_webtorrent_plans_label_their_observed_peers_and_leave_libtorrent_out(seed: int) -> None:
    plan = scenarios.build("p2p-webtorrent-dht", seed, 30, 1.0)
    assert plan.implementations() == ["webtorrent"]
    peers = _peers(plan)
    assert all(p["port"] != p["dht_port"] for p in peers) and any(p["seed"] for p in peers)
    idx = LabelIndex(plan.rows())
    nodes = next(a for a in plan.apps if a.params["kind"] == "wt-dht").params["nodes"]
    for c in plan.vantage():
        assert {r.app for r in idx.match(c, 40000, nodes[0]["ip"], nodes[0]["port"], 17)} == {"webtorrent-dht"}
        for p in peers:
            if p["ip"] != c:
                assert len({r.app for r in idx.match(c, 41000, p["ip"], p["port"], 6)}) == 1
    assert {r.app.split("-", 1)[0] for r in plan.rows()} == {"webtorrent"}
    mixed = scenarios.build("p2p-webtorrent-mixed", seed, 30, 1.0)
    assert {"webtorrent", "libtorrent"} <= set(mixed.implementations())


@pytest.mark.parametrize("seed", range(4))
def test_webtorrent_utp_swarm_plans_leechers_online_together_over_utp(seed: int) -> None:
    plan = scenarios.build("p2p-webtorrent-utp", seed, 60, 2.0)
    assert plan.implementations() == ["webtorrent"]
    peers = _peers(plan)
    leechers = [p for p in peers if not p["seed"]]
    assert len(leechers) >= 3 and sum(p["seed"] for p in peers) == 1
    assert {p["transport"] for p in peers} <= {"utp", "both"}  # uTP first everywhere: trading goes over uTP
    assert all(p["online"][0][0] <= 0.15 * 60 for p in leechers)  # together from early on: they trade
    idx = LabelIndex(plan.rows())
    a, b = leechers[:2]
    assert [r.app for r in idx.match(a["ip"], a["port"], b["ip"], b["port"], 17)] == ["webtorrent-utp"]


def _tshark_protocols(pcap: Path) -> Counter[str]:
    """Packets per top protocol tshark decodes, its uTP heuristic switched on (off by default)."""
    res = subprocess.run(["tshark", "-r", str(pcap), "--enable-heuristic", "bt_utp_udp", "-T", "fields",
                          "-e", "frame.protocols"], capture_output=True, text=True, timeout=60)
    return Counter(line.rsplit(":", 1)[-1] for line in res.stdout.splitlines() if line)


@needs_root
@needs_node
def test_webtorrent_swarm_captures_tcp_utp_and_dht_flows_of_webtorrent_only(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    # The first seed whose plan has an observed TCP-only peer and an observed uTP-first one: both transports seen.
    seed = next(s for s in range(50) if {"tcp", "both"} <= {
        p["transport"] for p in _peers(scenarios.build("p2p-webtorrent-dht", s, 25, 0.5))
        if p["ip"] in scenarios.build("p2p-webtorrent-dht", s, 25, 0.5).vantage()})
    [summary] = generate(GenerateConfig(scenario="p2p-webtorrent-dht", duration=25, seed=seed, scale=0.5, out_dir=tmp_path))
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    assert summary["implementations"] == ["webtorrent"] and summary["versions"]["webtorrent"] == webtorrent.version()
    pcap = tmp_path / "p2p-webtorrent-dht.pcap"
    idx = LabelIndex(read_csv(tmp_path / "p2p-webtorrent-dht.labels.csv"))
    flows: Counter[tuple[str, int]] = Counter()
    utp_packets = 0
    for f in NFStreamer(source=str(pcap)):
        [(label, app)] = {(r.label, r.app) for r in idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)}
        assert label == "p2p" and app.startswith("webtorrent-")
        flows[(app, f.protocol)] += 1
        utp_packets += f.bidirectional_packets if app == "webtorrent-utp" else 0
    dht = sum(n for (app, proto), n in flows.items() if app == "webtorrent-dht" and proto == 17)
    tcp = sum(n for (app, proto), n in flows.items() if proto == 6 and app != "webtorrent-self")
    assert dht >= 20, flows  # lookups reach many distinct bittorrent-dht nodes
    assert tcp >= 1 and flows[("webtorrent-utp", 17)] >= 1 and utp_packets >= 20, flows
    if shutil.which("tshark"):  # tshark's second opinion: these UDP flows are DHT and uTP
        seen = _tshark_protocols(pcap)
        assert seen["bt-dht"] >= 20 and seen["bt-utp"] >= 20, seen
    ns = f"p2pd-gen-{os.getpid()}"
    assert ns not in _namespaces() and _procs_mentioning(f"{ns}-") == []

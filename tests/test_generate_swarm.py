"""Swarms that behave like real ones (p2p-dht-swarm): a UDP tracker, the plan's labels, and a short real run.

The run needs root (network namespaces, tc, tcpdump, nft) and is skipped otherwise. It proves what
real captures show and the older swarms did not: each observed client's UDP endpoint talks to
hundreds of distinct DHT peers in one- or two-exchange flows, most P2P flows are tiny, and every
flow, also each unanswered packet to a gone peer, carries a label.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from p2pdetect.data.generator import GenerateConfig, scenarios
from p2pdetect.data.generator.labels import LabelIndex, read_csv
from p2pdetect.data.generator.realistic import LSD_GROUP
from p2pdetect.data.generator.udp_tracker import ANNOUNCE, CONNECT, ERROR, PROTOCOL_ID, SCRAPE, UdpTracker
from test_generate import _namespaces, _procs_mentioning, needs_root

IH = bytes(range(20))


def _announce(cid: int, tid: int, port: int, left: int, event: int = 2, numwant: int = -1) -> bytes:
    return (struct.pack(">qii", cid, ANNOUNCE, tid) + IH + b"P" * 20
            + struct.pack(">qqqiIIiH", 0, left, 0, event, 0, 7, numwant, port))


def _connect(t: UdpTracker, source: tuple[str, int]) -> int:
    reply = t.handle(struct.pack(">qii", PROTOCOL_ID, CONNECT, 99), source)
    action, tid, cid = struct.unpack(">iiq", reply)
    assert (action, tid) == (CONNECT, 99)
    return cid


def _peers(reply: bytes) -> set[tuple[str, int]]:
    body = reply[20:]
    return {(socket.inet_ntoa(body[i:i + 4]), struct.unpack(">H", body[i + 4:i + 6])[0]) for i in range(0, len(body), 6)}


def test_udp_tracker_speaks_bep15_and_hands_out_ghosts() -> None:
    t = UdpTracker(ghosts=[("127.17.1.5", 4444)], interval=30, seed=1)
    seeder, leecher = ("127.14.0.2", 50000), ("127.50.0.2", 50001)
    cid = _connect(t, seeder)
    first = t.handle(_announce(cid, 1, 6881, left=0), seeder)
    assert struct.unpack(">iiiii", first[:20]) == (ANNOUNCE, 1, 30, 0, 1)
    assert _peers(first) == {("127.17.1.5", 4444)}  # nobody else yet: only the gone peer
    cid2 = _connect(t, leecher)
    second = t.handle(_announce(cid2, 2, 7000, left=100), leecher)
    assert _peers(second) == {("127.14.0.2", 6881), ("127.17.1.5", 4444)}
    scrape = t.handle(struct.pack(">qii", cid2, SCRAPE, 3) + IH, leecher)
    assert struct.unpack(">iiiii", scrape) == (SCRAPE, 3, 1, 0, 1)
    # A connection id belongs to the address that asked for it; the magic constant is required.
    bad = t.handle(_announce(cid, 4, 7000, left=100), leecher)
    assert struct.unpack(">ii", bad[:8]) == (ERROR, 4) and b"connection id" in bad[8:]
    assert t.handle(struct.pack(">qii", 12345, CONNECT, 5), leecher) is None
    t.handle(_announce(cid, 6, 6881, left=0, event=3), seeder)  # stopped: leaves the swarm
    assert ("127.14.0.2", 6881) not in _peers(t.handle(_announce(cid2, 7, 7000, left=100), leecher))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plan_labels_every_pair_of_an_observed_client_once(seed: int) -> None:
    plan = scenarios.build("p2p-dht-swarm", seed, 60, 1.0)
    clients = plan.vantage()
    assert 2 <= len(clients) <= 4 and all(ip.startswith("127.50.") for ip in clients)
    owner: dict[tuple[str, str, int], str] = {}
    for r in plan.rows():
        key = (min(r.src_ip, r.dst_ip), max(r.src_ip, r.dst_ip), r.protocol)
        assert key not in owner, key
        owner[key] = r.app
        assert r.label == "p2p" and (r.src_ip in clients or r.dst_ip in clients)
    dht_ips = {ip for a in plan.apps if a.params["kind"] == "bt-dht" for s in a.params["sessions"]
               for ip, _ in s["endpoints"]}
    assert len(dht_ips) >= 200
    for c in clients:  # every DHT node, remote peer, gone address, tracker and the LSD group
        assert all(owner[(min(c, ip), max(c, ip), 17)] == "libtorrent-dht" for ip in dht_ips)
        assert owner[(min(c, LSD_GROUP), max(c, LSD_GROUP), 17)] == "libtorrent-lsd"
    swarm = next(a.params for a in plan.apps if a.params["kind"] == "bt-realistic")
    for g, _ in swarm["gone_peers"]:
        assert owner[(min(clients[0], g), max(clients[0], g), 6)] == "libtorrent-unreachable"


@needs_root
def test_short_run_has_many_small_dht_flows_per_client_endpoint_all_labelled(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    plan = scenarios.build("p2p-dht-swarm", 4, 30, 0.5)
    swarm = next(a.params for a in plan.apps if a.params["kind"] == "bt-realistic")
    assert any(h["lsd"] for h in swarm["hosts"] if h["role"] == "client"), "pick a seed with an LSD client"
    [summary] = generate(GenerateConfig(scenario="p2p-dht-swarm", duration=30, seed=4, scale=0.5, out_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p2p-dht-swarm.json", "p2p-dht-swarm.labels.csv",
                                                          "p2p-dht-swarm.pcap"]
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    clients = set(plan.vantage())

    idx = LabelIndex(read_csv(tmp_path / "p2p-dht-swarm.labels.csv"))
    packets, apps, udp = [], Counter(), 0
    peers: dict[tuple[str, int], set[tuple[str, int]]] = defaultdict(set)
    for f in NFStreamer(source=str(tmp_path / "p2p-dht-swarm.pcap"), statistical_analysis=False):
        assert f.src_ip in clients or f.dst_ip in clients  # the vantage point sees its clients only
        hits = {(r.label, r.app) for r in idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)}
        assert len(hits) == 1, (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol, hits)
        label, app = hits.pop()
        assert label == "p2p"
        packets.append(f.bidirectional_packets)
        apps[app] += 1
        udp += f.protocol == 17
        if f.protocol == 17 and app == "libtorrent-dht":
            local, remote = ((f.src_ip, f.src_port), (f.dst_ip, f.dst_port))
            if local[0] not in clients:
                local, remote = remote, local
            peers[local].add(remote)
    pk = np.array(packets)
    # Real BitTorrent at a vantage point: median 2 packets, 75 % of flows at most 4, most of them UDP.
    assert np.median(pk) <= 4 and np.mean(pk <= 4) >= 0.55 and udp / len(pk) >= 0.5, (np.median(pk), np.mean(pk <= 4))
    assert max(len(v) for v in peers.values()) >= 100, sorted(len(v) for v in peers.values())
    for app in ("libtorrent-dht", "libtorrent-unreachable", "libtorrent-tracker", "libtorrent-lsd"):
        assert apps[app] > 0, apps
    assert apps["libtorrent-mse"] + apps["libtorrent-utp"] + apps["libtorrent-plain"] > 0, apps  # pieces moved

    assert f"p2pd-gen-{os.getpid()}" not in _namespaces()
    assert _procs_mentioning(f"p2pd-gen-{os.getpid()}-") == [] and _procs_mentioning(str(tmp_path)) == []


def test_home_plan_mixes_a_torrenting_host_with_ordinary_traffic() -> None:
    plan = scenarios.build("p2p-dht-home", 0, 60, 1.0)
    home = set(plan.vantage())
    swarm = next(a.params for a in plan.apps if a.params["kind"] == "bt-realistic")
    torrenters = {h["ip"] for h in swarm["hosts"] if h["role"] == "client"}
    assert torrenters < home and 1 <= len(torrenters) <= 2
    by_label: dict[str, set[str]] = defaultdict(set)
    for r in plan.rows():
        assert r.src_ip in home or r.dst_ip in home
        by_label[r.label] |= {r.src_ip, r.dst_ip} & home
    assert torrenters <= by_label["p2p"] & by_label["other"]  # the same host torrents and browses

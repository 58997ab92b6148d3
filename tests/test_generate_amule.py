"""A P2P family other than BitTorrent in the generator: aMule swarms (eD2k over TCP, Kad over UDP).

Plans, labels and the Kad bootstrap file are checked anywhere; the short real run needs root
(network namespaces, tcpdump) and aMule (``make setup`` installs it), and is skipped otherwise. It
proves that the file crossed between aMule peers over eD2k, that Kad ran, that every flow carries
one label, and that no amuled or namespace is left behind.
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct
from pathlib import Path

import pytest

from p2pdetect.data.generator import amule, clients, scenarios
from p2pdetect.data.generator.labels import LabelIndex
from test_generate_clients import _run

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="generating captures needs root (netns, tc, tcpdump)")
needs_amule = pytest.mark.skipif(clients.missing(["amule"]) is not None, reason="aMule is not installed (make setup)")


def test_amule_plans_label_every_peer_pair_by_protocol_and_keep_control_off_the_capture() -> None:
    for seed in range(6):
        plan = scenarios.build("p2p-amule", seed, 60, 1.0)
        [swarm] = plan.apps
        everyone = swarm.params["peers"]
        peers = [p for p in everyone if not p.get("kad_only")]
        crowd = [p for p in everyone if p.get("kad_only")]
        ips = [p["ip"] for p in everyone]
        assert plan.implementations() == ["amule"] and set(plan.implementations()) <= set(clients.IMPLEMENTATIONS)
        assert len(set(ips)) == len(ips) and len(peers) >= 4 and len(crowd) >= 20
        # Kad takes no loopback or private address as a contact, and at most 10 per /24: the swarm lives
        # on TEST-NET-3, every other Kad node in a /24 of its own
        assert all(ipaddress.IPv4Address(p["ip"]) in ipaddress.IPv4Network(amule.NET) for p in peers)
        assert all(ipaddress.IPv4Address(p["ip"]) in ipaddress.IPv4Network(amule.CROWD_NET) for p in crowd)
        assert len({ip.rsplit(".", 1)[0] for ip in ips}) == len(crowd) + 1
        # users search Kad: downloaders (and some other Kad users) while they are online, seeds never
        assert any(p.get("searches") for p in peers) and not any(p.get("searches") for p in peers if p["seed"])
        assert all(p["online"][0][0] < t < p["online"][-1][1] for p in everyone for t in p.get("searches", []))
        assert swarm.vantage == [p["ip"] for p in peers]  # the capture keeps the swarm's packets
        seeds = {p["ip"] for p in peers if p["seed"]}
        assert seeds and peers[0]["seed"] and peers[0]["online"][0][0] == 0.0
        index = LabelIndex(swarm.rows)
        for i, a in enumerate(everyone):
            assert a["port"] != a["udp_port"]
            assert a["ip"] not in a["contacts"] and set(a["contacts"]) <= set(ips)
            assert set(a["sources"]) <= seeds and (a["seed"] or a.get("kad_only") or a["sources"])
        for i, a in enumerate(peers):
            for b in peers[i + 1:]:
                assert [r.app for r in index.match(b["ip"], 51000, a["ip"], a["port"], 6)] == ["amule-ed2k"]
                for proto in (17, 1):
                    assert [r.app for r in index.match(b["ip"], b["udp_port"], a["ip"], a["udp_port"], proto)] == [
                        "amule-kad"]
            for c in crowd:
                for proto in (6, 17, 1):
                    assert [r.app for r in index.match(a["ip"], a["udp_port"], c["ip"], c["udp_port"], proto)] == [
                        "amule-kad"]
        # amulecmd talks to each daemon on 127.0.0.1, which the capture drops: its own port per peer.
        assert len({p["ec_port"] for p in everyone}) == len(everyone)
    assert clients.implementations_of("amule-ed2k") == ["amule"]


def test_kad_bootstrap_file_is_a_version_2_nodes_dat() -> None:
    contacts = [{"ip": "203.0.113.7", "port": 4662, "udp_port": 4672}, {"ip": "203.0.113.9", "port": 443,
                                                                       "udp_port": 51000}]
    blob = amule.nodes_dat(contacts, random.Random(0))
    assert struct.unpack("<III", blob[:12]) == (0, 2, 2) and len(blob) == 12 + 2 * 34
    for k, c in enumerate(contacts):
        rec = blob[12 + 34 * k: 12 + 34 * (k + 1)]
        ip, udp, tcp, version, key, key_ip, verified = struct.unpack("<IHHBIIB", rec[16:])
        assert (str(ipaddress.IPv4Address(ip)), udp, tcp) == (c["ip"], c["udp_port"], c["port"])
        assert version < 6 and not verified  # no Kad obfuscation towards a contact whose id is made up
    assert amule.with_sources("ed2k://|file|a.bin|10|00|/", contacts[:1]) == (
        "ed2k://|file|a.bin|10|00|/|sources,203.0.113.7:4662|/")


@needs_root
@needs_amule
def test_amule_swarm_moves_the_file_over_ed2k_and_meets_over_kad(tmp_path: Path) -> None:
    s = _run("p2p-amule", 40, 3, tmp_path)
    apps = s["apps"]
    assert s["implementations"] == ["amule"] and s["versions"]["amule"].startswith("2.")
    # Downloaders fetched from the seeds: file blocks, not only handshakes (~0.5 kB), crossed eD2k
    # connections (aMule opens an upload slot slowly: tens of kB/s in the first minute).
    assert apps["amule-ed2k"]["flows"] >= 2 and apps["amule-ed2k"]["bytes"] > 50_000
    assert apps["amule-kad"]["flows"] >= 3

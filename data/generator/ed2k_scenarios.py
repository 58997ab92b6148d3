"""Scenarios of the eD2k/Kad family (data.generator.amule): P2P that is not BitTorrent.

- ``p2p-amule``: a swarm of aMule peers sharing one file over eD2k (TCP, protocol obfuscation
  requested, required or off per peer) and meeting over Kad (UDP) among a few dozen Kad nodes, with
  churn: one or two seeds from the start, downloaders that join in the first 40 %, some leave and
  come back. Listening ports are aMule's defaults (4662/tcp, 4672/udp), random high ports, or
  service ports. The capture keeps the swarm peers' packets.

A model trained without these captures (the shipped model of session 17; any fold of ``evaluate
--group-by implementation`` that leaves ``amule`` out) measures detection of a P2P family left out
(docs/evaluation.md, session 19); ``make dataset`` holds four runs.

Address plan: the swarm's peers are 203.0.113.2-99, its other Kad nodes 100.64.K.x, the K-th in a /24 of
its own (aMule's Kad refuses loopback and private addresses as contacts and keeps at most 10 per /24;
data.generator.amule), one swarm per run.
"""

from __future__ import annotations

import random
from typing import Any

from p2pdetect.data.generator.labels import pair_rows
from p2pdetect.data.generator.scenarios import AppSpec, _Addresses, _port, _schedule

#: Scenario names this module builds, in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = ("p2p-amule",)

#: Worker kinds of these apps: kind -> (module under data.generator, its entry function).
KINDS: dict[str, tuple[str, str]] = {"amule-swarm": ("amule", "run_swarm")}

_EC_BASE = 24000  # amulecmd ports on 127.0.0.1, one per peer (never captured)


def _ports(rng: random.Random) -> tuple[int, int]:
    """(TCP, UDP) listening ports: aMule's defaults, random high ports, or a service port for TCP."""
    r = rng.random()
    if r < 0.35:
        return 4662, 4672
    tcp = _port(rng, r > 0.85)
    while True:
        udp = _port(rng, False)
        if udp != tcp:
            return tcp, udp


def _peer(rng: random.Random, ip: str, ec_port: int, online: list[list[float]], seed: bool) -> dict[str, Any]:
    tcp, udp = _ports(rng)
    return {"ip": ip, "port": tcp, "udp_port": udp, "ec_port": ec_port, "seed": seed, "online": online,
            "up_kbs": rng.choice([40, 100, 100, 300, 1000]),
            "crypt": rng.choices(["requested", "required", "supported"], weights=[0.6, 0.25, 0.15])[0]}


def amule_swarm(rng: random.Random, duration: int, scale: float) -> AppSpec:
    """An aMule swarm of 4-12 peers (more with ``scale``), one or two of them seeds, in a Kad of 20-60 nodes.

    The Kad nodes (amuled with nothing to share or fetch, a few leaving and others joining) are what a
    real client's DHT talks to besides the peers of its file; the capture keeps the swarm peers'
    packets (``AppSpec.vantage``), as a link carrying those clients would.
    """
    n = rng.randint(4, max(4, min(12, int(4 * scale) + 4)))
    n_seeds = 1 if n < 6 else rng.randint(1, 2)
    specs = [_peer(rng, f"203.0.113.{2 + i}", _EC_BASE + i, _schedule(rng, duration, i < n_seeds, i == 0, 0.4),
                   i < n_seeds) for i in range(n)]
    crowd = []
    for k in range(rng.randint(20, max(20, min(60, int(20 * scale) + 20)))):
        start = round(rng.uniform(0, 5) if rng.random() < 0.8 else rng.uniform(5, 0.6 * duration), 2)
        end = duration + 60 if rng.random() < 0.85 else round(rng.uniform(start + 10, duration + 10), 2)
        crowd.append(dict(_peer(rng, f"100.64.{k}.{rng.randint(2, 254)}", _EC_BASE + 100 + k, [[start, end]], False), kad_only=True))
    swarm_ips = [p["ip"] for p in specs]
    seeds = swarm_ips[:n_seeds]
    everyone = specs + crowd
    words = ["holiday", "lecture", "album", "backup", "dataset", "linux", "live", "concert", "season", "mix"]
    for s in everyone:
        others = [o["ip"] for o in everyone if o is not s]
        # a nodes.dat a client saved last session names dozens of nodes; here up to 20 of the others
        s["contacts"] = rng.sample(others, k=min(len(others), rng.randint(8, 20)))
        # users search: every downloader and a third of the other Kad users, every 20-60 s once online
        if not s["seed"] and (not s.get("kad_only") or rng.random() < 0.33):
            t, until = s["online"][0][0] + rng.uniform(10, 25), min(s["online"][-1][1], duration)
            s["searches"] = []
            while t < until:
                s["searches"].append(round(t, 1))
                t += rng.uniform(20, 60)
        s["sources"] = [] if s["seed"] or s.get("kad_only") else rng.sample(seeds, k=rng.randint(1, len(seeds)))
    size = int(min(rng.lognormvariate(15.8, 0.5) * max(scale, 0.25), 200e6))  # ~7 MB at scale 1
    params = {"kind": "amule-swarm", "peers": everyone, "size": size, "seed": rng.getrandbits(32), "words": words}
    crowd_ips = [c["ip"] for c in crowd]
    # eD2k between the swarm's peers; Kad (UDP, its ICMP, and the TCP of Kad's firewall checks) with the rest.
    rows = (pair_rows(swarm_ips, swarm_ips, (6,), "p2p", "amule-ed2k")
            + pair_rows(swarm_ips, swarm_ips, (17, 1), "p2p", "amule-kad")
            + pair_rows(swarm_ips, crowd_ips, (6, 17, 1), "p2p", "amule-kad"))
    return AppSpec(name="amule-swarm", label="p2p", params=params, rows=rows, vantage=swarm_ips)


def build(scenario: str, rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of ``scenario`` (one of SCENARIOS), drawn from ``rng``."""
    if scenario == "p2p-amule":
        return [amule_swarm(rng, duration, scale)]
    raise ValueError(f"unknown scenario {scenario!r}")

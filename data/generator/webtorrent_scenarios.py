"""Scenarios with WebTorrent peers (data.generator.webtorrent): a DHT swarm of WebTorrent only, and a mixed swarm.

Why: uTP and DHT traffic must come from more than one implementation, so that an evaluation that
leaves libtorrent out still has them in training (and the other way round).

- ``p2p-webtorrent-dht``: WebTorrent peers that find each other through the mainline DHT and PEX only,
  among a few hundred bittorrent-dht nodes (WebTorrent's DHT) that bootstrap among themselves, with
  churn; peers speak uTP and TCP (some one of them), with RC4 required, MSE preferred or plain
  BitTorrent; observed peers also look up torrents nobody serves here. No libtorrent in it at all.
  The capture keeps the observed peers' packets (``AppSpec.vantage``), as p2p-dht-swarm does.
- ``p2p-webtorrent-mixed``: WebTorrent peers in a tracker swarm with libtorrent, ctorrent and sometimes
  BiglyBT peers (scenarios.impl_swarm); WebTorrent and libtorrent peers share a DHT too.
- ``p2p-webtorrent-utp``: a tracker swarm of WebTorrent peers only, uTP first (some uTP only), a bigger
  content and leechers that are online together, so that they trade pieces with each other, not only
  fetch them from the seed: megabytes each way over one uTP connection between two high ports, as in a
  real swarm (and in libtorrent's swarms). Without it, an evaluation that leaves libtorrent out had
  hardly any bulk uTP left in training, and none that went both ways.

Address plan: K = 18 WebTorrent swarm peers, 19 bittorrent-dht nodes; the mixed swarm lives in 13.
"""

from __future__ import annotations

import random
from typing import Any

from p2pdetect.data.generator.labels import LabelRow, pair_rows
from p2pdetect.data.generator.scenarios import AppSpec, _Addresses, _content, _port, _schedule, impl_swarm, pair_app
from p2pdetect.data.generator.webtorrent import peer_pair_rows

#: Scenario names this module builds, in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = ("p2p-webtorrent-dht", "p2p-webtorrent-mixed", "p2p-webtorrent-utp")

#: Worker kinds of these apps: kind -> (module under data.generator, its entry function).
KINDS: dict[str, tuple[str, str]] = {"wt-dht": ("webtorrent", "run_dht_nodes")}

_UDP = (17, 1)  # UDP, and the ICMP port-unreachable a closed or gone endpoint answers with


def draw_peer(rng: random.Random, spec: dict[str, Any], seed: bool) -> dict[str, Any]:
    """``spec`` of a WebTorrent peer completed: transport, ports, magnet, announce timer.

    WebTorrent picks fresh random ports at every start (``torrentPort``/``dhtPort`` 0): each online
    interval after the first gets ports of its own (``ports``, ``dht_ports``, one per interval).
    """
    spec["transport"] = rng.choices(["both", "tcp", "utp"], weights=[0.6, 0.25, 0.15])[0]
    draw_ports(rng, spec)
    spec["magnet"] = not seed and rng.random() < 0.4
    spec["announce_interval"] = rng.randint(3, 8)
    return spec


def draw_ports(rng: random.Random, spec: dict[str, Any]) -> None:
    """Listen and DHT ports for every online interval of ``spec`` that has none yet (the first listen port is ``port``)."""
    ports = spec.setdefault("ports", [spec["port"]])
    dht = spec.setdefault("dht_ports", [])
    while len(ports) < len(spec["online"]):
        ports.append(_port(rng, False))
    while len(dht) < len(spec["online"]):
        port = _port(rng, False)
        if port != ports[len(dht)]:
            dht.append(port)
    spec["dht_port"] = dht[0]


def dht_endpoint(spec: dict[str, Any]) -> list[Any]:
    """Where a swarm peer's DHT node listens: WebTorrent's own DHT port, libtorrent's listen port."""
    return [spec["ip"], spec.get("dht_port", spec["port"])]


def bootstrap_mixed(rng: random.Random, specs: list[dict[str, Any]]) -> None:
    """Give each WebTorrent peer of a mixed swarm DHT bootstrap nodes: the other WebTorrent and libtorrent peers."""
    for s in specs:
        if s["impl"] == "webtorrent":
            others = [dht_endpoint(o) for o in specs if o is not s and o["impl"] in ("webtorrent", "libtorrent")]
            s["bootstrap"] = rng.sample(others, k=min(6, len(others)))


def swarm_pair_rows(a: dict[str, Any], b: dict[str, Any]) -> list[LabelRow]:
    """Label rows between two peers of a multi-implementation swarm (scenarios.impl_swarm)."""
    if "webtorrent" in (a["impl"], b["impl"]):
        return peer_pair_rows(a, b, pair_app(a, b))
    return pair_rows([a["ip"]], [b["ip"]], (6, 17, 1), "p2p", pair_app(a, b))


def _nodes(rng: random.Random, addr: _Addresses, duration: int, n: int) -> list[dict[str, Any]]:
    """``n`` bittorrent-dht nodes: most online throughout, some leave mid-run, some join late."""
    nodes: list[dict[str, Any]] = []
    while len(nodes) < n:
        _, host = addr.block(19)
        for h in range(2, min(252, 2 + n - len(nodes))):
            r = rng.random()
            if r < 0.15:  # leaves: its address stays in routing tables and draws unanswered queries
                online = [[0.0, round(rng.uniform(0.2, 0.8) * duration, 2)]]
            elif r < 0.25:
                online = [[round(rng.uniform(0.1, 0.6) * duration, 2), duration + 60.0]]
            else:
                online = [[0.0, duration + 60.0]]
            nodes.append({"ip": host(h), "port": _port(rng, False), "online": online})
    return nodes


def dht_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of ``p2p-webtorrent-dht``: bittorrent-dht nodes, and one WebTorrent swarm seen at its observed peers."""
    nodes = _nodes(rng, addr, duration, rng.randint(100, 200))
    endpoints = [[n["ip"], n["port"]] for n in nodes]
    _, host = addr.block(18)
    n_peers = rng.randint(6, min(12, 8 + 2 * int(scale)))  # Node peers are CPU-hungry: 2 cores
    n_seeds = rng.randint(1, 2)
    peers = []
    for i in range(n_peers):
        seed = i < n_seeds
        enc = rng.choice(["prefer", "prefer", "forced"]) if seed else rng.choice(["forced", "forced", "prefer", "prefer", "plain"])
        spec = {"ip": host(2 + i), "port": _port(rng, False), "impl": "webtorrent", "enc": enc, "seed": seed,
                "online": _schedule(rng, duration, seed, i == 0, 0.5), "discovery": "dht",
                "up_rate": rng.choice([150_000, 400_000, 1_000_000]) * max(1, int(scale)),
                "down_rate": rng.choice([0, 0, 400_000, 1_000_000]), "lookups_per_s": round(rng.uniform(0, 0.2), 2)}
        peers.append(draw_peer(rng, spec, seed))
    for p in peers:
        mates = [dht_endpoint(q) for q in peers if q is not p]
        p["bootstrap"] = rng.sample(endpoints, k=6) + rng.sample(mates, k=2)
    observed = rng.sample(peers, k=max(3, 2 * n_peers // 3))
    for p in observed:  # users with other torrents in their list: lookups for them, to many distinct nodes
        p["lookups_per_s"] = round(rng.uniform(0.3, 1.0), 2)
        if not p["seed"] and len(p["online"]) == 1 and rng.random() < 0.5:  # restarts: new ports, new connections
            start, end = p["online"][0]
            stop = round(rng.uniform(start + 0.3 * (duration - start), duration - 8), 2)
            if stop > start + 5:
                p["online"] = [[start, stop], [round(stop + rng.uniform(2, 6), 2), end]]
                draw_ports(rng, p)
    rows: list[LabelRow] = []
    seen: set[tuple[str, str]] = set()
    for c in observed:
        rows += pair_rows([c["ip"]], [c["ip"]], (6, 17, 1), "p2p", "webtorrent-self")  # DHT hands a peer its own address
        for p in peers:
            key = (min(c["ip"], p["ip"]), max(c["ip"], p["ip"]))
            if p is not c and key not in seen:
                seen.add(key)
                rows += swarm_pair_rows(c, p)
    swarm = {"kind": "bt-swarm", "transport": "tcp", "peers": peers, **_content(rng, 0.5 * scale), "v1_only": True,
             "seed": rng.getrandbits(32)}
    dht = {"kind": "wt-dht", "nodes": nodes, "lookups_per_s": round(rng.uniform(0.5, 2.0), 2), "seed": rng.getrandbits(32)}
    clients = [c["ip"] for c in observed]
    node_ips = sorted({n["ip"] for n in nodes})
    apps = [AppSpec(name="webtorrent-dht-nodes", label="p2p", params=dht,
                    rows=pair_rows(clients, node_ips, _UDP, "p2p", "webtorrent-dht")),
            AppSpec(name="webtorrent-swarm", label="p2p", params=swarm, rows=rows)]
    for app in apps:
        app.vantage = list(clients)
    return apps


def mixed_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The app of ``p2p-webtorrent-mixed``: WebTorrent peers in a tracker swarm with other implementations."""
    first = rng.choice(["webtorrent", "libtorrent"])
    rest = ([("webtorrent", rng.choice(["forced", "prefer", "prefer", "plain"])) for _ in range(rng.randint(2, 4))]
            + [("libtorrent", rng.choice(["forced", "prefer"])) for _ in range(rng.randint(1, 3))]
            + [("ctorrent", "plain") for _ in range(rng.randint(0, 2))]
            + [("biglybt", "prefer") for _ in range(int(rng.random() < 0.3))])
    rng.shuffle(rest)
    return [impl_swarm(rng, addr, duration, scale, peers=[(first, "prefer")] + rest, n_seeds=rng.randint(1, 2),
                       n_ghosts=rng.randint(1, 3), app="webtorrent-mixed-swarm")]


def utp_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The app of ``p2p-webtorrent-utp``: WebTorrent leechers that trade over uTP with each other."""
    peers = [("webtorrent", rng.choice(["forced", "prefer", "prefer", "plain"])) for _ in range(rng.randint(4, 7))]
    app = impl_swarm(rng, addr, duration, scale, peers=peers, n_seeds=1, n_ghosts=rng.randint(0, 2),
                     app="webtorrent-utp-swarm")
    for spec in app.params["peers"]:
        spec["transport"] = rng.choice(["utp", "both", "both"])
        if not spec["seed"]:  # online together from early on (a quarter leave and come back, as elsewhere)
            spec["online"][0][0] = round(rng.uniform(0, 0.15 * duration), 2)
    return [app]


_BUILDERS = {"p2p-webtorrent-dht": dht_swarm, "p2p-webtorrent-mixed": mixed_swarm, "p2p-webtorrent-utp": utp_swarm}


def build(scenario: str, rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of ``scenario`` (one of SCENARIOS), drawn from ``rng``."""
    return _BUILDERS[scenario](rng, addr, duration, scale)

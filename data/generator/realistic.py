"""Scenarios of swarms that behave like real ones, seen from a vantage point at a few client hosts.

Why: in real BitTorrent captures the median P2P flow has 2 packets and 75 % have at most 4: DHT
queries and replies to hundreds of nodes, dials to peers that are gone, UDP tracker announces, local
peer discovery, peers that drop after the handshake. ``p2p-dht-swarm`` builds that world: a DHT of
hundreds of libtorrent nodes (data.generator.dht, in one or two processes), remote peers with roles
and churn, HTTP and UDP trackers, gone DHT nodes and peers (data.generator.swarm), and a few observed
clients. ``p2p-dht-home`` puts one or two such clients among the hosts of a home that also browses,
streams, chats and resolves names. The capture keeps only the observed hosts' packets
(``AppSpec.vantage``), as an operator's vantage point sees its subscribers and not the rest of the
swarm, so labels cover every pair with an observed host in it.

Address plan: clients are client hosts (127.50.N.x); K = 14 remote peers, 15 DHT nodes, 16 trackers,
17 gone addresses (DHT nodes, peers): 40 % answer with RST / ICMP, 60 % stay silent.
"""

from __future__ import annotations

import random
from typing import Any

from p2pdetect.data.generator.labels import LabelRow, pair_rows
from p2pdetect.data.generator.scenarios import AppSpec, _Addresses, _content, _port, _schedule, dns, web

#: Scenario names this module builds, in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = ("p2p-dht-swarm", "p2p-dht-home")

#: Worker kinds of these apps: kind -> (module under data.generator, its entry function).
KINDS: dict[str, tuple[str, str]] = {"bt-dht": ("dht", "run_dht"), "bt-realistic": ("swarm", "run_realistic_swarm"),
                                     "bt-trackers": ("swarm", "run_trackers")}

#: Local peer discovery's multicast group (BEP 14); every LSD announce goes there on port 6771.
LSD_GROUP = "239.192.152.143"

_ROLES = ("seed", "leech", "choker", "busy")
_ROLE_WEIGHTS = (0.3, 0.35, 0.15, 0.2)
_UDP = (17, 1)  # UDP, and the ICMP port-unreachable a closed or gone endpoint answers with


def _dht_apps(rng: random.Random, addr: _Addresses, duration: int, clients: list[str]) -> tuple[list[AppSpec], list]:
    """The DHT node population: sessions of several endpoints each, in one or two worker processes."""
    n_nodes = rng.randint(300, 700)
    per = rng.randint(10, 16)
    endpoints: list[list[Any]] = []
    while len(endpoints) < n_nodes:
        _, host = addr.block(15)
        endpoints += [[host(h), _port(rng, False)] for h in range(2, min(252, 2 + n_nodes - len(endpoints)))]
    sessions = []
    for i in range(0, len(endpoints), per):
        r = rng.random()
        if r < 0.15:  # leaves during the run: its addresses become gone nodes in others' routing tables
            online = [[0.0, round(rng.uniform(0.2, 0.8) * duration, 2)]]
        elif r < 0.25:  # joins late
            online = [[round(rng.uniform(0.1, 0.6) * duration, 2), duration + 60.0]]
        else:
            online = [[0.0, duration + 60.0]]
        sessions.append({"endpoints": endpoints[i:i + per], "online": online})
    n_procs = 1 if len(sessions) <= 30 else 2
    apps = []
    for k in range(n_procs):
        mine = sessions[k::n_procs]
        ips = sorted({ip for s in mine for ip, _ in s["endpoints"]})
        params = {"kind": "bt-dht", "sessions": mine, "lookups_per_s": round(rng.uniform(0.5, 2.0), 2),
                  "seed": rng.getrandbits(32)}
        apps.append(AppSpec(name="libtorrent-dht", label="p2p", params=params,
                            rows=pair_rows(clients, ips, _UDP, "p2p", "libtorrent-dht")))
    return apps, endpoints


def _tcp_app(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``app`` of TCP between two libtorrent hosts: MSE unless one side speaks only plain BitTorrent."""
    encs = {a.get("enc", "prefer"), b.get("enc", "prefer")}
    if "plain" in encs:
        return "libtorrent-refused" if "forced" in encs else "libtorrent-plain"
    return "libtorrent-mse"


def _udp_app(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``app`` of UDP between two hosts: uTP (with DHT on the same ports) when both speak uTP, else DHT."""
    return "libtorrent-utp" if {a["transport"], b["transport"]} <= {"utp", "both"} else "libtorrent-dht"


def dht_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float,
              clients: list[str] | None = None) -> list[AppSpec]:
    """The apps of ``p2p-dht-swarm``; their vantage is the observed ``clients`` (2-4 new client hosts
    when not given)."""
    clients = list(clients) if clients else addr.hosts(rng.randint(2, 4))
    dht_apps, dht_endpoints = _dht_apps(rng, addr, duration, clients)
    _, peer = addr.block(14)
    tracker_ip, trk = addr.block(16)
    udp_tracker_ip = trk(2)
    gone_dht, gone_peers, silent = [], [], []
    for pool, count in ((gone_dht, rng.randint(30, 90)), (gone_peers, rng.randint(100, 220))):
        _, host = addr.block(17)
        pool += [[host(h), _port(rng, False)] for h in range(2, 2 + count)]
        silent += [ip for ip, _ in pool if rng.random() < 0.6]  # the others answer RST / ICMP unreachable

    tracker_kinds = (["http"], ["udp"], ["udp", "http"], ["udp", "http"], [])
    torrents = [{**_content(rng, 0.5 * scale), "trackers": rng.choice(tracker_kinds)}
                for _ in range(rng.randint(3, 6))]
    dead = [rng.choice(tracker_kinds) for _ in range(rng.randint(1, 4))]

    hosts: list[dict[str, Any]] = []
    n_peers = rng.randint(12, 30)
    for i in range(n_peers):
        role = "seed" if i < len(torrents) else rng.choices(_ROLES, _ROLE_WEIGHTS)[0]
        # The first seeds hold one torrent each from the start, so every torrent can complete.
        held = [i] if i < len(torrents) else rng.sample(range(len(torrents)), k=rng.randint(1, min(3, len(torrents))))
        mode = "seed" if role == "seed" else None
        hosts.append({
            "ip": peer(2 + i), "port": rng.randint(6881, 6889) if rng.random() < 0.2 else _port(rng, False),
            "role": role, "transport": rng.choice(["tcp", "utp", "both", "both"]),
            "enc": rng.choice(["forced", "prefer", "prefer", "plain"]), "lsd": False,
            "up_rate": rng.choice([150_000, 400_000, 1_000_000]) * max(1, int(scale)),
            "down_rate": rng.choice([0, 400_000, 1_000_000]), "announce_interval": rng.randint(30, 90),
            "torrents": [[t, mode or rng.choice(["leech", "leech", "magnet"])] for t in held],
            "online": _schedule(rng, duration, seed=role == "seed", first=i < len(torrents), latest=0.6),
        })
    for ip in clients:
        order = rng.sample(range(len(torrents)), k=len(torrents))
        held = [[t, rng.choice(["leech", "magnet"])] for t in order[:rng.randint(1, 2)]]
        held += [[t, "seed"] for t in order[2:2 + rng.randint(0, 1)]]  # seeds meet seeds: handshake, then bye
        held += [[d, "dead"] for d in rng.sample(range(len(dead)), k=rng.randint(1, len(dead)))]
        start = rng.uniform(0, 0.1 * duration)
        online = [[round(start, 2), duration + 60.0]]
        if rng.random() < 0.25:  # a client that restarts mid-run
            stop = rng.uniform(0.4, 0.6) * duration
            online = [[round(start, 2), round(stop, 2)], [round(stop + rng.uniform(3, 8), 2), duration + 60.0]]
        hosts.append({
            "ip": ip, "port": rng.randint(6881, 6889) if rng.random() < 0.3 else _port(rng, False),
            "role": "client", "transport": "both", "enc": rng.choice(["prefer", "prefer", "forced"]),
            "lsd": rng.random() < 0.7, "up_rate": rng.choice([0, 200_000, 1_000_000]), "down_rate": 0,
            # Real clients re-announce every 15 min and look up their many other torrents in between:
            # few repeats per node, many distinct nodes.
            "announce_interval": rng.randint(40, 120), "torrents": held, "online": online,
            "dial_gone": rng.uniform(2, 6), "lookups_per_s": round(rng.uniform(0.3, 1.0), 2),
        })
    trackers = {"http_tracker": {"ip": tracker_ip, "port": rng.choice([6969, 80, 8080, 2710, _port(rng, False)])},
                "udp_tracker": {"ip": udp_tracker_ip, "port": rng.choice([6969, 1337, 2710, _port(rng, False)])}}
    params = {"kind": "bt-realistic", "hosts": hosts, "torrents": torrents, "dead": dead,
              "dht": rng.sample(dht_endpoints, k=min(40, len(dht_endpoints))), "gone_dht": gone_dht,
              "gone_peers": gone_peers, "silent": silent, **trackers, "seed": rng.getrandbits(32)}
    tracker_params = {"kind": "bt-trackers", **trackers, "gone_peers": gone_peers,
                      "tracker_interval": rng.randint(20, 40), "seed": rng.getrandbits(32)}
    tracker_rows = (pair_rows(clients, [tracker_ip], (6,), "p2p", "libtorrent-tracker")
                    + pair_rows(clients, [udp_tracker_ip], _UDP, "p2p", "libtorrent-tracker"))
    apps = dht_apps + [AppSpec(name="libtorrent-swarm", label="p2p", params=params,
                               rows=_client_rows(hosts, gone_dht, gone_peers)),
                       AppSpec(name="libtorrent-tracker", label="p2p", params=tracker_params, rows=tracker_rows)]
    for app in apps:
        app.vantage = list(clients)
    return apps


def _client_rows(hosts: list[dict[str, Any]], gone_dht: list, gone_peers: list) -> list[LabelRow]:
    """Label rows of the pairs of an observed client with the other hosts, gone addresses and LSD."""
    clients = [h for h in hosts if h["role"] == "client"]
    rows: list[LabelRow] = []
    seen: set[tuple[str, str]] = set()
    for c in clients:
        ip = c["ip"]
        rows += pair_rows([ip], sorted({g[0] for g in gone_dht}), _UDP, "p2p", "libtorrent-dht")
        rows += pair_rows([ip], sorted({g[0] for g in gone_peers}), (6, 17, 1), "p2p", "libtorrent-unreachable")
        rows += pair_rows([ip], [LSD_GROUP], (17,), "p2p", "libtorrent-lsd")
        for h in hosts:
            key = (min(ip, h["ip"]), max(ip, h["ip"]))
            if h is c or key in seen:
                continue
            seen.add(key)
            rows += pair_rows([ip], [h["ip"]], (6,), "p2p", _tcp_app(c, h))
            rows += pair_rows([ip], [h["ip"]], _UDP, "p2p", _udp_app(c, h))
    return rows


def dht_home(rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """A home network seen from its ISP: 3-6 hosts browse, stream, chat and resolve names, and 1-2 of
    them also run a BitTorrent client in the realistic swarm world. One host mixes P2P with ordinary
    traffic, as most real subscribers' hosts do; the vantage is every home host."""
    hosts = addr.hosts(rng.randint(3, 6))
    torrenters = rng.sample(hosts, k=rng.randint(1, 2))
    apps = dht_swarm(rng, addr, duration, scale, clients=torrenters)
    apps.append(web(rng, addr, duration, scale, tls=True, port=443, clients=hosts,
                    modes=[rng.choice(["browse", "browse", "stream"]) for _ in hosts], app="https-mixed"))
    chat = rng.sample(hosts, k=rng.randint(1, len(hosts)))
    apps.append(web(rng, addr, duration, scale, tls=True, port=_port(rng, False), clients=chat,
                    modes=["chat"] * len(chat), app="https-chat"))
    apps.append(dns(rng, addr, duration, clients=hosts, storminess=1.0))
    for app in apps:
        app.vantage = list(hosts)
    return apps


_BUILDERS = {"p2p-dht-swarm": dht_swarm, "p2p-dht-home": dht_home}


def build(scenario: str, rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of ``scenario`` (one of SCENARIOS), drawn from ``rng``."""
    return _BUILDERS[scenario](rng, addr, duration, scale)

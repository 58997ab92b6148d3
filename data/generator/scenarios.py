"""Scenarios: which apps run, on which addresses and ports, at what rates, all drawn from a seed.

Address plan (labels by construction): every server owns a unique 127.K.N.1 address and every
swarm its 127.K.N.x peers; client hosts may be shared between apps (a home host browses, resolves
names and seeds a torrent), but a given address *pair* belongs to exactly one app, so the pair
names the app. K per app family: 10-12 libtorrent swarms, 13 swarms of several implementations, 18-19 WebTorrent swarms and DHT nodes
(data.generator.webtorrent_scenarios), 20 HTTPS, 22 HTTP, 24 QUIC, 30 DNS, 40 SSH, 50 client hosts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from p2pdetect.data.generator.labels import LabelRow, pair_rows

_COMMON_PORTS = (443, 80, 8080, 53, 8443, 22, 993, 25, 3478)


@dataclass
class AppSpec:
    """One worker process: ``params`` for data.generator.worker, its label rows and summary name."""

    name: str
    label: str
    params: dict[str, Any]
    rows: list[LabelRow] = field(default_factory=list)
    #: Addresses a vantage point sees: the capture keeps only their packets (empty: every packet).
    vantage: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Everything one scenario run will do; ``rate_mbit`` shapes the loopback with tbf."""

    scenario: str
    rate_mbit: float
    apps: list[AppSpec]
    #: Subscriber homes behind an ISP router ({"hosts": [...], "nat": bool}); see topology.py.
    homes: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[LabelRow]:
        return [r for a in self.apps for r in a.rows]

    def vantage(self) -> list[str]:
        """Sorted addresses whose packets the capture keeps (the apps' vantage); empty: keep all."""
        return sorted({ip for a in self.apps for ip in a.vantage})

    def implementations(self) -> list[str]:
        """Sorted P2P implementations that run in this plan (a BitTorrent swarm peer's ``impl``, aMule)."""
        return sorted({p.get("impl", "libtorrent") for a in self.apps if a.params["kind"] in ("bt-swarm", "bt-evasion")
                       for p in a.params["peers"]} | {"amule" for a in self.apps if a.params["kind"] == "amule-swarm"})


class _Addresses:
    """Hands out unique /24 blocks per app family and hosts inside them."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def block(self, family: int) -> tuple[str, Callable[[int], str]]:
        n = self._next.get(family, 0)
        self._next[family] = n + 1
        return f"127.{family}.{n}.1", (lambda h, f=family, n=n: f"127.{f}.{n}.{h}")

    def hosts(self, count: int) -> list[str]:
        _, host = self.block(50)
        return [host(h) for h in range(2, 2 + count)]


def _port(rng: random.Random, common: bool) -> int:
    """A well-known service port, or a random unprivileged one outside BitTorrent's 6881-6889."""
    if common:
        return rng.choice(_COMMON_PORTS)
    while True:
        port = rng.choice([rng.randint(1025, 65535), rng.randint(49152, 65535)])
        if not 6881 <= port <= 6889:
            return port


_RATES = (0, 0, 150_000, 400_000, 1_000_000, 3_000_000)


def _schedule(rng: random.Random, duration: int, seed: bool, first: bool, latest: float = 0.5) -> list[list[float]]:
    """When a peer is online: the first seed from the start, others join in the first ``latest``
    share of the run; a quarter of leechers leave early, half of those come back later."""
    start = 0.0 if seed and first else rng.uniform(0, latest * duration)
    online = [[round(start, 2), duration + 60]]
    if not seed and rng.random() < 0.25:  # leaves early, and maybe comes back later
        leave = rng.uniform(start + 0.3 * (duration - start), duration)
        online[0][1] = round(leave, 2)
        back = leave + rng.uniform(2, max(3, 0.2 * duration))
        if rng.random() < 0.5 and back < duration - 3:
            online.append([round(back, 2), duration + 60])
    return online


def _content(rng: random.Random, scale: float) -> dict[str, Any]:
    return {"size": int(min(rng.lognormvariate(math.log(3e6 * scale), 0.4), 400e6)), "n_files": rng.randint(1, 4),
            "piece_size": rng.choice([16384, 32768, 65536, 262144])}


def swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, transport: str,
          n_peers: int, members: Sequence[str] = (), common_ports: float = 0.0, default_ports: float = 0.0,
          one_port: int | None = None, app: str = "") -> AppSpec:
    """A libtorrent swarm of ``n_peers`` (plus ``members``, hosts shared with other apps).

    Each peer listens on a well-known service port with probability ``common_ports``, on
    BitTorrent's classic 6881-6889 with probability ``default_ports``, else on a random port;
    with ``one_port``, every peer listens on that port (clients left at their default, e.g. 6881).
    """
    _, host = addr.block(12 if common_ports else {"tcp": 10, "utp": 11}[transport])
    ips = list(members) + [host(h) for h in range(2, 2 + n_peers)]
    n_seeds = max(1, min(len(ips) // 4, rng.randint(1, 3)))
    peers = []
    for i, ip in enumerate(ips):
        seed = i >= len(members) and i - len(members) < n_seeds
        online = _schedule(rng, duration, seed, i == len(members))
        peers.append({
            "ip": ip,
            "port": one_port or (rng.randint(6881, 6889) if rng.random() < default_ports
                                 else _port(rng, rng.random() < common_ports)),
            "online": online,
            "seed": seed,
            "up_rate": rng.choice(_RATES) * (1 if scale <= 1 else int(scale)),
            "down_rate": rng.choice(_RATES[:4]),
        })
    params = {"kind": "bt-swarm", "transport": transport, "peers": peers, **_content(rng, scale),
              "seed": rng.getrandbits(32)}
    name = app or ("libtorrent-utp" if transport == "utp" else "libtorrent-mse")
    return AppSpec(name=name, label="p2p", params=params, rows=pair_rows(ips, ips, (6, 17, 1), "p2p", name))


def pair_app(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The ``app`` of connections between swarm peers ``a`` and ``b``: ``<implementations>-<variant>``.

    Implementations joined by ``+`` when they differ (``biglybt+libtorrent-mse``). Variant: ``utp``
    (libtorrent over uTP), ``mse`` (one side requires MSE, the other speaks it), ``prefer`` (both
    prefer MSE but accept plain: either may be used, and libtorrent often dials plain after a failed
    attempt), ``plain`` (one side cannot encrypt and the other accepts plain), ``refused`` (one side
    requires MSE, the other cannot: handshakes that fail).
    """
    impls = "+".join(sorted({a.get("impl", "libtorrent"), b.get("impl", "libtorrent")}))
    encs = {a.get("enc", "forced"), b.get("enc", "forced")}
    if a.get("transport") == b.get("transport") == "utp":
        variant = "utp"
    elif "plain" in encs:
        variant = "refused" if "forced" in encs else "plain"
    else:
        variant = "mse" if "forced" in encs else "prefer"
    return f"{impls}-{variant}"


def member_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float, members: Sequence[str],
                 app: str) -> AppSpec:
    """A tracker swarm of WebTorrent, BiglyBT and ctorrent peers (no libtorrent) that ``members``, hosts
    of other apps, join as leechers: 1-2 seeds and 1-3 more peers of their own. The ``-impl`` twins of
    the scenarios whose swarms are libtorrent's (mixed-home-impl, mixed-office-impl, home-isp-impl), so
    that leaving libtorrent out keeps P2P hosts of those networks in training."""
    impls = ["webtorrent", "biglybt", "ctorrent"]
    seeds = [(rng.choice(impls[:2]), "prefer") for _ in range(rng.randint(1, 2))]
    others = [(rng.choice(impls), "prefer") for _ in range(rng.randint(1, 3))]
    mine = [(rng.choice(["webtorrent", "webtorrent", "biglybt"]), "prefer") for _ in members]
    peers = [(i, "plain" if i == "ctorrent" else e) for i, e in seeds + others + mine]
    return impl_swarm(rng, addr, duration, scale, peers=peers, n_seeds=len(seeds), n_ghosts=rng.randint(1, 2),
                      app=app, members=members)


def impl_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float, *,
               peers: Sequence[tuple[str, str]], n_seeds: int, n_ghosts: int, app: str,
               common_ports: float = 0.0, members: Sequence[str] = ()) -> AppSpec:
    """A swarm of several BitTorrent implementations around an HTTP tracker, with gone peers.

    ``peers`` lists (implementation, encryption) per peer; the first ``n_seeds`` seed; libtorrent
    peers may also speak uTP and leechers may join by magnet link (metadata from peers). The tracker
    (the block's .1) also hands out ``n_ghosts`` addresses where nothing listens. Labels name the
    implementations of each address pair (:func:`pair_app`); tracker connections are
    ``<impl>-tracker``, dials to gone peers ``<impl>-unreachable``. Each peer listens on a
    well-known service port with probability ``common_ports``. The last ``len(members)`` peers run
    on ``members``, hosts shared with other apps (a home user's machine that also browses and chats).
    """
    tracker_ip, host = addr.block(13)
    specs = []
    first_member = len(peers) - len(members)
    for i, (impl, enc) in enumerate(peers):
        seed = i < n_seeds
        # JVM start-up takes seconds: BiglyBT peers join early so that they trade within short runs.
        latest = 0.15 if impl == "biglybt" else 0.4
        spec = {
            "ip": members[i - first_member] if i >= first_member else host(2 + i),
            "port": _port(rng, common_ports > 0 and rng.random() < common_ports), "impl": impl,
            "enc": enc, "transport": "tcp",
            "online": _schedule(rng, duration, seed, i == 0, latest), "seed": seed,
            "up_rate": rng.choice(_RATES[2:]) * (1 if scale <= 1 else int(scale)),
            "down_rate": rng.choice((0, 0, 400_000, 1_000_000)),
        }
        if impl == "libtorrent":  # uTP as well as TCP (dials to gone peers then fail over UDP too); magnets
            spec["transport"] = rng.choice(["tcp", "tcp", "both"])
            spec["magnet"] = not seed and rng.random() < 0.5
        elif impl == "webtorrent":  # uTP first, TCP too, a DHT node of its own (data.generator.webtorrent)
            from p2pdetect.data.generator import webtorrent_scenarios as wts

            wts.draw_peer(rng, spec, seed)
        specs.append(spec)
    if any(s["impl"] == "webtorrent" for s in specs):
        from p2pdetect.data.generator import webtorrent_scenarios as wts

        wts.bootstrap_mixed(rng, specs)
    ghosts = [[host(200 + g), _port(rng, False)] for g in range(n_ghosts)]
    params = {"kind": "bt-swarm", "transport": "tcp", "peers": specs, **_content(rng, scale), "v1_only": True,
              "tracker": {"ip": tracker_ip, "port": rng.choice([6969, 80, 8080, 2710, _port(rng, False)]),
                          "interval": 20, "ghosts": ghosts},
              "seed": rng.getrandbits(32)}
    rows = []
    for i, a in enumerate(specs):
        impl = a["impl"]
        # UDP too: BiglyBT probes for a UDP tracker on the HTTP tracker's port (ICMP answers it).
        rows += pair_rows([a["ip"]], [tracker_ip], (6, 17, 1), "p2p", f"{impl}-tracker")
        rows += pair_rows([a["ip"]], [g[0] for g in ghosts], (6, 17, 1), "p2p", f"{impl}-unreachable")
        # a peer the tracker (or PEX) hands its own address dials itself before it sees its peer id
        rows += pair_rows([a["ip"]], [a["ip"]], (6, 17, 1), "p2p", f"{impl}-self")
        for b in specs[i + 1:]:
            if "webtorrent" in (impl, b["impl"]):  # its UDP ports are known: uTP and DHT rows apart
                from p2pdetect.data.generator import webtorrent_scenarios as wts

                rows += wts.swarm_pair_rows(a, b)
            else:
                rows += pair_rows([a["ip"]], [b["ip"]], (6, 17, 1), "p2p", pair_app(a, b))
    return AppSpec(name=app, label="p2p", params=params, rows=rows)


def web(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, tls: bool, port: int,
        clients: list[str], modes: list[str], app: str) -> AppSpec:
    """An HTTP(S) server on ``port`` and one client thread per (host, mode)."""
    server, _ = addr.block(20 if tls else 22)
    specs = [{"ip": ip, "mode": m, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip, m in zip(clients, modes)]
    params = {"kind": "web", "server_ip": server, "port": port, "tls": tls, "clients": specs,
              "scale": scale, "seed": rng.getrandbits(32)}
    return AppSpec(name=app, label="other", params=params,
                   rows=pair_rows(sorted(set(clients)), [server], (6,), "other", app))


def dns(rng: random.Random, addr: _Addresses, duration: int, *, clients: list[str], storminess: float,
        port: int = 53) -> AppSpec:
    """A DNS server and stub clients on ``clients``."""
    server, _ = addr.block(30)
    specs = [{"ip": ip, "start": round(rng.uniform(0, 0.1 * duration), 2)} for ip in sorted(set(clients))]
    params = {"kind": "dns", "server_ip": server, "port": port, "clients": specs, "storminess": storminess,
              "seed": rng.getrandbits(32)}
    return AppSpec(name="dns", label="other", params=params,
                   rows=pair_rows(sorted(set(clients)), [server], (17, 1), "other", "dns"))


def ssh(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str],
        modes: list[str], port: int = 22) -> AppSpec:
    """An OpenSSH server and clients: interactive shells ('shell') or scp transfers ('scp')."""
    server, _ = addr.block(40)
    specs = [{"ip": ip, "mode": m, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip, m in zip(clients, modes)]
    params = {"kind": "ssh", "server_ip": server, "port": port, "clients": specs, "scale": scale,
              "seed": rng.getrandbits(32)}
    return AppSpec(name="ssh", label="other", params=params,
                   rows=pair_rows(sorted(set(clients)), [server], (6,), "other", "ssh"))


def quic(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str],
         modes: list[str], port: int = 443) -> AppSpec:
    """A QUIC server (UDP) and clients that browse ('browse') or download ('bulk')."""
    server, _ = addr.block(24)
    specs = [{"ip": ip, "mode": m, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip, m in zip(clients, modes)]
    params = {"kind": "quic", "server_ip": server, "port": port, "tls": True, "clients": specs, "scale": scale,
              "seed": rng.getrandbits(32)}
    return AppSpec(name="quic", label="other", params=params,
                   rows=pair_rows(sorted(set(clients)), [server], (17, 1), "other", "quic"))


def _peers(rng: random.Random, scale: float, lo: int = 3, hi: int = 30) -> int:
    return rng.randint(lo, max(lo, min(hi, int(6 * scale) + 4)))


def build(scenario: str, seed: int, duration: int, scale: float) -> Plan:
    """The plan for ``scenario``: the same seed always gives the same plan."""
    rng = random.Random(f"{scenario}:{seed}")
    a = _Addresses()
    d, s = duration, scale
    apps: list[AppSpec] = []
    rate = rng.choice([20, 50, 100, 200])
    if scenario == "p2p-tcp-mse":
        for _ in range(rng.randint(1, 1 + int(s > 1))):
            apps.append(swarm(rng, a, d, s, transport="tcp", n_peers=_peers(rng, s)))
    elif scenario == "p2p-utp":
        for _ in range(rng.randint(1, 1 + int(s > 1))):
            apps.append(swarm(rng, a, d, s, transport="utp", n_peers=_peers(rng, s)))
    elif scenario == "p2p-mixed-ports":
        apps.append(swarm(rng, a, d, s, transport="tcp", n_peers=_peers(rng, s), common_ports=0.7,
                          app="libtorrent-mse"))
        apps.append(swarm(rng, a, d, s, transport="utp", n_peers=_peers(rng, s), common_ports=0.7,
                          app="libtorrent-utp"))
    elif scenario == "p2p-one-port":  # every peer on its client's default port: remote ports say nothing
        for transport in ("tcp", "utp"):
            apps.append(swarm(rng, a, d, s, transport=transport, n_peers=_peers(rng, s, 6, 30),
                              one_port=rng.choice([6881, 6881, 51413, 6889])))
    elif scenario == "p2p-biglybt":
        peers = [("biglybt", rng.choice(["forced", "forced", "prefer"])) for _ in range(3 + int(s > 1))]
        apps.append(impl_swarm(rng, a, d, s, peers=peers, n_seeds=1, n_ghosts=rng.randint(1, 2), app="biglybt-swarm"))
    elif scenario == "p2p-ctorrent":
        peers = [("ctorrent", "plain")] * rng.randint(4, 6 + int(2 * s))
        apps.append(impl_swarm(rng, a, d, s, peers=peers, n_seeds=rng.randint(1, 2), n_ghosts=rng.randint(1, 3),
                               app="ctorrent-swarm"))
    elif scenario == "p2p-mixed-impl":
        # A libtorrent seed that also speaks plain (so ctorrent can fetch from it), then a shuffled mix;
        # a second seed may be of any implementation.
        rest = ([("libtorrent", rng.choice(["forced", "forced", "prefer"])) for _ in range(rng.randint(1, 3))]
                + [("biglybt", rng.choice(["forced", "forced", "prefer"])) for _ in range(rng.randint(1, 2))]
                + [("ctorrent", "plain") for _ in range(rng.randint(1, 3))])
        rng.shuffle(rest)
        apps.append(impl_swarm(rng, a, d, s, peers=[("libtorrent", "prefer")] + rest, n_seeds=rng.randint(1, 2),
                               n_ghosts=rng.randint(1, 3), app="mixed-impl-swarm"))
    elif scenario in ("p2p-service-ports", "p2p-service-ports-only"):
        # Peers of implementations other than libtorrent on 443, 80, 8080, 22, 25...: P2P on a service port is
        # told by its behaviour, and not learnt from one implementation (libtorrent's p2p-mixed-ports). In the
        # -only variant every peer listens on one (libtorrent's p2p-evasion swarm): no flow between high ports.
        first = rng.choice(["webtorrent", "biglybt"])
        rest = ([("webtorrent", rng.choice(["forced", "prefer", "plain"])) for _ in range(rng.randint(1, 3))]
                + [("biglybt", rng.choice(["forced", "prefer"])) for _ in range(rng.randint(1, 2))]
                + [("ctorrent", "plain") for _ in range(rng.randint(1, 2))])
        rng.shuffle(rest)
        apps.append(impl_swarm(rng, a, d, s, peers=[(first, "prefer")] + rest, n_seeds=rng.randint(1, 2),
                               n_ghosts=rng.randint(1, 2), app="service-ports-swarm",
                               common_ports=1.0 if scenario == "p2p-service-ports-only" else 0.7))
    elif scenario == "mixed-home-impl":
        # Homes whose users browse, chat (TLS on a random high port) and run a client other than libtorrent:
        # ordinary flows of a P2P host, the negatives of mixed-home without libtorrent.
        hosts = a.hosts(rng.randint(3, 6))
        apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts,
                        modes=[rng.choice(["browse", "browse", "stream"]) for _ in hosts], app="https-mixed"))
        chat = rng.sample(hosts, k=min(len(hosts), rng.randint(2, 4)))
        apps.append(web(rng, a, d, s, tls=True, port=_port(rng, False), clients=chat, modes=["chat"] * len(chat),
                        app="https-chat"))
        apps.append(dns(rng, a, d, clients=hosts, storminess=1.0))
        torrenters = rng.sample(chat, k=rng.randint(1, min(2, len(chat))))
        apps.append(member_swarm(rng, a, d, s, torrenters, app="home-impl-swarm"))
    elif scenario == "web":
        hosts = a.hosts(rng.randint(4, 12))
        apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts),
                        app="https-browse"))
        few = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 4)))
        apps.append(web(rng, a, d, s, tls=False, port=rng.choice([80, 8080]), clients=few,
                        modes=["browse"] * len(few), app="http-browse"))
        chat = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 4)))
        apps.append(web(rng, a, d, s, tls=True, port=_port(rng, False), clients=chat, modes=["chat"] * len(chat),
                        app="https-chat"))
        apps.append(dns(rng, a, d, clients=hosts, storminess=1.0))
    elif scenario == "bulk":
        hosts = a.hosts(rng.randint(2, 6))
        apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["bulk"] * len(hosts),
                        app="https-bulk"))
        few = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 3)))
        apps.append(web(rng, a, d, s, tls=False, port=rng.choice([80, 8080]), clients=few,
                        modes=["bulk"] * len(few), app="http-bulk"))
        hi = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 2)))
        apps.append(web(rng, a, d, s, tls=True, port=_port(rng, False), clients=hi, modes=["bulk"] * len(hi),
                        app="https-bulk-highport"))
    elif scenario == "streaming":
        hosts = a.hosts(rng.randint(2, 8))
        apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["stream"] * len(hosts),
                        app="https-streaming"))
        few = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 2)))
        apps.append(web(rng, a, d, s, tls=False, port=8080, clients=few, modes=["stream"] * len(few),
                        app="http-streaming"))
        apps.append(dns(rng, a, d, clients=hosts, storminess=0.3))
    elif scenario == "dns":
        for _ in range(rng.randint(1, 2)):
            apps.append(dns(rng, a, d, clients=a.hosts(rng.randint(4, 12)), storminess=rng.choice([0.5, 1.0, 2.0])))
    elif scenario == "ssh":
        hosts = a.hosts(rng.randint(2, 6))
        modes = [rng.choice(["shell", "shell", "scp"]) for _ in hosts]
        modes[0] = "scp"
        apps.append(ssh(rng, a, d, s, clients=hosts, modes=modes, port=rng.choice([22, 22, 2222, _port(rng, False)])))
        apps.append(dns(rng, a, d, clients=hosts, storminess=0.3))
    elif scenario == "quic":
        hosts = a.hosts(rng.randint(3, 10))
        apps.append(quic(rng, a, d, s, clients=hosts, modes=[rng.choice(["browse", "browse", "bulk"]) for _ in hosts],
                         port=rng.choice([443, 443, 8443, _port(rng, False)])))
        apps.append(dns(rng, a, d, clients=hosts, storminess=0.5))
    elif scenario in ("mixed-office", "mixed-home", "mixed-office-impl"):
        office = scenario.startswith("mixed-office")
        hosts = a.hosts(rng.randint(8, 20) if office else rng.randint(3, 6))
        apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts,
                        modes=[rng.choice(["browse", "browse", "stream"] if not office else ["browse"]) for _ in hosts],
                        app="https-mixed"))
        chat = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 4)))
        apps.append(web(rng, a, d, s, tls=True, port=_port(rng, False), clients=chat, modes=["chat"] * len(chat),
                        app="https-chat"))
        bulk = rng.sample(hosts, k=min(len(hosts), rng.randint(1, 2)))
        apps.append(web(rng, a, d, s, tls=rng.random() < 0.7, port=rng.choice([443, 80, 8080, 8443]),
                        clients=bulk, modes=["bulk"] * len(bulk), app="web-bulk"))
        apps.append(dns(rng, a, d, clients=hosts, storminess=1.0))
        if office:
            admins = rng.sample(hosts, k=rng.randint(1, 2))
            apps.append(ssh(rng, a, d, s, clients=admins, modes=["shell"] * len(admins)))
        torrenters = rng.sample(hosts, k=rng.randint(1, 2))
        if scenario == "mixed-office-impl":   # the same office, its torrenters in a swarm of other clients
            apps.append(member_swarm(rng, a, d, s, torrenters, app="office-impl-swarm"))
        else:
            apps.append(swarm(rng, a, d, s, transport=rng.choice(["tcp", "tcp", "utp"]),
                              n_peers=_peers(rng, s, 3, 10 if office else 25), members=torrenters,
                              common_ports=0.0 if rng.random() < 0.6 else 0.5, default_ports=0.2))
            if not office and rng.random() < 0.5:
                apps.append(swarm(rng, a, d, s, transport="utp", n_peers=_peers(rng, s, 3, 10), members=[],
                                  default_ports=0.2))
    elif scenario in ("home-isp", "home-isp-impl"):  # homes behind an ISP router (WAN paths, NAT): generator.isp
        from p2pdetect.data.generator import isp

        homes = isp.build(rng, a, d, s, impls=scenario == "home-isp-impl")
        apps += homes[0]
        return Plan(scenario=scenario, rate_mbit=rate, apps=apps, homes=homes[1])
    else:
        from p2pdetect.data.generator import (  # they import this module: loaded on first use
            ed2k_scenarios, evasion, hard_negatives, realistic, webtorrent_scenarios)

        family = next((m for m in (hard_negatives, realistic, evasion, webtorrent_scenarios, ed2k_scenarios)
                       if scenario in m.SCENARIOS),
                      None)
        if family is None:
            raise ValueError(f"unknown scenario {scenario!r}")
        apps += family.build(scenario, rng, a, d, s)
    return Plan(scenario=scenario, rate_mbit=rate, apps=apps)

"""The evasion scenario: BitTorrent dressed as something else, as the seed documents describe it.

``p2p-evasion`` runs two swarms (each one worker of data.generator.evasion_swarm):

- an SSL-torrent swarm (``libtorrent-tls``): BitTorrent inside TLS, peers listening on 443 and other
  well-known ports, announcing to an HTTPS tracker (``libtorrent-tls-tracker``);
- a swarm whose peers listen on 443, 80, 8080 and 22 with forced, preferred and plain encryption
  (labels by :func:`data.generator.scenarios.pair_app`), joined by client hosts that reach tracker and
  peers only through an SSH SOCKS tunnel (``ssh -N -D``): their SSH connection to the server is
  ``libtorrent-socks`` (it carries BitTorrent), the server's connections to the swarm
  ``libtorrent-socks-exit``.

``p2p-evasion-impl`` is the second swarm without libtorrent: its direct peers run BiglyBT or ctorrent on
the same ports, its tunnelled clients BiglyBT through the same SSH SOCKS tunnel (``biglybt-socks``,
``biglybt-socks-exit``), so that leaving libtorrent out of training keeps a hidden swarm in it. SSL
torrents are libtorrent's alone and have no twin.

Address plan (labels by address pair stay exact): K = 70 SSL swarms (tracker .1), 71 SOCKS swarms
(tracker .1), 72 SSH servers; tunnelled clients are client hosts (127.50.N.x) that talk only to their
SSH server. The SSH server's connections into its swarm's block leave from the server's own address
(a local route with that source, set up by the worker), so (server, peer) pairs belong to this app
alone, and the client's hop to its local proxy (127.0.0.1 both ends) never reaches the capture.
"""

from __future__ import annotations

import random
from typing import Any

from p2pdetect.data.generator.labels import LabelRow, pair_rows
from p2pdetect.data.generator.scenarios import _RATES, AppSpec, _Addresses, _content, _port, _schedule, pair_app

#: Scenario names this module builds, in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = ("p2p-evasion", "p2p-evasion-impl")

#: Worker kinds of these apps: kind -> (module under data.generator, its entry function).
KINDS: dict[str, tuple[str, str]] = {"bt-evasion": ("evasion_swarm", "run_evasion_swarm")}

#: Ports peers hide behind: HTTPS, HTTP, HTTP proxies and SSH (each peer has its own address).
EVASION_PORTS: tuple[int, ...] = (443, 80, 8080, 22)

#: Apps whose BitTorrent travels inside another protocol, and the protocols a dissector sees instead
#: (the label audit counts those flows as wrapped, not as disagreements).
WRAPPERS: dict[str, frozenset[str]] = {"libtorrent-tls": frozenset({"tls"}),
                                       "libtorrent-tls-tracker": frozenset({"tls"}),
                                       "libtorrent-socks": frozenset({"ssh"}), "biglybt-socks": frozenset({"ssh"})}

_ALL = (6, 17, 1)

#: The address a tunnelled BiglyBT peer binds to (its SOCKS proxy's, so that its hop to the proxy stays off
#: the capture).
LOCALHOST = "127.0.0.1"


def _peer(rng: random.Random, ip: str, duration: int, scale: float, seed: bool, first: bool) -> dict[str, Any]:
    return {"ip": ip, "online": _schedule(rng, duration, seed, first, 0.3), "seed": seed,
            "up_rate": rng.choice(_RATES[2:]) * (1 if scale <= 1 else int(scale)),
            "down_rate": rng.choice((0, 0, 400_000, 1_000_000)), "transport": "tcp"}


def tls_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, n_peers: int) -> AppSpec:
    """An SSL-torrent swarm of ``n_peers`` libtorrent peers (half or more on 443) and its HTTPS tracker."""
    tracker_ip, host = addr.block(70)
    peers = []
    for i in range(n_peers):
        p = _peer(rng, host(2 + i), duration, scale, seed=i == 0, first=i == 0)
        p["port"] = 443 if rng.random() < 0.6 else rng.choice([8443, 80, 8080, _port(rng, False)])
        peers.append(p)
    params = {"kind": "bt-evasion", "ssl": True, "peers": peers, **_content(rng, scale),
              "tracker": {"ip": tracker_ip, "port": rng.choice([443, 443, 8443]), "https": True, "interval": 15},
              "seed": rng.getrandbits(32)}
    ips = [p["ip"] for p in peers]
    rows = pair_rows(ips, [tracker_ip], _ALL, "p2p", "libtorrent-tls-tracker") + pair_rows(ips, ips, _ALL, "p2p",
                                                                                           "libtorrent-tls")
    return AppSpec(name="libtorrent-tls", label="p2p", params=params, rows=rows)


def socks_swarm(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, n_peers: int,
                tunnelled: list[str], impls: tuple[str, ...] = ()) -> AppSpec:
    """A swarm on ports 443/80/8080/22 with mixed encryption, joined by ``tunnelled`` client hosts
    through an SSH server's SOCKS tunnel. Its peers are libtorrent's, or with ``impls`` each direct
    peer runs one of those implementations (BiglyBT, ctorrent: TCP only) and the tunnelled ones BiglyBT
    (which, as libtorrent, can send its tracker and peer connections through a SOCKS proxy)."""
    tracker_ip, host = addr.block(71)
    sshd_ip, _ = addr.block(72)
    peers = []
    for i in range(n_peers):
        p = _peer(rng, host(2 + i), duration, scale, seed=i == 0, first=i == 0)
        p["port"] = EVASION_PORTS[i % len(EVASION_PORTS)] if rng.random() < 0.8 else _port(rng, False)
        # The first seed prefers MSE so that plain peers can fetch from it too.
        p["enc"] = "prefer" if i == 0 else rng.choice(["forced", "forced", "prefer", "plain"])
        p["transport"] = rng.choice(["tcp", "tcp", "both"])
        if impls:
            p["impl"] = "biglybt" if i == 0 else rng.choice(impls)
            p["transport"] = "tcp"
            p["enc"] = "plain" if p["impl"] == "ctorrent" else p["enc"].replace("plain", "prefer")
        peers.append(p)
    for k, ip in enumerate(tunnelled):
        p = _peer(rng, ip, duration, scale, seed=False, first=False)
        p.update(port=0, enc=rng.choice(["forced", "prefer"]),
                 tunnel={"socks_port": 1080 + k, "listen_port": _port(rng, False)})
        if impls:
            p["impl"] = "biglybt"
        peers.append(p)
    name = "biglybt" if impls else "libtorrent"
    params = {"kind": "bt-evasion", "ssl": False, "peers": peers, **_content(rng, scale),
              "tracker": {"ip": tracker_ip, "port": rng.choice([80, 8080, 6969]), "https": False, "interval": 15},
              "sshd": {"ip": sshd_ip, "port": 22}, "exit_route": tracker_ip.rsplit(".", 1)[0] + ".0/24",
              "seed": rng.getrandbits(32)}
    direct = [p for p in peers if "tunnel" not in p]
    rows: list[LabelRow] = []
    rows += pair_rows(tunnelled, [sshd_ip], (6,), "p2p", f"{name}-socks")
    rows += pair_rows([sshd_ip], [tracker_ip] + [p["ip"] for p in direct], _ALL, "p2p", f"{name}-socks-exit")
    for p in direct:
        rows += pair_rows([p["ip"]], [tracker_ip], _ALL, "p2p", f"{p.get('impl', 'libtorrent')}-tracker")
    if impls:
        # BiglyBT sends its tracker announces to a loopback tracker directly, not through its proxy (from
        # 127.0.0.1, the address it binds to; it announces port 0): the tunnel leaks them, and the
        # direct peers dial the address the tracker hands out in vain.
        rows += pair_rows([LOCALHOST], [tracker_ip], _ALL, "p2p", f"{name}-tracker")
        rows += pair_rows([LOCALHOST], [p["ip"] for p in direct], _ALL, "p2p", f"{name}-unreachable")
    for i, a in enumerate(direct):
        for b in direct[i + 1:]:
            rows += pair_rows([a["ip"]], [b["ip"]], _ALL, "p2p", pair_app(a, b))
    return AppSpec(name=f"{name}-socks", label="p2p", params=params, rows=rows)


def build(scenario: str, rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of ``scenario`` (one of SCENARIOS)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    n = max(3, min(8, int(3 * scale) + 2))
    if scenario == "p2p-evasion-impl":   # no SSL torrents: they are libtorrent's alone
        return [socks_swarm(rng, addr, duration, scale, n_peers=rng.randint(3, n), tunnelled=addr.hosts(rng.randint(1, 2)),
                            impls=("biglybt", "biglybt", "ctorrent"))]
    return [tls_swarm(rng, addr, duration, scale, n_peers=rng.randint(3, n)),
            socks_swarm(rng, addr, duration, scale, n_peers=rng.randint(3, n),
                        tunnelled=addr.hosts(rng.randint(1, 2)))]

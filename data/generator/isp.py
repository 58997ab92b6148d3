"""The ``home-isp`` scenario: subscriber homes behind an ISP router, seen on the router's uplink.

Why: an operator sees its subscribers from the uplink, after their home routers: several hosts of a
home share one public address (NAT), round trips are the internet's, and inbound connections to a
NAT'd home fail. Homes browse, stream, chat and resolve names; a few torrent (MSE over TCP, uTP),
each with one host, in swarms of remote peers: libtorrent's in ``home-isp``; WebTorrent's, BiglyBT's and
ctorrent's in ``home-isp-impl`` (the same homes and paths, so that leaving libtorrent out of training keeps a
swarm seen from an ISP's uplink, through NAT, in it). topology.py builds the network (every home's line,
the NAT, the WAN paths); this module only says who lives where and runs what.

Labels stay exact after NAT (see topology.py): every server and remote peer belongs to one app, and
a home takes part in at most one swarm, so a public address pair names one app.
"""

from __future__ import annotations

import random
from typing import Any

from p2pdetect.data.generator.scenarios import AppSpec, _Addresses, _peers, _port, dns, member_swarm, swarm, web

#: Scenario names this module builds.
SCENARIOS: tuple[str, ...] = ("home-isp", "home-isp-impl")


def build(rng: random.Random, addr: _Addresses, duration: int, scale: float,
          impls: bool = False) -> tuple[list[AppSpec], list[dict[str, Any]]]:
    """The apps and subscriber homes of ``home-isp``: 4-8 homes (more with ``scale``) of 1-3 hosts,
    about 60 % behind NAT (at least one NAT'd home and one with a public address). impls: the
    torrenting homes run WebTorrent, BiglyBT or ctorrent in one swarm of remote peers of those
    implementations (``home-isp-impl``), not libtorrent."""
    d, s = duration, scale
    homes = [addr.hosts(rng.randint(1, 3)) for _ in range(min(12, rng.randint(4, 8) + int(s > 1) * 2))]
    nat = [rng.random() < 0.6 for _ in homes]
    nat[0], nat[1] = True, False
    subs = [h for home in homes for h in home]
    apps = [
        web(rng, addr, d, s, tls=True, port=443, clients=subs,
            modes=[rng.choice(["browse", "browse", "stream"]) for _ in subs], app="https-browse"),
        dns(rng, addr, d, clients=subs, storminess=0.5),
    ]
    chat = rng.sample(subs, k=min(len(subs), rng.randint(1, 4)))
    apps.append(web(rng, addr, d, s, tls=True, port=_port(rng, False), clients=chat, modes=["chat"] * len(chat),
                    app="https-chat"))
    bulk = rng.sample(subs, k=min(len(subs), rng.randint(1, 2)))
    apps.append(web(rng, addr, d, s, tls=rng.random() < 0.7, port=rng.choice([443, 80, 8080]), clients=bulk,
                    modes=["bulk"] * len(bulk), app="web-bulk"))
    # Torrenting homes: one host each, and each home in one swarm only (labels stay exact after NAT).
    order = rng.sample(range(len(homes)), k=len(homes))
    if impls:   # one host of 1-3 homes in a swarm of remote seeds and peers (a NAT'd home dials out)
        members = [rng.choice(homes[i]) for i in order[:rng.randint(1, 3)]]
        apps.append(member_swarm(rng, addr, d, s, members, app="isp-impl-swarm"))
    else:
        first, second = order[:rng.randint(1, 2)], order[2:2 + rng.randint(0, 2)]
        for transport, chosen in (("tcp", first), ("utp", second)):
            if chosen:
                apps.append(swarm(rng, addr, d, s, transport=transport, n_peers=_peers(rng, s, 3, 12),
                                  members=[rng.choice(homes[i]) for i in chosen], default_ports=0.2))
    return apps, [{"hosts": home, "nat": n} for home, n in zip(homes, nat)]

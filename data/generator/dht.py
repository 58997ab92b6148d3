"""A population of libtorrent DHT nodes (BEP 5) that bootstrap among themselves, with churn.

Why: at a real vantage point about half of all P2P flows are DHT queries and replies, one or two
packets each, to hundreds of distinct nodes. A swarm of a few peers cannot show that; a DHT of
hundreds of nodes can. Nodes are cheap: one libtorrent session listening on many addresses runs one
DHT node (with its own node id) per address, so a few dozen sessions in one process give hundreds
of nodes (measured: 25 sessions x 16 addresses = 400 nodes in 69 MB and ~5 % of a core).
Node sessions hold no torrents and accept no peer connections: they only route, store and answer.
Sessions leave and join on their schedule; the addresses of those that left stay in routing tables
and draw queries nobody answers, as gone nodes do in the real DHT.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: A private DHT on 127.x: many nodes per /24 and loopback addresses must be allowed in routing tables.
DHT_SETTINGS: dict[str, Any] = {
    "enable_dht": True,
    "dht_bootstrap_nodes": "",
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_ignore_dark_internet": False,
    "dht_prefer_verified_node_ids": False,
}

QUIET_SETTINGS: dict[str, Any] = {
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_ip_notifier": False,
    "alert_mask": 0,
}


def random_hash(rng: random.Random) -> Any:
    """A random 160-bit key: an info-hash nobody (or somebody) announced, or a lookup target."""
    import libtorrent as lt

    return lt.sha1_hash(hashlib.sha1(rng.getrandbits(64).to_bytes(8, "big")).digest())


def bootstrap(ses: Any, nodes: Sequence[tuple[str, int]], rng: random.Random, k: int = 8) -> None:
    """Seed ``ses``'s routing table with ``k`` random ``nodes`` (as a client's cached node list does)."""
    for node in rng.sample(list(nodes), min(k, len(nodes))):
        ses.add_dht_node(node)


def node_session(endpoints: Sequence[tuple[str, int]]) -> Any:
    """A libtorrent session that runs one DHT node per ``(ip, port)`` endpoint and nothing else."""
    import libtorrent as lt

    return lt.session({
        **QUIET_SETTINGS, **DHT_SETTINGS,
        "listen_interfaces": ",".join(f"{ip}:{port}" for ip, port in endpoints),
        "enable_incoming_tcp": False, "enable_outgoing_tcp": False,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "aio_threads": 1, "hashing_threads": 1,
    })


def run_dht(params: dict[str, Any]) -> None:
    """Run DHT node sessions until ``params['until']``.

    params: ``sessions`` (list of {endpoints: [[ip, port], ...], online: [[join, leave], ...]} in
    seconds after ``t0``; sessions online at 0 start at once, before t0, as the DHT already exists
    when a client arrives), ``lookups_per_s`` (random get_peers lookups by random live sessions,
    the background of other users' searches), ``seed``.
    """
    rng = random.Random(params["seed"])
    t0, until = params["t0"], params["until"]
    specs = params["sessions"]
    everyone = [(ip, int(port)) for s in specs for ip, port in s["endpoints"]]
    live: dict[int, Any] = {}
    rate = float(params.get("lookups_per_s", 1.0))
    next_lookup = time.time()
    try:
        while time.time() < until:
            now = time.time() - t0
            for i, spec in enumerate(specs):
                want = any(a <= max(now, 0.0) < b for a, b in spec["online"])
                if want and i not in live:
                    live[i] = node_session([(ip, int(port)) for ip, port in spec["endpoints"]])
                    bootstrap(live[i], everyone, rng)
                elif not want and i in live:
                    del live[i]  # the session closes its sockets: its nodes are gone
                    log.info("DHT session %d left (%d endpoints)", i, len(spec["endpoints"]))
            if live and time.time() >= next_lookup:
                rng.choice(list(live.values())).dht_get_peers(random_hash(rng))
                next_lookup = time.time() + rng.expovariate(rate) if rate > 0 else until
            time.sleep(0.05)
    finally:
        log.info("DHT: %d sessions live at the end, %d endpoints in all", len(live), len(everyone))
        live.clear()

"""Realistic swarms around a few observed clients: many torrents, trackers, LSD, magnets, gone peers.

Why: at a real vantage point most P2P flows are tiny (median 2 packets): DHT lookups, dials to peers
that left, UDP tracker announces, local peer discovery, peers that drop after the handshake. This
worker runs every libtorrent session of such a world except the DHT node population (data.generator.dht):

- observed clients: TCP and uTP, encryption preferred, several torrents each (leeching from a
  .torrent, fetching metadata from a magnet link over ut_metadata, seeding, and magnets nobody
  seeds), DHT with a short announce interval plus lookups for idle torrents, LSD when asked, and
  dials to peers from a stale peer list;
- remote peers with roles: ``seed`` (seed-only), ``leech``, ``choker`` (never unchokes, drops idle
  peers) and ``busy`` (a tiny connection limit: handshakes that end at once); each joins and leaves
  on its own schedule (churn), speaks TCP, uTP or both, with forced, preferred or no encryption;
- an HTTP tracker (data.generator.tracker) and a UDP tracker (data.generator.udp_tracker), both
  handing out gone peers beside live ones, in a process of their own (:func:`run_trackers`);
- gone addresses: 40 % answer with RST / ICMP port unreachable (the kernel does), the ``silent`` ones
  never answer: an nftables rule in the namespace drops what reaches them after the capture saw it,
  as a peer behind NAT that left looks.
"""

from __future__ import annotations

import logging
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.bittorrent import _apply_global_peer_class, make_random_payload
from p2pdetect.data.generator.dht import QUIET_SETTINGS, DHT_SETTINGS, bootstrap, random_hash

log = logging.getLogger(__name__)

_ROLE_SETTINGS: dict[str, dict[str, Any]] = {
    "client": {},
    "seed": {},
    "leech": {},
    # Never unchokes anyone and drops connections that stay uninteresting: the handshake-then-silence
    # peers a client meets in every real swarm.
    "choker": {"unchoke_slots_limit": 0, "inactivity_timeout": 8},
    # Accepts a connection, finds itself over its limit, and closes it.
    "busy": {"connections_limit": 2, "unchoke_slots_limit": 1, "inactivity_timeout": 15},
}


def settings(host: dict[str, Any]) -> dict[str, Any]:
    """libtorrent settings of one host of the swarm (client or remote peer) from its spec."""
    import libtorrent as lt

    tcp = host["transport"] in ("tcp", "both")
    utp = host["transport"] in ("utp", "both")
    enc = host.get("enc", "prefer")
    policy = {"forced": lt.enc_policy.forced, "prefer": lt.enc_policy.enabled, "plain": lt.enc_policy.disabled}[enc]
    return {
        **QUIET_SETTINGS, **DHT_SETTINGS,
        "listen_interfaces": f"{host['ip']}:{host['port']}",
        "outgoing_interfaces": host["ip"],
        "enable_lsd": bool(host.get("lsd")),
        "dht_announce_interval": int(host.get("announce_interval", 60)),
        "enable_outgoing_tcp": tcp, "enable_incoming_tcp": tcp,
        "enable_outgoing_utp": utp, "enable_incoming_utp": utp,
        "out_enc_policy": int(policy), "in_enc_policy": int(policy),
        "allowed_enc_level": int(lt.enc_level.rc4 if enc == "forced" else lt.enc_level.both),
        "prefer_rc4": enc == "forced",
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True, "announce_to_all_tiers": True,
        "upload_rate_limit": int(host.get("up_rate", 0)), "download_rate_limit": int(host.get("down_rate", 0)),
        "peer_connect_timeout": 7,
        "aio_threads": 1, "hashing_threads": 1,
        "alert_mask": int(lt.alert.category_t.error_notification),
        "user_agent": "libtorrent/2.1",
        **_ROLE_SETTINGS[host["role"]],
    }


def make_torrent(content: Path, piece_size: int, trackers: list[str]) -> bytes:
    """A v1 .torrent for ``content`` announcing to ``trackers`` (one tier each, as public torrents list them)."""
    import libtorrent as lt

    fs = lt.file_storage()
    lt.add_files(fs, str(content))
    ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    lt.set_piece_hashes(ct, str(content.parent))
    return lt.bencode(ct.generate())


class Host:
    """One libtorrent session with its torrents; started and stopped by its schedule."""

    def __init__(self, spec: dict[str, Any], world: "World") -> None:
        self.spec = spec
        self.world = world
        self.session: Any = None
        self.handles: list[Any] = []

    def start(self, rng: random.Random) -> None:
        """Join: open the session, seed its DHT routing table, add its torrents."""
        import libtorrent as lt

        s = self.spec
        self.session = lt.session(settings(s))
        _apply_global_peer_class(self.session)
        own = lt.ip_filter()  # a host that learns its own address (DHT, PEX, LSD) must not dial itself
        own.add_rule(s["ip"], s["ip"], 1)
        self.session.set_ip_filter(own)
        bootstrap(self.session, self.world.dht, rng)
        if s["role"] == "client":  # a client restarts with its saved node cache: many of those nodes are gone
            for node in self.world.gone_dht:
                self.session.add_dht_node(node)
        self.handles = [self.session.add_torrent(self.world.add_params(s["ip"], t, mode)) for t, mode in s["torrents"]]

    def stop(self) -> None:
        """Leave: the session closes its connections and sockets (peers see RST/FIN, then silence)."""
        self.session = None
        self.handles = []

    def dial_gone(self, rng: random.Random, k: int) -> None:
        """Dial ``k`` peers from a stale peer list: addresses that left the swarm, each dialled once
        (a real client meets a different stale peer each time; repeats would merge into one flow)."""
        if self.session is None or not self.handles:
            return
        for addr in self.world.stale(k):
            try:
                rng.choice(self.handles).connect_peer(addr)
            except RuntimeError:  # torrent not ready yet
                pass

    def lookup(self, rng: random.Random) -> None:
        """A DHT lookup for an idle torrent (one this client keeps but nobody seeds)."""
        if self.session is not None:
            self.session.dht_get_peers(random_hash(rng))

    def progress(self) -> list[float]:
        """Download progress of each torrent (1.0: complete), for the log."""
        return [round(float(h.status().progress), 2) for h in self.handles if h.is_valid()]


class World:
    """Torrents, their content and .torrent files, trackers and gone addresses shared by all hosts."""

    def __init__(self, params: dict[str, Any], rng: random.Random) -> None:
        import libtorrent as lt

        workdir = Path(params["workdir"])
        self.workdir = workdir
        self.dht = [(ip, int(port)) for ip, port in params["dht"]]
        self.gone_dht = [(ip, int(port)) for ip, port in params.get("gone_dht", [])]
        self.gone_peers = [(ip, int(port)) for ip, port in params.get("gone_peers", [])]
        self._stale = rng.sample(self.gone_peers, len(self.gone_peers))
        urls = {}
        if params.get("http_tracker"):
            urls["http"] = "http://{ip}:{port}/announce".format(**params["http_tracker"])
        if params.get("udp_tracker"):
            urls["udp"] = "udp://{ip}:{port}/announce".format(**params["udp_tracker"])
        self.content: list[Path] = []
        self.info: list[Any] = []
        self.trackers: list[list[str]] = []
        for i, t in enumerate(params["torrents"]):
            content = workdir / f"t{i}" / "content"
            make_random_payload(content, t["size"], t["n_files"], rng)
            trackers = [urls[k] for k in t["trackers"] if k in urls]
            self.content.append(content)
            self.info.append(lt.torrent_info(lt.bdecode(make_torrent(content, t["piece_size"], trackers))))
            self.trackers.append(trackers)
        # Magnets of torrents nobody seeds: clients keep looking them up in the DHT and at trackers.
        self.dead = [(random_hash(rng), [urls[k] for k in d if k in urls]) for d in params.get("dead", [])]

    def stale(self, k: int) -> list[tuple[str, int]]:
        """``k`` gone peers not dialled from a stale list before (fewer when the pool runs dry)."""
        out, self._stale = self._stale[:k], self._stale[k:]
        return out

    def add_params(self, ip: str, index: int, mode: str) -> Any:
        """add_torrent_params for torrent ``index`` held by host ``ip`` as ``seed``, ``leech``,
        ``magnet`` (metadata from peers) or ``dead`` (``index`` into the dead magnets)."""
        import libtorrent as lt

        save = self.workdir / ip / (f"dead{index}" if mode == "dead" else str(index))
        if mode == "dead":
            ih, trackers = self.dead[index]
            uri = f"magnet:?xt=urn:btih:{ih}" + "".join(f"&tr={u}" for u in trackers)
            atp = lt.parse_magnet_uri(uri)
        elif mode == "magnet":
            trackers = self.trackers[index]
            uri = f"magnet:?xt=urn:btih:{self.info[index].info_hashes().v1}" + "".join(f"&tr={u}" for u in trackers)
            atp = lt.parse_magnet_uri(uri)
        else:
            atp = lt.add_torrent_params()
            atp.ti = self.info[index]
        if mode == "seed":
            save = self.content[index].parent
            atp.flags |= lt.torrent_flags.seed_mode
        save.mkdir(parents=True, exist_ok=True)
        atp.save_path = str(save)
        return atp


def make_gone_silent(addresses: list[str], syn_retries: int = 2) -> bool:
    """Make ``addresses`` silent: packets reach the capture, then vanish.

    The rule sits on the input hook of the namespace, after loopback transmit where the capture
    sees packets; nothing answers (no RST, no ICMP), as a peer behind NAT that left looks. Dials
    give up after ``syn_retries`` SYN retransmissions with exponential backoff (3 SYNs in 3 s, as
    Windows, most BitTorrent users' system, sends; this kernel's default is 6 SYNs 1 s apart).
    Returns False (and logs) when nft is missing or fails.
    """
    sysctl = Path("/proc/sys/net/ipv4")  # per namespace
    (sysctl / "tcp_syn_retries").write_text(f"{syn_retries}\n")
    if (sysctl / "tcp_syn_linear_timeouts").exists():  # Linux >= 6.5 adds 4 retries at 1 s on top
        (sysctl / "tcp_syn_linear_timeouts").write_text("0\n")
    rules = (f"table ip p2pd_gone {{\n chain gone_input {{\n  type filter hook input priority 0; policy accept;\n"
             f"  ip daddr {{ {', '.join(addresses)} }} drop\n }}\n}}\n")
    try:
        res = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True)
    except FileNotFoundError:
        log.warning("nft is not installed: %d gone addresses answer with RST/ICMP instead of silence", len(addresses))
        return False
    if res.returncode != 0:
        log.warning("nft failed (%s): %d gone addresses answer with RST/ICMP", res.stderr.strip(), len(addresses))
        return False
    return True


def run_trackers(params: dict[str, Any]) -> None:
    """Serve the HTTP and UDP trackers of ``params`` until ``params['until']``.

    Their own process, not threads of the swarm worker: a libtorrent session holds the GIL while it
    closes and waits for its ``stopped`` announces, which Python trackers in the same process could
    then never answer (each leaving peer stalled the swarm for the 5 s tracker timeout).
    params: ``http_tracker`` / ``udp_tracker`` ({ip, port}), ``gone_peers``, ``tracker_interval``, ``seed``.
    """
    stops = []
    ghosts = [(ip, int(port)) for ip, port in params.get("gone_peers", [])]
    interval = int(params.get("tracker_interval", 30))
    if params.get("http_tracker"):
        from p2pdetect.data.generator import tracker

        t = params["http_tracker"]
        # This tracker hands every announce all of its ghosts: give it a few of the gone peers only.
        few = random.Random(params["seed"]).sample(ghosts, min(8, len(ghosts)))
        server = tracker.serve(t["ip"], int(t["port"]), tracker.Tracker(few, interval, params["seed"]))
        stops.append(server.shutdown)
    if params.get("udp_tracker"):
        from p2pdetect.data.generator import udp_tracker

        t = params["udp_tracker"]
        stops.append(udp_tracker.serve(t["ip"], int(t["port"]), udp_tracker.UdpTracker(ghosts, interval, params["seed"])))
    try:
        while time.time() < params["until"]:
            time.sleep(0.2)
    finally:
        for stop in stops:
            stop()


def run_realistic_swarm(params: dict[str, Any]) -> None:
    """Run the swarm world of ``params`` until ``params['until']`` (epoch seconds).

    params: ``hosts`` (list of {ip, port, role, transport, enc, lsd, up_rate, down_rate,
    announce_interval, torrents: [[index, mode], ...], online: [[join, leave], ...] in seconds after
    ``t0``, and for clients ``dial_gone`` (stale dials per 10 s) and ``lookups_per_s``}), ``torrents``
    ({size, n_files, piece_size, trackers: ["http", "udp"]}), ``dead`` (tracker kinds per dead
    magnet), ``dht`` and ``gone_dht`` ([[ip, port], ...]), ``gone_peers``, ``silent`` (gone addresses
    that never answer), ``http_tracker`` / ``udp_tracker`` ({ip, port}: the trackers the torrents name,
    served by :func:`run_trackers`), ``seed``.
    """
    rng = random.Random(params["seed"])
    if params.get("silent"):
        make_gone_silent(params["silent"])
    world = World(params, rng)
    t0, until = params["t0"], params["until"]
    hosts = [Host(h, world) for h in params["hosts"]]
    live: set[int] = set()
    next_tick = time.time()
    try:
        while time.time() < until:
            now = time.time() - t0
            for i, h in enumerate(hosts):
                want = any(a <= now < b for a, b in h.spec["online"])
                if want and i not in live:
                    h.start(rng)
                    live.add(i)
                    log.info("%s %s:%s joined with %s", h.spec["role"], h.spec["ip"], h.spec["port"], h.spec["torrents"])
                elif not want and i in live:
                    h.stop()
                    live.discard(i)
                    log.info("%s %s left", h.spec["role"], h.spec["ip"])
            if time.time() >= next_tick:  # once a second: clients' stale dials and idle-torrent lookups
                next_tick = time.time() + 1.0
                for i in live:
                    spec = hosts[i].spec
                    if spec["role"] == "client":
                        if rng.random() < spec.get("dial_gone", 0) / 10:
                            hosts[i].dial_gone(rng, rng.randint(1, 2))
                        if rng.random() < spec.get("lookups_per_s", 0):
                            hosts[i].lookup(rng)
            time.sleep(0.1)
    finally:
        log.info("progress at end: %s", {h.spec["ip"]: h.progress() for i, h in enumerate(hosts) if i in live})
        for h in hosts:
            h.stop()

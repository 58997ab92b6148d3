"""BitTorrent swarm of real clients, one per peer, each on its own 127.x address.

Why real engines: the product must catch MSE-encrypted BitTorrent as real clients produce it, so the
generator runs real protocol engines (handshakes, choking, piece exchange, DHT) rather than an
imitation, and more than one of them: libtorrent-rasterbar sessions (``impl`` ``libtorrent``), and
peers run by independent implementations as child processes (``biglybt``, ``ctorrent``; see their
modules). All libtorrent sessions of one swarm live in one worker process (libtorrent works in its
own C++ threads), which keeps start-up cheap; every peer still joins and leaves at its own times.
Swarms with a ``tracker`` announce to a small HTTP tracker run by the worker (data.generator.tracker).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def make_random_payload(directory: Path, size: int, n_files: int, rng: random.Random) -> None:
    """Write ``n_files`` files of random bytes summing to ``size`` bytes under ``directory``.

    Random bytes keep the data incompressible, like the media and archives most swarms carry.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sizes = [size // n_files] * n_files
    sizes[-1] += size - sum(sizes)
    for i, n in enumerate(sizes):
        seed = rng.getrandbits(64).to_bytes(8, "big")
        with open(directory / f"part{i:02d}.bin", "wb") as fh:
            # A SHA-256 counter stream: deterministic per seed and fast enough for tens of MB.
            block = 0
            left = n
            while left > 0:
                chunk = b"".join(
                    hashlib.sha256(seed + (block + j).to_bytes(8, "big")).digest() for j in range(2048)
                )
                block += 2048
                fh.write(chunk[:left])
                left -= len(chunk[:left])


def make_torrent(content: Path, piece_size: int, tracker: str | None = None, v1_only: bool = False) -> bytes:
    """Build a (non-private) .torrent for the directory ``content``; returns its bencoded bytes.

    ``v1_only``: a BitTorrent v1 torrent (no v2 hashes, no pad files), which every client reads;
    libtorrent alone otherwise makes a hybrid v1/v2 torrent.
    """
    import libtorrent as lt

    fs = lt.file_storage()
    lt.add_files(fs, str(content))
    ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only if v1_only else 0)
    if tracker:
        ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, str(content.parent))
    return lt.bencode(ct.generate())


def session_settings(ip: str, port: int, transport: str, up_rate: int, down_rate: int,
                     enc: str = "forced") -> dict[str, Any]:
    """libtorrent settings for one peer: bound to ``ip``, no LAN discovery of any kind.

    ``transport`` is ``tcp`` (MSE over TCP, uTP off), ``utp`` (MSE over uTP, TCP off) or ``both``
    (libtorrent's default: uTP first, TCP too, so it can reach TCP-only clients). ``enc`` is
    ``forced`` (RC4 required both ways), ``prefer`` (encrypted first, plain accepted) or ``plain``.
    LSD, UPnP, NAT-PMP and DHT bootstrap are off so no traffic leaves the labelled address plan.
    """
    import libtorrent as lt

    utp, tcp = transport in ("utp", "both"), transport in ("tcp", "both")
    policy = {"forced": lt.enc_policy.forced, "prefer": lt.enc_policy.enabled, "plain": lt.enc_policy.disabled}[enc]
    return {
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_ip_notifier": False,
        "out_enc_policy": int(policy),
        "in_enc_policy": int(policy),
        "allowed_enc_level": int(lt.enc_level.rc4 if enc == "forced" else lt.enc_level.both),
        "prefer_rc4": True,
        "enable_outgoing_utp": utp,
        "enable_incoming_utp": utp,
        "enable_outgoing_tcp": tcp,
        "enable_incoming_tcp": tcp,
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": up_rate,
        "download_rate_limit": down_rate,
        "alert_mask": int(lt.alert.category_t.error_notification),
        "user_agent": "libtorrent/2.1",
    }


def _apply_global_peer_class(ses: Any) -> None:
    """Rate-limit loopback peers too: libtorrent exempts 'local' peers from limits by default."""
    import libtorrent as lt

    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(flt)


class Peer:
    """One libtorrent session with one torrent; started and stopped by the swarm schedule."""

    def __init__(self, spec: dict[str, Any], torrent: bytes, workdir: Path, transport: str) -> None:
        self.spec = spec
        self.torrent = torrent
        self.workdir = workdir
        self.transport = spec.get("transport", transport)
        self.session: Any = None
        self.handle: Any = None
        self._progress = 0.0

    def start(self, seed_dir: Path | None) -> None:
        """Open the session and add the torrent (as a seed when ``seed_dir`` holds the data)."""
        import libtorrent as lt

        s = self.spec
        self.session = lt.session(
            session_settings(s["ip"], s["port"], self.transport, s["up_rate"], s["down_rate"], s.get("enc", "forced"))
        )
        _apply_global_peer_class(self.session)
        # Without NAT a peer learns its own address through DHT and PEX and would dial itself;
        # real clients behind NAT rarely do, so block our own address.
        own = lt.ip_filter()
        own.add_rule(s["ip"], s["ip"], 1)
        self.session.set_ip_filter(own)
        info = lt.torrent_info(lt.bdecode(self.torrent))
        if s.get("magnet") and seed_dir is None:
            # Joins by magnet link: the info dictionary comes from peers (ut_metadata) first.
            atp = lt.parse_magnet_uri(lt.make_magnet_uri(info))
        else:
            atp = lt.add_torrent_params()
            atp.ti = info
        save = seed_dir.parent if seed_dir is not None else self.workdir / s["ip"]
        save.mkdir(parents=True, exist_ok=True)
        atp.save_path = str(save)
        if seed_dir is not None:
            atp.flags |= lt.torrent_flags.seed_mode
        self.handle = self.session.add_torrent(atp)

    def connect(self, others: list[dict[str, Any]]) -> None:
        """Tell this peer about ``others`` directly (peer exchange and DHT do the rest)."""
        if self.session is None:
            return
        for o in others:
            try:
                self.handle.connect_peer((o["ip"], o["port"]))
            except RuntimeError:  # torrent not ready yet; the next round retries
                pass
            self.session.add_dht_node((o["ip"], o.get("dht_port", o["port"])))  # WebTorrent's DHT has a port of its own

    def stop(self) -> None:
        """Leave the swarm: close the session (peers see the connections end)."""
        if self.session is not None:
            self._progress = self.progress()
            self.session.pause()
            self.session = None
            self.handle = None

    def progress(self) -> float:
        return self._progress if self.handle is None else float(self.handle.status().progress)


def _make_peer(spec: dict[str, Any], torrent: bytes, torrent_file: Path, workdir: Path, transport: str) -> Any:
    """The peer object for ``spec['impl']``: start(seed_dir), connect(others), stop(), progress()."""
    impl = spec.get("impl", "libtorrent")
    if impl == "libtorrent":
        return Peer(spec, torrent, workdir, transport)
    if impl == "biglybt":
        from p2pdetect.data.generator.biglybt import BiglyPeer

        return BiglyPeer(spec, torrent_file, workdir)
    if impl == "ctorrent":
        from p2pdetect.data.generator.ctorrent import CTorrentPeer

        return CTorrentPeer(spec, torrent_file, workdir)
    if impl == "webtorrent":
        from p2pdetect.data.generator.webtorrent import WebTorrentPeer

        return WebTorrentPeer(spec, torrent_file, workdir)
    raise ValueError(f"unknown BitTorrent implementation {impl!r}")


def run_swarm(params: dict[str, Any]) -> None:
    """Run one swarm until ``params['until']`` (epoch seconds).

    params: ``peers`` (list of {ip, port, online, seed, up_rate, down_rate} and optionally
    ``impl``, ``enc``, ``transport``; ``online`` lists the [join, leave] intervals in seconds after
    ``t0``: a peer may leave and come back later), ``size``, ``n_files``, ``piece_size``,
    ``transport``, ``workdir``, ``seed``, and optionally ``tracker`` ({ip, port, interval, ghosts:
    [[ip, port], ...]}) and ``v1_only``.
    """
    rng = random.Random(params["seed"])
    workdir = Path(params["workdir"])
    content = workdir / "seed" / "content"
    make_random_payload(content, params["size"], params["n_files"], rng)
    trk = params.get("tracker")
    url = f"http://{trk['ip']}:{trk['port']}/announce" if trk else None
    torrent = make_torrent(content, params["piece_size"], url, params.get("v1_only", False))
    torrent_file = workdir / "swarm.torrent"
    torrent_file.write_bytes(torrent)
    server = None
    if trk:
        from p2pdetect.data.generator import tracker

        ghosts = [(ip, int(port)) for ip, port in trk.get("ghosts", [])]
        server = tracker.serve(trk["ip"], trk["port"], tracker.Tracker(ghosts, trk.get("interval", 20), params["seed"]))
    t0 = params["t0"]
    until = params["until"]
    specs = params["peers"]
    peers = [_make_peer(p, torrent, torrent_file, workdir, params["transport"]) for p in specs]
    live: set[int] = set()
    next_connect = 0.0
    try:
        while time.time() < until:
            now = time.time() - t0
            for i, (p, spec) in enumerate(zip(peers, specs)):
                want = any(a <= now < b for a, b in spec["online"])
                if want and i not in live:
                    # Seeds share one copy of the content; leechers keep their own (partial) copy.
                    p.start(content if spec["seed"] else None)
                    live.add(i)
                    log.info("peer %s:%s (%s) joined (seed=%s)", spec["ip"], spec["port"], spec.get("impl", "libtorrent"),
                             spec["seed"])
                elif not want and i in live:
                    p.stop()
                    live.discard(i)
                    log.info("peer %s left", spec["ip"])
            if time.time() >= next_connect:
                for i in live:
                    k = min(len(live) - 1, rng.randint(2, 6))
                    others = rng.sample([specs[j] for j in sorted(live) if j != i], k) if k > 0 else []
                    peers[i].connect(others)
                next_connect = time.time() + 3.0
            time.sleep(0.2)
    finally:
        # Client processes quit in parallel: ask them all first (BiglyBT prints its progress then),
        # log where every peer got to while libtorrent's sessions are still open, then wait for each.
        stopping = [i for i in live if hasattr(peers[i], "request_stop")]
        for i in stopping:
            peers[i].request_stop()
        if stopping:
            time.sleep(1.0)
        log.info("swarm progress at end: %s", [round(p.progress(), 2) for p in peers])
        for i in live:
            peers[i].stop()
        if server is not None:
            server.shutdown()
        os.sync()

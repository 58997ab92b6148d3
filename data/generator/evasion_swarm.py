"""Worker of the evasion scenario: BitTorrent over TLS, and BitTorrent through an SSH SOCKS tunnel.

Why: the seed documents name the ways users hide BitTorrent from a vantage point, and a detector
that only knows MSE and uTP misses them:

- **SSL torrents** (``ssl: true``): libtorrent's TLS-wrapped peer protocol. The .torrent carries a
  throw-away CA's certificate (``create_torrent.set_root_cert``), every peer gets a certificate that
  CA signs (:mod:`data.generator.pki`) and listens on an ``s``-suffixed ``listen_interfaces`` entry;
  connections open with a TLS ClientHello whose SNI is the hex info-hash (nDPI names them TLS). The
  tracker is HTTPS too.
- **SOCKS through SSH** (peers with a ``tunnel``): the client opens ``ssh -N -D 127.0.0.1:P`` to an
  OpenSSH server in the namespace (data.generator.ssh) and libtorrent sends peer and tracker
  connections through that SOCKS5 proxy (no DHT, no uTP: ``ssh -D`` forwards TCP only). The capture
  sees the client's SSH connection and the server's connections to the swarm; the client's hop to
  its own proxy never leaves the host (127.0.0.1 both ends, which the capture drops). The server's
  connections get its own address as source (a local route per swarm block, ``exit_route``), so the
  exit's address pairs name the app exactly.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from p2pdetect.data.generator import pki, ssh, tracker
from p2pdetect.data.generator.bittorrent import Peer, _apply_global_peer_class, make_random_payload, session_settings
from p2pdetect.data.generator.bittorrent import _make_peer as _make_impl_peer
from p2pdetect.data.generator.namespace import stop

log = logging.getLogger(__name__)


def make_torrent(content: Path, piece_size: int, tracker_url: str, root_cert: str | None) -> bytes:
    """A v1 .torrent for ``content`` announcing to ``tracker_url``; an SSL torrent when ``root_cert``
    (the PEM text of the CA that signs its peers' certificates) is given."""
    import libtorrent as lt

    fs = lt.file_storage()
    lt.add_files(fs, str(content))
    ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only)
    ct.add_tracker(tracker_url)
    if root_cert is not None:
        ct.set_root_cert(root_cert)
    lt.set_piece_hashes(ct, str(content.parent))
    return lt.bencode(ct.generate())


def peer_settings(spec: dict[str, Any], ssl_torrent: bool, tunnel_port: int | None) -> dict[str, Any]:
    """libtorrent settings of one peer: plain, TLS (``ssl_torrent``) or behind the SOCKS5 proxy at
    127.0.0.1:``tunnel_port``, which then carries its peer and tracker connections."""
    import libtorrent as lt

    s = session_settings(spec["ip"], spec["port"], spec.get("transport", "tcp"), spec["up_rate"], spec["down_rate"],
                         spec.get("enc", "forced"))
    s["validate_https_trackers"] = False  # the tracker's certificate comes from this run's throw-away CA
    s["alert_mask"] = int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification)
    if ssl_torrent:
        s["listen_interfaces"] = f"{spec['ip']}:{spec['port']}s"
    if tunnel_port is not None:
        s.update({
            "listen_interfaces": f"127.0.0.1:{spec['tunnel']['listen_port']}", "outgoing_interfaces": "",
            "proxy_type": int(lt.proxy_type_t.socks5), "proxy_hostname": "127.0.0.1", "proxy_port": tunnel_port,
            "proxy_peer_connections": True, "proxy_tracker_connections": True, "proxy_hostnames": True,
            "enable_dht": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
        })
    return s


class EvasionPeer(Peer):
    """One libtorrent session with the swarm's torrent: plain, TLS, or tunnelled through SSH.

    Dialling, leaving and progress are bittorrent.Peer's; joining differs (certificates, tunnel)."""

    def __init__(self, spec: dict[str, Any], swarm: "Swarm") -> None:
        super().__init__(spec, b"", swarm.workdir, spec.get("transport", "tcp"))
        self.swarm = swarm
        self.tunnel: subprocess.Popen[bytes] | None = None

    def _open_tunnel(self) -> int | None:
        """Start ``ssh -N -D`` for a tunnelled peer; returns the SOCKS port (None: not tunnelled)."""
        self.tunnel, port = self.swarm.open_tunnel(self.spec)
        return port

    def start(self, seed: bool) -> None:
        """Join: open the tunnel if any, the session, and add the torrent (seeding when ``seed``)."""
        import libtorrent as lt

        sw = self.swarm
        self.session = lt.session(peer_settings(self.spec, sw.ssl, self._open_tunnel()))
        _apply_global_peer_class(self.session)
        own = lt.ip_filter()  # never dial ourselves (learned through the tracker, DHT or PEX)
        own.add_rule(self.spec["ip"], self.spec["ip"], 1)
        self.session.set_ip_filter(own)
        atp = lt.add_torrent_params()
        atp.ti = sw.info
        save = sw.content.parent if seed else sw.workdir / self.spec["ip"]
        save.mkdir(parents=True, exist_ok=True)
        atp.save_path = str(save)
        if seed:
            atp.flags |= lt.torrent_flags.seed_mode
        self.handle = self.session.add_torrent(atp)
        if sw.ssl:
            self.set_certificate()

    def set_certificate(self) -> None:
        """Hand the torrent this peer's certificate (libtorrent asks with torrent_need_cert_alert;
        setting it at once, and again on each ask, avoids waiting for the alert loop)."""
        cert, key = self.swarm.certs[self.spec["ip"]]
        self.handle.set_ssl_certificate(str(cert), str(key), str(self.swarm.dh))

    def poll(self) -> None:
        """Answer libtorrent's alerts: certificate requests, and log errors."""
        import libtorrent as lt

        if self.session is None:
            return
        for a in self.session.pop_alerts():
            if isinstance(a, lt.torrent_need_cert_alert):
                self.set_certificate()
            elif a.category() & lt.alert.category_t.error_notification:
                log.debug("%s: %s", self.spec["ip"], a.message())

    def stop(self) -> None:
        """Leave: close the session, then the tunnel."""
        super().stop()
        if self.tunnel is not None:
            stop(self.tunnel, timeout=3)
            self.tunnel = None


class Swarm:
    """What the peers share: content, torrent, certificates, tracker and SSH server."""

    def __init__(self, params: dict[str, Any], rng: random.Random) -> None:
        import libtorrent as lt

        self.workdir = Path(params["workdir"])
        self.ssl = bool(params.get("ssl"))
        self.content = self.workdir / "seed" / "content"
        make_random_payload(self.content, params["size"], params["n_files"], rng)
        trk = params["tracker"]
        scheme = "https" if trk.get("https") else "http"
        self.tracker_url = f"{scheme}://{trk['ip']}:{trk['port']}/announce"
        self.certs: dict[str, tuple[Path, Path]] = {}
        ca = None
        if self.ssl or trk.get("https"):
            pdir = self.workdir / "pki"
            ca = pki.make_ca(pdir, f"swarm-{params['seed']:08x}")
            self.dh = pki.dh_params(pdir)
        root = ca[0].read_text() if (ca and self.ssl) else None
        torrent = make_torrent(self.content, params["piece_size"], self.tracker_url, root)
        self.info = lt.torrent_info(lt.bdecode(torrent))
        self.torrent_file = self.workdir / "swarm.torrent"   # for the peers of other implementations
        self.torrent_file.write_bytes(torrent)
        if self.ssl:
            # libtorrent accepts a peer whose certificate names the torrent (or '*') and is signed by its CA.
            name = self.info.name()
            for p in params["peers"]:
                self.certs[p["ip"]] = pki.issue(ca, pdir, p["ip"], name)
        self.context: ssl.SSLContext | None = None
        if trk.get("https"):
            cert, key = pki.issue(ca, pdir, "tracker", trk["ip"], san=f"IP:{trk['ip']}")
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, key)
        self.sshd = params.get("sshd")
        self.ssh_dir = self.workdir / "ssh"

    def open_tunnel(self, spec: dict[str, Any]) -> tuple[subprocess.Popen[bytes] | None, int | None]:
        """The SSH SOCKS tunnel of a tunnelled peer (its process, its SOCKS port); (None, None) otherwise."""
        t = spec.get("tunnel")
        if not t:
            return None, None
        proc = ssh.socks_tunnel(self.ssh_dir, spec["ip"], self.sshd["ip"], self.sshd["port"], t["socks_port"])
        return proc, int(t["socks_port"])


def _exit_route(block: str, src: str) -> None:
    """Connections the SSH server opens into ``block`` (its SOCKS exits) leave from ``src``, its own
    address, instead of 127.0.0.1: a local route with a preferred source, in this namespace only. A
    peer that adds its address to ``lo`` (BiglyBT) gets a /32 local route of its own, replaced likewise."""
    subprocess.run(["ip", "route", "replace", "local", block, "dev", "lo", "src", src, "table", "local"],
                   check=True, capture_output=True)


def _make_peer(spec: dict[str, Any], sw: Swarm) -> Any:
    """libtorrent's peer (:class:`EvasionPeer`: TLS, tunnel), or another implementation's client
    (``spec['impl']``, bittorrent._make_peer); a BiglyBT peer may be tunnelled too (its SOCKS proxy settings)."""
    impl = spec.get("impl", "libtorrent")
    if impl == "libtorrent":
        return EvasionPeer(spec, sw)
    if sw.ssl:
        raise ValueError(f"an SSL torrent is libtorrent's alone, not {impl}'s")
    if spec.get("tunnel"):
        if impl != "biglybt":
            raise ValueError(f"{impl} has no SOCKS proxy setting: only libtorrent and BiglyBT peers are tunnelled")
        from p2pdetect.data.generator.biglybt import BiglyPeer

        return BiglyPeer(spec, sw.torrent_file, sw.workdir, tunnel=sw.open_tunnel)
    return _make_impl_peer(spec, b"", sw.torrent_file, sw.workdir, spec.get("transport", "tcp"))


def run_evasion_swarm(params: dict[str, Any]) -> None:
    """Run one evasion swarm until ``params['until']`` (epoch seconds).

    params: ``peers`` (list of {ip, port, online, seed, up_rate, down_rate, enc, transport} and, for a
    tunnelled peer, ``tunnel`` {socks_port, listen_port}), ``ssl`` (an SSL torrent), ``tracker``
    ({ip, port, https, interval}), ``sshd`` ({ip, port}, when a peer is tunnelled) and ``exit_route``
    (the swarm's block, reached from the SSH server's address), ``size``, ``n_files``, ``piece_size``,
    ``workdir``, ``seed``, ``t0``, ``until``.
    """
    rng = random.Random(params["seed"])
    sw = Swarm(params, rng)
    trk = params["tracker"]
    server = tracker.serve(trk["ip"], trk["port"], tracker.Tracker([], trk.get("interval", 20), params["seed"]),
                           context=sw.context)
    sshd = None
    if sw.sshd:
        sshd = ssh.start_server(sw.ssh_dir, sw.sshd["ip"], sw.sshd["port"])
        _exit_route(params["exit_route"], sw.sshd["ip"])
    specs = params["peers"]
    peers = [_make_peer(p, sw) for p in specs]
    reachable = [p for p in specs if not p.get("tunnel")]
    t0, until = params["t0"], params["until"]
    live: set[int] = set()
    next_connect = 0.0
    try:
        while time.time() < until:
            now = time.time() - t0
            for i, (p, spec) in enumerate(zip(peers, specs)):
                want = any(a <= now < b for a, b in spec["online"])
                if want and i not in live:
                    if isinstance(p, EvasionPeer):
                        p.start(spec["seed"])
                    else:   # another implementation's client: seeds share the content's copy
                        p.start(sw.content if spec["seed"] else None)
                        if sshd is not None and not spec.get("tunnel"):   # BiglyBT added its address: a /32 route
                            _exit_route(f"{spec['ip']}/32", sw.sshd["ip"])
                    live.add(i)
                    log.info("peer %s:%s joined (seed=%s, ssl=%s, tunnel=%s)", spec["ip"], spec["port"], spec["seed"],
                             sw.ssl, bool(spec.get("tunnel")))
                elif not want and i in live:
                    p.stop()
                    live.discard(i)
                    log.info("peer %s left", spec["ip"])
                if isinstance(p, EvasionPeer):
                    p.poll()
            if time.time() >= next_connect:
                for i in live:
                    pool = [q for j, q in enumerate(specs) if j in live and j != i and q in reachable]
                    k = min(len(pool), rng.randint(2, 5))
                    peers[i].connect(rng.sample(pool, k) if k > 0 else [])
                next_connect = time.time() + 3.0
            time.sleep(0.2)
    finally:
        log.info("swarm progress at end: %s", [round(p.progress(), 2) for p in peers])
        for p in peers:
            p.stop()
        server.shutdown()
        if sshd is not None:
            stop(sshd, timeout=3)
        os.sync()

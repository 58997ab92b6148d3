"""A swarm peer run by WebTorrent (npm ``webtorrent``, Node.js), and a population of its DHT nodes.

Why WebTorrent: an implementation independent of libtorrent that speaks uTP (BEP 29, through the
``utp-native`` binding of libutp), the mainline DHT (BEP 5, ``bittorrent-dht``) and Message Stream
Encryption (``bittorrent-protocol``'s MSE/PE), so that uTP and DHT traffic stays covered when an
evaluation leaves libtorrent out. The Node side lives in ``webtorrent/`` beside this module:
``peer.mjs`` runs one peer, ``dht-nodes.mjs`` many bare DHT nodes; ``make setup`` installs their
pinned packages (``npm ci``). Every socket a peer opens is bound to its own address (``bind.mjs``).

A peer dials uTP first and falls back to TCP after uTP gives up, and always accepts both (transport
``both``); ``tcp`` switches uTP off, ``utp`` TCP off. Its DHT node listens on ``dht_port``, its uTP and
TCP on ``port``. Encryption ``forced`` requires RC4 (WebTorrent ``secure`` 2), ``prefer`` offers MSE with
plaintext allowed (1, WebTorrent's default: two such peers agree on plaintext after the MSE handshake),
``plain`` speaks plain BitTorrent only (0). Peers find each other through the swarm's tracker, the DHT
(``bootstrap`` nodes), PEX, and dials the swarm schedule asks for (``discovery`` ``dht``: DHT and PEX only).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.labels import LabelRow, pair_rows
from p2pdetect.data.generator.namespace import stop

log = logging.getLogger(__name__)

NODE_DIR = Path(__file__).resolve().parent / "webtorrent"
PEER = NODE_DIR / "peer.mjs"
DHT_NODES = NODE_DIR / "dht-nodes.mjs"
#: Native RC4 for MSE on OpenSSL 3 (otherwise a JavaScript RC4, many times slower).
NODE_FLAGS = ("--openssl-legacy-provider",)
SECURE = {"plain": "0", "prefer": "1", "forced": "2"}
_PROTOS = {"tcp": (6,), "udp": (17,), "icmp": (1,)}


def missing() -> str | None:
    """What to do before WebTorrent peers can run here, as an instruction, or None."""
    if shutil.which("node") is None:
        return "run 'apt-get install nodejs npm' and 'make setup' first"
    if not (NODE_DIR / "node_modules" / "webtorrent" / "package.json").exists():
        return f"run 'make setup' (npm ci --prefix {NODE_DIR}) first"
    return None


def version() -> str:
    """The installed webtorrent package's version, e.g. ``3.0.21``."""
    try:
        return json.loads((NODE_DIR / "node_modules" / "webtorrent" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def node_version() -> str:
    """Node.js's version, e.g. ``v20.19.2``."""
    res = subprocess.run(["node", "--version"], capture_output=True, text=True)
    return res.stdout.strip() or "?"


def peer_command(spec: dict[str, Any], torrent: Path, path: Path, seed: bool, session: int = 0) -> list[str]:
    """The ``node peer.mjs`` command line of one peer from its swarm spec, for its ``session``-th start
    (WebTorrent listens on fresh ports at every start: ``ports``, ``dht_ports``)."""
    transport = spec.get("transport", "both")
    port = spec.get("ports", [spec["port"]])[min(session, len(spec.get("ports", [0])) - 1)]
    dht_port = spec.get("dht_ports", [spec["dht_port"]])[min(session, len(spec.get("dht_ports", [0])) - 1)]
    cmd = ["node", *NODE_FLAGS, str(PEER), "--ip", spec["ip"], "--port", str(port),
           "--dht-port", str(dht_port), "--torrent", str(torrent), "--path", str(path),
           "--secure", SECURE[spec.get("enc", "prefer")],
           "--up", str(spec.get("up_rate", 0)), "--down", str(spec.get("down_rate", 0)),
           "--bootstrap", ",".join(f"{ip}:{port}" for ip, port in spec.get("bootstrap", [])),
           "--announce-interval", str(spec.get("announce_interval", 10)),
           "--lookups-per-s", str(spec.get("lookups_per_s", 0))]
    if transport == "tcp":
        cmd.append("--no-utp")
    elif transport == "utp":
        cmd.append("--no-tcp")
    if seed:
        cmd.append("--seed")
    elif spec.get("magnet"):
        cmd.append("--magnet")
    return cmd


class WebTorrentPeer:
    """One ``node peer.mjs`` process for one peer; started and stopped by the swarm schedule."""

    def __init__(self, spec: dict[str, Any], torrent: Path, workdir: Path) -> None:
        self.spec = spec
        self.torrent = torrent
        self.dir = workdir / f"webtorrent-{spec['ip']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._dialled: set[tuple[str, int]] = set()
        self._starts = 0

    def start(self, seed_dir: Path | None) -> None:
        """Run the peer; a seed serves ``seed_dir`` (WebTorrent skips the hash check)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = seed_dir.parent if seed_dir is not None else self.dir / "downloads"
        cmd = peer_command(self.spec, self.torrent, path, seed_dir is not None, self._starts)
        self._starts += 1
        self._dialled.clear()
        with open(self.dir / "peer.log", "ab") as out:
            # Same process group as the worker: killing the worker's group kills node too.
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.PIPE, stdout=out,
                                         stderr=subprocess.STDOUT, env=dict(os.environ, UV_THREADPOOL_SIZE="2"))

    def connect(self, others: list[dict[str, Any]]) -> None:
        """Dial ``others`` (once each per session), unless this peer finds peers by DHT and PEX only."""
        if self.spec.get("discovery") == "dht" or self.proc is None or self.proc.stdin is None:
            return
        for o in others:
            addr = (o["ip"], int(o["port"]))
            if addr in self._dialled:
                continue
            self._dialled.add(addr)
            try:
                self.proc.stdin.write(f"peer {addr[0]}:{addr[1]}\n".encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                log.warning("webtorrent %s no longer reads commands", self.spec["ip"])
                return

    def request_stop(self) -> None:
        """SIGTERM: WebTorrent closes its connections and sockets, as a user quitting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Ask the peer to quit, then kill it if it has not within a few seconds."""
        if self.proc is not None:
            stop(self.proc)  # a Node process quits cleanly on SIGTERM
            self.proc = None

    def progress(self) -> float:
        """Share downloaded, from the peer's last status line (-1 when unknown)."""
        try:
            text = (self.dir / "peer.log").read_bytes()
        except OSError:
            return -1.0
        status = [ln for ln in text.splitlines() if ln.startswith(b'{"event"')]
        try:
            return float(json.loads(status[-1])["progress"]) if status else -1.0
        except (ValueError, KeyError):
            return -1.0


def run_dht_nodes(params: dict[str, Any]) -> None:
    """Run a population of bittorrent-dht nodes (``dht-nodes.mjs``) until ``params['until']``.

    params: ``nodes`` ([{ip, port, online: [[join, leave], ...]}], seconds after ``t0``),
    ``lookups_per_s`` (random lookups and announces by random live nodes), ``workdir``.
    """
    workdir = Path(params["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "dht-nodes.json"
    spec.write_text(json.dumps({k: params[k] for k in ("nodes", "t0", "until", "lookups_per_s")}))
    with open(workdir / "dht-nodes.log", "ab") as out:
        proc = subprocess.Popen(["node", str(DHT_NODES), str(spec)], cwd=workdir, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        while time.time() < params["until"] and proc.poll() is None:
            time.sleep(0.2)
    finally:
        stop(proc)
    if proc.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"dht-nodes.mjs exited {proc.returncode}; see {workdir / 'dht-nodes.log'}")


def _udp_ports(spec: dict[str, Any]) -> list[tuple[int, str]]:
    """A peer's UDP ports and what runs on each: WebTorrent's uTP and DHT sockets, libtorrent's one socket."""
    if spec.get("impl") == "webtorrent":
        return ([(int(p), "utp") for p in spec.get("ports", [spec["port"]])]
                + [(int(p), "dht") for p in spec.get("dht_ports", [spec["dht_port"]])])
    return [(int(spec["port"]), "utp")]


def peer_pair_rows(a: dict[str, Any], b: dict[str, Any], app: str) -> list[LabelRow]:
    """Label rows between two swarm peers of which at least one is WebTorrent.

    TCP and ICMP: the pair, any port, named ``app``. UDP between WebTorrent and WebTorrent or libtorrent,
    whose UDP ports are known: one row per port pair, ``<implementations>-utp`` between the peers' listen
    ports and ``<implementations>-dht`` where a DHT socket takes part; with other implementations the pair,
    any port, named ``app``.
    """
    rows = pair_rows([a["ip"]], [b["ip"]], (6, 1), "p2p", app)
    impls = app.split("-", 1)[0]
    if {a.get("impl", "libtorrent"), b.get("impl", "libtorrent")} - {"webtorrent", "libtorrent"}:
        return rows + pair_rows([a["ip"]], [b["ip"]], (17,), "p2p", app)
    for pa, ka in _udp_ports(a):
        for pb, kb in _udp_ports(b):
            kind = "utp" if ka == kb == "utp" else "dht"
            rows.append(LabelRow(src_ip=a["ip"], src_port=pa, dst_ip=b["ip"], dst_port=pb, protocol=17,
                                 label="p2p", app=f"{impls}-{kind}"))
    return rows

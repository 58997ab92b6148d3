"""A swarm peer run by Enhanced CTorrent (Debian ``ctorrent``): plain BitTorrent, no encryption, TCP only.

Why ctorrent: an independent C++ implementation of the protocol (its own choking, piece picking,
request pipelining and keep-alive timing), so the detector cannot pass by learning libtorrent's habits.
It finds peers only through the swarm's tracker.

ctorrent binds its listening socket (``-i``) but not its outgoing ones, so on a loopback full of
127.x peers every connection it dials would leave from 127.0.0.1. Each ctorrent therefore runs under
a uid of its own, and a uid routing rule gives that uid's connections its own address as source:
the address plan (and so the labels) stays exact without touching the client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.namespace import stop

log = logging.getLogger(__name__)

_STATUS = re.compile(rb"\[(\d+)/(\d+)/(\d+)\]")


def uid_for(ip: str) -> int:
    """A uid (and routing table id) unique to ``ip`` and unused by any real account."""
    return 0x40000000 + (int(ipaddress.IPv4Address(ip)) & 0xFFFFFF)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def _routes_for(ip: str) -> list[list[str]]:
    """The routes that locally generated traffic from ``ip`` would take, as ``ip route`` arguments.

    On the plain loopback that is the 127/8 local route. With a WAN topology (data.generator.topology),
    policy rules send such traffic to tables of their own: the first rule that applies to ``ip`` names
    the table whose routes are copied.
    """
    routes = [["local", "127.0.0.0/8", "dev", "lo"]]
    for rule in json.loads(_ip("-j", "rule", "show").stdout or "[]"):
        table = str(rule.get("table", ""))
        if (table in ("", "local", "main", "default") or "uidrange" in rule
                or rule.get("src", "all") not in ("all", ip) or rule.get("iif", "lo") != "lo"):
            continue
        lines = _ip("route", "show", "table", table).stdout.splitlines()
        routes += [line.split() for line in lines if line.strip()]
        break
    return routes


def route_source_by_uid(ip: str, uid: int) -> None:
    """Make connections opened by ``uid`` leave from ``ip`` (run inside the namespace, as root).

    The kernel's local table is consulted first (rule 0); it moves behind a uid rule whose table
    holds the routes this traffic would take anyway (:func:`_routes_for`), each naming ``ip`` as
    the preferred source, so only the source address changes.
    """
    routes = _routes_for(ip)
    if "lookup local" in _ip("rule", "show", "pref", "0").stdout:
        _ip("rule", "add", "pref", "100", "lookup", "local")
        _ip("rule", "del", "pref", "0")
    for route in routes:
        res = _ip("route", "replace", *route, "src", ip, "table", str(uid))
        if res.returncode != 0:
            raise RuntimeError(f"cannot route uid {uid} from {ip} ({' '.join(route)}): {res.stderr.strip()}")
    _ip("rule", "add", "pref", "10", "uidrange", f"{uid}-{uid}", "lookup", str(uid))


def _traversable(path: Path) -> None:
    """Let other uids pass through ``path`` and its parents (the generator's work dir is private)."""
    for d in (path, *path.parents):
        mode = d.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(d, mode | stat.S_IXOTH)


def _open_to_all(path: Path) -> None:
    """Let a ctorrent of another uid read and write the shared seed copy."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o777)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666)


class CTorrentPeer:
    """One ctorrent process for one peer; started and stopped by the swarm schedule."""

    def __init__(self, spec: dict[str, Any], torrent: Path, workdir: Path) -> None:
        self.spec = spec
        self.torrent = torrent
        self.dir = workdir / f"ctorrent-{spec['ip']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.uid = uid_for(spec["ip"])

    def start(self, seed_dir: Path | None) -> None:
        """Run ctorrent on the torrent; a seed serves ``seed_dir`` (skipping the hash check)."""
        s = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        torrent = self.dir / "swarm.torrent"
        shutil.copyfile(self.torrent, torrent)
        route_source_by_uid(s["ip"], self.uid)
        _traversable(self.dir)
        if seed_dir is not None:
            _open_to_all(seed_dir)
        save = seed_dir if seed_dir is not None else self.dir / "content"
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
               "ctorrent", "-e", "1", "-i", s["ip"], "-p", str(s["port"]), "-s", str(save),
               "-b", str(self.dir / "bitfield"), "-M", "40", "-C", "4"]
        if seed_dir is not None:
            cmd.append("-f")
        if s.get("up_rate"):
            cmd += ["-U", str(max(1, s["up_rate"] // 1024))]
        if s.get("down_rate"):
            cmd += ["-D", str(max(1, s["down_rate"] // 1024))]
        cmd.append(str(torrent))
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, self.uid, self.uid)
            for f in files:
                os.chown(os.path.join(root, f), self.uid, self.uid)
        with open(self.dir / "ctorrent.log", "ab") as out:
            # Same process group as the worker: killing the worker's group kills ctorrent too.
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    def connect(self, others: list[dict[str, Any]]) -> None:
        """ctorrent learns peers from the tracker only."""

    def request_stop(self) -> None:
        """SIGTERM: ctorrent announces 'stopped' and closes its connections, as a user quitting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Ask ctorrent to quit, then kill it if it has not within a few seconds."""
        if self.proc is None:
            return
        stop(self.proc, timeout=4)
        self.proc = None

    def progress(self) -> float:
        """Share of pieces held, from ctorrent's last status line (-1 when unknown)."""
        try:
            with open(self.dir / "ctorrent.log", "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4096))
                hits = _STATUS.findall(fh.read())
        except OSError:
            return -1.0
        if not hits:
            return -1.0
        have, total, _ = (int(x) for x in hits[-1])
        return have / total if total else -1.0


def version() -> str:
    """ctorrent's version string, e.g. ``dnh3.3.2``."""
    res = subprocess.run(["ctorrent", "-h"], capture_output=True, text=True)
    m = re.search(r"CTorrent (\S+)", res.stdout + res.stderr)
    return m.group(1) if m else "?"

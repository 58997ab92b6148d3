"""A swarm peer run by BiglyBT (Debian ``biglybt``), the Vuze/Azureus Java engine, headless.

Why BiglyBT: an independent implementation with its own Message Stream Encryption, connection
management, choking and piece picking, so encrypted BitTorrent from it looks different in timing
and sizes from libtorrent's. It runs with its console UI (``--ui=console``): the configuration is
written before start as a bencoded ``biglybt.config`` in a private config directory (bind address,
ports, encryption, no UPnP/NAT-PMP/DHT/update checks), and commands go to its standard input
(``add -o DIR FILE``, ``quit``). It finds peers through the swarm's tracker.

BiglyBT binds to an address only if an interface carries it, so the peer's address is added to
the namespace's ``lo`` first. It also talks to itself over 127.0.0.1 (internal sockets); those
packets never leave a host, and the capture leaves 127.0.0.1-to-127.0.0.1 traffic out.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

from p2pdetect.data.generator.namespace import stop
from p2pdetect.data.generator.tracker import bencode

log = logging.getLogger(__name__)

_PERCENT = re.compile(rb"^ *\d+ \[.\] +(\d+(?:\.\d+)?)%", re.M)  # 'show torrents': " 1 [*] 100.0%\tname"

JARS = ("/usr/share/java/biglybt-core.jar", "/usr/share/java/biglybt-ui.jar", "/usr/share/java/commons-cli.jar",
        "/usr/share/java/bcprov.jar")

#: JVM options: small heap and client-style JIT keep several instances affordable on 2 cores.
JVM = ("-Xmx192m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
       "--add-opens", "java.base/java.net=ALL-UNNAMED")


def config(spec: dict[str, Any], save_dir: Path, socks_port: int | None = None) -> dict[str, Any]:
    """BiglyBT settings for one peer: bound to its address, MSE per ``spec['enc']``, nothing outside.

    ``enc`` ``forced``: RC4 required, no fallback (BiglyBT's "require encryption"); ``prefer``:
    encrypted first, plain accepted and tried when the other side refuses. With ``socks_port`` its
    peer connections go through the SOCKS5 proxy at 127.0.0.1:socks_port (an SSH tunnel:
    data.generator.evasion; announces to a tracker on a loopback address go direct, whatever the
    proxy settings), and it listens on 127.0.0.1:``spec['tunnel']['listen_port']``.
    """
    fallback = spec.get("enc", "forced") != "forced"
    up = spec.get("up_rate", 0) // 1024
    down = spec.get("down_rate", 0) // 1024
    out = {
        "TCP.Listen.Port": spec["port"], "UDP.Listen.Port": spec["port"], "UDP.NonData.Listen.Port": spec["port"],
        "UDP.NonData.Listen.Port.Same": True, "Listen.Port.Randomize.Enable": False,
        "Bind IP": spec["ip"], "Enforce Bind IP": True, "Check Bind IP On Start": False,
        "IPV6 Enable Support": False,
        "network.transport.encrypted.require": True, "network.transport.encrypted.min_level": "RC4",
        "network.transport.encrypted.fallback.outgoing": fallback,
        "network.transport.encrypted.fallback.incoming": fallback,
        "Plugin.UPnP.upnp.enable": False, "Plugin.UPnP.natpmp.enable": False, "Plugin.DHT.dht.enabled": False,
        "update.start": False, "update.periodic": False, "update.opendialog": False, "Send Version Info": False,
        "Ip Filter Enabled": False, "Allow Same IP Peers": True, "Tracker Client Exclude LAN": False,
        "Max Upload Speed KBs": up, "Max Download Speed KBs": down, "Max Upload Speed Seeding KBs": up,
        "LAN Speed Enabled": True, "Max LAN Upload Speed KBs": up, "Max LAN Download Speed KBs": down,
        "Default save path": str(save_dir), "Use default data dir": True,
        # BiglyBT never encrypts to LAN peers, and loopback and private ranges count as LAN unless
        # its LAN Peer Finder is told not to treat "well-known" local ranges as LAN.
        "Plugin.azlocaltracker.Plugin.localtracker.wellknownlocals": False,
    }
    if socks_port is not None:
        port = spec["tunnel"]["listen_port"]
        out.update({
            "TCP.Listen.Port": port, "UDP.Listen.Port": port, "UDP.NonData.Listen.Port": port,
            "Bind IP": "127.0.0.1",
            "Enable.Proxy": True, "Enable.SOCKS": True, "Proxy.Host": "127.0.0.1", "Proxy.Port": str(socks_port),
            "Proxy.Data.Enable": True, "Proxy.Data.Same": True, "Proxy.Data.SOCKS.version": "V5",
            "Proxy.Check.On.Start": False, "Proxy.SOCKS.ShowIcon": False,
        })
    return out


def _free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BiglyPeer:
    """One BiglyBT JVM for one peer; started and stopped by the swarm schedule."""

    def __init__(self, spec: dict[str, Any], torrent: Path, workdir: Path, tunnel: Callable | None = None) -> None:
        """tunnel: for a peer with a ``tunnel`` spec, spec -> (the tunnel's process, its SOCKS port)."""
        self.spec = spec
        self.torrent = torrent
        self.dir = workdir / f"biglybt-{spec['ip']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._quitting = False
        self._tunnel = tunnel
        self.tunnel: subprocess.Popen[bytes] | None = None

    def start(self, seed_dir: Path | None) -> None:
        """Start the JVM with a fresh config and add the torrent (seeding ``seed_dir`` when given)."""
        s = self.spec
        self._quitting = False
        cfg = self.dir / "config"
        cfg.mkdir(parents=True, exist_ok=True)
        save = seed_dir.parent if seed_dir is not None else self.dir / "downloads"
        save.mkdir(parents=True, exist_ok=True)
        socks_port = None
        if self._tunnel is not None and s.get("tunnel"):
            self.tunnel, socks_port = self._tunnel(s)
        (cfg / "biglybt.config").write_bytes(bencode(config(s, save, socks_port)))
        subprocess.run(["ip", "addr", "add", f"{s['ip']}/32", "dev", "lo"], capture_output=True)
        # Names resolve from a hosts file only: BiglyBT looks up its update and test servers at start,
        # and a resolver the namespace cannot reach would stall it on timeouts (or leak DNS packets).
        hosts = self.dir / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{s['ip']} {socket.gethostname()}\n")
        cmd = ["java", *JVM, "-cp", ":".join(JARS), f"-Djdk.net.hosts.file={hosts}", f"-Dazureus.config.path={cfg}",
               "-Dazureus.install.path=/usr/share/biglybt", "-Dazureus.instance.lock.disable=true",
               f"-Dazureus.instance.port={_free_local_port()}", "com.biglybt.ui.Main", "--ui=console"]
        with open(self.dir / "biglybt.log", "ab") as out:
            # Same process group as the worker: killing the worker's group kills the JVM too.
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.PIPE, stdout=out,
                                         stderr=subprocess.STDOUT, env={"HOME": str(self.dir), "PATH": "/usr/bin:/bin"})
        # The console reads standard input once the core is up; commands wait in the pipe till then.
        self._command(f'add -o "{save}" "{self.torrent}"')
        if seed_dir is not None:
            # A complete download waits in BiglyBT's seeding queue while it knows no peers; a user
            # who means to seed force-starts it (torrent #1 of the list 'show' makes: the only one).
            self._command("show torrents")
            self._command("forcestart 1")

    def _command(self, line: str) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            log.warning("biglybt %s no longer reads commands", self.spec["ip"])

    def connect(self, others: list[dict[str, Any]]) -> None:
        """BiglyBT learns peers from the tracker only."""

    def request_stop(self) -> None:
        """``quit``: BiglyBT announces 'stopped' and closes its connections (then :meth:`stop` waits).

        A last ``show torrents`` first puts the download's progress in the log for :meth:`progress`.
        """
        if not self._quitting:
            self._quitting = True
            self._command("show torrents")
            self._command("quit")

    def stop(self) -> None:
        """Quit, wait, then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        self.request_stop()
        for action in (lambda: None, self.proc.terminate, self.proc.kill):
            action()
            try:
                self.proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None
        if self.tunnel is not None:
            stop(self.tunnel, timeout=3)
            self.tunnel = None

    def progress(self) -> float:
        """Share downloaded, from the last ``show torrents`` in the console log (-1 when unknown)."""
        try:
            hits = _PERCENT.findall((self.dir / "biglybt.log").read_bytes())
        except OSError:
            return -1.0
        return float(hits[-1]) / 100 if hits else -1.0


def version() -> str:
    """The Debian package version of BiglyBT, e.g. ``3.2.0.0-1``."""
    res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "biglybt"], capture_output=True, text=True)
    return res.stdout.strip() or "?"

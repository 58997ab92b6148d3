"""An eD2k/Kad swarm run by aMule (Debian ``amule-daemon``): a P2P family other than BitTorrent.

Why: a detector that has only seen BitTorrent may have learnt BitTorrent, not P2P. aMule speaks the
eDonkey2000 protocol over TCP (obfuscated when both sides ask for it, as eMule's "protocol
obfuscation") and the Kad DHT over UDP, with its own transfer scheduler (upload slots, queues, 180 kB
blocks, source exchange): scoring its captures with a model trained on BitTorrent alone measures a
*family left out* (docs/evaluation.md).

How a swarm is run, per peer (``amuled`` in a config dir of its own):

- ``Address`` binds every socket, listening and dialling, TCP and UDP, to the peer's address, so the
  address plan (and so the labels) stays exact. Kad refuses reserved, loopback and private addresses
  as contacts (aMule's ``IsGoodIPPort`` always filters them), so peers live on TEST-NET-3
  (203.0.113.0/24) and the other Kad nodes in the shared address space of RFC 6598 (100.64.0.0/10),
  each in a /24 of its own: Kad keeps at most 10 contacts per /24 in its routing table (2 per bucket),
  so a DHT in one /24 stays a handful of contacts per node, where a real node's span many networks.
  The worker adds them to the namespace's loopback: the namespace has no route out.
- Kad bootstraps from a ``nodes.dat`` (version 2) listing 8-20 other nodes with contact version 5,
  which aMule contacts without Kad obfuscation (it does not know their Kad ids yet); from then on the
  DHT runs on its own (hello, firewall checks, routing-table lookups, source publishing).
- Users search: a peer with a ``searches`` schedule (seconds after ``t0``) runs a Kad keyword search
  (``search kad WORD``) at each; an iterative lookup asks node after node closer to the keyword's
  hash, the many short exchanges with many nodes that a Kad client's link shows.
- The seeds share one file; a downloader is handed its ``ed2k://`` link, with some seeds as sources
  (the eD2k servers that would name sources do not exist here); it finds more through source
  exchange and Kad, and shares what it has.
- Control goes through aMule's External Connections (``amulecmd``) on 127.0.0.1, a port per peer:
  the capture never keeps 127.0.0.1 to 127.0.0.1 (data.generator.capture).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import random
import re
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.bittorrent import make_random_payload
from p2pdetect.data.generator.namespace import stop

log = logging.getLogger(__name__)

#: The swarm peers' network: Kad accepts no reserved, loopback or private address (module docstring).
NET = "203.0.113.0/24"
#: The other Kad nodes' network, one /24 each (Kad's per-/24 contact limit; module docstring).
CROWD_NET = "100.64.0.0/16"
#: Every address a swarm uses.
NETS = (NET, CROWD_NET)

_EC_PASSWORD = "p2pdetect"
_KAD_CONTACT_VERSION = 5  # below obfuscation (6): a first contact whose Kad id is not known yet


def version() -> str:
    """amuled's version string, e.g. ``2.3.3``."""
    res = subprocess.run(["amuled", "--version"], capture_output=True, text=True)
    m = re.search(r"aMuleD? (\S+)", res.stdout + res.stderr)
    return m.group(1) if m else "?"


def nodes_dat(contacts: list[dict[str, Any]], rng: random.Random) -> bytes:
    """A Kad ``nodes.dat`` (version 2) naming ``contacts`` ({ip, port, udp_port}) with made-up Kad ids."""
    out = [struct.pack("<III", 0, 2, len(contacts))]
    for c in contacts:
        out.append(rng.randbytes(16) + struct.pack("<IHHBIIB", int(ipaddress.IPv4Address(c["ip"])), c["udp_port"],
                                                   c["port"], _KAD_CONTACT_VERSION, 0, 0, 0))
    return b"".join(out)


def config(spec: dict[str, Any], home: Path) -> str:
    """``amule.conf`` of peer ``spec``: Kad on, no eD2k server, bound to its address, EC on 127.0.0.1."""
    crypt = spec.get("crypt", "requested")
    up = int(spec.get("up_kbs", 100))
    md5 = hashlib.md5(_EC_PASSWORD.encode()).hexdigest()
    return "\n".join([
        "[eMule]", "AppVersion=2.3.3", f"Nick=peer-{spec['ip']}", f"Port={spec['port']}",
        f"UDPPort={spec['udp_port']}", "UDPEnable=1", f"Address={spec['ip']}",
        f"IncomingDir={home / 'Incoming'}", f"TempDir={home / 'Temp'}",
        "ConnectToKad=1", "ConnectToED2K=0", "Autoconnect=1", "Reconnect=1", "UPnPEnabled=0",
        "FilterLanIPs=0", "ParanoidFiltering=0", "IPFilterAutoLoad=0", "IPFilterClients=0", "IPFilterServers=0",
        "AddServersFromServer=0", "AddServersFromClient=0", "CheckDiskspace=0", "NewVersionCheck=0",
        # Upload limit and slot size: about four upload slots at once (with no limit, aMule opened one slot).
        f"MaxUpload={up}", "MaxDownload=0", f"UploadCapacity={up}", "DownloadCapacity=4000",
        f"SlotAllocation={max(5, up // 4)}", "MaxSourcesPerFile=100",
        "IsClientCryptLayerSupported=1", f"IsCryptLayerRequested={int(crypt in ('requested', 'required'))}",
        f"IsClientCryptLayerRequired={int(crypt == 'required')}",
        "[ExternalConnect]", "AcceptExternalConnections=1", "ECAddress=127.0.0.1",
        f"ECPort={spec['ec_port']}", f"ECPassword={md5}", "",
    ])


def ed2k_link(path: Path) -> str:
    """The ``ed2k://|file|...|/`` link of ``path``, hashed by aMule's own link creator (alcc)."""
    res = subprocess.run(["alcc", str(path)], capture_output=True, text=True, timeout=120)
    m = re.search(r"ed2k://\|file\|[^\s]+\|/", res.stdout)
    if not m:
        raise RuntimeError(f"alcc gave no ed2k link for {path}: {(res.stdout + res.stderr).strip()[-200:]}")
    return m.group(0)


def with_sources(link: str, sources: list[dict[str, Any]]) -> str:
    """``link`` with aMule's ``|sources,ip:port,...|`` extension naming peers that hold the file."""
    if not sources:
        return link
    return link + "|sources," + ",".join(f"{s['ip']}:{s['port']}" for s in sources) + "|/"


class AmulePeer:
    """One amuled for one peer; its config dir survives restarts (part files, Kad contacts, credits)."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        self.spec = spec
        self.home = workdir / f"amule-{spec['ip']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self, contacts: list[dict[str, Any]], rng: random.Random) -> None:
        """Write the config dir: amule.conf and nodes.dat naming ``contacts``."""
        for sub in ("Incoming", "Temp"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.home / "amule.conf").write_text(config(self.spec, self.home))
        (self.home / "nodes.dat").write_bytes(nodes_dat(contacts, rng))

    def start(self) -> None:
        """Start amuled (same process group as the worker: killing the worker's group kills it too)."""
        (self.home / "muleLock").unlink(missing_ok=True)
        with open(self.home / "amuled.log", "ab") as out:
            self.proc = subprocess.Popen(["amuled", "-c", str(self.home), "-o"], cwd=self.home,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def command(self, cmd: str, timeout: float = 10.0) -> str:
        """Run one amulecmd command against this peer's daemon; returns its output ('' on failure)."""
        try:
            res = subprocess.run(["amulecmd", "-h", "127.0.0.1", "-p", str(self.spec["ec_port"]), "-P",
                                  _EC_PASSWORD, "-c", cmd], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
        return res.stdout if "Succeeded" in res.stdout else ""

    def stop(self) -> None:
        """SIGTERM: amuled saves its state and closes its connections, as a user quitting."""
        if self.proc is None:
            return
        stop(self.proc, timeout=6)
        self.proc = None

    def progress(self) -> float:
        """Share of the file held (1 for a seed or a finished download, -1 when unknown)."""
        if self.spec.get("seed"):
            return 1.0
        out = self.command("show dl", timeout=3)
        m = re.search(r"\[(\d+(?:\.\d+)?)%\]", out)
        if m:
            return float(m.group(1)) / 100
        return 1.0 if any((self.home / "Incoming").iterdir()) else -1.0


def _add_address(ip: str) -> None:
    subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], capture_output=True, text=True)


def run_swarm(params: dict[str, Any]) -> None:
    """Run one aMule swarm until ``params['until']`` (epoch seconds).

    params: ``peers`` (list of {ip, port, udp_port, ec_port, online, seed, up_kbs, crypt, sources,
    contacts} and optionally ``kad_only``, a Kad node that fetches nothing, and ``searches``, when it
    runs a Kad keyword search: ``online`` lists [join, leave] intervals in seconds after ``t0``;
    ``sources``, the seeds a downloader's link names; ``contacts``, the peers its nodes.dat names),
    ``size``, ``workdir``, ``seed``, ``words`` (what users search for).
    """
    rng = random.Random(params["seed"])
    workdir = Path(params["workdir"])
    specs = params["peers"]
    for s in specs:
        _add_address(s["ip"])
    content = workdir / "content"
    make_random_payload(content, params["size"], 1, rng)
    name = f"{rng.choice(['holiday', 'lecture', 'album', 'backup', 'dataset'])}-{rng.randint(100, 999)}.bin"
    os.replace(content / "part00.bin", content / name)
    link = ed2k_link(content / name)
    peers = [AmulePeer(s, workdir) for s in specs]
    by_ip = {s["ip"]: s for s in specs}
    for p, s in zip(peers, specs):
        p.prepare([by_ip[ip] for ip in s["contacts"]], rng)
        if s["seed"]:
            os.link(content / name, p.home / "Incoming" / name)
    t0, until = params["t0"], params["until"]
    file_hash = link.split("|")[4].upper()
    live: set[int] = set()
    serving: set[int] = set()  # peers whose amuled has hashed and shares the file
    asked: dict[int, float] = {}  # downloader -> when its link was last handed to it
    searched = [0] * len(specs)  # per peer: searches of its schedule run so far
    words = params.get("words") or [name.split("-")[0]]
    try:
        while time.time() < until:
            now = time.time() - t0
            for i, (p, s) in enumerate(zip(peers, specs)):
                want = any(a <= now < b for a, b in s["online"])
                if want and i not in live:
                    p.start()
                    live.add(i)
                    log.info("peer %s tcp %s udp %s joined (seed=%s)", s["ip"], s["port"], s["udp_port"], s["seed"])
                elif not want and i in live:
                    p.stop()
                    live.discard(i)
                    serving.discard(i)
                    log.info("peer %s left", s["ip"])
            for i in sorted(live - serving):
                if specs[i]["seed"] and file_hash in peers[i].command("show shared", timeout=3).upper():
                    serving.add(i)
            # No eD2k server names sources here: a downloader is handed its link with the seeds it knows
            # that share the file now, and again every 30 s (as a client asks its server again).
            for i in sorted(live):
                s = specs[i]
                sources = [specs[j] for j in sorted(serving) if specs[j]["ip"] in s["sources"]]
                if s["seed"] or s.get("kad_only") or not sources or time.time() - asked.get(i, 0.0) < 30:
                    continue
                if peers[i].command("add " + with_sources(link, sources)):
                    asked[i] = time.time()
            for i in sorted(live):
                due = specs[i].get("searches", [])
                if searched[i] < len(due) and due[searched[i]] <= now:
                    searched[i] += 1
                    peers[i].command("search kad " + rng.choice(words), timeout=3)
            time.sleep(0.5)
    finally:
        log.info("swarm progress at end: %s", [round(peers[i].progress(), 2) for i in sorted(live)
                                                if not specs[i].get("kad_only")])
        for i in live:
            if peers[i].proc is not None and peers[i].proc.poll() is None:
                peers[i].proc.send_signal(signal.SIGTERM)
        for i in live:
            peers[i].stop()

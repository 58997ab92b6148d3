"""The P2P implementations the generator drives, their versions, and how labels name them.

Why one registry: labels name the implementation in ``app`` (``<implementation>-<variant>``, with
``a+b-<variant>`` for connections between two implementations), the capture summary lists the
implementations whose traffic it holds and every client version used, and a model's quality is
reported per implementation it did not see. All three read the names from here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Every P2P engine the generator runs: four independent BitTorrent implementations, and aMule, of
#: the eD2k/Kad family (data.generator.ed2k_scenarios), which evaluation can leave out like any implementation.
IMPLEMENTATIONS: tuple[str, ...] = ("libtorrent", "biglybt", "ctorrent", "webtorrent", "amule")

#: Debian packages (each with the command or file that proves it is installed) of each implementation
#: run as a program; aMule needs the daemon and amule-utils (amulecmd, alcc).
PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "biglybt": (("biglybt", "/usr/share/java/biglybt-core.jar"),),
    "ctorrent": (("ctorrent", "ctorrent"),),
    "amule": (("amule-daemon", "amuled"), ("amule-utils", "alcc")),
}


#: App names of captures made before labels named the implementation (all were libtorrent swarms).
_LEGACY = {"bittorrent": "libtorrent"}


def implementations_of(app: str) -> list[str]:
    """The implementations an ``app`` label names: ``biglybt+libtorrent-mse`` -> biglybt, libtorrent."""
    names = [_LEGACY.get(n, n) for n in app.split("-", 1)[0].split("+")]
    return [n for n in names if n in IMPLEMENTATIONS]


def implementations_in(apps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Sorted implementations whose P2P traffic a capture holds, from its per-app flow counts."""
    found: set[str] = set()
    for app, stats in apps.items():
        if stats.get("label") == "p2p" and stats.get("flows", 0) > 0:
            found.update(implementations_of(app))
    return sorted(found)


def missing(impls: Iterable[str]) -> str | None:
    """What to install before ``impls`` can run, as an instruction, or None when all are there."""
    need = []
    impls = set(impls)
    if "webtorrent" in impls:  # Node.js packages, not a Debian one
        from p2pdetect.data.generator import webtorrent

        node = webtorrent.missing()
        if node:
            return node
    for impl in sorted(impls):
        for pkg, probe in PACKAGES.get(impl, ()):
            if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe)):
                need.append(pkg)
    return f"run 'apt-get install {' '.join(need)}' first" if need else None


def versions(impls: Iterable[str]) -> dict[str, str]:
    """Version strings of the clients behind ``impls`` (libtorrent's comes with the Python versions)."""
    out: dict[str, str] = {}
    impls = set(impls)
    if "biglybt" in impls:
        from p2pdetect.data.generator import biglybt

        out["biglybt"] = biglybt.version()
        res = subprocess.run(["java", "-version"], capture_output=True, text=True)
        first = (res.stderr or res.stdout).splitlines()
        out["java"] = first[0].strip() if first else "?"
    if "ctorrent" in impls:
        from p2pdetect.data.generator import ctorrent

        out["ctorrent"] = ctorrent.version()
    if "amule" in impls:
        from p2pdetect.data.generator import amule

        out["amule"] = amule.version()
    if "webtorrent" in impls:
        from p2pdetect.data.generator import webtorrent

        out["webtorrent"] = webtorrent.version()
        out["node"] = webtorrent.node_version()
    return out

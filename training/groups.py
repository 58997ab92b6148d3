"""Evaluation groups: which implementation, scenario and network each capture stands for.

Leave-one-group-out evaluation (training.crossval.leave_group_out) needs, per capture, the values
it would be left out for. They come from the corpus manifest entry or the capture's JSON summary
beside it (`X.json` next to `X.pcap`, written by the generator): `scenario`, `implementations`
(the P2P implementations the capture holds, e.g. ["biglybt", "libtorrent"]) and `network` (the
path class, e.g. "loopback", "wan-mid"; "loopback" when absent). Without `implementations`, they
are derived from the `app` labels of the capture's P2P flows: the part before the first '-'
(`libtorrent-mse` -> libtorrent; old corpora's `bittorrent-*` is libtorrent). Captures labelled by
nDPI (real traffic from the wild) form the group `real` whatever the grouping.

A vantage-point view (data.generator.vantage: one peer's packets of a generated capture; its
summary names the capture in `vantage_of`) holds the same flows as its source: it is held out
whenever its source is, and never sits in another fold than its source (`source_captures`), or
a model would be scored on flows it trained on.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from p2pdetect.errors import BadConfigError
from p2pdetect.training.datasets import DPI, Dataset
from p2pdetect.training.split import capture_sort_key

log = logging.getLogger("p2pdetect.evaluate")

GROUP_BYS = ("implementation", "scenario", "network")
REAL = "real"
ORDINARY = "ordinary (no P2P)"
DEFAULT_NETWORK = "loopback"
#: Old app names of libtorrent-based generator traffic.
_ALIASES = {"bittorrent": "libtorrent"}


def implementation_of(app: str) -> str:
    """The implementation named by a P2P app label: `libtorrent-mse` -> `libtorrent`."""
    head = str(app).strip().lower().split("-", 1)[0]
    return _ALIASES.get(head, head)


def _manifest_entries(inputs: list[str | os.PathLike]) -> dict[str, dict]:
    """Capture path (as load_dataset names it) -> its manifest entry, for manifest inputs."""
    out: dict[str, dict] = {}
    for arg in map(Path, inputs):
        if arg.suffix.lower() != ".json" or not arg.is_file():
            continue
        try:
            doc = json.loads(arg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        for e in doc.get("captures", []) if isinstance(doc, dict) else []:
            if isinstance(e, dict) and isinstance(e.get("pcap"), str):
                out[str(arg.parent / e["pcap"])] = e
    return out


def _summary(capture: str) -> dict:
    """The generator's JSON summary beside a capture (empty when there is none)."""
    p = Path(capture)
    side = p.with_name(p.name.rsplit(".", 1)[0] + ".json")
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def source_of(capture: str, info: dict | None = None) -> str:
    """The capture a view (vantage-point or late-start) was derived from (the capture itself when
    it is not a view)."""
    info = _summary(capture) if info is None else info
    src = info.get("vantage_of") or info.get("view_of")
    return str(Path(capture).parent.parent / src) if isinstance(src, str) and src else capture


def source_captures(captures: np.ndarray) -> np.ndarray:
    """Per row, the source of its capture (source_of): the key to split folds by."""
    captures = np.asarray(captures).astype(str)
    uniq, inv = np.unique(captures, return_inverse=True)
    return np.array([source_of(c) for c in uniq.tolist()], dtype=object)[inv].astype(str)


def scenario_of(capture: str, info: dict | None = None) -> str:
    """A capture's scenario: its summary's (or manifest entry's), else its file name without seed."""
    info = _summary(capture) if info is None else info
    stem = Path(capture).name.rsplit(".", 1)[0]
    return str(info.get("scenario") or re.sub(r"-s\d+$", "", stem))


def capture_meta(dataset: Dataset, inputs: list[str | os.PathLike] = ()) -> dict[str, dict]:
    """Per capture: scenario, implementations, network and real (labelled by nDPI)."""
    entries = _manifest_entries(list(inputs))
    table = dataset.table
    caps = table.column("capture").to_numpy(zero_copy_only=False).astype(str)
    p2p = table.column("label").to_numpy(zero_copy_only=False).astype(str) == "p2p"
    apps = table.column("app").to_numpy(zero_copy_only=False).astype(str)
    derived: dict[str, set[str]] = {}
    for cap, app in set(zip(caps[p2p].tolist(), apps[p2p].tolist())):
        derived.setdefault(cap, set()).add(implementation_of(app))
    out = {}
    for name in sorted(set(dataset.captures) | set(caps.tolist())):
        info = {**_summary(name), **entries.get(name, {})}
        real = (dataset.captures.get(name) or {}).get("labels") == DPI
        impls = info.get("implementations")
        if not isinstance(impls, list):
            impls = sorted(derived.get(name, ()))
        out[name] = {"scenario": scenario_of(name, info), "source": source_of(name, info),
                     "implementations": sorted({implementation_of(i) for i in impls}),
                     "network": str(info.get("network") or DEFAULT_NETWORK), "real": real}
    return out


def _folds(names: list[str], k: int, seed: int) -> list[list[str]]:
    """names split into at most k folds of near-equal size (shuffled with seed)."""
    names = sorted(names, key=capture_sort_key)   # the same folds however the paths are spelt
    np.random.default_rng(seed).shuffle(names)
    k = max(1, min(k, len(names)))
    return [f for f in (names[i::k] for i in range(k)) if f]


def group_units(meta: dict[str, dict], group_by: str, n_splits: int = 5, seed: int = 0) -> list[dict]:
    """What each leave-one-group-out model leaves out and is scored on.

    Each unit: group (the reported group value), test (captures scored), held_out (captures
    kept out of its training: the test captures) and, for implementation groups, the
    implementation whose P2P flows are counted. Implementation X's unit holds every capture
    that holds X; captures without P2P are split into n_splits folds (FPR out of fold too);
    real captures are always in n_splits folds of their own group `real`.
    """
    if group_by not in GROUP_BYS:
        raise BadConfigError(f"--group-by must be one of {', '.join(GROUP_BYS)}. Got {group_by!r} instead.")
    real = [c for c, m in meta.items() if m["real"]]
    gen = [c for c, m in meta.items() if not m["real"]]
    units: list[dict] = []
    if group_by == "implementation":
        values = sorted({i for c in gen for i in meta[c]["implementations"]})
        for v in values:
            caps = [c for c in gen if v in meta[c]["implementations"]]
            units.append({"group": v, "test": caps, "held_out": caps, "implementation": v})
        ordinary = [c for c in gen if not meta[c]["implementations"]]
        for fold in _folds(ordinary, n_splits, seed):
            units.append({"group": ORDINARY, "test": fold, "held_out": fold, "implementation": None})
    else:
        key = group_by
        for v in sorted({meta[c][key] for c in gen}):
            caps = [c for c in gen if meta[c][key] == v]
            units.append({"group": v, "test": caps, "held_out": caps, "implementation": None})
    for fold in _folds(real, n_splits, seed):
        units.append({"group": REAL, "test": fold, "held_out": fold, "implementation": None})
    for u in units:   # a view leaves with its source (module doc)
        held = set(u["held_out"])
        u["held_out"] = u["held_out"] + [c for c, m in meta.items() if c not in held and m.get("source") in held]
    return units

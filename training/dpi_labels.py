"""Labels from nDPI: a documented mapping of nDPI application names to p2p / other / unlabelled.

nfstream reports nDPI's `application_name` as `MASTER.APP` (e.g. `TLS.Google`) or `APP`.
A flow is `p2p` when either part names a peer-to-peer file-sharing or P2P streaming
protocol below, `other` for every other identified application, and unlabelled ('') when
nDPI says `Unknown` or only guessed (`application_is_guessed != 0`). Ambiguous peer-to-peer
overlays that are not file sharing (cryptocurrency nodes, Syncthing) are left unlabelled
rather than forced into either class.

Names as nDPI spells them (nDPI 4.x protocol table, checked against real flows in
../shared/captures/ndpi: `BitTorrent`, `eDonkey`); legacy names of removed dissectors are
kept so older captures and other nDPI builds map the same way. Matching is case-insensitive.
"""

from __future__ import annotations

import numpy as np

#: nDPI application names that are P2P file sharing / P2P streaming.
P2P_APPS = frozenset(name.lower() for name in (
    "BitTorrent", "eDonkey", "Gnutella", "FastTrack", "Kazaa", "Soulseek", "Thunder", "Xunlei",
    "PPStream", "PPLive", "DirectConnect", "Direct_Connect", "Ares", "iMESH", "OpenFT",
    "AppleJuice", "Stealthnet", "WinMX", "Filetopia", "Aimini", "Vuze", "Pando", "Sopcast",
    "TVUPlayer", "TVAnts", "QQLive", "Kontiki", "Gnutella2",
))

#: Peer-to-peer overlays that are not what an operator means by P2P file sharing: unlabelled.
AMBIGUOUS_APPS = frozenset(name.lower() for name in (
    "Bitcoin", "Ethereum", "Monero", "Mining", "Syncthing",
))

UNKNOWN = "unknown"


def dpi_label(app_name: str, guessed: int) -> str:
    """'p2p', 'other' or '' (unlabelled) for one nDPI application name."""
    if guessed or not app_name:
        return ""
    parts = [p.lower() for p in app_name.split(".")]
    if any(p in P2P_APPS for p in parts):
        return "p2p"
    if parts == [UNKNOWN] or any(p in AMBIGUOUS_APPS for p in parts):
        return ""
    return "other"


def dpi_labels(app_names: np.ndarray, guessed: np.ndarray) -> np.ndarray:
    """Vectorised over flows: label per flow from application_name and application_is_guessed.

    Mapping runs once per distinct (name, guessed) pair, then broadcasts back to flows.
    """
    names = np.asarray(app_names, dtype=object)
    g = np.asarray(guessed).astype(np.int64) != 0
    keys = np.char.add(np.where(g, "1|", "0|"), names.astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    mapped = np.array([dpi_label(k[2:], k[0] == "1") for k in uniq.tolist()], dtype=object)
    return mapped[inverse] if len(names) else np.empty(0, dtype=object)

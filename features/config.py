"""ExtractConfig: how flows are metered and featurised; one object shared by extract and score."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from p2pdetect.errors import BadConfigError

#: nfstream accounting mode 3 counts transport payload bytes: independent of link type
#: (Ethernet, Linux cooked, raw IP) and of TCP options, and it makes handshakes visible as 0s.
ACCOUNTING_MODE = 3


def check_param(owner: str, name: str, value: object, ok: bool, expected: str) -> None:
    """Raise the project's one error template for a bad parameter value."""
    if not ok:
        raise BadConfigError(
            f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead."
        )


def is_int(v: object) -> bool:
    """An int that is not a bool (True is an int in Python)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: object) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    """Meter and feature settings. A model bundle records them; scoring must use the same.

    splt_n: how many first packets keep their size, direction and inter-arrival time.
    idle_timeout / active_timeout: nfstream flow expiry, seconds.
    n_dissections: packets nDPI may inspect per flow (audit labels only, never a feature).
    host_window_s: how far back host context looks, seconds of packet time.
    snapshot_packets: when > 0, extraction also writes an *early* row per flow that reaches
        this many packets: the flow as the live scorer's early verdict sees it (counters so
        far, host context as it stands). Models train on both stages; 0 = final rows only.
    peers_in_progress: with snapshot_packets (without, it changes nothing), an answered TCP connection also counts in its
        hosts' fan-out and high-port peers from that snapshot until it ends (features.host_context;
        off by default here; on in `make model`'s shipped model and in `train` when it extracts:
        docs/evaluation.md, sessions 16–17).
    """

    splt_n: int = 32
    idle_timeout: int = 120
    active_timeout: int = 1800
    n_dissections: int = 20
    host_window_s: float = 300.0
    snapshot_packets: int = 0
    peers_in_progress: bool = False

    def __post_init__(self) -> None:
        own = type(self).__name__
        check_param(own, "splt_n", self.splt_n, is_int(self.splt_n) and 1 <= self.splt_n <= 255,
                    "an int in [1, 255]")
        check_param(own, "idle_timeout", self.idle_timeout,
                    is_int(self.idle_timeout) and self.idle_timeout >= 1, "an int >= 1")
        check_param(own, "active_timeout", self.active_timeout,
                    is_int(self.active_timeout) and self.active_timeout >= 1, "an int >= 1")
        check_param(own, "n_dissections", self.n_dissections,
                    is_int(self.n_dissections) and 0 <= self.n_dissections <= 255,
                    "an int in [0, 255]")
        check_param(own, "host_window_s", self.host_window_s,
                    is_num(self.host_window_s) and self.host_window_s > 0, "a number > 0")
        check_param(own, "snapshot_packets", self.snapshot_packets,
                    is_int(self.snapshot_packets) and (self.snapshot_packets == 0 or self.snapshot_packets >= 2),
                    "0 (off) or an int >= 2")
        check_param(own, "peers_in_progress", self.peers_in_progress,
                    isinstance(self.peers_in_progress, bool), "a bool")

    def same_features(self, other: "ExtractConfig") -> bool:
        """True when both give the same feature values: snapshot_packets only adds early rows,
        unless peers_in_progress lets its snapshots into host context (then final rows differ)."""
        mine, theirs = self.to_dict(), other.to_dict()
        if not (self.peers_in_progress or other.peers_in_progress):
            mine.pop("snapshot_packets")
            theirs.pop("snapshot_packets")
        return mine == theirs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExtractConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def streamer_kwargs(self) -> dict:
        """Keyword arguments for nfstream.NFStreamer (without source)."""
        return dict(
            statistical_analysis=True,
            splt_analysis=self.splt_n,
            accounting_mode=ACCOUNTING_MODE,
            idle_timeout=self.idle_timeout,
            active_timeout=self.active_timeout,
            n_dissections=self.n_dissections,
            decode_tunnels=True,
        )

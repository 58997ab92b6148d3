"""GenerateConfig: what one generator run should produce, validated once on construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data import GenerateError

#: Scenario names in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = (
    "p2p-tcp-mse",
    "p2p-utp",
    "p2p-mixed-ports",
    "p2p-biglybt",
    "p2p-ctorrent",
    "p2p-mixed-impl",
    "web",
    "bulk",
    "streaming",
    "dns",
    "ssh",
    "quic",
    "mixed-office",
    "mixed-home",
    # swarms that behave like real ones (data.generator.realistic): a DHT of hundreds of nodes, trackers, LSD
    "p2p-dht-swarm",
    # hard negatives (data.generator.hard_negatives): ordinary traffic with P2P's shape
    "webrtc",
    "game-udp",
    "parallel-downloads",
    "lan-services",
    "vpn",
)

#: Largest frame a 1500-byte-MTU Ethernet link carries (without FCS).
MAX_FRAME = 1514


def _bad(name: str, must: str, got: object) -> GenerateError:
    return GenerateError(f"The '{name}' parameter of GenerateConfig must be {must}. Got {got!r} instead.")


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    """One run: ``scenario`` (a name from SCENARIOS or ``all``), ``duration`` seconds of traffic
    per scenario, ``seed`` for every random choice, ``out_dir`` for the outputs, and ``scale``
    (1 = short sample-sized payloads; larger = bigger torrents and downloads for corpus runs).
    ``max_unlabelled_share`` is the share of flows without exactly one label above which the
    run fails instead of writing outputs."""

    scenario: str = "mixed-home"
    duration: int = 30
    seed: int = 0
    out_dir: Path = Path("out")
    scale: float = 1.0
    max_unlabelled_share: float = 0.005

    def __post_init__(self) -> None:
        if self.scenario != "all" and self.scenario not in SCENARIOS:
            raise _bad("scenario", f"one of {', '.join(SCENARIOS + ('all',))}", self.scenario)
        if not isinstance(self.duration, int) or isinstance(self.duration, bool) or self.duration < 5:
            raise _bad("duration", "an int >= 5 (seconds)", self.duration)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise _bad("seed", "an int >= 0", self.seed)
        if not isinstance(self.out_dir, Path):
            raise _bad("out_dir", "a pathlib.Path", self.out_dir)
        if not isinstance(self.scale, (int, float)) or not 0.1 <= self.scale <= 100:
            raise _bad("scale", "a number in [0.1, 100]", self.scale)
        if not isinstance(self.max_unlabelled_share, float) or not 0.0 <= self.max_unlabelled_share <= 1.0:
            raise _bad("max_unlabelled_share", "a float in [0, 1]", self.max_unlabelled_share)

    def scenarios(self) -> tuple[str, ...]:
        """The scenario names this run generates, in order."""
        return SCENARIOS if self.scenario == "all" else (self.scenario,)

"""GenerateConfig: what one generator run should produce, validated once on construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2pdetect.data import GenerateError

#: Scenario names in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = (
    "p2p-tcp-mse",
    "p2p-utp",
    "p2p-mixed-ports",
    "p2p-one-port",
    "p2p-biglybt",
    "p2p-ctorrent",
    "p2p-mixed-impl",
    "p2p-service-ports",
    "p2p-service-ports-only",   # the same swarm, every peer on a service port (p2p-evasion's, without libtorrent)
    "web",
    "bulk",
    "streaming",
    "dns",
    "ssh",
    "quic",
    "mixed-office",
    "mixed-home",
    "mixed-home-impl",
    "mixed-office-impl",   # mixed-office, its torrenters in a swarm of WebTorrent, BiglyBT and ctorrent peers
    # swarms that behave like real ones (data.generator.realistic): a DHT of hundreds of nodes, trackers, LSD
    "p2p-dht-swarm",
    "p2p-dht-home",
    # the evasions the seed documents describe (data.generator.evasion): BitTorrent over TLS, through SSH SOCKS
    "p2p-evasion",
    "p2p-evasion-impl",   # its SOCKS swarm with BiglyBT and ctorrent peers, BiglyBT through the tunnel
    # an ISP's vantage point (data.generator.isp): subscriber homes behind a router, some behind NAT, WAN paths
    "home-isp",
    "home-isp-impl",   # the same, its swarm of WebTorrent, BiglyBT and ctorrent peers
    # WebTorrent (data.generator.webtorrent_scenarios): uTP and DHT of an implementation other than libtorrent
    "p2p-webtorrent-dht",
    "p2p-webtorrent-mixed",
    "p2p-webtorrent-utp",
    # eD2k/Kad (data.generator.ed2k_scenarios): a P2P family other than BitTorrent
    "p2p-amule",
    # hard negatives (data.generator.hard_negatives): ordinary traffic with P2P's shape
    "webrtc",
    "game-udp",
    "parallel-downloads",
    "lan-services",
    "vpn",
    "server-browser",
    "game-p2p",
    "app-services",
    "net-diagnostics",   # pings, traceroutes, a gone resolver: the ICMP of ordinary hosts
)

#: Network paths (data.generator.topology): loopback (all hosts in one namespace, microsecond round
#: trips), or a WAN class whose paths each host draws (RTT < 30 ms, 30-150 ms, > 150 ms, 1-3 % loss).
NETWORKS: tuple[str, ...] = ("loopback", "wan-low", "wan-mid", "wan-high", "lossy")

#: Largest frame a 1500-byte-MTU Ethernet link carries (without FCS).
MAX_FRAME = 1514


def _num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _bad(name: str, must: str, got: object) -> GenerateError:
    return GenerateError(f"The '{name}' parameter of GenerateConfig must be {must}. Got {got!r} instead.")


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    """One run: ``scenario`` (a name from SCENARIOS or ``all``), ``duration`` seconds of traffic
    per scenario, ``seed`` for every random choice, ``out_dir`` for the outputs, and ``scale``
    (1 = short sample-sized payloads; larger = bigger torrents and downloads for corpus runs).
    ``max_unlabelled_share`` is the share of flows without exactly one label above which the
    run fails instead of writing outputs.

    ``network`` (a name from NETWORKS) puts hosts on WAN paths drawn per host, behind an ISP router
    whose uplink is the capture point; ``rtt_ms`` instead gives every path the same round trip (ms,
    as seen from the uplink), with ``jitter_ms`` (the round trip varies within +-jitter) and
    ``loss_pct`` (% of packets lost on each WAN link, each direction)."""

    scenario: str = "mixed-home"
    duration: int = 30
    seed: int = 0
    out_dir: Path = Path("out")
    scale: float = 1.0
    max_unlabelled_share: float = 0.005
    network: str = "loopback"
    rtt_ms: float | None = None
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

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
        if self.network not in NETWORKS:
            raise _bad("network", f"one of {', '.join(NETWORKS)}", self.network)
        if self.rtt_ms is not None and (not _num(self.rtt_ms) or not 1 <= self.rtt_ms <= 1000):
            raise _bad("rtt_ms", "a number in [1, 1000] (milliseconds) or None", self.rtt_ms)
        if not _num(self.jitter_ms) or not 0 <= self.jitter_ms <= (self.rtt_ms or 0):
            raise _bad("jitter_ms", "a number in [0, rtt_ms] (milliseconds; needs rtt_ms)", self.jitter_ms)
        if not _num(self.loss_pct) or not 0 <= self.loss_pct <= 20 or (self.loss_pct and self.rtt_ms is None):
            raise _bad("loss_pct", "a number in [0, 20] (percent; needs rtt_ms)", self.loss_pct)

    def path(self) -> dict[str, float] | None:
        """The fixed path every WAN link gets (``rtt_ms``, ``jitter_ms``, ``loss_pct``), or None."""
        if self.rtt_ms is None:
            return None
        return {"rtt_ms": float(self.rtt_ms), "jitter_ms": float(self.jitter_ms), "loss_pct": float(self.loss_pct)}

    def scenarios(self) -> tuple[str, ...]:
        """The scenario names this run generates, in order."""
        return SCENARIOS if self.scenario == "all" else (self.scenario,)

"""Prometheus metrics of the scorer, declared once, on a registry passed in (never the global).

Packet, byte and active-flow figures come from the meter's counters, which it sends at least
every MeterSpec.stats_s (0.25 s) while it runs: they are current under traffic, not only
when flows end. Flow and verdict counts move as verdicts are written.
"""

from __future__ import annotations

import ipaddress

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from p2pdetect.errors import BadConfigError

#: Scoring latency buckets, seconds (flow reported by the meter -> verdict written).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 4096)


class ScoreMetrics:
    """The scorer's counters, gauges and histograms on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.packets = Counter("p2pdetect_packets", "Packets metered", registry=registry)
        self.bytes = Counter("p2pdetect_bytes", "Bytes metered (frame lengths on the wire, link header "
                             "included)", registry=registry)
        self.active_flows = Gauge("p2pdetect_active_flows", "Flows the meter holds (started, not yet ended)",
                                  registry=registry)
        self.packets_ignored = Counter("p2pdetect_packets_ignored",
                                       "Packets the meter ignored (not IP, unparsable)", registry=registry)
        self.packets_dropped = Counter("p2pdetect_packets_dropped",
                                       "Packets the kernel dropped before the meter saw them (live only)",
                                       registry=registry)
        self.flows = Counter("p2pdetect_flows", "Flows metered (final records)", registry=registry)
        self.verdicts = Counter("p2pdetect_verdicts", "Verdicts made, by class and stage",
                                ["verdict", "stage"], registry=registry)
        self.latency = Histogram("p2pdetect_scoring_latency_seconds",
                                 "Flow reported by the meter -> its verdict written (per meter chunk)",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_flows = Histogram("p2pdetect_batch_flows", "Flows per scored micro-batch",
                                     buckets=BATCH_BUCKETS, registry=registry)
        self.queue_depth = Gauge("p2pdetect_queue_chunks", "Meter chunks waiting to be scored",
                                 registry=registry)
        self.held = Gauge("p2pdetect_held_verdicts", "Final verdicts held until their hosts' evidence is "
                          "complete (a host's first flows; written when released)", registry=registry)
        for v in ("p2p", "other"):  # expose zeros from the start
            for s in ("early", "final"):
                self.verdicts.labels(verdict=v, stage=s)
        self.new_meter()

    def _cumulative(self) -> dict:
        return {"packets": self.packets, "bytes": self.bytes, "ignored": self.packets_ignored,
                "dropped": self.packets_dropped}

    def new_meter(self) -> None:
        """The next counters come from a new meter, counting from 0 (the next capture of a run)."""
        self._last = dict.fromkeys(self._cumulative(), 0)

    def meter(self, stats) -> None:
        """Record the meter's counters (a serve.sources.MeterStats: cumulative, except active)."""
        for name, counter in self._cumulative().items():
            value = getattr(stats, name)
            if value > self._last[name]:
                counter.inc(value - self._last[name])
                self._last[name] = value
        self.active_flows.set(stats.active)

    def batch(self, n: int, counts: dict[tuple[str, str], int], final_flows: int,
              latencies: list[float]) -> None:
        """Record one scored, written batch."""
        self.batch_flows.observe(n)
        self.flows.inc(final_flows)
        for (verdict, stage), k in counts.items():
            if k:
                self.verdicts.labels(verdict=verdict, stage=stage).inc(k)
        for s in latencies:
            self.latency.observe(max(0.0, s))


#: Where metrics are served unless told otherwise: this host only. Scorer metrics describe
#: the traffic of a network; exposing them to every interface is the operator's choice.
DEFAULT_METRICS_ADDRESS = "127.0.0.1"


def check_metrics_address(addr: str) -> str:
    """`addr` if it is an IPv4 or IPv6 address to bind, else a one-line error."""
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        raise BadConfigError(f"--metrics-address must be an IP address of this host (127.0.0.1, ::1, "
                             f"0.0.0.0 for every interface, ...). Got {addr!r} instead.") from None


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = DEFAULT_METRICS_ADDRESS):
    """Expose `registry` over HTTP on addr:port (Prometheus text format); returns the server."""
    from prometheus_client import start_http_server

    addr = check_metrics_address(addr)
    try:
        return start_http_server(port, addr=addr, registry=registry)
    except OSError as err:
        raise BadConfigError(f"cannot serve metrics on port {port} of {addr} ({err.strerror}); "
                             f"choose another --metrics-port or --metrics-address") from err

"""Prometheus metrics of the scorer, declared once, on a registry passed in (never the global)."""

from __future__ import annotations

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
        for v in ("p2p", "other"):  # expose zeros from the start
            for s in ("early", "final"):
                self.verdicts.labels(verdict=v, stage=s)
        self._seen = (0, 0, 0)

    def meter(self, packets: int, ignored: int, dropped: int) -> None:
        """Record the meter's cumulative counters."""
        p0, i0, d0 = self._seen
        if packets > p0:
            self.packets.inc(packets - p0)
        if ignored > i0:
            self.packets_ignored.inc(ignored - i0)
        if dropped > d0:
            self.packets_dropped.inc(dropped - d0)
        self._seen = (max(p0, packets), max(i0, ignored), max(d0, dropped))

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


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0"):
    """Expose `registry` over HTTP on `port` (Prometheus text format); returns the server."""
    from prometheus_client import start_http_server

    try:
        return start_http_server(port, addr=addr, registry=registry)
    except OSError as err:
        raise BadConfigError(f"cannot serve metrics on port {port} ({err.strerror}); "
                             f"choose another --metrics-port") from err

"""A scoring run: source -> micro-batches -> scorer -> verdict lines -> sink, with metrics,
signals and the closing summary. Thin wiring around serve.scorer.score_stream.

SIGINT/SIGTERM ask the source to stop; the meter then reports every active flow as final,
and the run ends once each has its verdict written (invariant 7, docs/architecture.md).
Whether what was written is kept is the caller's choice (keep_partial): a live run stopped by
a signal ends normally; a capture file cut short is not a complete result.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Iterator

from p2pdetect.signals import Interrupted
from p2pdetect.serve.batching import micro_batches
from p2pdetect.serve.config import ScoreConfig
from p2pdetect.serve.metrics import ScoreMetrics
from p2pdetect.serve.scorer import StreamScorer, score_stream
from p2pdetect.serve.sinks import JsonLinesSink
from p2pdetect.serve.sources import FINAL, MeterSource
from p2pdetect.serve.verdicts import verdict_lines


@dataclass
class RunSummary:
    """What a run did; flows == final_verdicts when nothing was lost."""

    flows: int = 0            # final flow records the meter reported
    final_verdicts: int = 0   # final verdicts made (all scored; --alerts-only writes fewer)
    early_verdicts: int = 0
    p2p_final: int = 0
    lines_written: int = 0
    packets: int = 0
    dropped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    signum: int = 0           # the stop signal, when interrupted

    @property
    def balanced(self) -> bool:
        return self.flows == self.final_verdicts

    def line(self) -> str:
        share = 100.0 * self.p2p_final / self.final_verdicts if self.final_verdicts else 0.0
        rate = self.packets / self.seconds if self.seconds > 0 else 0.0
        drops = f", {self.dropped:,} dropped by the kernel" if self.dropped else ""
        how = f"stopped by {signal.Signals(self.signum).name}" if self.signum else \
            "stopped" if self.interrupted else "done"
        return (f"score {how}: {self.flows:,} flows metered = {self.final_verdicts:,} final verdicts"
                f"{'' if self.balanced else ' (MISMATCH)'} (+{self.early_verdicts:,} early), "
                f"{share:.1f}% P2P, {self.packets:,} packets in {self.seconds:.1f} s "
                f"({rate:,.0f} packets/s){drops}")


@contextmanager
def stop_on_signals(source: MeterSource, summary: RunSummary) -> Iterator[None]:
    """Route SIGINT/SIGTERM to source.stop() for the duration (main thread only); a second
    signal abandons the flush (Interrupted: exit 128 + signal, no partial output file)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if summary.interrupted:  # a second signal: stop waiting for the flush
            raise Interrupted(signum)
        summary.interrupted = True
        summary.signum = signum
        source.stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
           if signal.getsignal(s) is not signal.SIG_IGN}  # nohup / background job: stays ignored
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


#: Objects allocated (net) before the collector's youngest generation is collected during a
#: run (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def collect_less() -> Iterator[None]:
    """For a scoring run: what exists when it starts (modules, the model) leaves the cyclic
    garbage collector's view (gc.freeze), and a young collection waits for GC_YOUNG_THRESHOLD
    new objects. The scorer keeps its state in many small long-lived containers (host context
    and host evidence tables); with the defaults the collector kept re-scanning them: 22 % of
    the scoring CPU on benchmarks/score.py's capture (2.10 -> 1.65 s for its 34,056 verdicts).
    Reference counting still frees every acyclic object at once, and cycles are still
    collected, less often. The previous thresholds and the frozen objects come back after."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def run_scoring(source: MeterSource, bundle, sink: JsonLinesSink, config: ScoreConfig,
                metrics: ScoreMetrics | None = None, *, capture_name: str | None = None,
                keep_partial: bool = False) -> RunSummary:
    """Score every flow of `source` into `sink`; returns the run's summary.

    Stopped by a signal (summary.interrupted), the run still flushes and scores every flow
    the meter holds; the sink is then finished only with keep_partial (a live run), else
    discarded: an atomic file output is removed, a stream keeps what it was sent.
    """
    summary = RunSummary()
    scorer = StreamScorer(bundle, capture=capture_name if capture_name is not None else source.name)
    t0 = getattr(source, "started_at", None) or time.perf_counter()
    if metrics is not None:  # packet and byte counts as the meter reports them, not per batch
        metrics.new_meter()
        source.on_stats = metrics.meter
    try:
        with stop_on_signals(source, summary), collect_less(), \
                closing(iter(source)) as chunks, \
                closing(score_stream(micro_batches(chunks, config.batch_size, config.max_wait_s),
                                     scorer)) as stream:
            for scored in stream:
                lines = verdict_lines(scored, bundle.bundle_id, alerts_only=config.alerts_only)
                sink.write(lines)
                now = time.time()
                final = scored.stages == FINAL
                n_final = int(final.sum())
                p2p = scored.verdicts == "p2p"
                n_p2p_final = int((p2p & final).sum())
                n_p2p_early = int(p2p.sum()) - n_p2p_final
                summary.final_verdicts += n_final
                summary.early_verdicts += len(scored) - n_final
                summary.p2p_final += n_p2p_final
                summary.lines_written += len(lines)
                if metrics is not None:
                    n_early = len(scored) - n_final
                    metrics.batch(len(scored), {("p2p", "final"): n_p2p_final,
                                                ("other", "final"): n_final - n_p2p_final,
                                                ("p2p", "early"): n_p2p_early,
                                                ("other", "early"): n_early - n_p2p_early},
                                  n_final, [now - t for t in scored.t_first])
                    metrics.queue_depth.set(source.queue_depth())
                    metrics.held.set(scorer.evidence.n_held)
        if summary.interrupted and not keep_partial:
            sink.discard()
        else:
            sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        summary.seconds = time.perf_counter() - (getattr(source, "started_at", None) or t0)
        summary.flows = source.stats.flows
        summary.packets = source.stats.packets
        summary.dropped = source.stats.dropped
        if metrics is not None:
            metrics.meter(source.stats)
    return summary

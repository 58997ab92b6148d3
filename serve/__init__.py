"""The streaming scorer: sources, micro-batching, scoring, verdict sinks, metrics, shutdown."""

from serve.batching import Batch, micro_batches
from serve.config import ScoreConfig
from serve.metrics import ScoreMetrics, serve_metrics
from serve.scorer import ScoredBatch, StreamScorer, score_stream
from serve.service import RunSummary, run_scoring
from serve.sinks import JsonLinesSink
from serve.sources import (
    EARLY,
    FINAL,
    MeterChunk,
    MeterSource,
    SourceError,
    capture_source,
    check_bpf,
    check_interface,
    chunks_from_flows,
    interface_source,
)
from serve.verdicts import HOST_KEYS, VERDICT_KEYS, verdict_lines

__all__ = [
    "Batch", "EARLY", "FINAL", "JsonLinesSink", "MeterChunk", "MeterSource", "RunSummary",
    "HOST_KEYS", "ScoreConfig", "ScoreMetrics", "ScoredBatch", "SourceError", "StreamScorer", "VERDICT_KEYS",
    "capture_source", "check_bpf", "check_interface", "chunks_from_flows", "interface_source", "micro_batches",
    "run_scoring", "score_stream", "serve_metrics", "verdict_lines",
]

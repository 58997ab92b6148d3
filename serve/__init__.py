"""The streaming scorer: sources, micro-batching, scoring, verdict sinks, metrics, shutdown."""

from p2pdetect.serve.batching import Batch, micro_batches
from p2pdetect.serve.config import ScoreConfig
from p2pdetect.serve.metrics import ScoreMetrics, serve_metrics
from p2pdetect.serve.scorer import ScoredBatch, StreamScorer, score_stream
from p2pdetect.serve.service import RunSummary, run_scoring
from p2pdetect.serve.sinks import JsonLinesSink
from p2pdetect.serve.sources import (
    EARLY,
    EARLY_EVIDENCE,
    EVIDENCE,
    FINAL,
    MeterChunk,
    MeterSource,
    SourceError,
    capture_source,
    check_bpf,
    check_interface,
    chunks_from_rows,
    early_capture_source,
    interface_source,
)
from p2pdetect.serve.verdicts import HOST_KEYS, VERDICT_KEYS, verdict_lines

__all__ = [
    "Batch", "EARLY", "EARLY_EVIDENCE", "EVIDENCE", "FINAL", "JsonLinesSink", "MeterChunk", "MeterSource", "RunSummary",
    "HOST_KEYS", "ScoreConfig", "ScoreMetrics", "ScoredBatch", "SourceError", "StreamScorer", "VERDICT_KEYS",
    "capture_source", "check_bpf", "check_interface", "chunks_from_rows", "early_capture_source",
    "interface_source", "micro_batches", "run_scoring", "score_stream", "serve_metrics", "verdict_lines",
]

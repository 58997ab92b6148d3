"""The scorer's core: batches of metered flows in, scored flows out (a generator).

Features come from ONE features.FlowFeaturizer per stream, the class batch extraction
uses (DESIGN.md invariant 1): final flows go through it in meter order and feed its host
context. Early snapshots are scored against the host context as it stands, without being
remembered: a flow enters host context once, when it ends, as in batch extraction, so the
final verdict of every flow equals the offline one.
"""

from __future__ import annotations

import inspect
import pickle
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from features.featurize import FlowFeaturizer
from serve.batching import Batch
from serve.sources import EARLY, FINAL, MeterStats

#: Flow-table columns a verdict record carries (identity and size; never payload).
RECORD_COLUMNS = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol",
                  "bidirectional_first_seen_ms", "bidirectional_last_seen_ms",
                  "bidirectional_packets", "bidirectional_bytes"]


@dataclass
class ScoredBatch:
    """One micro-batch after scoring: early snapshots, then final flows in meter order."""

    cols: dict[str, np.ndarray]   # RECORD_COLUMNS
    stages: np.ndarray            # uint8: EARLY / FINAL
    scores: np.ndarray            # P(p2p)
    verdicts: np.ndarray          # "p2p" / "other"
    t_first: list[float] = field(default_factory=list)
    stats: MeterStats = field(default_factory=MeterStats)

    def __len__(self) -> int:
        return len(self.scores)


def _supports_remember() -> bool:
    return "remember" in inspect.signature(FlowFeaturizer.transform_rows).parameters


class StreamScorer:
    """Scores micro-batches of one stream (one capture or one interface) with one model.

    early_every_s: while FlowFeaturizer cannot featurise without remembering, early
    snapshots are scored on a copy of its state (a few ms per thousand flows in the host
    window), so they are grouped: at most one copy per `early_every_s` seconds, and
    copies take at most about a fifth of the time (the gap grows with their cost).
    """

    def __init__(self, bundle, *, capture: str = "", early_every_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bundle = bundle
        self.featurizer = FlowFeaturizer(bundle.extract_config, capture=capture)
        self._remember_kw = _supports_remember()
        self.early_every_s = 0.0 if self._remember_kw else early_every_s
        self._clock = clock
        self._early_rows: list = []
        self._early_t: list[float] = []
        self._early_since = clock()
        self._early_gap = self.early_every_s

    def _peek(self, rows: list) -> dict[str, np.ndarray]:
        """Feature columns for early snapshots, leaving the featurizer's state untouched."""
        if self._remember_kw:
            return self.featurizer.transform_rows(rows, remember=False)
        clone = pickle.loads(pickle.dumps(self.featurizer, protocol=pickle.HIGHEST_PROTOCOL))
        return clone.transform_rows(rows)

    def _part(self, cols: dict[str, np.ndarray], stage: int) -> tuple:
        scores = self.bundle.predict_proba(cols)
        return {c: cols[c] for c in RECORD_COLUMNS}, np.full(len(scores), stage, np.uint8), scores

    def score(self, batch: Batch, *, flush: bool = False) -> ScoredBatch:
        """Score a batch's final flows now, and its early snapshots now or with the next group."""
        stages = np.frombuffer(bytes(batch.stages), dtype=np.uint8)
        rows = batch.rows
        if (stages == FINAL).all():
            finals = rows
        else:
            finals = [rows[i] for i in np.flatnonzero(stages == FINAL)]
            self._early_rows.extend(rows[i] for i in np.flatnonzero(stages == EARLY))
            self._early_t.extend(batch.t_first)
        parts = []
        if finals:
            parts.append(self._part(self.featurizer.transform_rows(finals), FINAL))
        now = self._clock()
        if self._early_rows and (flush or now - self._early_since >= self._early_gap):
            parts.insert(0, self._part(self._peek(self._early_rows), EARLY))
            self._early_rows = []
            t_first = batch.t_first + self._early_t
            self._early_t = []
            self._early_since = self._clock()
            # copies grow with the host-context window: keep them under ~20% of the time
            self._early_gap = max(self.early_every_s, 5 * (self._early_since - now))
        else:
            t_first = batch.t_first
        if not parts:
            parts.append(self._part(self.featurizer.transform_rows([]), FINAL))
        scores = np.concatenate([p[2] for p in parts])
        return ScoredBatch({c: np.concatenate([p[0][c] for p in parts]) for c in RECORD_COLUMNS},
                           np.concatenate([p[1] for p in parts]), scores, self.bundle.verdicts(scores),
                           t_first, batch.stats)

    def flush(self) -> ScoredBatch | None:
        """Score early snapshots still waiting for their group (end of stream)."""
        if not self._early_rows:
            return None
        return self.score(Batch([], bytearray()), flush=True)


def score_stream(batches: Iterable[Batch], scorer: StreamScorer) -> Iterator[ScoredBatch]:
    """Flows in, scored flows out: the generator every source and sink wraps."""
    for batch in batches:
        if len(batch):
            scored = scorer.score(batch)
            if len(scored):
                yield scored
    last = scorer.flush()
    if last is not None:
        yield last

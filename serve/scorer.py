"""The scorer's core: batches of metered flows in, scored flows out (a generator).

Features come from ONE features.FlowFeaturizer per stream, the class batch extraction
uses (DESIGN.md invariant 1): rows go through it in the order the meter handed them over;
final flows feed its host context, early snapshots are scored against the host context as it
stands, without being remembered: a flow enters host context when it ends (and, with the
model's ExtractConfig.peers_in_progress, an answered TCP connection also when its evidence
snapshot comes, as in progress), as in batch extraction, so every flow's verdicts equal the
offline ones.

Model scores then pass through ONE models.HostEvidence per stream (the class batch evaluation
uses): a flow on an endpoint already known to be P2P is flagged from its first verdict, and
host records come out when a host's evidence crosses the threshold. The meter's evidence
snapshots (the model's snapshot_packets; features/snapshot_meter.py) feed that evidence too,
and are not verdicts: they leave the batch after scoring. A final verdict the evidence holds
(HostEvidence hold_s: a host's first flows, before its evidence is complete) leaves its batch
and comes out in the batch that releases it, or at the end of the stream: final verdicts are
the offline ones, not always in meter order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from p2pdetect.features.featurize import FlowFeaturizer
from p2pdetect.models.host_evidence import EVIDENCE_COLUMNS, HostEvidence
from p2pdetect.serve.batching import Batch
from p2pdetect.features.snapshot_meter import evidence_stages
from p2pdetect.serve.sources import EARLY, EVIDENCE, FINAL, MeterStats

#: Flow-table columns a verdict record carries (identity and size; never payload).
RECORD_COLUMNS = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol",
                  "bidirectional_first_seen_ms", "bidirectional_last_seen_ms",
                  "bidirectional_packets", "bidirectional_bytes", "src2dst_bytes", "dst2src_bytes"]
assert set(EVIDENCE_COLUMNS) <= set(RECORD_COLUMNS)


@dataclass
class ScoredBatch:
    """One micro-batch after scoring: early and final verdicts in the order the meter gave them."""

    cols: dict[str, np.ndarray]   # RECORD_COLUMNS
    stages: np.ndarray            # uint8: EARLY / FINAL
    scores: np.ndarray            # P(p2p), after endpoint evidence
    verdicts: np.ndarray          # "p2p" / "other"
    t_first: list[float] = field(default_factory=list)
    stats: MeterStats = field(default_factory=MeterStats)
    hosts: list[dict] = field(default_factory=list)   # host records due (models.HostEvidence)

    def __len__(self) -> int:
        return len(self.scores)


class StreamScorer:
    """Scores micro-batches of one stream (one capture or one interface) with one model."""

    def __init__(self, bundle, *, capture: str = "") -> None:
        self.bundle = bundle
        self.featurizer = FlowFeaturizer(bundle.extract_config, capture=capture)
        self.evidence = HostEvidence(bundle.threshold, model_id=bundle.bundle_id, **bundle.evidence)
        self._rows = 0                      # rows scored so far: the keys of held verdicts
        self._held: dict[int, tuple] = {}   # key -> the held flow's RECORD_COLUMNS values

    def score(self, batch: Batch) -> ScoredBatch:
        """Score a batch in meter order: early snapshots against the host context as it stands,
        final flows entering it; evidence snapshots feed the host evidence and are dropped. Final
        verdicts the evidence holds leave the batch and join a later one when released."""
        stages = np.frombuffer(bytes(batch.stages), dtype=np.uint8)
        final = stages == FINAL
        evidence = evidence_stages(stages)
        cols = self.featurizer.transform_rows(batch.rows, remember=final, evidence=evidence)
        keys = range(self._rows, self._rows + len(stages))
        self._rows += len(stages)
        scores = self.evidence.update(cols, self.bundle.predict_proba(cols), remember=final,
                                      evidence=evidence if evidence.any() else None, keys=keys)
        out = np.where(final, FINAL, EARLY).astype(np.uint8)
        rec = {c: cols[c] for c in RECORD_COLUMNS}
        held = self.evidence.held
        for i in np.flatnonzero(held).tolist():
            self._held[keys[i]] = tuple(rec[c][i] for c in RECORD_COLUMNS)
        if held.any() or (stages == EVIDENCE).any():
            keep = (stages != EVIDENCE) & ~held
            rec = {c: v[keep] for c, v in rec.items()}
            out, scores = out[keep], scores[keep]
        rec, out, scores = self._with_released(rec, out, scores, self.evidence.pop_released())
        return ScoredBatch(rec, out, scores, self.bundle.verdicts(scores),
                           batch.t_first, batch.stats, self.evidence.pop_records())

    def finish(self) -> ScoredBatch:
        """No new flows: the verdicts still held, then the host records due at the end of the
        stream (one per P2P host)."""
        empty = {c: np.empty(0, dtype=object if c.endswith("_ip") else np.int64) for c in RECORD_COLUMNS}
        rec, out, scores = self._with_released(empty, np.empty(0, np.uint8), np.empty(0), self.evidence.flush())
        return ScoredBatch(rec, out, scores, self.bundle.verdicts(scores), hosts=self.evidence.finish())

    def _with_released(self, rec: dict, stages: np.ndarray, scores: np.ndarray, released: list):
        """The batch's rows followed by the held final verdicts just released."""
        if not released:
            return rec, stages, scores
        rows = [self._held.pop(k) for k, _ in released]
        rec = {c: np.concatenate([v, np.array([r[j] for r in rows], dtype=v.dtype)])
               for j, (c, v) in enumerate(rec.items())}
        return (rec, np.concatenate([stages, np.full(len(rows), FINAL, np.uint8)]),
                np.concatenate([scores, np.array([sc for _, sc in released])]))


def score_stream(batches: Iterable[Batch], scorer: StreamScorer) -> Iterator[ScoredBatch]:
    """Flows in, scored flows out: the generator every source and sink wraps. Once the batches
    end, one last flow-less batch carries the closing host records."""
    for batch in batches:
        if len(batch):
            yield scorer.score(batch)
    yield scorer.finish()

"""ScoreConfig: how the streaming scorer batches flows and when it gives early verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from p2pdetect.features.config import check_param, is_int, is_num


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    """Scorer settings (the meter's own settings come from the model bundle's ExtractConfig).

    batch_size / max_wait_s: a micro-batch is scored when it holds batch_size flows or its
        oldest flow has waited max_wait_s seconds, whichever comes first.
    early_packets / early_seconds: a flow gets an "early" verdict once it has this many
        packets or has lasted this long (0 disables that trigger; both 0: final verdicts only).
    alerts_only: write P2P verdicts only (every flow is still scored and counted).
    queue_chunks: meter -> scorer queue depth in chunks (backpressure on the meter).
    """

    batch_size: int = 512
    max_wait_s: float = 0.2
    early_packets: int = 32
    early_seconds: float = 10.0
    alerts_only: bool = False
    queue_chunks: int = 64

    def __post_init__(self) -> None:
        own = type(self).__name__
        check_param(own, "batch_size", self.batch_size,
                    is_int(self.batch_size) and 1 <= self.batch_size <= 1_000_000, "an int in [1, 1000000]")
        check_param(own, "max_wait_s", self.max_wait_s,
                    is_num(self.max_wait_s) and 0 < self.max_wait_s <= 60, "a number in (0, 60]")
        check_param(own, "early_packets", self.early_packets,
                    is_int(self.early_packets) and (self.early_packets == 0 or 2 <= self.early_packets <= 1_000_000),
                    "0 (off) or an int in [2, 1000000]")
        check_param(own, "early_seconds", self.early_seconds,
                    is_num(self.early_seconds) and 0 <= self.early_seconds <= 86_400,
                    "a number in [0, 86400] (0 = off)")
        check_param(own, "alerts_only", self.alerts_only, isinstance(self.alerts_only, bool), "a bool")
        check_param(own, "queue_chunks", self.queue_chunks,
                    is_int(self.queue_chunks) and 1 <= self.queue_chunks <= 32767, "an int in [1, 32767]")

    @property
    def chunk_flows(self) -> int:
        """Flows per meter -> scorer message."""
        return max(1, min(self.batch_size, 256))

    @property
    def chunk_wait_s(self) -> float:
        """Longest a flow waits in the meter before it is handed over (live capture)."""
        return self.max_wait_s / 4

    @property
    def file_chunk_wait_s(self) -> float:
        """The same for a capture file, metered as fast as it reads: chunks fill to chunk_flows
        well within max_wait_s, so the queue's queue_chunks hold queue_chunks * chunk_flows
        flows while the scorer starts (with max_wait_s / 4 they went out a third full)."""
        return self.max_wait_s

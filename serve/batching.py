"""Micro-batching: meter chunks in, batches of at most `batch_size` flows out.

A batch goes out when it is full, when its first chunk has waited `max_wait_s`, or when
the source yields None — "nothing more queued right now": scoring what is there at once
keeps latency low on a quiet source, while a busy source still fills whole batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from p2pdetect.serve.sources import MeterChunk, MeterStats


@dataclass
class Batch:
    """Flows scored together, in meter order."""

    rows: list
    stages: bytearray
    t_first: list[float] = field(default_factory=list)  # latency origins of the chunks inside
    stats: MeterStats = field(default_factory=MeterStats)

    def __len__(self) -> int:
        return len(self.rows)


def micro_batches(chunks: Iterable[MeterChunk | None], batch_size: int, max_wait_s: float,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[Batch]:
    """Regroup chunks into batches; flush on size, on age, and at the end."""
    pending: Batch | None = None
    since = 0.0
    for chunk in chunks:
        if chunk is not None and chunk.rows:
            if pending is None:
                pending = Batch([], bytearray())
                since = clock()
            pending.rows.extend(chunk.rows)
            pending.stages += chunk.stages
            pending.t_first.append(chunk.t_first)
            pending.stats = chunk.stats
            while len(pending.rows) >= batch_size:
                head = Batch(pending.rows[:batch_size], pending.stages[:batch_size],
                             pending.t_first, pending.stats)
                rest = Batch(pending.rows[batch_size:], pending.stages[batch_size:],
                             [chunk.t_first], pending.stats)
                yield head
                pending = rest if rest.rows else None
                since = clock()
                if pending is None:
                    break
        if pending is not None and (chunk is None or clock() - since >= max_wait_s):
            yield pending
            pending = None
    if pending is not None:
        yield pending

"""Progress lines on stderr for long runs: shown on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one status line on stderr when it is a terminal; does nothing otherwise."""

    def __init__(self, enabled: bool | None = None, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()
        self._shown = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def update(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
            self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()

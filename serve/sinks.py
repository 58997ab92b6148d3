"""Where verdict lines go: stdout or a file, flushed per batch; a broken output is one
clear OutputError, never a traceback.

Outputs follow p2pdetect.outputs: a capture file scored into a regular file is written to a
temporary name and renamed at the end (no half-written file after an error or an
interruption); devices, FIFOs and `-` are written in place, as streams; an input is never
overwritten. A live run (atomic=False) appends to its file and writes every batch at once, so
a reader can tail it and a crash leaves every verdict written so far.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable

from p2pdetect.errors import OutputError
from p2pdetect.outputs import OutputFile, describe, write_all


class JsonLinesSink:
    """Writes lines (already newline-terminated) to stdout or a file, one batch per write."""

    def __init__(self, path: str | os.PathLike | None = None, *, atomic: bool = True,
                 stream=None, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.lines = 0
        self._closed = False
        self._out: OutputFile | None = None
        if path is None:
            out = stream if stream is not None else sys.stdout
            out.flush()
            self._fd = out.fileno()
            self._name = "standard output"
            return
        self._out = OutputFile(path, inputs=inputs, append=not atomic)
        self._fd = self._out.fd
        self._name = "standard output" if str(path) == "-" else str(path)

    @property
    def stream(self) -> bool:
        """True when lines reach their reader as written (stdout, a device, a FIFO, a live
        file), False for a file that appears only when close() renames it into place."""
        return self._out is None or self._out.stream

    def write(self, lines: list[str]) -> None:
        """Write one batch of lines (a write reaches the file or pipe at once)."""
        if not lines:
            return
        try:
            write_all(self._fd, "".join(lines).encode("utf-8"))
        except OSError as err:
            self.abort()
            raise OutputError(f"{self._name}: cannot write verdicts ({describe(err)}); stopped") from err
        self.lines += len(lines)

    def close(self) -> None:
        """Finish: for atomic files fsync and rename the temporary file into place."""
        if self._closed:
            return
        self._closed = True
        if self._out is not None:
            self._out.commit()

    def discard(self) -> None:
        """Leave the output unfinished: an atomic file's temporary file is removed (nothing
        appears at the path); a stream or a live file keeps what it was sent."""
        self._closed = True
        if self._out is not None:
            self._out.discard()

    def abort(self) -> None:
        """Give up after a broken output: discard, and make a broken stdout harmless at exit."""
        self.discard()
        if self._out is not None:
            return
        try:  # the interpreter's final flush must not raise on a dead pipe
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

"""Where verdict lines go: stdout or a file, flushed per batch; a broken output is one
clear OutputError, never a traceback.

A capture file scored into a regular file is written to a temporary name and renamed at
the end (no half-written file after an error). A live run appends to its file and flushes
every batch, so a reader can tail it and a crash leaves every verdict written so far.
Devices and pipes (/dev/full, a FIFO) are written in place.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path

from features.table import check_output_path
from p2pdetect.errors import OutputError


def _describe(err: OSError) -> str:
    if err.errno == errno.EPIPE:
        return "the reader closed the pipe"
    return err.strerror or str(err)


class JsonLinesSink:
    """Writes lines (already newline-terminated) to stdout or a file."""

    def __init__(self, path: str | os.PathLike | None = None, *, atomic: bool = True,
                 stream=None) -> None:
        self.path = None if path is None else Path(path)
        self.lines = 0
        self._tmp: str | None = None
        self._closed = False
        if self.path is None:
            self._fh = stream if stream is not None else sys.stdout.buffer
            self._name = "standard output"
            return
        self._name = str(self.path)
        special = self.path.exists() and not stat.S_ISREG(self.path.stat().st_mode)
        if special:
            if self.path.is_dir():
                raise OutputError(f"{self.path}: is a directory; give a file name for the verdicts")
            opener = lambda: open(self.path, "ab", buffering=1 << 16)  # noqa: E731
        else:
            check_output_path(self.path)
            if atomic:
                fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                                 dir=self.path.parent)
                os.close(fd)
                opener = lambda: open(self._tmp, "wb", buffering=1 << 16)  # noqa: E731
            else:
                opener = lambda: open(self.path, "ab", buffering=1 << 16)  # noqa: E731
        try:
            self._fh = opener()
        except OSError as err:
            self._discard()
            raise OutputError(f"{self.path}: cannot open for writing ({_describe(err)}); "
                              f"choose another output path") from err

    def write(self, lines: list[str]) -> None:
        """Write and flush one batch of lines."""
        if not lines:
            return
        try:
            self._fh.write("".join(lines).encode("utf-8"))
            self._fh.flush()
        except OSError as err:
            self._broken(err)
        self.lines += len(lines)

    def _broken(self, err: OSError):
        self.abort()
        raise OutputError(f"{self._name}: cannot write verdicts ({_describe(err)}); stopped") from err

    def close(self) -> None:
        """Finish: flush, and for atomic files rename the temporary file into place."""
        if self._closed:
            return
        try:
            self._fh.flush()
            if self.path is not None:
                self._fh.close()
                if self._tmp is not None:
                    os.replace(self._tmp, self.path)
                    self._tmp = None
        except OSError as err:
            self._broken(err)
        self._closed = True

    def abort(self) -> None:
        """Give up: drop a temporary file; make a broken stdout harmless at exit."""
        self._closed = True
        if self.path is None:
            try:  # the interpreter's final flush must not raise on a dead pipe
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
            return
        try:
            self._fh.close()
        except OSError:
            pass
        self._discard()

    def _discard(self) -> None:
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None

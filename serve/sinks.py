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


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out. A signal that lands mid-write (SIGTERM asking the
    scorer to flush) makes write() return a partial count; a buffered file object can lose
    the rest of the batch there, this loop cannot."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class JsonLinesSink:
    """Writes lines (already newline-terminated) to stdout or a file, one batch per write."""

    def __init__(self, path: str | os.PathLike | None = None, *, atomic: bool = True,
                 stream=None) -> None:
        self.path = None if path is None else Path(path)
        self.lines = 0
        self._tmp: str | None = None
        self._closed = False
        self._own_fd = False
        if self.path is None:
            out = stream if stream is not None else sys.stdout
            out.flush()
            self._fd = out.fileno()
            self._name = "standard output"
            return
        self._name = str(self.path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        special = self.path.exists() and not stat.S_ISREG(self.path.stat().st_mode)
        if special:
            if self.path.is_dir():
                raise OutputError(f"{self.path}: is a directory; give a file name for the verdicts")
            target = str(self.path)
        else:
            check_output_path(self.path)
            if atomic:
                fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                                 dir=self.path.parent)
                os.close(fd)
                target = self._tmp
            else:
                target = str(self.path)
        try:
            self._fd = os.open(target, flags, 0o644)
            self._own_fd = True
        except OSError as err:
            self._discard()
            raise OutputError(f"{self.path}: cannot open for writing ({_describe(err)}); "
                              f"choose another output path") from err

    def write(self, lines: list[str]) -> None:
        """Write one batch of lines (a write reaches the file or pipe at once)."""
        if not lines:
            return
        try:
            _write_all(self._fd, "".join(lines).encode("utf-8"))
        except OSError as err:
            self._broken(err)
        self.lines += len(lines)

    def _broken(self, err: OSError):
        self.abort()
        raise OutputError(f"{self._name}: cannot write verdicts ({_describe(err)}); stopped") from err

    def close(self) -> None:
        """Finish: close, and for atomic files rename the temporary file into place."""
        if self._closed:
            return
        try:
            if self._own_fd:
                os.close(self._fd)
                self._own_fd = False
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
        if self._own_fd:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._own_fd = False
        self._discard()

    def _discard(self) -> None:
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None

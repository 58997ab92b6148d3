"""Capture inputs that are streams: ``-`` (standard input), a FIFO, ``/dev/stdin``, ``<(…)``.

The reading path needs a file it can walk before the meter trusts it (features.captures
maps every record header; features.reader may rewrite the capture) and nfstream itself
opens only regular files (``NFStreamer(source=FIFO)`` is refused: it checks
``os.path.isfile``). So a stream is spooled first into a private temporary file (mode
0600, in ``$TMPDIR``) that lives as long as the command and is removed when it ends,
also on an error or a stop signal. Verdicts therefore start once the stream has ended
(``tcpdump -w - -c N | p2pdetect score -``); a live source is scored as it runs with
``score -i IF``.

A leaf module, like ``outputs.py``: it imports nothing of ours but ``p2pdetect.errors``.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from p2pdetect.errors import BadCaptureError, P2PDetectError

#: the name that means standard input
STDIN = "-"
#: how a spooled standard input is named in messages
STDIN_NAME = "standard input"
_BLOCK = 1 << 20
#: how a pcap (four byte orders and resolutions) or pcapng file starts: a stream that starts
#: otherwise is kept only up to its first block, for the capture checks to name what it is
#: (so `score /dev/zero` is refused at once instead of filling $TMPDIR)
_CAPTURE_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                   b"\x0a\x0d\x0d\x0a"}
#: compressed streams: (magic prefix, name, the command that decompresses a stream)
_COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
               (b"\xfd7zXZ\x00", "xz", "unxz"), (b"BZh", "bzip2", "bunzip2"))


def is_stream(path: str | os.PathLike) -> bool:
    """True for ``-`` and for paths that are neither regular files nor directories but can be
    read as a stream (FIFO, character device such as /dev/stdin)."""
    if str(path) == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing: the capture checks say so
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def display_name(path: str | os.PathLike) -> str:
    """What messages call an input: 'standard input' for ``-``, else the path as given."""
    return STDIN_NAME if str(path) == STDIN else str(path)


def _spool(path: str, directory: str | None) -> Path:
    name = display_name(path)
    if path == STDIN:
        fd, own = sys.stdin.fileno(), False
        if os.isatty(fd):
            raise BadCaptureError(f"{name} is a terminal; pipe a capture into it "
                                  f"(e.g. tcpdump -w - | p2pdetect score -)")
    else:
        try:
            fd, own = os.open(path, os.O_RDONLY), True
        except OSError as err:
            raise BadCaptureError(f"{name}: cannot read ({err.strerror}); check the path and "
                                  f"permissions") from err
    out_fd, tmp = tempfile.mkstemp(prefix="p2pdetect-stdin-" if path == STDIN else "p2pdetect-stream-",
                                   suffix=".pcap", dir=directory)
    try:
        with os.fdopen(out_fd, "wb") as out:
            head = b""  # the first bytes, until there are enough to tell a capture
            while True:
                block = os.read(fd, _BLOCK)
                if not block:
                    break
                out.write(block)
                if head is not None:
                    head += block[:8]
                    if len(head) >= 8 or len(head) >= 4 and head[:4] in _CAPTURE_MAGICS:
                        if head[:4] not in _CAPTURE_MAGICS:
                            _refuse_compressed(name, head)
                            break  # not a capture: enough for the capture checks to say what it is
                        head = None
    except OSError as err:
        os.unlink(tmp)
        where = Path(tmp).parent
        raise BadCaptureError(f"{name}: cannot keep a copy to read in {where} ({err.strerror}); "
                              f"set TMPDIR to a file system with room") from err
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        if own:
            os.close(fd)
    return Path(tmp)


def _refuse_compressed(name: str, head: bytes) -> None:
    for prefix, kind, command in _COMPRESSED:
        if head.startswith(prefix):
            raise BadCaptureError(f"{name}: a {kind}-compressed stream, not a capture; pipe it through "
                                  f"{command} first")


@contextmanager
def spooled(paths: Sequence[str | os.PathLike], directory: str | None = None) -> Iterator[list[str]]:
    """The inputs with every stream replaced by a private temporary copy of what it carried;
    the copies are removed when the block ends. At most one ``-`` (standard input is read once).

    Inside the block, user errors and log messages that name a copy name its input instead
    ('standard input: not a pcap or pcapng capture …', not a temporary path).
    """
    if sum(str(p) == STDIN for p in paths) > 1:
        raise BadCaptureError(f"'-' ({STDIN_NAME}) given twice; it can be read only once")
    names: dict[str, str] = {}
    with ExitStack() as stack:
        out: list[str] = []
        for p in paths:
            if is_stream(p):
                tmp = _spool(str(p), directory)
                stack.callback(_unlink, tmp)
                names[str(tmp)] = display_name(p)
                out.append(str(tmp))
            else:
                out.append(str(p))
        if not names:
            yield out
            return
        rename = _Rename(names)
        handlers = logging.getLogger().handlers
        for h in handlers:
            h.addFilter(rename)
        try:
            yield out
        except P2PDetectError as err:
            msg = rename.text(str(err))
            if msg == str(err):
                raise
            raise type(err)(msg) from err
        finally:
            for h in handlers:
                h.removeFilter(rename)


class _Rename(logging.Filter):
    """Names the inputs in place of their temporary copies, in messages."""

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__()
        self.names = names

    def text(self, msg: str) -> str:
        for tmp, name in self.names.items():
            msg = msg.replace(tmp, name)
        return msg

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        renamed = self.text(msg)
        if renamed != msg:
            record.msg, record.args = renamed, None
        return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass

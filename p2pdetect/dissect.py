"""tshark's dissectors through pyshark, for drill-down and label audits (never the hot path).

pyshark runs tshark under an asyncio loop with a ``SafeChildWatcher``, which installs a SIGCHLD
handler and a signal wake-up pipe on the calling process and leaves them there after the capture
is closed. Nobody reads that pipe afterwards: a process that goes on to start many children (the
test suite, a generator) fills it and Python reports ``BlockingIOError`` from
``_sighandler_noop``. :func:`dissected` closes the capture and puts the process back as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import warnings
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def dissected(capture: str, **kwargs: Any) -> Iterator[Any]:
    """``pyshark.FileCapture(capture, keep_packets=False, **kwargs)``, closed on exit with the
    process's SIGCHLD disposition, signal wake-up fd and event loop restored."""
    import pyshark

    chld = signal.getsignal(signal.SIGCHLD)
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    cap = pyshark.FileCapture(capture, keep_packets=False, **kwargs)
    try:
        yield cap
    finally:
        cap.close()
        loop = getattr(cap, "eventloop", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # child watchers are deprecated in 3.12
            with contextlib.suppress(Exception):
                watcher = asyncio.get_child_watcher()
                watcher.close()
                asyncio.set_child_watcher(None)
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()
            asyncio.set_event_loop(None)
        signal.set_wakeup_fd(wakeup)
        signal.signal(signal.SIGCHLD, chld if chld is not None else signal.SIG_DFL)

"""tshark's dissectors through pyshark, for drill-down and label audits (never the hot path).

pyshark runs tshark under an asyncio loop with a ``SafeChildWatcher``, which installs a SIGCHLD
handler and a signal wake-up pipe on the calling process and leaves them there after the capture
is closed. Nobody reads that pipe afterwards: a process that goes on to start many children (the
test suite, a generator) fills it and Python reports ``BlockingIOError`` from
``_sighandler_noop``. :func:`dissected` closes the capture and puts the signal handling back as
it was (the event loop stays: tshark's transport may be collected after the capture closes).
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
    process's SIGCHLD disposition and signal wake-up fd restored."""
    import pyshark

    chld = signal.getsignal(signal.SIGCHLD)
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    cap = pyshark.FileCapture(capture, keep_packets=False, **kwargs)
    try:
        yield cap
    finally:
        cap.close()
        # the loop stays open: tshark's subprocess transport may be collected later, and closes
        # its pipes through it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # child watchers are deprecated in 3.12
            with contextlib.suppress(Exception):
                asyncio.get_child_watcher().close()
                asyncio.set_child_watcher(None)
        signal.set_wakeup_fd(wakeup)
        signal.signal(signal.SIGCHLD, chld if chld is not None else signal.SIG_DFL)

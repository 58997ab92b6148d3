"""How a command ends when it is told to stop, and why no child process outlives it.

``stop_signals()`` (entered by the command line around a command) makes SIGINT, SIGTERM and SIGHUP end every
child process at once and then raise ``Interrupted`` in the main thread, so the command
unwinds normally: temporary outputs are removed, nothing half-written is renamed into place,
and the command line prints one line and exits 128 + the signal number (130, 143, 129).

``Interrupted`` is a BaseException, as KeyboardInterrupt is, so ``except Exception`` does not
swallow it; unlike KeyboardInterrupt, nfstream's streamer does not catch it either (it takes
KeyboardInterrupt as "stop iterating" and ends quietly, which made an interrupted
``extract`` write a partial table and report success).

Every process forked afterwards (nfstream's meters, the scorer's meter, any worker) gets
``PR_SET_PDEATHSIG``: the kernel kills it when its parent dies, even by SIGKILL, so a meter
never lingers under PID 1 with the capture open. It also ignores SIGINT (a Ctrl-C reaches
the whole process group; the parent decides what happens to its children) and takes SIGTERM
with the default action, not the parent's Python handler. A child that needs its own
handlers (the scorer's meter flushes on SIGTERM) installs them after the fork.

A leaf module, like ``errors.py``: it imports nothing of ours.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: the signals that stop a command
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


class Interrupted(BaseException):
    """A stop signal arrived; the command ends with exit status 128 + signum."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def child_pids() -> list[int]:
    """Process ids of this process's children (Linux /proc; empty elsewhere)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def end_children() -> None:
    """SIGKILL every child process now (an abandoned run: nothing of theirs is needed)."""
    for pid in child_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _quiet_unraisable(unraisable) -> None:
    """After a stop signal, what Python can only report as "Exception ignored" is not printed: a
    library object the signal cut off half-built (multiprocessing's Finalize before its key was
    set, whose weak-reference callback then fails) is no error of the command's, and the command
    line's one line already says why it ends."""


def _raise_interrupted(signum, frame):
    end_children()
    for s in STOP_SIGNALS:  # let the unwinding (removing temporary outputs) finish
        if signal.getsignal(s) is _raise_interrupted:
            signal.signal(s, _end_children_only)
    sys.unraisablehook = _quiet_unraisable
    raise Interrupted(signum)


def _end_children_only(signum, frame):
    end_children()


_state: dict = {"hooked": False, "active": 0, "parent": 0, "prctl": None}


def _before_fork() -> None:
    _state["parent"] = os.getpid()


def _in_child() -> None:
    if not _state["active"]:
        return
    _state["active"] = 0  # the child's own forks are its business (it runs no command line)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in (signal.SIGTERM, signal.SIGHUP):  # the parent's handlers are not the child's
        if signal.getsignal(s) in (_raise_interrupted, _end_children_only):
            signal.signal(s, signal.SIG_DFL)
    prctl = _state["prctl"]
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _state["parent"]:  # the parent died before prctl took effect
        os._exit(1)


@contextmanager
def stop_signals() -> Iterator[None]:
    """For the duration: stop signals raise Interrupted in the main thread (after ending every
    child), and every child forked dies with its parent. Call from the main thread."""
    if not _state["hooked"]:
        _state["hooked"] = True
        try:  # loaded now: a forked child must not need the dynamic loader
            _state["prctl"] = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _state["prctl"] = None  # not Linux: children still end through end_children()
        os.register_at_fork(before=_before_fork, after_in_child=_in_child)
    # a signal the caller ignores stays ignored (nohup's SIGHUP, SIGINT of a background job)
    old = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS
           if signal.getsignal(s) is not signal.SIG_IGN}
    _state["active"] += 1
    try:
        yield
    finally:
        _state["active"] -= 1
        for s, h in old.items():
            signal.signal(s, h)

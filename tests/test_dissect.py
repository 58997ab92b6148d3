"""pyshark leaves the process as it found it: no SIGCHLD handler or wake-up pipe left behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import warnings
from pathlib import Path

import pytest

from p2pdetect.dissect import dissected

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "p2p-tcp-mse.pcap"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup installs it)")
def test_dissected_restores_sigchld_and_the_wakeup_fd() -> None:
    before = signal.getsignal(signal.SIGCHLD)
    for _ in range(2):  # a second dissection in the same process works as the first
        with dissected(str(SAMPLE)) as cap:
            first = next(iter(cap))
        assert "ip" in first
    assert signal.getsignal(signal.SIGCHLD) == before
    assert signal.set_wakeup_fd(-1) == -1  # nothing left that would fill a pipe nobody reads
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(300):  # the failing pattern: many children after a dissection
            subprocess.run(["true"], check=True)

"""Shared fixtures: paths to committed samples and the shared nDPI corpus, a CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A test run started in the background (`make test &`, nohup, some CI runners) inherits SIGINT and
# SIGHUP ignored, and the commands under test rightly keep a signal their caller ignored. The signal
# tests need what a terminal gives: default dispositions, inherited by every command they start.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, signal.SIG_DFL)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
NDPI = ROOT.parent / "shared" / "captures" / "ndpi"

needs_ndpi = pytest.mark.skipif(
    not NDPI.is_dir(), reason=f"the shared nDPI capture corpus is absent ({NDPI})")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (network namespaces, live capture)")


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run `python -m p2pdetect ARGS` as a user would; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "p2pdetect", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=kw.pop("cwd", ROOT), **kw)


def sample_captures() -> list[Path]:
    return sorted(SAMPLES.glob("*.pcap"))


@pytest.fixture(scope="session")
def samples() -> list[Path]:
    caps = sample_captures()
    assert caps, f"no sample captures in {SAMPLES}: run `make samples`"
    return caps

"""Shared fixtures: paths to committed samples and the shared nDPI corpus, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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

"""Shared helpers for the scorer tests: a stand-in model bundle and small captures.

The stand-in is a tiny LightGBM model trained on flows of a few nDPI sample captures
(BitTorrent/eDonkey captures labelled p2p): enough to exercise every path of the scorer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NDPI = REPO.parent / "shared" / "captures" / "ndpi"  # the shared nDPI corpus (as conftest.py)
P2P_CAPTURES = ["bittorrent_utp.pcap", "bittorrent_tcp_miss.pcapng", "edonkey.pcap"]
OTHER_CAPTURES = ["1kxun.pcap", "443-chrome.pcap", "quic.pcap", "webex.pcap"]


def needs_ndpi_corpus():
    import pytest

    return pytest.mark.skipif(not NDPI.is_dir(), reason=f"the shared nDPI capture corpus is absent ({NDPI})")


def ndpi(name: str) -> Path:
    return NDPI / name


def build_stand_in_bundle(path: Path, extract_config=None):
    """Train and save a tiny bundle (a few seconds)."""
    import lightgbm as lgb

    from features import ExtractConfig, feature_columns
    from features.extract import extract_capture
    from models import save_bundle

    config = extract_config or ExtractConfig()
    names = feature_columns(config.splt_n)
    X, y = [], []
    for cap, label in [(c, 1) for c in P2P_CAPTURES] + [(c, 0) for c in OTHER_CAPTURES]:
        t = extract_capture(ndpi(cap), config)
        X.append(np.column_stack([t.column(n).to_numpy(zero_copy_only=False).astype(np.float32) for n in names]))
        y.append(np.full(t.num_rows, label))
    X, y = np.vstack(X), np.concatenate(y)
    booster = lgb.train({"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 2, "verbose": -1,
                         "num_threads": 1, "seed": 1},
                        lgb.Dataset(X, y, feature_name=names), num_boost_round=20)
    return save_bundle(path, booster, feature_names=names, extract_config=config, threshold=0.5,
                       target_fpr=None, training={"stand_in": True}, metrics={})


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `python -m p2pdetect ARGS` from the repository root."""
    return subprocess.run([sys.executable, "-m", "p2pdetect", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **kw)


def read_verdicts(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def is_root() -> bool:
    return os.geteuid() == 0

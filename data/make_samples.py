"""Regenerate the small committed sample captures in data/samples/ (``make samples``; needs root).

Why these: an MSE-encrypted TCP swarm (the case nDPI calls Unknown), a uTP swarm, and ordinary
HTTPS/HTTP/DNS/chat traffic, each kept tiny (short runs, small torrents) so the whole folder stays
under ~3 MB while still giving tests and the README demo both classes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import GenerateConfig, generate

SAMPLES = Path(__file__).resolve().parent / "samples"

#: (scenario, seed, duration seconds, scale) of every committed sample.
SAMPLE_RUNS: tuple[tuple[str, int, int, float], ...] = (
    ("p2p-tcp-mse", 7, 20, 0.25),
    ("p2p-utp", 3, 20, 0.3),
    ("web", 1, 12, 0.2),
    ("mixed-home", 1, 15, 0.1),
    ("p2p-evasion", 0, 15, 0.1),  # BitTorrent over TLS and through an SSH SOCKS tunnel
)

#: Total size budget of data/samples/ in bytes.
BUDGET = 3_500_000


def make_samples(dest: Path = SAMPLES, only: tuple[str, ...] = ()) -> list[dict]:
    """Generate every sample (or those of the scenarios in ``only``) into a scratch directory, then
    replace ``dest``'s files with them."""
    dest.mkdir(parents=True, exist_ok=True)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="p2pd-samples-") as tmp:
        for scenario, seed, duration, scale in SAMPLE_RUNS:
            if only and scenario not in only:
                continue
            cfg = GenerateConfig(scenario=scenario, seed=seed, duration=duration, scale=scale, out_dir=Path(tmp))
            summaries += generate(cfg)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        if size > BUDGET:
            logging.getLogger(__name__).warning("samples take %.1f MB, over the %.1f MB budget", size / 1e6, BUDGET / 1e6)
        for f in sorted(Path(tmp).iterdir()):
            shutil.copyfile(f, dest / f".{f.name}.tmp")
            os.replace(dest / f".{f.name}.tmp", dest / f.name)
    return summaries


def main(argv: list[str]) -> int:
    """``python -m p2pdetect.data.make_samples [SCENARIO ...]``: regenerate all samples, or those named."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        for s in make_samples(only=tuple(argv)):
            print(f"{s['scenario']}: {s['packets']} packets, {s['flows']} flows, "
                  f"unlabelled {100 * s['unlabelled_share']:.2f}%, apps "
                  + ", ".join(f"{k}={v['flows']} (nDPI {v['ndpi']})" for k, v in s["apps"].items()))
    except GenerateError as err:
        sys.stderr.write(f"p2pdetect: error: {err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Extraction speed: bare nfstream meter vs `p2pdetect extract`, side by side in one run.

Builds (or takes) a capture of at least 1 million packets, then alternates runs of
  bare:    NFStreamer(source, statistical_analysis=True, splt_analysis=32, ...) iterated, flows dropped
  extract: the `p2pdetect extract CAPTURE -o flows.parquet` command, end to end
and prints packets/s of each (median of --repeat runs) with their ratio (target >= 0.85).
Then the parallel gain: two captures in one extract call with --jobs 1 vs --jobs 2.
Both sides are separate processes, so interpreter start-up counts on both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth_capture import make_capture  # noqa: E402

from p2pdetect.features.captures import validate_capture  # noqa: E402

BARE = """
import sys
from nfstream import NFStreamer
from p2pdetect.features.config import ExtractConfig
for _ in NFStreamer(source=sys.argv[1], **ExtractConfig().streamer_kwargs()):
    pass
"""


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", help="capture to use (default: a synthetic one, built once)")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="p2pd-bench-"))
    cap = Path(a.capture) if a.capture else make_capture(work / "bench.pcap", a.packets, seed=1)
    packets = validate_capture(cap).packets
    py = sys.executable
    p2p = [py, "-m", "p2pdetect"]
    bare, ext = [], []
    for _ in range(a.repeat):
        bare.append(_timed([py, "-c", BARE, str(cap)]))
        ext.append(_timed(p2p + ["extract", str(cap), "-o", str(work / "f.parquet"), "--jobs", "1"]))
    b, e = statistics.median(bare), statistics.median(ext)
    print(f"capture: {cap} ({packets:,} packets)")
    print(f"{'':28}{'seconds':>10}{'packets/s':>14}")
    print(f"{'bare nfstream meter':28}{b:>10.2f}{packets / b:>14,.0f}")
    print(f"{'p2pdetect extract':28}{e:>10.2f}{packets / e:>14,.0f}")
    print(f"ratio extract/bare: {b / e:.2f}x  (target >= 0.85)")

    second = cap if a.capture else make_capture(work / "bench2.pcap", a.packets, seed=2)
    files = [str(cap), str(second)]
    one = statistics.median(_timed(p2p + ["extract", *files, "-o", str(work / "g.parquet"), "--jobs", "1"])
                            for _ in range(max(1, a.repeat - 1)))
    two = statistics.median(_timed(p2p + ["extract", *files, "-o", str(work / "g.parquet"), "--jobs", "2"])
                            for _ in range(max(1, a.repeat - 1)))
    print(f"two captures, --jobs 1: {one:.2f} s; --jobs 2: {two:.2f} s; "
          f"parallel gain {one / two:.2f}x on {os.cpu_count()} cores")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scoring speed: bare nfstream meter vs `p2pdetect score`, side by side in one run.

On a capture of at least 1 million packets (benchmarks/synth_capture.py unless --capture):
  bare:   NFStreamer(source, **ExtractConfig().streamer_kwargs()) iterated, flows dropped
  score:  `p2pdetect score CAPTURE -o verdicts.jsonl` end to end (early verdicts on),
          its peak RSS (process tree) and RSS over the run
and their packets/s and ratio (target >= 0.9), with the CPU seconds each side spent (its meter
process included) and the load average around each pair: on a shared machine the ratio
depends on whether the second core is free, the CPU seconds do not. Then, in process: p50/p99 scoring latency
(meter hands a chunk over -> its verdicts written), model inference alone in flows/s on
one thread on the capture's flows, LightGBM and the compiled predictor side by side (target
>= 1 M flows/s batched; benchmarks/inference.py does the same on the sample captures' flows),
and a naive pyshark per-packet extraction on a slice of the same capture for contrast.

The model is the shipped one (models/default) unless --model names another, or --stand-in
trains a bigger stand-in on the capture (300 trees, 31 leaves) to see how inference scales.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from inference import compare, print_comparison, scorers  # noqa: E402
from synth_capture import make_capture  # noqa: E402

BARE = """
import sys
from nfstream import NFStreamer
from p2pdetect.features.config import ExtractConfig
for _ in NFStreamer(source=sys.argv[1], **ExtractConfig().streamer_kwargs()):
    pass
"""


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _run(cmd: list[str], sample_s: float = 0.1) -> tuple[float, list[tuple[float, int]], str, float]:
    """Wall seconds, RSS samples (t, bytes) of the process tree, stderr, and the CPU seconds
    (user + system) of the process tree (its meter process included: each is reaped by its parent)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = _tree_rss(proc.pid)
        if rss:
            samples.append((time.perf_counter() - t0, rss))
        time.sleep(sample_s)
    wall = time.perf_counter() - t0
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{''.join(err)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, samples, "".join(err), cpu


def _stand_in(cap: Path, path: Path):
    import lightgbm as lgb

    from p2pdetect.features import ExtractConfig
    from p2pdetect.features.extract import extract_capture
    from p2pdetect.models import save_bundle

    config = ExtractConfig()
    t = extract_capture(cap, config)
    from p2pdetect.features import feature_columns
    names = feature_columns(config.splt_n)
    X = np.column_stack([t.column(n).to_numpy(zero_copy_only=False).astype(np.float32) for n in names])
    dport = t.column("dst_port").to_numpy()
    y = np.isin(dport, [6881, 51413]).astype(int)
    rng = np.random.default_rng(0)
    y = np.where(rng.random(len(y)) < 0.1, 1 - y, y)  # label noise: grow full trees
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 5, "verbose": -1,
                         "num_threads": 1, "seed": 1}, lgb.Dataset(X, y, feature_name=names),
                        num_boost_round=300)
    return save_bundle(path, booster, feature_names=names, extract_config=config, threshold=0.5,
                       target_fpr=None, training={"stand_in": "benchmark"}, metrics={}), t


def _latencies(cap: Path, bundle) -> tuple[list[float], dict]:
    """Run the scorer in process and record each chunk's hand-over -> written latency."""
    from prometheus_client import CollectorRegistry

    from p2pdetect.serve import JsonLinesSink, ScoreConfig, ScoreMetrics, capture_source, run_scoring

    lat: list[float] = []

    class Recording(ScoreMetrics):
        def batch(self, n, counts, final_flows, latencies):
            lat.extend(latencies)
            super().batch(n, counts, final_flows, latencies)

    config = ScoreConfig()
    with tempfile.TemporaryDirectory() as d:
        summary = run_scoring(capture_source(cap, bundle.extract_config, config), bundle,
                              JsonLinesSink(Path(d) / "v.jsonl"), config, Recording(CollectorRegistry()))
    return lat, {"flows": summary.flows, "early": summary.early_verdicts, "seconds": summary.seconds}


def _pyshark(cap: Path, packets: int) -> float:
    """packets/s of a naive per-packet flow feature extraction with pyshark."""
    import pyshark

    flows: dict = {}
    t = time.perf_counter()
    fc = pyshark.FileCapture(str(cap), keep_packets=False)
    n = 0
    try:
        for pkt in fc:
            ip, tcp = pkt.ip, pkt.tcp
            key = tuple(sorted([(ip.src, tcp.srcport), (ip.dst, tcp.dstport)]))
            f = flows.setdefault(key, {"packets": 0, "bytes": 0, "sizes": [], "first": float(pkt.sniff_timestamp)})
            f["packets"] += 1
            f["bytes"] += int(pkt.length)
            if len(f["sizes"]) < 32:
                f["sizes"].append(int(pkt.length))
            f["last"] = float(pkt.sniff_timestamp)
            n += 1
            if n >= packets:
                break
    finally:
        fc.close()
    return n / (time.perf_counter() - t)


SENDER = """
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
t0 = time.time(); n = 0
while time.time() - t0 < seconds:
    s = socks[n % 64]
    s.sendto(b"q" * 60, ("127.0.0.%d" % (2 + n % 200), 20000 + n % 30000))
    n += 1
    time.sleep(max(0.0, t0 + n / rate - time.time()))
"""


def _live_inner(model: str, rate: float, seconds: float) -> int:
    """Inside a private namespace: score lo while UDP flows arrive at `rate` per second."""
    from prometheus_client import CollectorRegistry

    from p2pdetect.models import load_bundle
    from p2pdetect.serve import JsonLinesSink, ScoreConfig, ScoreMetrics, interface_source, run_scoring

    bundle = load_bundle(model)
    steady: list[float] = []
    stopped_at: list[float] = []

    class Recording(ScoreMetrics):
        def batch(self, n, counts, final_flows, latencies):
            if not stopped_at:  # steady state only; the shutdown flush is timed on its own
                steady.extend(latencies)
            super().batch(n, counts, final_flows, latencies)

    def stop() -> None:
        stopped_at.append(time.perf_counter())
        source.stop()

    config = ScoreConfig(early_seconds=1.0)
    source = interface_source("lo", bundle.extract_config, config)
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(rate), str(seconds)])
    threading.Timer(seconds + 2.5, stop).start()
    with tempfile.TemporaryDirectory() as d:
        summary = run_scoring(source, bundle, JsonLinesSink(Path(d) / "v.jsonl", atomic=False), config,
                              Recording(CollectorRegistry()))
    flush_s = time.perf_counter() - stopped_at[0]
    sender.wait()
    ms = np.array(steady) * 1000
    print(f"live lo, {rate:,.0f} new UDP flows/s for {seconds:.0f} s (early verdict after 1 s): steady-state "
          f"latency p50 {np.percentile(ms, 50):.0f} ms, p99 {np.percentile(ms, 99):.0f} ms over {len(ms):,} "
          f"chunks; SIGTERM -> every active flow scored and written: {flush_s:.1f} s "
          f"(incl. 1.2 s ring drain); {summary.line()}")
    return 0


def _live(model: str, rate: float, seconds: float) -> None:
    """Re-run this script inside a throw-away network namespace (root only)."""
    if os.geteuid() != 0:
        print("live latency: skipped (needs root for a network namespace)")
        return
    ns = f"p2pd-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--live-inner", "--model", model,
                        "--live-rate", str(rate), "--live-seconds", str(seconds)], check=True, cwd=REPO)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", help="capture to use (default: a synthetic one)")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--model", help="model bundle (default: the shipped model)")
    ap.add_argument("--stand-in", action="store_true",
                    help="train a 300-tree stand-in on the capture instead of using a bundle")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pyshark-packets", type=int, default=3000)
    ap.add_argument("--live-rate", type=float, default=2000, help="new flows/s in the live latency run")
    ap.add_argument("--live-seconds", type=float, default=10)
    ap.add_argument("--live-inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.live_inner:
        return _live_inner(a.model, a.live_rate, a.live_seconds)

    from p2pdetect.features.captures import validate_capture
    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.features.extract import extract_capture
    from p2pdetect.models import load_bundle

    work = Path(tempfile.mkdtemp(prefix="p2pd-score-bench-"))
    cap = Path(a.capture) if a.capture else make_capture(work / "bench.pcap", a.packets, seed=1)
    packets = validate_capture(cap).packets
    if a.stand_in:
        bundle, table = _stand_in(cap, work / "model")
    else:
        bundle = load_bundle(a.model)
        table = extract_capture(cap, replace(bundle.extract_config, snapshot_packets=0))
    assert bundle.extract_config == ExtractConfig() or not a.stand_in
    # compiled once here, so that each `score` run below loads it from the user cache, as a
    # second run on any machine does
    predictor = bundle.predictor.kind
    py = sys.executable
    score_cmd = [py, "-m", "p2pdetect", "score", str(cap), "--model", str(bundle.path),
                 "-o", str(work / "v.jsonl")]
    bare, score, rss, bare_cpu, score_cpu, load = [], [], [], [], [], []
    for _ in range(a.repeat):  # alternate, so load from other work hits both alike
        load.append(os.getloadavg()[0])
        wall, _, _, cpu = _run([py, "-c", BARE, str(cap)])
        bare.append(wall)
        bare_cpu.append(cpu)
        wall, samples, err, cpu = _run(score_cmd)
        score.append(wall)
        score_cpu.append(cpu)
        rss.append(samples)
    load.append(os.getloadavg()[0])
    b, s = statistics.median(bare), statistics.median(score)
    summary = err.strip().splitlines()[-1]
    verdicts = sum(1 for _ in open(work / "v.jsonl"))
    print(f"capture: {cap} ({packets:,} packets, {table.num_rows:,} flows); model {bundle.bundle_id} "
          f"({bundle.booster.num_trees()} trees, scored by {predictor})")
    print(f"{'':30}{'seconds':>9}{'packets/s':>13}")
    print(f"{'bare nfstream meter':30}{b:>9.2f}{packets / b:>13,.0f}")
    print(f"{'p2pdetect score (end to end)':30}{s:>9.2f}{packets / s:>13,.0f}")
    print(f"ratio score/bare: {b / s:.2f}x  (target >= 0.9); runs bare {[round(x, 2) for x in bare]}, "
          f"score {[round(x, 2) for x in score]}; per pair {[round(x / y, 2) for x, y in zip(bare, score)]}")
    bc, sc = statistics.median(bare_cpu), statistics.median(score_cpu)
    print(f"CPU seconds (user + system, meter process included): bare {bc:.2f}, score {sc:.2f} "
          f"({sc / bc:.2f}x the bare meter's: what the wall-clock ratio becomes when other work takes the "
          f"second core); 1-minute load average before each pair and at the end: "
          + " / ".join(f"{x:.1f}" for x in load))
    print(f"score summary: {summary}; {verdicts:,} verdict lines")
    last = rss[-1]
    peak = max(r for _, r in last)
    n = len(last)
    quarters = [last[min(n - 1, int(n * q))][1] / 2**20 for q in (0.25, 0.5, 0.75, 0.95)]
    print(f"peak RSS (scorer + meter processes): {peak / 2**20:,.0f} MiB; RSS at 25/50/75/95% of the run: "
          + " / ".join(f"{q:,.0f}" for q in quarters) + " MiB")

    lat, info = _latencies(cap, bundle)
    lat_ms = np.array(lat) * 1000
    print(f"scoring latency (chunk handed over -> verdicts written), capture at full speed: "
          f"p50 {np.percentile(lat_ms, 50):.1f} ms, p99 {np.percentile(lat_ms, 99):.1f} ms "
          f"over {len(lat):,} chunks")

    inference = compare(bundle, {c: table.column(c).to_numpy(zero_copy_only=False) for c in bundle.feature_names},
                        funcs=scorers(bundle))
    print_comparison(f"model inference, one thread, batches of 100k, the synthetic capture's {table.num_rows:,} "
                     f"flows tiled to 1 M (target >= 1,000,000 flows/s)", inference)

    _live(str(bundle.path), a.live_rate, a.live_seconds)

    rate = _pyshark(cap, a.pyshark_packets)
    print(f"naive pyshark per-packet extraction ({a.pyshark_packets:,} packets): {rate:,.0f} packets/s "
          f"({packets / s / rate:,.0f}x slower than p2pdetect score)")
    json.dump({"packets": packets, "bare_s": bare, "score_s": score, "ratio": b / s, "peak_rss": peak,
               "bare_cpu_s": bare_cpu, "score_cpu_s": score_cpu, "load_avg": load,
               "latency_ms_p50": float(np.percentile(lat_ms, 50)),
               "latency_ms_p99": float(np.percentile(lat_ms, 99)),
               "inference_flows_s": {k: r["best"] for k, r in inference.items()},
               "inference_flows_per_cpu_s": {k: r["best_cpu"] for k, r in inference.items()},
               "pyshark_pps": rate},
              open(work / "results.json", "w"), indent=1)
    print(f"results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

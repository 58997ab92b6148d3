"""Host evidence per flow, with and without held verdicts, side by side in one run:
python benchmarks/host_evidence.py [--reps N].

Times models.host_evidence.HostEvidence.update (the per-flow loop after the model, in the scorer
and in evaluation) on the shipped samples' flows and their evidence snapshots at 32 packets,
scored by the shipped model, in meter order, tiled N times (each copy on its own addresses and an
hour later, so the state grows as on a busy link), then flush():

  no hold       hold_s=0: every final verdict comes out of update()
  hold 120 s    the default: verdicts below the threshold of hosts with a flow called P2P (and
                capped ones, and those between high ports before their host has evidence, and
                those between hosts that may be mesh nodes or on sockets that may be two-way) are
                held and judged again when released
  floor 0.15    the default with hold_floor=0.15: a flow between high ports before its host has
                evidence is held only when it scored 0.15 or more on its own (the default until
                session 36)
  no mesh       the default with mesh_peers=0: no who-calls-whom state, no hold for the mesh
  no sockets    the default with socket_peers=0: no per-socket state, no hold for two-way sockets
  no echo       the default with echo_socket=False: no look-up of the peer's socket on each TCP call
  no early      the default with early_structure=False: evidence snapshots do not feed who trades with whom
  no tracker    the default with tracker_clients=0: no look-up of an endpoint's callers for short
                exchanges (nor the hold it gives)

Repeats are interleaved, with the cyclic collector off while timed, and the best CPU time of
each is kept; compare the ratio. Also prints how many verdicts were held and how many of them rose.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: benchmarks/ is on sys.path, the repository root is not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.host_context import NEED, sample_rows
from p2pdetect.models import load_bundle
from p2pdetect.models.host_evidence import EVIDENCE_COLUMNS, HostEvidence


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=40, help="copies of the samples' rows (default 40)")
    ap.add_argument("--runs", type=int, default=5, help="interleaved repeats (default 5)")
    args = ap.parse_args(argv)
    bundle = load_bundle()
    cols, final = sample_rows(args.reps, sorted(set(NEED) | set(EVIDENCE_COLUMNS)), bundle)
    scores = cols.pop("score")
    n = len(final)
    kinds = {"no hold": {"hold_s": 0.0}, "hold 120 s": {"hold_s": 120.0},
             "floor 0.15": {"hold_floor": 0.15}, "no mesh": {"mesh_peers": 0},
             "no sockets": {"socket_peers": 0}, "no echo": {"echo_socket": False},
             "no early": {"early_structure": False}, "no tracker": {"tracker_clients": 0}}
    best = {k: float("inf") for k in kinds}
    held = rose = 0
    for _ in range(args.runs):
        for k, kw in kinds.items():
            ev = HostEvidence(bundle.threshold, **{**bundle.evidence, **kw})
            gc.collect()
            gc.disable()   # as the scorer runs (service.collect_less)
            t0 = time.process_time()
            out = ev.update(cols, scores, remember=final, evidence=~final)
            released = ev.flush()
            best[k] = min(best[k], time.process_time() - t0)
            gc.enable()
            if k == "hold 120 s":
                held = len(released)
                rose = sum(s >= bundle.threshold for _, s in released)
    print(f"host evidence over {n:,} rows ({int(final.sum()):,} flows and {int((~final).sum()):,} "
          f"evidence snapshots), best of {args.runs} interleaved runs, CPU")
    base = best["no hold"]
    for k, s in best.items():
        print(f"  {k:12s} {s:7.3f} s  {s / n * 1e6:6.1f} us/row  {s / base:.2f}x")
    print(f"  held {held:,} final verdicts ({held / max(int(final.sum()), 1):.1%}), {rose:,} of them rose to P2P")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command-line surface of the generator, shared by ``p2pdetect generate`` and ``python -m p2pdetect.data.generator``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from p2pdetect.data import GenerateError
from p2pdetect.data.generator.config import NETWORKS, SCENARIOS, GenerateConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the generator's options on ``parser``."""
    parser.add_argument("--scenario", default="mixed-home", choices=SCENARIOS + ("all",),
                        help="what traffic to generate (default: mixed-home; 'all' runs every scenario)")
    parser.add_argument("--duration", type=int, default=30, metavar="S",
                        help="seconds of traffic per scenario (default: 30)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed for every random choice (default: 0)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="payload size multiplier: 1 = sample-sized, larger for corpus runs (default: 1)")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="output directory for <scenario>.pcap, .labels.csv and .json")
    parser.add_argument("--network", default="loopback", choices=NETWORKS,
                        help="where hosts sit: one loopback namespace (default), or WAN paths of this class drawn "
                        "per host, behind an ISP router whose uplink is the capture point")
    parser.add_argument("--rtt-ms", type=float, default=None, metavar="N",
                        help="WAN paths with this round trip (ms, as seen from the router uplink) for every host")
    parser.add_argument("--jitter-ms", type=float, default=0.0, metavar="J",
                        help="with --rtt-ms: the round trip varies within +-J ms (default: 0)")
    parser.add_argument("--loss", type=float, default=0.0, metavar="PCT",
                        help="with --rtt-ms: percent of packets lost on each WAN link, each direction (default: 0)")
    parser.add_argument("--audit", type=Path, metavar="DIR",
                        help="instead of generating, cross-check the labels of the captures in DIR with tshark")
    parser.add_argument("--audit-packets", type=int, default=20000, metavar="N",
                        help="with --audit: at most N packets read per capture (default: 20000)")


def run(args: argparse.Namespace) -> int:
    """Generate (or audit) as ``args`` ask; raises GenerateError for user errors."""
    if args.audit is not None:
        from p2pdetect.data.generator.audit import audit_dir

        report = audit_dir(args.audit, max_packets=args.audit_packets)
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if args.output is None:
        raise GenerateError("give an output directory with -o DIR (or --audit DIR to check existing captures)")
    from p2pdetect.data.generator.generate import generate

    config = GenerateConfig(scenario=args.scenario, duration=args.duration, seed=args.seed,
                            out_dir=args.output, scale=args.scale, network=args.network, rtt_ms=args.rtt_ms,
                            jitter_ms=args.jitter_ms, loss_pct=args.loss)
    for s in generate(config):
        apps = ", ".join(f"{k} {v['flows']}" for k, v in s["apps"].items())
        sys.stderr.write(
            f"{s['scenario']}: {s['packets']} packets, {s['flows']} flows ({apps}), "
            f"unlabelled {100 * s['unlabelled_share']:.2f}% -> {args.output / s['pcap']}\n"
        )
    return 0

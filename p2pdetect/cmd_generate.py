"""``p2pdetect generate``: labelled captures of real P2P and ordinary clients in a private network namespace.

Thin glue: the generator lives in ``data.generator`` (which depends on nothing else of ours);
user errors surface as ``data.GenerateError``, which the top-level CLI turns into one line and exit 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from p2pdetect.data.generator.command import add_arguments

#: which option sets which configuration field (errors name the option: p2pdetect.options)
CONFIG_OPTIONS = {f"GenerateConfig.{field}": option for field, option in [
    ("scenario", "--scenario"), ("duration", "--duration"), ("seed", "--seed"), ("scale", "--scale"),
    ("out_dir", "-o"), ("network", "--network"), ("rtt_ms", "--rtt-ms"), ("jitter_ms", "--jitter-ms"),
    ("loss_pct", "--loss")]}

#: -o is required unless --audit replaces the run: argparse cannot say that, so the usage does
USAGE = ("%(prog)s -o DIR [--scenario NAME] [--duration S] [--seed N] [--scale SCALE] [--network CLASS]\n"
         "                          [--rtt-ms N [--jitter-ms J] [--loss PCT]] [-v]\n"
         "       %(prog)s --audit DIR [--audit-packets N] [-v]")


def add_parser(subparsers: Any) -> None:
    """Register the ``generate`` subcommand on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "generate",
        usage=USAGE,
        help="generate labelled captures (needs root)",
        description="Run real BitTorrent (MSE over TCP, uTP) and ordinary clients (HTTPS, HTTP, DNS, streaming) "
        "inside a private network namespace, capture headers with tcpdump and label every flow by construction. "
        "With --network CLASS or --rtt-ms N, hosts sit on WAN paths with real delay, jitter, loss and rates "
        "behind an ISP router (some behind NAT), and the capture is the router's uplink. "
        "Writes <scenario>.pcap, <scenario>.labels.csv and <scenario>.json into -o DIR. "
        "With --audit DIR, cross-checks existing captures' labels with tshark instead.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate (or audit) as the parsed ``args`` ask; returns the exit status."""
    from p2pdetect.data.generator.command import run as run_generator

    return run_generator(args)

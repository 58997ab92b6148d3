"""`p2pdetect score`: stream verdicts for a capture file or a live interface."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("p2pdetect.score")


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score a capture or a live interface, verdicts as JSON lines",
                       description="Meter a capture file (as fast as it reads) or a live interface "
                                   "(headers only) and write one JSON verdict per flow: an early "
                                   "verdict once a flow has --early-packets packets or has lasted "
                                   "--early-seconds, and a final verdict when it ends. SIGINT/SIGTERM "
                                   "flush and score every active flow before exiting.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("capture", nargs="?", metavar="CAPTURE", help="pcap/pcapng file to score")
    src.add_argument("-i", "--interface", metavar="IF", help="live interface (needs root or CAP_NET_RAW)")
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", metavar="VERDICTS.jsonl",
                   help="write verdicts here instead of stdout (capture: written whole at the end; "
                        "live: appended and flushed per batch)")
    p.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on this port")
    p.add_argument("--bpf", metavar="FILTER", help="BPF filter for live capture, e.g. 'tcp or udp'")
    p.add_argument("--no-promisc", action="store_true", help="do not put the interface in promiscuous mode")
    p.add_argument("--alerts-only", action="store_true", help="write P2P verdicts only")
    p.add_argument("--early-packets", type=int, default=32, metavar="N",
                   help="early verdict once a flow has N packets (0: off; default 32)")
    p.add_argument("--early-seconds", type=float, default=10.0, metavar="S",
                   help="early verdict once a flow has lasted S seconds (0: off; default 10)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N",
                   help="flows per scoring micro-batch (default 512)")
    p.add_argument("--max-wait", type=float, default=0.2, metavar="S",
                   help="longest a flow waits for its batch, seconds (default 0.2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from p2pdetect.errors import BadConfigError
    from prometheus_client import CollectorRegistry

    from models import load_bundle
    from serve import (JsonLinesSink, ScoreConfig, ScoreMetrics, capture_source, interface_source,
                       run_scoring, serve_metrics)

    # Validate everything before any output exists (DESIGN.md invariant 8).
    config = ScoreConfig(batch_size=args.batch_size, max_wait_s=args.max_wait,
                         early_packets=args.early_packets, early_seconds=args.early_seconds,
                         alerts_only=args.alerts_only)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise BadConfigError(f"--metrics-port must be in [1, 65535]. Got {args.metrics_port} instead.")
    if args.bpf is not None and args.capture:
        raise BadConfigError("--bpf applies to live capture only; filter a capture file with tcpdump -r")
    if args.interface is not None:
        from serve.sources import check_interface
        check_interface(args.interface)
    else:
        from features.captures import validate_capture
        validate_capture(args.capture)
    bundle = load_bundle(args.model)
    if args.interface is not None:
        source = interface_source(args.interface, bundle.extract_config, config, bpf_filter=args.bpf,
                                  promiscuous_mode=not args.no_promisc)
    else:
        source = capture_source(args.capture, bundle.extract_config, config)
    metrics = ScoreMetrics(CollectorRegistry())
    server = serve_metrics(metrics.registry, args.metrics_port) if args.metrics_port else None
    sink = JsonLinesSink(args.output, atomic=args.interface is None)
    try:
        summary = run_scoring(source, bundle, sink, config, metrics)
    finally:
        if server is not None:
            server[0].shutdown() if isinstance(server, tuple) else None
    print(f"p2pdetect: {summary.line()}", file=sys.stderr)
    return 0 if summary.balanced else 1

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
                                   "flush and score every active flow before exiting: a live run "
                                   "then ends normally (exit 0), a capture cut short exits 130/143 "
                                   "and keeps no -o file unless --keep-partial.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("capture", nargs="?", metavar="CAPTURE", help="pcap/pcapng file to score")
    src.add_argument("-i", "--interface", metavar="IF", help="live interface (needs root or CAP_NET_RAW)")
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", metavar="VERDICTS.jsonl",
                   help="write verdicts here instead of stdout (capture: a file is replaced atomically "
                        "at the end; live: appended per batch; a device, FIFO or '-' is written as a "
                        "stream; never an input)")
    p.add_argument("--keep-partial", action="store_true",
                   help="capture: when a signal stops the run, keep the verdicts written so far at "
                        "-o (default: no file; the exit status is 130/143 either way)")
    p.add_argument("--strict", action="store_true",
                   help="capture: refuse one whose last record is cut short (default: score the complete "
                        "records before it and warn)")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics on this TCP port (off by default); live capture then "
                        "leaves TCP on this port out, so the scorer never scores its own scrapes")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR",
                   help="IP address the metrics server binds (default 127.0.0.1: this host only; "
                        "0.0.0.0 or :: for every interface)")
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


def _peek_extract_config(model: str | None):
    """The bundle's meter settings read ahead of its verified load (None if unreadable), so
    the meter can start while the model loads; nothing is written until the load verified
    them (a mismatch restarts the meter with the verified settings)."""
    import json
    from pathlib import Path

    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.models import DEFAULT_MODEL_DIR
    from p2pdetect.models.bundle import METADATA_FILE

    try:
        meta = json.loads((Path(model or DEFAULT_MODEL_DIR) / METADATA_FILE).read_text())
        return ExtractConfig.from_dict(meta["extract_config"])
    except Exception:  # anything odd: the verified load reports it properly
        return None


def run(args: argparse.Namespace) -> int:
    import sys

    from prometheus_client import CollectorRegistry

    from p2pdetect.features.captures import validate_capture
    from p2pdetect.features.reader import prepare_capture
    from p2pdetect.models import load_bundle
    from p2pdetect.errors import BadConfigError
    from p2pdetect.outputs import check_output
    from p2pdetect.serve import (JsonLinesSink, ScoreConfig, ScoreMetrics, capture_source, check_bpf, check_interface,
                       interface_source, run_scoring, serve_metrics)
    from p2pdetect.serve.metrics import check_metrics_address

    # Every check before any output exists (DESIGN.md invariant 8); the cheap ones first.
    config = ScoreConfig(batch_size=args.batch_size, max_wait_s=args.max_wait,
                         early_packets=args.early_packets, early_seconds=args.early_seconds,
                         alerts_only=args.alerts_only)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise BadConfigError(f"--metrics-port must be in [1, 65535]. Got {args.metrics_port} instead.")
    check_metrics_address(args.metrics_address)
    live = args.interface is not None
    if args.keep_partial and live:
        raise BadConfigError("--keep-partial applies to capture files only; a live run keeps every "
                             "verdict when it is stopped")
    if args.strict and live:
        raise BadConfigError("--strict applies to capture files only")
    if args.bpf is not None and not live:
        raise BadConfigError("--bpf applies to live capture only; filter a capture file with tcpdump -r")
    if live:
        check_interface(args.interface)
        if args.bpf is not None:
            check_bpf(args.bpf)
    else:
        validate_capture(args.capture, full=False, strict=args.strict)  # header and first record
    inputs = [] if live else [args.capture]
    if args.output:
        check_output(args.output, inputs=inputs)

    # The full walk and decode (features.reader): a damaged capture never scores, and one the
    # meter would lose packets of is metered through a rewritten copy, removed at the end.
    prepared = None if live else prepare_capture(args.capture, strict=args.strict)

    def make_source(extract):
        if live:
            return interface_source(args.interface, extract, config, bpf_filter=args.bpf,
                                    promiscuous_mode=not args.no_promisc, metrics_port=args.metrics_port)
        return capture_source(prepared, extract, config)

    # Start the meter while the model is verified.
    early_extract = _peek_extract_config(args.model)
    source = None
    server = None
    try:
        source = make_source(early_extract).start() if early_extract is not None else None
        if not live:
            info = prepared.info
        bundle = load_bundle(args.model)
        if source is None or bundle.extract_config != early_extract:
            if source is not None:
                source.close()
            source = make_source(bundle.extract_config)
        metrics = ScoreMetrics(CollectorRegistry())
        if args.metrics_port:
            server = serve_metrics(metrics.registry, args.metrics_port, args.metrics_address)
        sink = JsonLinesSink(args.output, atomic=not live, inputs=inputs)
        summary = run_scoring(source, bundle, sink, config, metrics, keep_partial=live or args.keep_partial)
    except BaseException:
        if source is not None:
            source.close()
        raise
    finally:
        if server is not None:
            server[0].shutdown()
        if prepared is not None:
            prepared.close()
    print(f"p2pdetect: {summary.line()}", file=sys.stderr)
    if prepared is not None and prepared.ignored:
        print(f"p2pdetect: {prepared.ignored:,} of {info.packets:,} packets of {args.capture} ignored "
              f"(not IP, or a link type not decoded)", file=sys.stderr)
    elif live and source.stats.ignored:
        print(f"p2pdetect: {source.stats.ignored:,} packets ignored by the meter (not IP, or IPv6 "
              f"longer than the 128-byte snap length: docs/architecture.md)", file=sys.stderr)
    if summary.interrupted and not live:  # a capture cut short is not a complete result
        share = f" ({100 * summary.packets / info.packets:.0f}%)" if info.packets > 0 else ""
        kept = ("verdicts so far written" if sink.stream else "verdicts so far kept"
                if args.keep_partial else "no verdict file written (--keep-partial keeps one)")
        print(f"p2pdetect: interrupted: scored {summary.packets:,} of {info.packets:,} packets"
              f"{share} of {args.capture}; {kept}", file=sys.stderr)
        return 128 + summary.signum
    return 0 if summary.balanced else 1

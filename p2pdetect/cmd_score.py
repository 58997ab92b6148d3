"""`p2pdetect score`: stream verdicts for a capture file or a live interface."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("p2pdetect.score")

#: which option sets which configuration field (errors name the option: p2pdetect.options)
CONFIG_OPTIONS = {"ScoreConfig.batch_size": "--batch-size", "ScoreConfig.max_wait_s": "--max-wait",
                  "ScoreConfig.early_packets": "--early-packets", "ScoreConfig.early_seconds": "--early-seconds"}


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score captures or a live interface, verdicts as JSON lines",
                       description="Meter capture files (as fast as they read) or a live interface "
                                   "(headers only) and write one JSON verdict per flow: an early "
                                   "verdict once a flow has --early-packets packets or has lasted "
                                   "--early-seconds, and a final verdict when it ends. SIGINT/SIGTERM "
                                   "flush and score every active flow before exiting: a live run "
                                   "then ends normally (exit 0), a capture cut short exits 130/143 "
                                   "and keeps no -o file unless --keep-partial.")
    p.add_argument("captures", nargs="*", metavar="CAPTURE|DIR",
                   help="pcap/pcapng capture(s) to score, or directories of them, one after the other "
                        "into one output; '-' reads standard input (e.g. tcpdump -w - | p2pdetect score -), "
                        "which is kept in a private temporary file until it ends")
    p.add_argument("-i", "--interface", metavar="IF",
                   help="live interface instead of captures ('any' for all; needs root or CAP_NET_RAW)")
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("-o", "--output", metavar="VERDICTS.jsonl",
                   help="write verdicts here instead of stdout (captures: a file is replaced atomically "
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


def _import_lightgbm() -> None:
    """Import LightGBM without scikit-learn, before the bundle loads.

    LightGBM imports scikit-learn when it is installed (and with it most of SciPy), for its
    scikit-learn estimators and cross-validation; scoring uses neither, only Booster. That
    import cost 1.7 s of CPU at every start (measured 2026-11-30: 1.9-2.0 s against 0.3 s),
    spent while the meter already runs, on the core the meter shares with everything else.
    scikit-learn is kept out for this import only: importing it later in the same process
    works, and LightGBM's own scikit-learn classes (which nothing here uses) then report it
    missing. No-op when either is imported already.
    """
    import sys

    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import lightgbm  # noqa: F401
    finally:
        if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
            del sys.modules["sklearn"]


def run(args: argparse.Namespace) -> int:
    from p2pdetect.errors import BadConfigError, UsageError
    from p2pdetect.features.captures import find_captures, validate_capture
    from p2pdetect.inputs import display_name, spooled
    from p2pdetect.outputs import check_output
    from p2pdetect.serve import ScoreConfig, check_bpf, check_interface
    from p2pdetect.serve.metrics import check_metrics_address

    # Every check before any output exists (DESIGN.md invariant 8); the cheap ones first.
    config = ScoreConfig(batch_size=args.batch_size, max_wait_s=args.max_wait,
                         early_packets=args.early_packets, early_seconds=args.early_seconds,
                         alerts_only=args.alerts_only)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise BadConfigError(f"--metrics-port must be in [1, 65535]. Got {args.metrics_port} instead.")
    check_metrics_address(args.metrics_address)
    live = args.interface is not None
    if live and args.captures:
        raise UsageError("give captures or --interface, not both")
    if not live and not args.captures:
        raise UsageError("give a capture ('-' reads standard input; a directory, its captures) or --interface IF")
    if args.keep_partial and live:
        raise UsageError("--keep-partial applies to capture files only; a live run keeps every "
                         "verdict when it is stopped")
    if args.strict and live:
        raise UsageError("--strict applies to capture files only")
    if args.bpf is not None and not live:
        raise UsageError("--bpf applies to live capture only; filter a capture file with tcpdump -r")
    if live:
        check_interface(args.interface)
        if args.bpf is not None:
            check_bpf(args.bpf)
        if args.output:
            check_output(args.output)
        return _score(args, config, [], {})
    # streams ('-', a FIFO) are kept in a private temporary file while they are scored
    with spooled(args.captures) as paths:
        names = {p: display_name(a) for a, p in zip(args.captures, paths) if p != str(a)}
        captures = find_captures(paths)
        for cap in captures:  # several: every one walked before any is scored
            validate_capture(cap, full=len(captures) > 1, strict=args.strict)
        if args.output:
            check_output(args.output, inputs=captures)
        return _score(args, config, captures, names)


class _OneOutput:
    """The verdict sink shared by the runs of several captures: a run's close() leaves it open
    for the next capture; discard() and abort() (a run stopped or broken) end it."""

    def __init__(self, sink) -> None:
        self.sink = sink

    @property
    def stream(self) -> bool:
        return self.sink.stream

    def write(self, lines: list[str]) -> None:
        self.sink.write(lines)

    def close(self) -> None:
        pass

    def discard(self) -> None:
        self.sink.discard()

    def abort(self) -> None:
        self.sink.abort()


def _score(args: argparse.Namespace, config, captures: list, names: dict[str, str]) -> int:
    """Score the live interface, or each capture in turn into one output; returns the exit status."""
    import sys

    from prometheus_client import CollectorRegistry

    from p2pdetect.features.reader import prepare_capture
    from p2pdetect.models import load_bundle
    from p2pdetect.serve import (JsonLinesSink, ScoreMetrics, capture_source, early_capture_source,
                                 interface_source, run_scoring, serve_metrics)

    live = not captures
    inputs = [str(c) for c in captures]

    def make_source(extract, cap, ready=None):
        """The meter on the interface, or on capture `cap`: as it is, before its walk, when
        `ready` (its PreparedCapture) is not given yet (see walk)."""
        if live:
            return interface_source(args.interface, extract, config, bpf_filter=args.bpf,
                                    promiscuous_mode=not args.no_promisc, metrics_port=args.metrics_port)
        if ready is None:
            return early_capture_source(cap, extract, config)
        return capture_source(ready, extract, config)

    def walk(cap, meter, extract):
        """The full walk and decode of `cap` (features.reader) while `meter` (None: not started)
        meters it: a damaged capture never scores (its meter is closed unread), and one the
        meter would lose packets of is metered through a rewritten copy, removed at the end.
        Returns the meter to score it with (None when none was started)."""
        nonlocal prepared
        prepared = prepare_capture(cap, strict=args.strict)
        if meter is not None and not meter.adopt(prepared):
            meter.close()
            meter = make_source(extract, cap, prepared).start()
        return meter

    prepared = None
    # The meter starts first, on the bundle's settings read ahead; the capture is walked and
    # the model verified while it meters (nothing is written before both have passed).
    early_extract = _peek_extract_config(args.model)
    source = None
    server = None
    sink = None
    status = 0
    try:
        if early_extract is not None:
            source = make_source(early_extract, None if live else captures[0]).start()
        metered_with = early_extract
        if not live:
            source = walk(captures[0], source, early_extract)
        _import_lightgbm()
        bundle = load_bundle(args.model)
        log.debug("score: model %s from %s, threshold %.6g, meter settings %s", bundle.bundle_id, bundle.path,
                  bundle.threshold, bundle.extract_config)
        metrics = ScoreMetrics(CollectorRegistry())
        if args.metrics_port:
            server = serve_metrics(metrics.registry, args.metrics_port, args.metrics_address)
        sink = JsonLinesSink(args.output, atomic=not live, inputs=inputs)
        out = sink if live else _OneOutput(sink)
        for i, cap in enumerate(captures or [None]):
            if i > 0:
                metered_with = bundle.extract_config
                source = walk(cap, make_source(metered_with, cap).start(), metered_with)
            if source is None or bundle.extract_config != metered_with:
                if source is not None:
                    source.close()
                source = make_source(bundle.extract_config, cap, prepared)
            summary = run_scoring(source, bundle, out, config, metrics, keep_partial=live or args.keep_partial)
            ignored, source = source.stats.ignored, None
            name = None if live else names.get(str(cap), str(cap))
            status = max(status, _report(summary, args, sink, prepared, ignored, name, len(captures) > 1))
            if prepared is not None:
                prepared.close()
                prepared = None
            if summary.interrupted:
                break
        sink.close()  # a stopped capture run discarded it already (unless --keep-partial)
    except BaseException:
        if source is not None:
            source.close()
        if sink is not None:
            sink.discard()
        raise
    finally:
        if server is not None:
            server[0].shutdown()
        if prepared is not None:
            prepared.close()
    return status


def _report(summary, args: argparse.Namespace, sink, prepared, ignored: int, name: str | None,
            several: bool) -> int:
    """Print one capture's (or the live run's) summary on stderr; returns its exit status."""
    import sys

    live = prepared is None
    print(f"p2pdetect: {name + ': ' if several else ''}{summary.line()}", file=sys.stderr)
    if not live and prepared.ignored:
        print(f"p2pdetect: {prepared.ignored:,} of {prepared.info.packets:,} packets of {name} ignored "
              f"(not IP, or a link type not decoded)", file=sys.stderr)
    elif live and ignored:
        print(f"p2pdetect: {ignored:,} packets ignored by the meter (not IP, or IPv6 "
              f"longer than the 128-byte snap length: docs/architecture.md)", file=sys.stderr)
    if summary.interrupted and not live:  # a capture cut short is not a complete result
        info = prepared.info
        share = f" ({100 * summary.packets / info.packets:.0f}%)" if info.packets > 0 else ""
        kept = ("verdicts so far written" if sink.stream else "verdicts so far kept"
                if args.keep_partial else "no verdict file written (--keep-partial keeps one)")
        print(f"p2pdetect: interrupted: scored {summary.packets:,} of {info.packets:,} packets"
              f"{share} of {name}; {kept}", file=sys.stderr)
        return 128 + summary.signum
    return 0 if summary.balanced else 1

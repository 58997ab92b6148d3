"""`p2pdetect extract`: captures in, one Parquet flow table out (optionally labelled)."""

from __future__ import annotations

import argparse
import logging

from p2pdetect.options import add_peers_in_progress, jobs

log = logging.getLogger("p2pdetect.extract")

#: which option sets which configuration field (errors name the option: p2pdetect.options)
CONFIG_OPTIONS = {"ExtractConfig.splt_n": "--splt", "ExtractConfig.host_window_s": "--window",
                  "ExtractConfig.snapshot_packets": "--early-packets",
                  "ExtractConfig.peers_in_progress": "--peers-in-progress"}


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help="meter captures into a Parquet flow table",
                       description="Meter pcap/pcapng captures (files or directories) into one "
                                   "Parquet flow table with every feature the model uses.")
    p.add_argument("inputs", nargs="+", metavar="CAPTURE|DIR",
                   help="pcap/pcapng captures, or directories searched for them (.pcap, .pcapng, "
                        ".cap, .dmp); every capture's flows go into the one table; '-' reads standard input")
    p.add_argument("-o", "--output", required=True, metavar="FLOWS.parquet",
                   help="flow table to write: a file (replaced atomically, through a symlink), or a "
                        "device, FIFO or '-' (standard output) written as a stream; never an input")
    p.add_argument("--labels", metavar="LABELS.csv",
                   help="join labels from this CSV (header src_ip,src_port,dst_ip,dst_port,protocol,"
                        "label[,app]; docs/data.md); 'auto' uses each capture's <name>.labels.csv "
                        "beside it")
    p.add_argument("--splt", type=int, default=32, metavar="N",
                   help="first packets kept per flow as columns (default 32)")
    p.add_argument("--window", type=float, default=300.0, metavar="S",
                   help="host-context window in seconds (default 300)")
    p.add_argument("--early-packets", type=int, default=0, metavar="N",
                   help="also write each flow as it looked after N packets (stage 'early'), as the "
                        "scorer's early verdict sees it; for training (default 0: final rows only)")
    add_peers_in_progress(p)
    p.add_argument("--jobs", type=jobs, default=-1, metavar="N",
                   help="captures metered in parallel, -1 for one per core (default -1)")
    p.add_argument("--skip-bad", action="store_true",
                   help="warn about unreadable captures and leave them out instead of stopping")
    p.add_argument("--strict", action="store_true",
                   help="refuse a capture whose last record is cut short (default: read the complete "
                        "records before it and warn)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p2pdetect.inputs import display_name, spooled

    # streams ('-', a FIFO) are kept in a private temporary file while they are metered
    with spooled(args.inputs) as paths:
        return _extract(args, paths, {p: display_name(a) for a, p in zip(args.inputs, paths) if p != str(a)})


def _extract(args: argparse.Namespace, paths: list[str], names: dict[str, str]) -> int:
    """The extraction of `paths` (streams already spooled; names: copy -> what the table calls it)."""
    from p2pdetect.features.captures import find_captures
    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.features.extract import extract_paths
    from p2pdetect.features.table import write_flow_table
    from p2pdetect.outputs import check_output
    from p2pdetect.progress import Progress
    from p2pdetect.training.labels import label_table, read_labels

    from p2pdetect.errors import BadConfigError

    if args.peers_in_progress and not args.early_packets:
        raise BadConfigError("--peers-in-progress needs --early-packets N: connections enter host context "
                             "at their early snapshot")
    config = ExtractConfig(splt_n=args.splt, host_window_s=args.window, snapshot_packets=args.early_packets,
                           peers_in_progress=args.peers_in_progress)
    captures = find_captures(paths)
    if args.labels == "auto":
        inputs = [*captures, *(c.with_name(c.stem + ".labels.csv") for c in captures)]
    else:
        inputs = [*captures, *([args.labels] if args.labels else [])]
    check_output(args.output, inputs=inputs, binary=True)
    if args.labels and args.labels != "auto":
        read_labels(args.labels)  # fail before metering, not after
    progress = Progress()
    packets = [0, 0]  # read, ignored (not IP / link type not decoded)

    def on_result(res, done: int, total: int) -> None:
        if res.error:
            log.warning("skipped: %s", res.error)
        else:
            packets[0] += res.info.packets
            packets[1] += res.ignored
        rate = packets[0] / max(progress.elapsed(), 1e-9)
        progress.update(f"extract: {done}/{total} captures, {packets[0]:,} packets, {rate:,.0f} packets/s")

    try:
        table = extract_paths(captures, config, n_jobs=args.jobs, skip_bad=args.skip_bad,
                              strict=args.strict, on_result=on_result)
    finally:
        progress.close()
    if args.labels:
        table = label_table(table, args.labels)
    if names:
        table = _rename_captures(table, names)
    write_flow_table(table, args.output, config, inputs=inputs)
    early = table.num_rows - sum(s == "final" for s in table.column("stage").to_pylist())
    what = f"{table.num_rows - early} flows" + (f" + {early} early snapshots" if early else "")
    name = "standard output" if args.output == "-" else args.output
    ignored = f", {packets[1]:,} of {packets[0]:,} packets ignored (not IP)" if packets[1] else ""
    log.info("wrote %s: %s from %d captures%s, %d columns (%.1f s)", name, what,
             len(set(table.column("capture").to_pylist())), ignored, table.num_columns, progress.elapsed())
    return 0


def _rename_captures(table, names: dict[str, str]):
    """The table with each spooled copy's flows named after the input it came from ('standard input')."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column("capture")
    for tmp, name in names.items():
        col = pc.if_else(pc.equal(col, tmp), pa.scalar(name, col.type), col)
    return table.set_column(table.column_names.index("capture"), "capture", col)

"""`p2pdetect inspect`: one flow's verdict, the features behind it, and its packets (tshark).

For looking at a flow a verdict named, not for volume: the capture is metered and scored as
`score` scores it (the same final score), the model's top feature contributions are shown
(LightGBM pred_contrib, log-odds toward P2P, as the evaluation report lists them), then the
flow's packets through tshark's dissectors (pyshark; tshark reads ~25k packets/s and pyshark
~500). Headers only — time, direction, sizes, TCP flags, the protocol tshark recognises —
never payload bytes or payload-derived text (DESIGN.md invariant 4).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shutil
import sys
from dataclasses import dataclass

import numpy as np

from p2pdetect.dissect import dissected
from p2pdetect.errors import BadCaptureError, P2PDetectError

_SPEC = re.compile(r"^(?P<a>\[[^\]]+\]|[^:\[\]]+):(?P<ap>\d+)-(?P<b>\[[^\]]+\]|[^:\[\]]+):(?P<bp>\d+)/(?P<proto>tcp|udp)$",
                   re.IGNORECASE)


#: feature contributions shown per flow
TOP_FEATURES = 10


@dataclass(frozen=True)
class FlowSpec:
    a: str
    a_port: int
    b: str
    b_port: int
    proto: str

    def rows(self, table) -> np.ndarray:
        """Indices of the flow table's rows of this flow, in either direction."""
        col = {c: table.column(c).to_numpy(zero_copy_only=False)
               for c in ("src_ip", "src_port", "dst_ip", "dst_port", "protocol")}
        proto = {"tcp": 6, "udp": 17}[self.proto]
        src, dst = col["src_ip"].astype(str), col["dst_ip"].astype(str)
        fwd = (src == self.a) & (col["src_port"] == self.a_port) & (dst == self.b) & (col["dst_port"] == self.b_port)
        rev = (src == self.b) & (col["src_port"] == self.b_port) & (dst == self.a) & (col["dst_port"] == self.a_port)
        return np.flatnonzero((fwd | rev) & (col["protocol"] == proto))

    def display_filter(self) -> str:
        ipf = "ipv6.addr" if ":" in self.a else "ip.addr"
        p = self.proto
        return (f"{ipf}=={self.a} && {ipf}=={self.b} && {p}.port=={self.a_port} && "
                f"{p}.port=={self.b_port}")


def parse_flow(spec: str) -> FlowSpec:
    """SRC:PORT-DST:PORT/PROTO, IPv6 addresses in brackets: [::1]:443-[::2]:5000/tcp."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise P2PDetectError(f"--flow {spec!r}: expected SRC:PORT-DST:PORT/PROTO, e.g. "
                             f"127.0.0.1:51413-127.0.0.2:443/tcp (IPv6 in brackets)")
    ips = []
    for k in ("a", "b"):
        try:
            ips.append(str(ipaddress.ip_address(m[k].strip("[]"))))
        except ValueError as err:
            raise P2PDetectError(f"--flow {spec!r}: {m[k]!r} is not an IP address") from err
    ports = [int(m["ap"]), int(m["bp"])]
    if max(ports) > 65535:
        raise P2PDetectError(f"--flow {spec!r}: ports must be 0-65535")
    return FlowSpec(ips[0], ports[0], ips[1], ports[1], m["proto"].lower())


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="one flow's verdict, top features and packets (tshark dissectors)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("capture", metavar="CAPTURE", help="pcap/pcapng capture that holds the flow")
    p.add_argument("--flow", required=True, metavar="SRC:PORT-DST:PORT/PROTO",
                   help="the flow, in either direction, as a verdict names it: e.g. "
                        "127.0.0.1:51413-127.0.0.2:6881/tcp; IPv6 in brackets ([::1]:443-[::2]:5000/udp); "
                        "PROTO is tcp or udp")
    p.add_argument("--model", metavar="MODEL_DIR", help="model bundle (default: the shipped model)")
    p.add_argument("--max-packets", type=int, default=100, metavar="N",
                   help="stop after N packets (default 100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p2pdetect.features.captures import validate_capture
    from p2pdetect.models import load_bundle

    flow = parse_flow(args.flow)
    if args.max_packets < 1:
        raise P2PDetectError(f"--max-packets must be >= 1, got {args.max_packets}")
    validate_capture(args.capture)
    if shutil.which("tshark") is None:
        raise P2PDetectError("tshark is not installed; run 'make setup' (or apt-get install tshark)")
    bundle = load_bundle(args.model)
    packets = _packets(args.capture, flow, args.max_packets)
    if not packets:
        raise P2PDetectError(f"no packet of flow {args.flow} in {args.capture}; "
                             f"list its flows with 'p2pdetect extract' or 'p2pdetect score'")
    out = sys.stdout
    for block in _verdicts(args.capture, flow, bundle):
        out.write(block + "\n")
    out.write(f"{'#':>5} {'time_s':>10} {'dir':<3} {'ip_len':>6} {'payload':>7} {'flags':<8} protocol\n")
    out.writelines(packets)
    return 0


def _verdicts(capture: str, flow: FlowSpec, bundle) -> list[str]:
    """A text block per flow record of `flow` in the capture: the verdict `score` gives it (the
    model, then endpoint and host evidence) and the features that pushed the model most."""
    from p2pdetect.features.extract import extract_capture
    from p2pdetect.models.host_evidence import score_table

    # with the model's snapshots: they are host evidence for the final verdicts, as in `score`
    table = extract_capture(capture, bundle.extract_config)
    rows = flow.rows(table)
    if "stage" in table.column_names:   # a verdict per flow: its final row
        rows = rows[table.column("stage").to_numpy(zero_copy_only=False)[rows] == "final"]
    if not len(rows):
        return ["no flow record: the meter made no flow of these packets (not TCP/UDP over IP?)\n"]
    final, _ = score_table(bundle, table)
    X = bundle.matrix(table.take(rows))
    model = bundle.booster.predict(X, num_threads=bundle.num_threads)
    contrib = bundle.booster.predict(X, pred_contrib=True, num_threads=bundle.num_threads)
    col = {c: table.column(c).to_numpy(zero_copy_only=False)[rows]
           for c in ("src_ip", "src_port", "dst_ip", "dst_port", "bidirectional_packets", "bidirectional_bytes",
                     "bidirectional_first_seen_ms", "bidirectional_last_seen_ms")}
    blocks = []
    for i, row in enumerate(rows):
        score = float(final[row])
        verdict = bundle.verdicts(np.array([score]))[0]
        lines = [f"flow {col['src_ip'][i]}:{col['src_port'][i]} -> {col['dst_ip'][i]}:{col['dst_port'][i]}"
                 f"/{flow.proto}: {col['bidirectional_packets'][i]:,} packets, {col['bidirectional_bytes'][i]:,} "
                 f"bytes, {(col['bidirectional_last_seen_ms'][i] - col['bidirectional_first_seen_ms'][i]) / 1000:.3f} s",
                 f"verdict {verdict}, score {score:.3f} (threshold {bundle.threshold:.3f}, model {bundle.bundle_id})"]
        if abs(model[i] - score) > 5e-4:
            lines.append(f"  the flow alone scores {model[i]:.3f}; its endpoint's and host's earlier flows "
                         f"{'raised' if score > model[i] else 'lowered'} it")
        c = contrib[i, :-1]
        top = np.argsort(-np.abs(c), kind="stable")[:TOP_FEATURES]
        lines += ["", f"top features (log-odds toward P2P; base value {contrib[i, -1]:+.2f}):",
                  f"{'feature':<36}{'value':>14}{'contribution':>14}"]
        lines += [f"{bundle.feature_names[j]:<36}{X[i, j]:>14.6g}{c[j]:>+14.3f}" for j in top]
        blocks.append("\n".join(lines) + "\n")
    return blocks


def _packets(capture: str, flow: FlowSpec, limit: int) -> list[str]:
    """Up to `limit` lines, one per packet of `flow` (both directions), through tshark."""
    lines: list[str] = []
    t0 = None
    try:
        with dissected(capture, display_filter=flow.display_filter()) as cap:
            for pkt in cap:
                t = float(pkt.sniff_timestamp)
                if t0 is None:
                    t0 = t
                net = pkt.ipv6 if hasattr(pkt, "ipv6") else pkt.ip
                src = str(ipaddress.ip_address(net.src))
                sport = int(pkt[flow.proto].srcport)
                fwd = (src, sport) == (flow.a, flow.a_port)
                ip_len = int(net.plen) + 40 if hasattr(pkt, "ipv6") else int(net.len)
                if flow.proto == "tcp":
                    payload = int(getattr(pkt.tcp, "len", 0))
                    flags = str(pkt.tcp.flags_str).replace("\u00b7", "").strip()
                else:
                    payload, flags = int(pkt.udp.length) - 8, ""
                lines.append(f"{pkt.number:>5} {t - t0:>10.6f} {'->' if fwd else '<-':<3} {ip_len:>6} "
                             f"{payload:>7} {flags:<8} {pkt.highest_layer}\n")
                if len(lines) >= limit:
                    break
    except Exception as err:  # tshark failures surface as assorted pyshark exceptions
        raise BadCaptureError(f"{capture}: tshark could not read it ({err})") from err
    return lines

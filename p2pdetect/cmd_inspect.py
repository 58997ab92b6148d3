"""`p2pdetect inspect`: packet-level drill-down of one flow through tshark's dissectors (pyshark).

For looking at a flow a verdict named, not for volume: tshark reads ~25k packets/s and
pyshark ~500. Shows headers only — time, direction, sizes, TCP flags, the protocol tshark
recognises — never payload bytes or payload-derived text (DESIGN.md invariant 4).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shutil
import sys
from dataclasses import dataclass

from p2pdetect.errors import BadCaptureError, P2PDetectError

_SPEC = re.compile(r"^(?P<a>\[[^\]]+\]|[^:\[\]]+):(?P<ap>\d+)-(?P<b>\[[^\]]+\]|[^:\[\]]+):(?P<bp>\d+)/(?P<proto>tcp|udp)$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class FlowSpec:
    a: str
    a_port: int
    b: str
    b_port: int
    proto: str

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
    p = sub.add_parser("inspect", help="packet-level drill-down of one flow (tshark dissectors)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("capture", metavar="CAPTURE")
    p.add_argument("--flow", required=True, metavar="SRC:PORT-DST:PORT/PROTO")
    p.add_argument("--max-packets", type=int, default=100, metavar="N",
                   help="stop after N packets (default 100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p2pdetect.features.captures import validate_capture

    flow = parse_flow(args.flow)
    if args.max_packets < 1:
        raise P2PDetectError(f"--max-packets must be >= 1, got {args.max_packets}")
    validate_capture(args.capture)
    if shutil.which("tshark") is None:
        raise P2PDetectError("tshark is not installed; run 'make setup' (or apt-get install tshark)")
    import pyshark

    cap = pyshark.FileCapture(args.capture, display_filter=flow.display_filter(), keep_packets=False)
    out = sys.stdout
    shown, t0 = 0, None
    try:
        for pkt in cap:
            t = float(pkt.sniff_timestamp)
            if t0 is None:
                t0 = t
                out.write(f"{'#':>5} {'time_s':>10} {'dir':<3} {'ip_len':>6} {'payload':>7} "
                          f"{'flags':<8} protocol\n")
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
            out.write(f"{pkt.number:>5} {t - t0:>10.6f} {'->' if fwd else '<-':<3} {ip_len:>6} "
                      f"{payload:>7} {flags:<8} {pkt.highest_layer}\n")
            shown += 1
            if shown >= args.max_packets:
                break
    except Exception as err:  # tshark failures surface as assorted pyshark exceptions
        raise BadCaptureError(f"{args.capture}: tshark could not read it ({err})") from err
    finally:
        cap.close()
    if shown == 0:
        raise P2PDetectError(f"no packet of flow {args.flow} in {args.capture}; "
                             f"list its flows with 'p2pdetect extract' or 'p2pdetect score'")
    return 0

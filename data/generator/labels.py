"""Labels by construction: every app instance owns its addresses, so an address pair names the app.

The labels CSV (``src_ip,src_port,dst_ip,dst_port,protocol,label,app``) matches a flow in either
direction; empty ports match any port of that IP pair. This module writes such files and joins
them against metered flows to prove every flow got exactly one label.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HEADER = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "label", "app"]
LABELS = ("p2p", "other")


@dataclass(frozen=True, kw_only=True)
class LabelRow:
    """One labels-file row; ports ``None`` match any port."""

    src_ip: str
    dst_ip: str
    protocol: int
    label: str
    app: str
    src_port: int | None = None
    dst_port: int | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"The 'label' parameter of LabelRow must be one of {LABELS}. Got {self.label!r} instead.")
        if self.protocol not in (1, 6, 17):
            raise ValueError(f"The 'protocol' parameter of LabelRow must be 1, 6 or 17. Got {self.protocol!r} instead.")


def pair_rows(ips_a: Iterable[str], ips_b: Iterable[str], protocols: Iterable[int], label: str, app: str) -> list[LabelRow]:
    """Rows for every (a, b) address pair and protocol, ports empty (any port)."""
    rows = []
    seen: set[tuple[str, str, int]] = set()
    for a in ips_a:
        for b in ips_b:
            for proto in protocols:
                key = (min(a, b), max(a, b), proto)
                if key not in seen:
                    seen.add(key)
                    rows.append(LabelRow(src_ip=key[0], dst_ip=key[1], protocol=proto, label=label, app=app))
    return rows


def write_csv(rows: list[LabelRow], path: Path) -> None:
    """Write ``rows`` to ``path`` atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for r in rows:
            w.writerow([r.src_ip, "" if r.src_port is None else r.src_port, r.dst_ip,
                        "" if r.dst_port is None else r.dst_port, r.protocol, r.label, r.app])
    os.replace(tmp, path)


def read_csv(path: Path) -> list[LabelRow]:
    """Read a labels file written by :func:`write_csv` (or by hand in the same format)."""
    with open(path, newline="") as fh:
        rd = csv.DictReader(fh)
        return [
            LabelRow(src_ip=r["src_ip"], dst_ip=r["dst_ip"], protocol=int(r["protocol"]), label=r["label"],
                     app=r.get("app") or "", src_port=int(r["src_port"]) if r["src_port"] else None,
                     dst_port=int(r["dst_port"]) if r["dst_port"] else None)
            for r in rd
        ]


class LabelIndex:
    """Looks up the rows matching a flow (either direction, empty ports = any)."""

    def __init__(self, rows: list[LabelRow]) -> None:
        self._by_pair: dict[tuple[str, str, int], list[LabelRow]] = {}
        for r in rows:
            self._by_pair.setdefault((min(r.src_ip, r.dst_ip), max(r.src_ip, r.dst_ip), r.protocol), []).append(r)

    def match(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int, protocol: int) -> list[LabelRow]:
        """Every row matching this flow; exactly one is the healthy case."""
        out = []
        for r in self._by_pair.get((min(src_ip, dst_ip), max(src_ip, dst_ip), protocol), []):
            for a_ip, a_port, b_ip, b_port in ((src_ip, src_port, dst_ip, dst_port), (dst_ip, dst_port, src_ip, src_port)):
                if (r.src_ip == a_ip and r.dst_ip == b_ip and r.src_port in (None, a_port)
                        and r.dst_port in (None, b_port)):
                    out.append(r)
                    break
        return out

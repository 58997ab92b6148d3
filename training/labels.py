"""Labels CSV: read and validate it, then join it onto flows (either direction, port wildcards).

Format (DESIGN.md): header `src_ip,src_port,dst_ip,dst_port,protocol,label[,app]`; label is
`p2p` or `other`; a row matches a flow in either direction; an empty port matches any port
of that IP pair; an empty protocol matches any protocol. A row naming both ports wins over
one with wildcards.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from p2pdetect.errors import BadLabelsError

REQUIRED = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "label"]
LABELS = ("p2p", "other")
_PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "icmpv6": 58}


@dataclass
class Labels:
    """Label lookup tables built from one or more labels CSVs."""

    exact: dict = field(default_factory=dict)   # (ipA, portA, ipB, portB, proto) -> (label, app)
    pairs: dict = field(default_factory=dict)   # (ipA, ipB, proto) -> (label, app); proto None = any
    rows: int = 0

    def lookup(self, sip: str, sport: int, dip: str, dport: int, proto: int) -> tuple[str, str] | None:
        a, b = (sip, sport), (dip, dport)
        if a > b:
            a, b = b, a
        for p in (proto, None):
            hit = self.exact.get((a[0], a[1], b[0], b[1], p))
            if hit is not None:
                return hit
        pair = (sip, dip) if sip <= dip else (dip, sip)
        for p in (proto, None):
            hit = self.pairs.get((pair[0], pair[1], p))
            if hit is not None:
                return hit
        return None


def _port(value: str, where: str) -> int | None:
    value = value.strip()
    if value == "":
        return None
    if not value.isdigit() or int(value) > 65535:
        raise BadLabelsError(f"{where}: port {value!r} is not a number in 0-65535")
    return int(value)


def _ip(value: str, column: str, where: str) -> str:
    """An address in the form the meter writes it (IPv6 compressed, lower case)."""
    value = value.strip()
    if not value:
        raise BadLabelsError(f"{where}: src_ip and dst_ip are required")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        parts = value.split(".")
        zeros = len(parts) == 4 and any(len(x) > 1 and x.startswith("0") and x.isdigit() for x in parts)
        hint = " (leading zeros are ambiguous: octal or decimal?)" if zeros else ""
        raise BadLabelsError(f"{where}: {column} {value!r} is not an IPv4 or IPv6 address{hint}") from None


def _proto(value: str, where: str) -> int | None:
    value = value.strip().lower()
    if value == "":
        return None
    if value in _PROTO_NAMES:
        return _PROTO_NAMES[value]
    if value.isdigit() and int(value) <= 255:
        return int(value)
    raise BadLabelsError(f"{where}: protocol {value!r} is not tcp, udp or an IP protocol number")


def read_labels(path: str | os.PathLike, into: Labels | None = None) -> Labels:
    """Parse a labels CSV; malformed input raises BadLabelsError naming the file and line."""
    path = Path(path)
    labels = into if into is not None else Labels()
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # a BOM (Excel) is not part of the header
    except OSError as err:
        raise BadLabelsError(f"{path}: cannot read labels ({err.strerror}); check the path") from err
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise BadLabelsError(f"{path}: labels CSV lacks column(s) {', '.join(missing)}; "
                                     f"the header must be {','.join(REQUIRED)}[,app]")
            for lineno, row in enumerate(reader, start=2):
                where = f"{path}:{lineno}"
                if None in row or any(row.get(c) is None for c in REQUIRED):
                    raise BadLabelsError(f"{where}: wrong number of fields; expected {len(header)}")
                label = row["label"].strip()
                if label not in LABELS:
                    raise BadLabelsError(f"{where}: label {row['label']!r} must be 'p2p' or 'other' "
                                         f"(lower case)")
                sip, dip = _ip(row["src_ip"], "src_ip", where), _ip(row["dst_ip"], "dst_ip", where)
                sport, dport = _port(row["src_port"], where), _port(row["dst_port"], where)
                proto = _proto(row["protocol"], where)
                value = (label, (row.get("app") or "").strip())
                if sport is not None and dport is not None:
                    a, b = (sip, sport), (dip, dport)
                    if a > b:
                        a, b = b, a
                    key, table = (a[0], a[1], b[0], b[1], proto), labels.exact
                else:
                    key = (sip, dip, proto) if sip <= dip else (dip, sip, proto)
                    table = labels.pairs
                old = table.get(key)
                if old is not None and old[0] != label:
                    raise BadLabelsError(f"{where}: conflicts with an earlier row labelling the same flow "
                                         f"{old[0]!r}; keep one")
                table[key] = value
                labels.rows += 1
        except csv.Error as err:
            raise BadLabelsError(f"{path}: malformed CSV ({err})") from err
        except UnicodeDecodeError as err:
            raise BadLabelsError(f"{path}: not a text CSV file ({err.reason})") from err
    return labels


def join_labels(cols: dict[str, np.ndarray], labels: Labels) -> tuple[np.ndarray, np.ndarray, int]:
    """label and app arrays for flow columns ('' where no row matched), and the unmatched count."""
    n = len(cols["protocol"])
    lab = np.full(n, "", dtype=object)
    app = np.full(n, "", dtype=object)
    it = zip(cols["src_ip"].tolist(), cols["src_port"].tolist(), cols["dst_ip"].tolist(),
             cols["dst_port"].tolist(), cols["protocol"].tolist())
    for i, key in enumerate(it):
        hit = labels.lookup(*key)
        if hit is not None:
            lab[i], app[i] = hit
    return lab, app, int((lab == "").sum())


def label_table(table, labels_arg: str):
    """The table with label/app columns joined; logs how many flows matched no label."""
    import pyarrow as pa

    cols = {c: table.column(c).to_numpy(zero_copy_only=False)
            for c in ("capture", "src_ip", "src_port", "dst_ip", "dst_port", "protocol")}
    lab = np.full(table.num_rows, "", dtype=object)
    app = np.full(table.num_rows, "", dtype=object)
    if labels_arg == "auto":
        for cap in dict.fromkeys(cols["capture"].tolist()):
            p = Path(cap)
            sidecar = p.with_name(p.name.rsplit(".", 1)[0] + ".labels.csv")
            if not sidecar.is_file():
                raise BadLabelsError(f"{sidecar}: no labels file beside capture {cap}; "
                                     f"give --labels FILE or create it")
            mask = cols["capture"] == cap
            sub = {k: v[mask] for k, v in cols.items()}
            lab[mask], app[mask], _ = join_labels(sub, read_labels(sidecar))
    else:
        lab, app, _ = join_labels(cols, read_labels(labels_arg))
    unmatched = int((lab == "").sum())
    logging.getLogger("p2pdetect.labels").info("labels: %d of %d flows matched no label (%.2f%%)", unmatched, table.num_rows,
             100.0 * unmatched / max(table.num_rows, 1))
    return (table.append_column("label", pa.array(lab.tolist(), pa.string()))
                 .append_column("app", pa.array(app.tolist(), pa.string())))

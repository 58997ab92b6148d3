"""Vantage-point views: a generated capture as one of its P2P hosts' own link would record it.

A scenario's capture holds every host of its swarm, so the flows a peer has with third parties
are in it too: a remote peer's endpoint is seen accepting flows from many hosts and opening
flows to many. A real capture (a subscriber's link, one machine's tcpdump) sees each remote
peer only in its flows with the observed host; the remote end's behaviour is invisible. A
detector trained on whole swarms alone learns what only a whole swarm shows, and misses the
same peers seen from one host (docs/evaluation.md, "Vantage-point views").

`vantage_view` filters a finished capture down to one host's packets (`tcpdump host IP`),
keeps its labels file (labels are address pairs, so they still name every flow) and writes a
summary like the generator's, with network "vantage" and the source capture. It is cheap: no
namespace, no client, a pass of tcpdump and nfstream over one file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import capture, clients, labels, verify
from p2pdetect.data.generator.config import MAX_FRAME

#: Scenarios whose capture is already one observed host's view (only the observed clients'
#: packets are captured): no view is derived from them.
OBSERVED_ONLY = frozenset({"p2p-dht-swarm", "p2p-dht-home", "p2p-amule"})

NETWORK = "vantage"


def p2p_hosts(rows: list[labels.LabelRow]) -> list[str]:
    """The addresses of a capture's P2P peers (trackers excluded), most label rows first."""
    n: Counter[str] = Counter()
    for r in rows:
        if r.label == "p2p" and "tracker" not in r.app:
            n[r.src_ip] += 1
            n[r.dst_ip] += 1
    return [ip for ip, _ in sorted(n.items(), key=lambda kv: (-kv[1], kv[0]))]


def pick_hosts(rows: list[labels.LabelRow], k: int = 2) -> list[str]:
    """k P2P hosts to observe: the best connected one, then hosts from the middle of the order."""
    hosts = p2p_hosts(rows)
    mid = len(hosts) // 2
    picks = hosts[:1] + hosts[mid:mid + k - 1]
    return list(dict.fromkeys(picks))[:k]


def vantage_view(run_dir: Path, ip: str, out_dir: Path,
                 rows: list[labels.LabelRow] | None = None) -> dict[str, Any] | None:
    """Write `out_dir` as the view of the capture in run_dir from host ip; returns its summary, or
    None (nothing written) when the capture holds no packet of ip: the labels name every planned
    pair, and an ISP uplink never sees two remote peers trade. rows: the capture's label rows when
    the caller has read them already."""
    src = next((p for p in sorted(run_dir.glob("*.json")) if not p.name.startswith(".")), None)
    if src is None:
        raise GenerateError(f"{run_dir}: no generator summary (*.json) in it")
    s = json.loads(src.read_text())
    if shutil.which("tcpdump") is None:
        raise GenerateError("tcpdump is not installed; install it (apt-get install tcpdump)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{s['scenario']}.pcap.tmp"
    try:
        res = subprocess.run(["tcpdump", "-r", str(run_dir / s["pcap"]), "-w", str(tmp), "host", ip],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise GenerateError(f"{run_dir / s['pcap']}: tcpdump failed: "
                                f"{(res.stderr.strip().splitlines() or ['?'])[-1]}")
        empty = capture.scan(tmp, MAX_FRAME).packets == 0
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if empty:
        tmp.unlink()
        if not any(out_dir.iterdir()):
            out_dir.rmdir()
        return None
    return write_view(run_dir, s, tmp, out_dir, rows,
                      {"network": NETWORK, "vantage_of": str(Path(run_dir.name) / s["pcap"]), "vantage_host": ip,
                       "source_network": s.get("network", "loopback")})


def write_view(run_dir: Path, source: dict[str, Any], tmp: Path, out_dir: Path,
               rows: list[labels.LabelRow] | None, keys: dict[str, Any]) -> dict[str, Any]:
    """Finish a view of the capture in run_dir (source: its summary) whose packets are in tmp:
    its flows joined to the source's labels, a summary like the generator's with `keys` set, all
    written into out_dir under the source's names (the pcap and summary last, atomically); tmp
    is removed on failure. Returns the summary. Shared by the vantage-point and late-start views."""
    name = source["scenario"]
    try:
        rows = labels.read_csv(run_dir / source["labels"]) if rows is None else rows
        scan = capture.scan(tmp, MAX_FRAME)
        joined = verify.join_flows(tmp, rows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    summary = {k: v for k, v in source.items() if k not in ("plan", "packets", "max_frame_bytes")}
    summary.update({**keys, "packets": scan.packets, "max_frame_bytes": scan.max_frame, **joined,
                    "implementations": clients.implementations_in(joined["apps"])})
    labels.write_csv(rows, out_dir / f"{name}.labels.csv")
    tmp_json = out_dir / f".{name}.json.tmp"
    tmp_json.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, out_dir / f"{name}.pcap")
    os.replace(tmp_json, out_dir / f"{name}.json")
    return summary

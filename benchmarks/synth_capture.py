"""Build large synthetic pcap files for benchmarks, vectorised with numpy (no per-packet Python).

Flows are TCP conversations between 127.x hosts with lognormal packet counts, mixed sizes
and directions, interleaved in time; records carry headers only (snaplen 54) like the
scorer's headers-only captures. Nothing here is sent on any network: it is a file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REC = np.dtype([
    ("ts_sec", "<u4"), ("ts_usec", "<u4"), ("incl", "<u4"), ("orig", "<u4"),
    ("eth_dst", "u1", 6), ("eth_src", "u1", 6), ("eth_type", ">u2"),
    ("ver_ihl", "u1"), ("tos", "u1"), ("tot_len", ">u2"), ("ident", ">u2"), ("frag", ">u2"),
    ("ttl", "u1"), ("proto", "u1"), ("csum", ">u2"), ("src", ">u4"), ("dst", ">u4"),
    ("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"),
    ("off", "u1"), ("flags", "u1"), ("win", ">u2"), ("tcsum", ">u2"), ("urg", ">u2"),
])
assert REC.itemsize == 70
GLOBAL_HEADER = (np.array([0xA1B2C3D4], "<u4").tobytes() + np.array([2, 4], "<u2").tobytes()
                 + np.array([0, 0, 65535, 1], "<u4").tobytes())


def make_capture(path: str | Path, packets: int = 1_000_000, mean_flow_packets: float = 60.0,
                 seed: int = 0, start_s: int = 1_700_000_000) -> Path:
    """Write a pcap of exactly `packets` packets; returns its path."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(2, rng.lognormal(np.log(mean_flow_packets) - 0.5, 1.0,
                                         size=int(packets / mean_flow_packets * 1.5)).astype(np.int64))
    cum = np.cumsum(counts)
    nflows = int(np.searchsorted(cum, packets)) + 1
    counts = counts[:nflows]
    counts[-1] -= cum[nflows - 1] - packets
    if counts[-1] <= 0:
        counts = counts[:-1]
        nflows -= 1
        counts[-1] += packets - counts.sum()
    flow = np.repeat(np.arange(nflows), counts)
    pos = np.arange(packets) - np.repeat(np.cumsum(counts) - counts, counts)  # index within flow
    duration = rng.uniform(0.5, 60.0, nflows)
    start = rng.uniform(0, 600.0, nflows)
    frac = (pos + 0.9 * rng.random(packets)) / np.repeat(counts, counts)  # increasing within a flow
    ts = np.repeat(start, counts) + frac * np.repeat(duration, counts)
    order = np.argsort(ts, kind="stable")

    client = 0x7F000000 | rng.integers(1 << 8, 1 << 23, nflows)
    server = 0x7F000000 | rng.integers(1 << 8, 1 << 23, nflows)
    cport = rng.integers(1024, 65535, nflows)
    sport = rng.choice(np.array([443, 80, 8080, 6881, 51413, 22]), nflows)
    up = (rng.random(packets) < 0.4) | (pos == 0) | (pos == 2)
    up[pos == 1] = False
    payload = np.where(pos < 3, 0, rng.choice(np.array([0, 0, 64, 200, 517, 1200, 1448]), packets))

    r = np.zeros(packets, dtype=REC)
    tsx = ts[order] + start_s
    r["ts_sec"] = tsx.astype(np.uint32)
    r["ts_usec"] = ((tsx - np.floor(tsx)) * 1e6).astype(np.uint32) % 1_000_000
    f, u, pl, ps = flow[order], up[order], payload[order], pos[order]
    r["incl"] = 54
    r["orig"] = 54 + pl
    r["eth_type"] = 0x0800
    r["ver_ihl"] = 0x45
    r["tot_len"] = 40 + pl
    r["ttl"] = 64
    r["proto"] = 6
    r["src"] = np.where(u, client[f], server[f])
    r["dst"] = np.where(u, server[f], client[f])
    r["sport"] = np.where(u, cport[f], sport[f])
    r["dport"] = np.where(u, sport[f], cport[f])
    r["seq"] = ps * 1448
    r["off"] = 0x50
    r["flags"] = np.select([ps == 0, ps == 1], [0x02, 0x12], 0x18)
    r["win"] = 65535
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(GLOBAL_HEADER)
        fh.write(r.tobytes())
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("output")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    make_capture(a.output, a.packets, seed=a.seed)


if __name__ == "__main__":
    main()

"""Synthetic labelled flow tables for tests and benchmarks (no capture, no meter needed).

Flows are drawn per class from simple distributions (P2P: ephemeral ports on both sides,
handshake-sized first payloads, bulk both ways; other: a well-known server port, small
requests, larger replies) and featurised by the real features.FlowFeaturizer, so every
column of the flow table exists and derived features are consistent with the first-N packets.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.featurize import FlowFeaturizer
from p2pdetect.features.schema import COUNTER_FEATURES, FLAG_FEATURES, STAT_FEATURES
from p2pdetect.features.table import to_arrow


def _meter(rng: np.random.Generator, y: np.ndarray, splt_n: int, t0: int, host: int) -> dict[str, np.ndarray]:
    n = len(y)
    p2p = y.astype(bool)
    udp = rng.random(n) < np.where(p2p, 0.3, 0.2)
    proto = np.where(udp, 17, 6).astype(np.int64)
    sport = rng.integers(1024, 65536, n)
    dport = np.where(p2p, rng.integers(1024, 65536, n), rng.choice([53, 80, 443, 8080], n))
    pk_up = rng.integers(3, 60, n) + np.where(p2p, rng.integers(0, 200, n), 0)
    pk_dn = rng.integers(3, 60, n) + np.where(p2p, rng.integers(0, 200, n), rng.integers(0, 80, n))
    mean_up = np.where(p2p, rng.normal(900, 300, n), rng.normal(200, 80, n)).clip(0, 1460)
    mean_dn = np.where(p2p, rng.normal(1000, 300, n), rng.normal(1100, 200, n)).clip(0, 1460)
    dur = rng.integers(10, 120_000, n)
    first = t0 + np.sort(rng.integers(0, 600_000, n))
    ps = np.where(rng.random((n, splt_n)) < 0.5, mean_up[:, None], mean_dn[:, None])
    ps = (ps + rng.normal(0, 60, (n, splt_n))).clip(0, 1460).astype(np.int64)
    ps[p2p, 0] = 68 + rng.integers(0, 3, p2p.sum())  # handshake-like first payload
    dirs = rng.integers(0, 2, (n, splt_n)).astype(np.int64)
    npk = np.minimum(pk_up + pk_dn, splt_n)
    pad = np.arange(splt_n)[None, :] >= npk[:, None]
    ps[pad], dirs[pad] = -1, -1
    piat = np.where(pad, -1.0, rng.exponential(20.0, (n, splt_n)))
    cols: dict[str, np.ndarray] = {
        "src_ip": np.array([f"10.{host}.{i % 250}.{1 + i % 7}" for i in range(n)], dtype=object),
        "src_port": sport.astype(np.int64), "dst_port": dport.astype(np.int64),
        "dst_ip": np.array([f"192.0.{host}.{i % 200}" for i in range(n)], dtype=object),
        "protocol": proto, "ip_version": np.full(n, 4, np.int64),
        "bidirectional_first_seen_ms": first.astype(np.int64),
        "bidirectional_last_seen_ms": (first + dur).astype(np.int64),
        "application_name": np.where(p2p, np.where(udp, "BitTorrent", "Unknown"),
                                     np.where(dport == 53, "DNS", "TLS")).astype(object),
        "application_category_name": np.full(n, "", dtype=object),
        "application_is_guessed": np.zeros(n, np.int64),
    }
    up_b, dn_b = (pk_up * mean_up).astype(np.int64), (pk_dn * mean_dn).astype(np.int64)
    vals = {"bidirectional_duration_ms": dur, "bidirectional_packets": pk_up + pk_dn,
            "bidirectional_bytes": up_b + dn_b, "src2dst_duration_ms": dur, "src2dst_packets": pk_up,
            "src2dst_bytes": up_b, "dst2src_duration_ms": dur, "dst2src_packets": pk_dn, "dst2src_bytes": dn_b}
    for c in COUNTER_FEATURES:
        cols[c] = np.asarray(vals[c], dtype=np.int64)
    for c in STAT_FEATURES:
        base = mean_up if c.startswith("src2dst") else mean_dn if c.startswith("dst2src") else (mean_up + mean_dn) / 2
        if "piat" in c:
            base = dur / np.maximum(pk_up + pk_dn, 1)
        scale = {"min": 0.2, "mean": 1.0, "stddev": 0.4, "max": 1.6}[c.split("_")[1]]
        cols[c] = (base * scale + rng.normal(0, 5, n)).clip(0).astype(np.float64)
    for c in FLAG_FEATURES:
        cols[c] = np.where(proto == 6, rng.integers(0, 3, n), 0).astype(np.int64)
    cols["splt_ps"], cols["splt_dir"], cols["splt_piat_ms"] = ps, dirs, piat
    return cols


def synthetic_table(n_captures: int = 6, flows_per_capture: int = 200, p2p_share: float = 0.3,
                    seed: int = 0, config: ExtractConfig | None = None) -> pa.Table:
    """A labelled flow table (label, app columns) of n_captures synthetic captures."""
    config = config or ExtractConfig()
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(n_captures):
        y = (rng.random(flows_per_capture) < p2p_share).astype(np.int8)
        meter = _meter(rng, y, config.splt_n, 1_700_000_000_000 + c * 10_000_000, c)
        cols = FlowFeaturizer(config, capture=f"synthetic-{c:02d}.pcap").transform_columns(meter)
        cols["label"] = np.where(y == 1, "p2p", "other").astype(object)
        cols["app"] = np.where(y == 1, "bittorrent-mse", np.where(cols["dst_port"] == 53, "dns", "https")).astype(object)
        parts.append(to_arrow(cols))
    return pa.concat_tables(parts)

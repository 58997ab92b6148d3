"""Derived flow-shape features, vectorised over flows from the meter's C-computed columns.

Inputs are the columns of features.meter (splt_* as (n, N) arrays padded with -1).
Every function here is pure numpy: no Python loop runs per flow or per packet.
"""

from __future__ import annotations

import numpy as np

TCP, UDP = 6, 17


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / max(den, 1): finite for one-directional flows."""
    return num.astype(np.float64) / np.maximum(den, 1)


def splt_entropy(ps: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Shannon entropy (bits) of the packet sizes among the first N packets of each flow.

    For a flow with n valid packets where the j-th packet's size occurs c_j times,
    H = -sum_values (c/n) log2(c/n) = -(1/n) * sum_j log2(c_j / n).
    Works in chunks of flows so the (n, N, N) comparison stays small in memory.
    """
    if len(ps) > chunk:
        return np.concatenate([splt_entropy(ps[i:i + chunk], chunk)
                               for i in range(0, len(ps), chunk)])
    valid = ps >= 0
    n = valid.sum(axis=1)
    # counts[i, j] = how many valid packets of flow i have the same size as packet j
    same = (ps[:, :, None] == ps[:, None, :]) & valid[:, None, :]
    counts = same.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(valid, np.log2(counts / np.maximum(n, 1)[:, None]), 0.0)
        h = -terms.sum(axis=1) / np.maximum(n, 1)
    return np.where(n > 0, h, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def _payload_positions(ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and second packet carrying payload (-1 when absent)."""
    payload = ps > 0
    nidx = ps.shape[1]
    idx = np.arange(nidx)
    first = np.where(payload.any(axis=1), np.argmax(payload, axis=1), -1)
    rest = payload & (idx[None, :] > first[:, None])
    second = np.where((first >= 0) & rest.any(axis=1), np.argmax(rest, axis=1), -1)
    return first, second


def _take(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """a[i, pos[i]] or -1 where pos is -1."""
    out = np.take_along_axis(a, np.maximum(pos, 0)[:, None], axis=1)[:, 0]
    return np.where(pos >= 0, out, -1)


def rtt_estimate_ms(ps: np.ndarray, dirs: np.ndarray, piat: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """The flow's round trip as its first packets show it (ms; NaN where they cannot tell).

    TCP: SYN -> SYN/ACK -> ACK, three payload-free packets alternating direction, spans one
    full round trip wherever the vantage point sits (initiator side: the SYN/ACK gap; responder
    side: the ACK gap; mid-path: both halves). Other flows: the gap from the first packet to the
    first packet back (a request/response round trip seen from the initiator's side).
    """
    n = ps.shape[1]
    out = np.full(len(ps), np.nan)
    if n >= 3:
        hs = ((proto == TCP) & (ps[:, 0] == 0) & (ps[:, 1] == 0) & (ps[:, 2] == 0)
              & (dirs[:, 0] == 0) & (dirs[:, 1] == 1) & (dirs[:, 2] == 0))
        out = np.where(hs, piat[:, 1] + piat[:, 2], out)
    back = (dirs == 1) & (ps >= 0)
    has = back.any(axis=1)
    first_back = np.argmax(back, axis=1)
    elapsed = np.cumsum(np.where(ps >= 0, np.maximum(piat, 0), 0), axis=1)
    gap = np.take_along_axis(elapsed, first_back[:, None], axis=1)[:, 0]
    return np.where(np.isnan(out) & has & (proto != TCP), gap, out)


def derive_features(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Derived and port-fact columns for a batch of meter columns (see docs/features.md)."""
    ps, dirs = cols["splt_ps"], cols["splt_dir"]
    valid = ps >= 0
    n_valid = valid.sum(axis=1)
    proto = cols["protocol"]
    sport, dport = cols["src_port"], cols["dst_port"]
    transport = (proto == TCP) | (proto == UDP)

    first, second = _payload_positions(ps)
    payload = ps > 0
    big = payload & (ps >= 0.9 * cols["bidirectional_max_ps"][:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        full_share = np.where(payload.any(axis=1), big.sum(axis=1) / payload.sum(axis=1), np.nan)
    rtt = rtt_estimate_ms(ps, dirs, cols["splt_piat_ms"], proto)
    # below 0.1 ms a round trip is the host's own stack, not a path: clamp to keep ratios finite
    rtt_floor = np.maximum(rtt, 0.1)
    with np.errstate(divide="ignore", invalid="ignore"):
        up_share = np.where(n_valid > 0, ((dirs == 0) & valid).sum(axis=1) / n_valid, np.nan)

    out = {
        "is_udp": (proto == UDP).astype(np.int64),
        "bytes_ratio": _ratio(cols["src2dst_bytes"], cols["dst2src_bytes"]),
        "packets_ratio": _ratio(cols["src2dst_packets"], cols["dst2src_packets"]),
        "splt_packets": n_valid.astype(np.int64),
        "splt_ps_entropy": splt_entropy(ps),
        "splt_dir_changes": ((dirs[:, 1:] != dirs[:, :-1]) & valid[:, 1:]).sum(axis=1).astype(np.int64),
        "splt_up_share": up_share,
        "hs_first_payload_index": first.astype(np.int64),
        "hs_first_payload_size": _take(ps, first).astype(np.int64),
        "hs_first_payload_dir": _take(dirs, first).astype(np.int64),
        "hs_second_payload_size": _take(ps, second).astype(np.int64),
        "hs_second_payload_dir": _take(dirs, second).astype(np.int64),
        # sizes relative to the flow's own largest packet (≈ its MSS in a transfer): the same
        # shape on a 1500, 1492 or 1280 byte MTU path
        "full_size_share": full_share,
        "ps_mean_over_max": _ratio(cols["bidirectional_mean_ps"], cols["bidirectional_max_ps"]),
        # timings relative to the flow's own round trip: the same shape on a 1 ms or a 300 ms path
        "rtt_ms": rtt,
        "piat_mean_over_rtt": cols["bidirectional_mean_piat_ms"] / rtt_floor,
        "piat_max_over_rtt": cols["bidirectional_max_piat_ms"] / rtt_floor,
        "duration_over_rtt": cols["bidirectional_duration_ms"] / rtt_floor,
        "both_ports_ephemeral": (transport & (sport >= 1024) & (dport >= 1024)).astype(np.int64),
        "src_port_wellknown": (transport & (sport < 1024)).astype(np.int64),
        "dst_port_wellknown": (transport & (dport < 1024)).astype(np.int64),
    }
    return out

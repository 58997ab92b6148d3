"""Host context: how each endpoint of a flow has used its ports across earlier flows.

P2P gives itself away by how hosts use ports, even when every byte is encrypted: a peer's
listening (ip, port) is contacted by many remote IPs, each from its own port (remote IPs ≈
remote ports), the same port number often serves TCP and UDP (BitTorrent + uTP/DHT), and
peers talk to many distinct hosts. A web server instead sees few IPs using many ports each.

HostContext consumes flows in the order the meter reports them (the order they ended, as
the live scorer sees them). A flow's features use only flows consumed before it, within a
sliding window of packet time: training never sees a future that serving cannot
(DESIGN.md invariant 2). Batch extraction and the live scorer use this same class.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from features.config import check_param
from features.schema import HOST_FEATURES, PORT_FEATURES

TCP, UDP = 6, 17
_OTHER = {TCP: UDP, UDP: TCP}

#: The host-context columns this class produces (the two same-port facts are port features).
CONTEXT_COLUMNS = HOST_FEATURES + ["src_tcp_udp_same_port", "dst_tcp_udp_same_port"]
assert {"src_tcp_udp_same_port", "dst_tcp_udp_same_port"} <= set(PORT_FEATURES)


def _inc(table: dict, key, item) -> None:
    c = table.get(key)
    if c is None:
        table[key] = {item: 1}
    else:
        c[item] = c.get(item, 0) + 1


def _dec(table: dict, key, item) -> None:
    c = table[key]
    k = c[item] - 1
    if k:
        c[item] = k
    else:
        del c[item]
        if not c:
            del table[key]


class HostContext:
    """Stateful, causal host-context features over a sliding window of `window_s` seconds.

    Feed flows in meter order with `transform(cols)`; calling it once on a whole capture or
    many times on consecutive batches gives identical rows.
    """

    def __init__(self, window_s: float = 300.0) -> None:
        check_param("HostContext", "window_s", window_s,
                    isinstance(window_s, (int, float)) and window_s > 0, "a number > 0")
        self.window_s = window_s
        self._window_ms = float(window_s) * 1000.0
        self._clock_ms = -np.inf
        self._events: deque = deque()
        # each table maps a key to {item: multiplicity} over the flows inside the window
        self._ep_ips: dict = {}      # (ip, port, proto) -> remote ips
        self._ep_ports: dict = {}    # (ip, port, proto) -> remote ports
        self._peers: dict = {}       # ip -> remote ips
        self._port_proto: dict = {}  # (ip, port) -> protos
        self._pair_proto: dict = {}  # (ip_a, ip_b) sorted -> protos

    # state ---------------------------------------------------------------------------
    def _apply(self, ev: tuple, step) -> None:
        _, sip, sport, dip, dport, proto = ev
        for aip, aport, bip, bport in ((sip, sport, dip, dport), (dip, dport, sip, sport)):
            step(self._ep_ips, (aip, aport, proto), bip)
            step(self._ep_ports, (aip, aport, proto), bport)
            step(self._peers, aip, bip)
            step(self._port_proto, (aip, aport), proto)
        step(self._pair_proto, (sip, dip) if sip <= dip else (dip, sip), proto)

    def _evict(self) -> None:
        horizon = self._clock_ms - self._window_ms
        events = self._events
        while events and events[0][0] < horizon:
            self._apply(events.popleft(), _dec)

    @property
    def active_events(self) -> int:
        """Flows currently inside the window (memory is bounded by this)."""
        return len(self._events)

    # features ------------------------------------------------------------------------
    def _side(self, ip, port, proto) -> tuple[int, int, float, int, int]:
        ips = self._ep_ips.get((ip, port, proto))
        ports = self._ep_ports.get((ip, port, proto))
        n_ips = len(ips) if ips else 0
        n_ports = len(ports) if ports else 0
        ratio = n_ips / n_ports if n_ports else np.nan
        peers = self._peers.get(ip)
        other = _OTHER.get(proto)
        pp = self._port_proto.get((ip, port))
        same = int(other is not None and pp is not None and other in pp)
        return n_ips, n_ports, ratio, (len(peers) if peers else 0), same

    def transform(self, cols: dict[str, np.ndarray], *, remember: bool = True) -> dict[str, np.ndarray]:
        """Context columns for a batch of flows in meter order, then remember the batch.

        remember=False scores flows that have not ended (the scorer's early snapshots): they
        see the current state, but neither enter it nor advance its clock, so every later
        flow gets exactly the context batch extraction gives it.
        """
        sip, sport = cols["src_ip"].tolist(), cols["src_port"].tolist()
        dip, dport = cols["dst_ip"].tolist(), cols["dst_port"].tolist()
        proto, end = cols["protocol"].tolist(), cols["bidirectional_last_seen_ms"].tolist()
        n = len(proto)
        src: list[tuple] = []
        dst: list[tuple] = []
        pair = [0] * n
        side = self._side
        for i in range(n):
            t = float(end[i])
            if remember and t > self._clock_ms:
                self._clock_ms = t
                self._evict()
            ev = (t, sip[i], sport[i], dip[i], dport[i], proto[i])
            p = proto[i]
            src.append(side(sip[i], sport[i], p))
            dst.append(side(dip[i], dport[i], p))
            other = _OTHER.get(p)
            if other is not None:
                pp = self._pair_proto.get((sip[i], dip[i]) if sip[i] <= dip[i] else (dip[i], sip[i]))
                pair[i] = int(pp is not None and other in pp)
            if remember:
                self._events.append(ev)
                self._apply(ev, _inc)
        out: dict[str, np.ndarray] = {}
        pair = np.asarray(pair, dtype=np.int64)
        for name, rows in (("src", src), ("dst", dst)):
            arr = np.asarray(rows, dtype=np.float64).reshape(n, 5)
            out[f"{name}_ep_remote_ips"] = arr[:, 0].astype(np.int64)
            out[f"{name}_ep_remote_ports"] = arr[:, 1].astype(np.int64)
            out[f"{name}_ep_ip_port_ratio"] = arr[:, 2]
            out[f"{name}_host_fanout"] = arr[:, 3].astype(np.int64)
            out[f"{name}_tcp_udp_same_port"] = arr[:, 4].astype(np.int64)
        out["pair_tcp_and_udp"] = pair
        return out

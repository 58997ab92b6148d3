"""Endpoint and host evidence: how each endpoint and host of a flow behaved across earlier flows.

P2P gives itself away by how hosts behave, even when every byte is encrypted and whatever the
implementation (Karagiannis et al., IMC 2004; PeerRush, DIMVA 2013):

* a peer's listening (ip, port, proto) endpoint is contacted by many remote IPs, each from its
  own port (remote IPs ≈ remote ports); a web server sees few IPs using many ports each;
* the same port number serves TCP and UDP (BitTorrent + uTP/DHT), and IP pairs talk both;
* a peer talks to many distinct hosts on non-service ports, many of its connection attempts
  fail (peers that left), and it fans out small UDP request/response exchanges (DHT queries);
* it uploads about as much as it downloads, and its endpoints live long.

HostContext consumes flows in the order the meter reports them (the order they ended, as the
live scorer sees them). A flow's features use only flows consumed before it, within a sliding
window of packet time: training never sees a future that serving cannot (DESIGN.md invariant
2). Batch extraction and the live scorer use this same class (invariant 1).

A TCP connection still in progress can count too, as a peer of its two hosts (transform's
`evidence`; ExtractConfig.peers_in_progress, off by default): once the meter's evidence
snapshot (the model's snapshot_packets; features/snapshot_meter.py) shows it answered, it joins
the host's peers and high-port peers until its final row replaces it. A host's
transfers run side by side and end together; counted only when they end, each would see none of
the others, and a host's first transfers would look like a lone exchange. Early-verdict snapshots
(the scorer's --early-packets) never enter the state: batch and live see the same rows.

A multicast or broadcast address (a discovery protocol's group, 255.255.255.255) is a group of
receivers, not a host: flows to it add nothing to the state (no peer, no flow of any host) and its side
of a flow reads no history. Counted as a host, the broadcast address of a LAN looked like a node trading
with every device that announces itself (MikroTik and Tuya discovery, session 20: 9 of a seed's 16 false
positives on the real captures); a P2P client's local peer discovery still reads its sender's evidence.

Memory is bounded by the window: state holds only the flows that ended (or, in progress, were
last seen by their evidence snapshot) within the last `window_s` seconds of packet time, and at
most `max_flows` of them (the oldest leave first when a busy link exceeds it), so about 1 KB
per flow in the window in the worst case.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from functools import lru_cache

import numpy as np

from p2pdetect.features.config import check_param, is_int
from p2pdetect.features.schema import HOST_FEATURES, PORT_FEATURES

TCP, UDP = 6, 17
_OTHER = {TCP: UDP, UDP: TCP}

#: A UDP flow of at most this many packets is a request/response exchange (a DHT query,
#: a tracker announce, a STUN binding).
SMALL_UDP_PACKETS = 4

#: Registered service ports at or above 1024 (below 1024 every port is a service port): a flow
#: between two ports that are neither is a "high-port" flow, what P2P and little else uses.
SERVICE_PORTS = frozenset({
    1080, 1194, 1433, 1521, 1701, 1723, 1812, 1813, 1883, 1900, 2049, 2082, 2083, 2181, 3128,
    3268, 3306, 3389, 3478, 3479, 3690, 4500, 5004, 5005, 5060, 5061, 5222, 5223, 5228, 5349,
    5353, 5355, 5432, 5671, 5672, 5683, 5900, 5938, 6379, 6443, 8000, 8008, 8080, 8081, 8088,
    8443, 8883, 8888, 9000, 9090, 9092, 9100, 9200, 9418, 11211, 27017,
    *range(19302, 19310),  # Google STUN
})

#: Per-side evidence (each exists as src_* and dst_*), in column order.
_SIDE = ["ep_remote_ips", "ep_remote_ports", "ep_ip_port_ratio", "ep_flows", "ep_failed_share",
         "ep_lifetime_s", "host_fanout", "host_flows", "host_failed_share", "host_small_udp_peers",
         "host_tcp_udp_peers", "host_up_share", "host_high_port_peers", "tcp_udp_same_port"]
_INT = {"ep_remote_ips", "ep_remote_ports", "ep_flows", "host_fanout", "host_flows",
        "host_small_udp_peers", "host_tcp_udp_peers", "host_high_port_peers", "tcp_udp_same_port"}

#: The columns this class produces.
CONTEXT_COLUMNS = [f"{s}_{c}" for s in ("src", "dst") for c in _SIDE] + ["pair_tcp_and_udp"]
assert set(CONTEXT_COLUMNS) <= set(HOST_FEATURES) | set(PORT_FEATURES)

#: What the columns hold for a flow none of whose endpoints or hosts had an earlier flow in the
#: window (a host's first flow, a one-flow capture): counts 0, shares and ratios undefined.
NO_HISTORY = {f"{s}_{c}": (0 if c in _INT else float("nan")) for s in ("src", "dst") for c in _SIDE}
NO_HISTORY["pair_tcp_and_udp"] = 0


@lru_cache(maxsize=65536)
def group_address(ip: str) -> bool:
    """A multicast address or the limited broadcast (255.255.255.255): many receivers, not a host."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return a.is_multicast or (a.version == 4 and int(a) == 0xFFFFFFFF)


def high_port(port: int) -> bool:
    """Neither a port below 1024 nor a registered service port."""
    return port >= 1024 and port not in SERVICE_PORTS


def failed_flows(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Flows that carried no exchange: a TCP connection with no payload either way (SYN
    unanswered, reset), a UDP or other flow never answered. Vectorised over flows."""
    proto = cols["protocol"]
    no_reply = cols["dst2src_packets"] == 0
    no_payload = cols["bidirectional_bytes"] == 0
    return np.where(proto == TCP, no_payload | no_reply, no_reply)


def _inc(table: dict, key, item) -> bool:
    """Count item under key; True when item is new for key."""
    c = table.get(key)
    if c is None:
        table[key] = {item: 1}
        return True
    k = c.get(item, 0)
    c[item] = k + 1
    return k == 0


def _dec(table: dict, key, item) -> bool:
    """Uncount item under key; True when item is gone from key."""
    c = table[key]
    k = c[item] - 1
    if k:
        c[item] = k
        return False
    del c[item]
    if not c:
        del table[key]
    return True


class _Started(tuple):
    """A TCP connection in progress as host context counts it: (t, ip_a, ip_b, high, key)."""


class HostContext:
    """Stateful, causal endpoint and host evidence over a sliding window of `window_s` seconds.

    Feed flows in meter order with `transform(cols)`; calling it once on a whole capture or
    many times on consecutive batches gives identical rows.
    """

    def __init__(self, window_s: float = 300.0, max_flows: int = 2_000_000) -> None:
        check_param("HostContext", "window_s", window_s,
                    isinstance(window_s, (int, float)) and window_s > 0, "a number > 0")
        check_param("HostContext", "max_flows", max_flows, is_int(max_flows) and max_flows >= 1,
                    "an int >= 1")
        self.window_s = window_s
        self.max_flows = max_flows
        self._window_ms = float(window_s) * 1000.0
        self._clock_ms = -np.inf
        self._events: deque = deque()
        # tables of {item: multiplicity} over the flows inside the window
        self._ep_ips: dict = {}      # (ip, port, proto) -> remote ips
        self._ep_ports: dict = {}    # (ip, port, proto) -> remote ports
        self._peers: dict = {}       # ip -> remote ips
        self._small_udp: dict = {}   # ip -> remote ips of small UDP exchanges
        self._high: dict = {}        # ip -> remote ips of high-port <-> high-port flows
        self._proto_peers: dict = {}  # (ip, proto) -> remote ips, proto TCP or UDP
        self._port_proto: dict = {}  # (ip, port) -> protos
        self._pair_proto: dict = {}  # (ip_a, ip_b) sorted -> protos
        # plain counters over the window
        self._ep_stats: dict = {}    # (ip, port, proto) -> [flows, failed, first seen ms]
        self._host_stats: dict = {}  # ip -> [flows, failed, bytes up, bytes down]
        self._both: dict = {}        # ip -> peers spoken to over TCP and UDP
        self._open: dict = {}        # 5-tuple -> the _Started event of a connection in progress

    # state ---------------------------------------------------------------------------
    def _apply(self, ev: tuple, add: bool) -> None:
        t, sip, sport, dip, dport, proto, failed, small, up, down, high = ev
        step = _inc if add else _dec
        sign = 1 if add else -1
        other = _OTHER.get(proto)
        for aip, aport, bip, bport, a_up, a_down in ((sip, sport, dip, dport, up, down),
                                                      (dip, dport, sip, sport, down, up)):
            ep = (aip, aport, proto)
            step(self._ep_ips, ep, bip)
            step(self._ep_ports, ep, bport)
            step(self._peers, aip, bip)
            step(self._port_proto, (aip, aport), proto)
            if small:
                step(self._small_udp, aip, bip)
            if high:
                step(self._high, aip, bip)
            if other is not None and step(self._proto_peers, (aip, proto), bip):
                # the peer came (or went) on this protocol: does it now (still) speak both?
                theirs = self._proto_peers.get((aip, other))
                if theirs is not None and bip in theirs:
                    self._both[aip] = self._both.get(aip, 0) + sign
                    if not self._both[aip]:
                        del self._both[aip]
            s = self._ep_stats.get(ep)
            if s is None:
                s = self._ep_stats[ep] = [0, 0, t]
            s[0] += sign
            s[1] += sign * failed
            if not s[0]:
                del self._ep_stats[ep]
            h = self._host_stats.get(aip)
            if h is None:
                h = self._host_stats[aip] = [0, 0, 0, 0]
            h[0] += sign
            h[1] += sign * failed
            h[2] += sign * a_up
            h[3] += sign * a_down
            if not h[0]:
                del self._host_stats[aip]
        step(self._pair_proto, (sip, dip) if sip <= dip else (dip, sip), proto)

    def _apply_started(self, ev: _Started, add: bool) -> None:
        """A connection in progress: a peer (and a high-port peer) of both its hosts."""
        step = _inc if add else _dec
        _, a, b, high, _ = ev
        step(self._peers, a, b)
        step(self._peers, b, a)
        if high:
            step(self._high, a, b)
            step(self._high, b, a)

    def _close(self, key: tuple) -> None:
        """The connection `key` ended (or restarted): it no longer counts as in progress."""
        ev = self._open.pop(key, None)
        if ev is not None:
            self._apply_started(ev, False)

    def _evict(self) -> None:
        horizon = self._clock_ms - self._window_ms
        events = self._events
        while events and (events[0][0] < horizon or len(events) > self.max_flows):
            ev = events.popleft()
            if type(ev) is _Started:
                if self._open.get(ev[4]) is ev:  # else its final row (or a later start) took over
                    del self._open[ev[4]]
                    self._apply_started(ev, False)
            else:
                self._apply(ev, False)

    @property
    def active_events(self) -> int:
        """Flows currently inside the window (memory is bounded by this)."""
        return len(self._events)

    # features ------------------------------------------------------------------------
    def _side(self, ip, port, proto, now) -> tuple:
        ep = (ip, port, proto)
        ips = self._ep_ips.get(ep)
        ports = self._ep_ports.get(ep)
        n_ips = len(ips) if ips else 0
        n_ports = len(ports) if ports else 0
        es = self._ep_stats.get(ep)
        hs = self._host_stats.get(ip)
        peers = self._peers.get(ip)
        small = self._small_udp.get(ip)
        high = self._high.get(ip)
        other = _OTHER.get(proto)
        pp = self._port_proto.get((ip, port))
        nan = np.nan
        return (
            n_ips, n_ports, n_ips / n_ports if n_ports else nan,
            es[0] if es else 0, es[1] / es[0] if es else nan,
            (now - es[2]) / 1000.0 if es else nan,
            len(peers) if peers else 0,
            hs[0] if hs else 0, hs[1] / hs[0] if hs else nan,
            len(small) if small else 0,
            self._both.get(ip, 0),
            hs[2] / (hs[2] + hs[3]) if hs and hs[2] + hs[3] else nan,
            len(high) if high else 0,
            int(other is not None and pp is not None and other in pp),
        )

    def transform(self, cols: dict[str, np.ndarray], *, remember=True, evidence=None) -> dict[str, np.ndarray]:
        """Evidence columns for a batch of flows in meter order, then remember the batch.

        remember=False scores flows that have not ended (the scorer's early snapshots): they
        see the current state, but neither enter it nor advance its clock, so every later
        flow gets exactly the context batch extraction gives it. A bool array gives it per
        row (a chunk of snapshots and ended flows, in the order the meter handed them over).
        evidence (bool, per row) marks the snapshots that are evidence snapshots (the model's
        snapshot_packets): an answered TCP connection among them enters the state as in
        progress (module doc) until its final row comes.
        """
        n = len(cols["protocol"])
        keep = np.broadcast_to(np.asarray(remember, dtype=bool), (n,)).tolist()
        starts = [False] * n if evidence is None else np.broadcast_to(np.asarray(evidence, dtype=bool), (n,)).tolist()
        sip, sport = cols["src_ip"].tolist(), cols["src_port"].tolist()
        dip, dport = cols["dst_ip"].tolist(), cols["dst_port"].tolist()
        proto, end = cols["protocol"].tolist(), cols["bidirectional_last_seen_ms"].tolist()
        failed = failed_flows(cols).astype(np.int64).tolist()
        small = ((cols["protocol"] == UDP)
                 & (cols["bidirectional_packets"] <= SMALL_UDP_PACKETS)).tolist()
        up, down = cols["src2dst_bytes"].tolist(), cols["dst2src_bytes"].tolist()
        group = [group_address(ip) for ip in dip]
        none = tuple(NO_HISTORY[f"src_{c}"] for c in _SIDE)
        src: list[tuple] = []
        dst: list[tuple] = []
        pair = [0] * n
        side = self._side
        opened = self._open
        for i in range(n):
            t = float(end[i])
            ended = keep[i]
            p = proto[i]
            started = not ended and starts[i] and p == TCP and up[i] and down[i]
            if ended and t > self._clock_ms:   # (a snapshot never moves the clock)
                self._clock_ms = t
                self._evict()
            now = max(t, self._clock_ms)
            if opened and (ended or started):
                self._close((sip[i], sport[i], dip[i], dport[i], p))
            src.append(side(sip[i], sport[i], p, now))
            dst.append(none if group[i] else side(dip[i], dport[i], p, now))
            other = _OTHER.get(p)
            if other is not None:
                pp = self._pair_proto.get((sip[i], dip[i]) if sip[i] <= dip[i] else (dip[i], sip[i]))
                pair[i] = int(pp is not None and other in pp)
            if group[i]:
                continue   # a group address is not a host (module doc): the flow enters no state
            if ended:
                ev = (t, sip[i], sport[i], dip[i], dport[i], p, failed[i], small[i], up[i], down[i],
                      other is not None and high_port(sport[i]) and high_port(dport[i]))
                self._events.append(ev)
                self._apply(ev, True)
                if len(self._events) > self.max_flows:
                    self._evict()
            elif started:
                key = (sip[i], sport[i], dip[i], dport[i], p)
                sev = _Started((t, sip[i], dip[i], high_port(sport[i]) and high_port(dport[i]), key))
                opened[key] = sev
                self._events.append(sev)
                self._apply_started(sev, True)
                if len(self._events) > self.max_flows:
                    self._evict()
        out: dict[str, np.ndarray] = {}
        for name, rows in (("src", src), ("dst", dst)):
            arr = np.asarray(rows, dtype=np.float64).reshape(n, len(_SIDE))
            for j, c in enumerate(_SIDE):
                out[f"{name}_{c}"] = arr[:, j].astype(np.int64) if c in _INT else arr[:, j]
        out["pair_tcp_and_udp"] = np.asarray(pair, dtype=np.int64)
        return out

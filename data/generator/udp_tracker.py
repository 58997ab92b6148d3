"""A small UDP BitTorrent tracker (BEP 15), run as a thread inside a swarm's worker.

Why: most public torrents list UDP trackers first, and a UDP announce is one of the 2-4 packet
flows that make up most real P2P traffic at a vantage point (connect, connect reply, announce,
announce reply on one address pair). Like the HTTP tracker it also hands out "ghost" peers,
addresses where nothing listens, as real trackers hand out peers that have left.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PROTOCOL_ID = 0x41727101980  # BEP 15's magic constant of a connect request
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3
_EVENT_STOPPED = 3
_CONNECTION_TTL = 120.0  # seconds a connection id stays valid (BEP 15: one to two minutes)


class UdpTracker:
    """Announce and scrape handling over BEP 15 datagrams, keyed by info-hash.

    ``ghosts``: gone addresses; each announce reply carries up to ``ghosts_per_reply`` of them, drawn
    afresh, besides the swarm's live peers (a real tracker's list holds many peers that left).
    ``handle`` is a pure function of the datagram (plus the tracker's state), so tests need no socket.
    """

    def __init__(self, ghosts: list[tuple[str, int]], interval: int, seed: int, ghosts_per_reply: int = 8) -> None:
        self.ghosts = ghosts
        self.ghosts_per_reply = ghosts_per_reply
        self.interval = interval
        self._rng = random.Random(seed)
        self._conns: dict[tuple[str, int], dict[int, float]] = {}
        self._swarms: dict[bytes, dict[tuple[str, int], bool]] = {}  # peer -> is a seed
        self._lock = threading.Lock()
        self.announces = 0

    def _error(self, tid: int, message: str) -> bytes:
        return struct.pack(">ii", ERROR, tid) + message.encode()

    def handle(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        """The reply to one request datagram from ``source`` (ip, port), or None to stay silent."""
        if len(data) < 16:
            return None
        conn_id, action, tid = struct.unpack_from(">qii", data)
        now = time.time()
        with self._lock:
            if action == CONNECT:
                if conn_id != PROTOCOL_ID:
                    return None
                cid = self._rng.getrandbits(63)
                conns = self._conns.setdefault(source, {})
                for old in [c for c, t in conns.items() if now - t > _CONNECTION_TTL]:
                    del conns[old]
                conns[cid] = now
                return struct.pack(">iiq", CONNECT, tid, cid)
            if conn_id not in self._conns.get(source, {}):
                return self._error(tid, "unknown connection id")
            if action == ANNOUNCE and len(data) >= 98:
                return self._announce(data, source, tid)
            if action == SCRAPE:
                out = struct.pack(">ii", SCRAPE, tid)
                for off in range(16, len(data) - 19, 20):
                    swarm = self._swarms.get(data[off:off + 20], {})
                    seeds = sum(swarm.values())
                    out += struct.pack(">iii", seeds, 0, len(swarm) - seeds)
                return out
            return self._error(tid, "unsupported action")

    def _announce(self, data: bytes, source: tuple[str, int], tid: int) -> bytes:
        self.announces += 1
        info_hash = data[16:36]
        left, = struct.unpack_from(">q", data, 64)
        event, ip_raw, _key, numwant, port = struct.unpack_from(">iIIiH", data, 80)
        ip = socket.inet_ntoa(struct.pack(">I", ip_raw)) if ip_raw else source[0]
        me = (ip, port)
        swarm = self._swarms.setdefault(info_hash, {})
        if event == _EVENT_STOPPED:
            swarm.pop(me, None)
        else:
            swarm[me] = left == 0
        others = [p for p in swarm if p != me]
        others += self._rng.sample(self.ghosts, min(self.ghosts_per_reply, len(self.ghosts)))
        self._rng.shuffle(others)
        others = others[: 50 if numwant < 0 else numwant]
        seeds = sum(swarm.values())
        head = struct.pack(">iiiii", ANNOUNCE, tid, self.interval, len(swarm) - seeds, seeds)
        return head + b"".join(socket.inet_aton(a) + struct.pack(">H", p) for a, p in others)


def serve(ip: str, port: int, tracker: UdpTracker) -> Callable[[], None]:
    """Serve ``tracker`` at ``udp://ip:port/announce`` on a daemon thread; returns the function that stops it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, port))
    sock.settimeout(0.5)
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            try:
                data, source = sock.recvfrom(2048)
            except socket.timeout:
                continue
            reply = tracker.handle(data, source)
            if reply is not None:
                sock.sendto(reply, source)

    thread = threading.Thread(target=loop, name="udp-tracker", daemon=True)
    thread.start()
    log.info("UDP tracker listening on udp://%s:%d/announce (%d ghost peers)", ip, port, len(tracker.ghosts))

    def stop() -> None:
        stopping.set()
        thread.join(timeout=2)
        sock.close()

    return stop

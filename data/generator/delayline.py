"""A userspace delay line: holds each IP packet for its path's one-way delay, drops by loss, shapes rate.

Why userspace: this kernel has no ``netem``, so real delay, jitter and loss must come from a
process that the packets cross. Three TUN/TAP devices meet here (see topology.py for the map):

* ``host`` (TUN, in the hosts namespace): every packet an app sends to another host leaves the
  hosts namespace through it, and every delivered packet is written back into it;
* ``lan`` (TUN, in the router namespace): the subscriber side of the ISP router;
* ``up`` (TAP, in the router namespace): the router's uplink, where the capture is taken.

A subscriber's packets cross its access link (``host`` -> ``lan``), the router, then the far
host's WAN link (``up`` -> ``host``); the reverse on the way back. Each link is a FIFO with a
rate (serialisation + a drop-tail queue), a propagation delay with jitter (never reordering) and
a random loss rate, per direction. TCP and uTP therefore see real delay, queues and losses and
react to them: the capture shows their retransmissions and congestion control, nothing is
stamped on afterwards.

Run inside the hosts namespace: ``python -m p2pdetect.data.generator.delayline CONFIG.json``; it prints
``ready`` once the devices exist, forwards until SIGTERM/SIGINT, then writes its statistics.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import heapq
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000
CLONE_NEWNET = 0x40000000
ETH_P_IP = b"\x08\x00"
HOST, LAN, UP = 0, 1, 2
_BATCH = 64  # packets read from one device before looking at the clock again
_EARLY = 0.0002  # a packet due this soon (s) is written now rather than after another sleep


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path`` (Python 3.11 lacks os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(name: str, tap: bool = False) -> int:
    """Create TUN (raw IP) or TAP (Ethernet) device ``name`` in the current namespace; returns its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI))
    return fd


@dataclass
class Link:
    """One direction of one link: rate (bit/s, 0 = unlimited), delay and jitter (s), loss (0-1), MTU.

    ``queue_s`` bounds the queue (drop-tail): a packet that would wait longer to be sent is lost,
    as in a router's buffer. Arrivals never overtake each other (jitter does not reorder).
    """

    rate_bps: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    mtu: int = 1500
    queue_s: float = 0.1
    busy_until: float = 0.0
    last_arrival: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "lost": 0, "queue_drop": 0, "too_big": 0})

    def send(self, now: float, size: int, rng: random.Random) -> float | None:
        """When a packet of ``size`` IP bytes entering at ``now`` arrives at the far end, or None if dropped."""
        c = self.counts
        if size > self.mtu:
            c["too_big"] += 1
            return None
        if self.loss and rng.random() < self.loss:
            c["lost"] += 1
            return None
        start = self.busy_until if self.busy_until > now else now
        if start - now > self.queue_s:
            c["queue_drop"] += 1
            return None
        self.busy_until = start + (size * 8 / self.rate_bps if self.rate_bps else 0.0)
        arrival = self.busy_until + self.delay_s
        if self.jitter_s:
            arrival += rng.uniform(-self.jitter_s, self.jitter_s)
        if arrival < self.last_arrival:
            arrival = self.last_arrival
        self.last_arrival = arrival
        c["sent"] += 1
        return arrival


def link_from(spec: dict[str, Any]) -> Link:
    """A Link from its JSON form (``rate_mbit``, ``delay_ms``, ``jitter_ms``, ``loss_pct``, ``mtu``)."""
    return Link(rate_bps=spec.get("rate_mbit", 0) * 1e6, delay_s=spec.get("delay_ms", 0) / 1e3,
                jitter_s=spec.get("jitter_ms", 0) / 1e3, loss=spec.get("loss_pct", 0) / 100,
                mtu=spec.get("mtu", 1500), queue_s=spec.get("queue_ms", 100) / 1e3)


class DelayLine:
    """The forwarding state: per-host links, address classes and the schedule of held packets."""

    def __init__(self, cfg: dict[str, Any], fds: tuple[int, int, int]) -> None:
        self.fds = fds
        self.rng = random.Random(cfg.get("seed", 0))
        addr = socket.inet_aton
        # host address -> (up link, down link); "inside" hosts sit behind the router's lan side.
        self.inside = {addr(a): (link_from(p["up"]), link_from(p["down"])) for a, p in cfg["inside"].items()}
        self.outside = {addr(a): (link_from(p["up"]), link_from(p["down"])) for a, p in cfg["outside"].items()}
        # Addresses the internet routes to the ISP router: public subscribers and NAT public addresses.
        self.to_router = {addr(a) for a in cfg["to_router"]}
        self.eth = bytes.fromhex(cfg["up_mac"].replace(":", "")) + bytes.fromhex(cfg["gw_mac"].replace(":", "")) + ETH_P_IP
        self.heap: list[tuple[float, int, int, bytes]] = []
        self.seq = 0
        self.counts = {"read": 0, "written": 0, "unroutable": 0, "not_ipv4": 0, "write_errors": 0}
        self.late: list[float] = []  # how late packets were written (s), a sample

    def _hold(self, at: float | None, dev: int, pkt: bytes) -> None:
        if at is None:
            return
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, dev, pkt))

    def handle(self, dev: int, pkt: bytes, now: float) -> None:
        """Route one packet read from device ``dev`` onto its next link."""
        self.counts["read"] += 1
        if dev == UP:
            if pkt[12:14] != ETH_P_IP:
                self.counts["not_ipv4"] += 1
                return
            pkt = pkt[14:]
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            self.counts["not_ipv4"] += 1
            return
        src, dst, size = pkt[12:16], pkt[16:20], len(pkt)
        if dev == HOST:
            links = self.inside.get(src)
            if links is not None:
                self._hold(links[0].send(now, size, self.rng), LAN, pkt)
                return
            links = self.outside.get(src)
            if links is None:
                self.counts["unroutable"] += 1
            elif dst in self.to_router:
                self._hold(links[0].send(now, size, self.rng), UP, self.eth + pkt)
            elif dst in self.outside:
                at = links[0].send(now, size, self.rng)
                if at is not None:
                    self._hold(self.outside[dst][1].send(at, size, self.rng), HOST, pkt)
            else:  # e.g. a NAT'd subscriber's private address: the internet has no route to it
                self.counts["unroutable"] += 1
            return
        links = (self.inside if dev == LAN else self.outside).get(dst)
        if links is None:
            self.counts["unroutable"] += 1
            return
        self._hold(links[1].send(now, size, self.rng), HOST, pkt)

    def release(self, now: float) -> None:
        """Write every held packet whose time has come."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            at, _, dev, pkt = heapq.heappop(heap)
            try:
                os.write(self.fds[dev], pkt)
                self.counts["written"] += 1
            except OSError:
                self.counts["write_errors"] += 1
            if len(self.late) < 200_000:
                self.late.append(now - _EARLY - at)

    def run(self, stop: list[bool]) -> None:
        """Forward until ``stop[0]`` turns true."""
        sel = selectors.DefaultSelector()
        for dev, fd in enumerate(self.fds):
            sel.register(fd, selectors.EVENT_READ, dev)
        clock = time.monotonic
        while not stop[0]:
            # epoll sleeps whole milliseconds, rounded up: wake early, release up to _EARLY ahead
            timeout = max(0.0, self.heap[0][0] - clock() - 0.001) if self.heap else 0.2
            for key, _ in sel.select(timeout):
                fd, dev = key.fd, key.data
                for _ in range(_BATCH):
                    try:
                        pkt = os.read(fd, 65535)
                    except BlockingIOError:
                        break
                    except OSError:
                        break
                    self.handle(dev, pkt, clock())
            self.release(clock() + _EARLY)

    def stats(self) -> dict[str, Any]:
        """Counters and the write lateness (how far behind schedule packets left), in ms."""
        late = sorted(self.late)
        pick = (lambda q: round(1e3 * late[min(len(late) - 1, int(q * len(late)))], 3)) if late else (lambda q: None)
        links: dict[str, dict[str, int]] = {"access": {}, "wan": {}}
        for kind, table in (("access", self.inside), ("wan", self.outside)):
            for pair in table.values():
                for link in pair:
                    for k, v in link.counts.items():
                        links[kind][k] = links[kind].get(k, 0) + v
        return {**self.counts, **links, "late_ms_p50": pick(0.5), "late_ms_p99": pick(0.99),
                "late_ms_max": round(1e3 * late[-1], 3) if late else None}


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    stop = [False]

    def on_signal(signum: int, frame: Any) -> None:
        stop[0] = True

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:  # the delay line is the network: it must not wait behind the apps (it sleeps in epoll when idle)
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    except OSError:
        try:
            os.nice(-10)
        except OSError:
            pass
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    setns(cfg["router_netns"])
    lan = open_tun(cfg["lan_dev"])
    up = open_tun(cfg["up_dev"], tap=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(home, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the hosts namespace failed")
    host = open_tun(cfg["host_dev"])
    gc.disable()  # the loop makes no reference cycles; a collection over the held packets would stall it
    line = DelayLine(cfg, (host, lan, up))
    print("ready", flush=True)
    line.run(stop)
    out = cfg.get("stats")
    if out:
        tmp = Path(out + ".tmp")
        tmp.write_text(json.dumps(line.stats()))
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

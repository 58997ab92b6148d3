"""A game's server browser: one client host queries hundreds of game servers, all on one port.

Why: a host that sends a few small UDP datagrams to many addresses on one destination port, often
from a fresh source port each, with many servers never answering, looks like a DHT client. Real
ordinary traffic has that shape: a game's server list (Steam's A2S_INFO to UDP 27015: a 25-byte
query, a 9-byte challenge, the query again with the challenge, a 100-250-byte info reply), and
line-quality probes (4-5 16-byte echoes per server, as in the nDPI capture EAQ.pcap whose host
10.8.0.1 probes 29 servers on UDP 6000). Without it in the negatives, a model learns "small UDP
fan-out with silence = P2P".

One asyncio process serves every server address (a UDP socket each; silent servers read and drop,
closed ones have no socket so the kernel answers ICMP port unreachable) and runs every client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import struct
import time
from typing import Any

log = logging.getLogger(__name__)

A2S_INFO = b"\xff\xff\xff\xffTSource Engine Query\x00"
_NOISE = os.urandom(2048)


def _info_reply(rng: random.Random) -> bytes:
    """An A2S_INFO answer: header, protocol, then name/map/folder/game strings and counters (random bytes)."""
    off = rng.randrange(1024)
    body = _NOISE[off : off + rng.randint(90, 240)]
    return b"\xff\xff\xff\xffI\x11" + body


class _Server(asyncio.DatagramProtocol):
    """A2S (challenge, then info) or probe echo, answering each datagram with probability ``answer``."""

    def __init__(self, proto: str, answer: float, rng: random.Random) -> None:
        self.proto, self.answer, self.rng = proto, answer, rng
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is None or self.rng.random() >= self.answer:
            return
        if self.proto == "probe":
            reply = data[:4] + _NOISE[: max(0, len(data) - 4)]
        elif data.startswith(A2S_INFO) and len(data) == len(A2S_INFO) and self.rng.random() < 0.7:
            reply = b"\xff\xff\xff\xffA" + struct.pack("<I", self.rng.getrandbits(32))  # S2C_CHALLENGE
        else:
            reply = _info_reply(self.rng)
        self.transport.sendto(reply, addr)


class _Waiter(asyncio.DatagramProtocol):
    """A client socket: each server's replies go to its own queue, which the task querying it reads."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, int], asyncio.Queue[bytes]] = {}

    def queue(self, server: tuple[str, int]) -> asyncio.Queue[bytes]:
        return self.replies.setdefault(server, asyncio.Queue())

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue(addr).put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a closed server
        pass


async def _exchange(sock: Any, waiter: _Waiter, server: tuple[str, int], proto: str, rng: random.Random) -> None:
    """One server's query: A2S_INFO (with the challenge round when asked) or 4-5 probes of 16 bytes."""
    loop = asyncio.get_running_loop()

    async def reply(timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(waiter.queue(server).get(), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiter.replies.pop(server, None)  # a late reply is dropped, as a browser's is

    if proto == "probe":
        for i in range(rng.randint(4, 5)):
            sock.sendto(struct.pack("!I", rng.getrandbits(32)) + struct.pack("!HHd", i, 16, loop.time()), server)
            await reply(rng.uniform(0.2, 0.5))
        return
    for _ in range(rng.randint(1, 2)):  # a re-query when the list is refreshed by hand
        sock.sendto(A2S_INFO, server)
        got = await reply(rng.uniform(0.5, 1.0))
        if got is None:
            return
        if got[4:5] == b"A":  # the challenge: ask again with it
            sock.sendto(A2S_INFO + got[5:9], server)
            await reply(1.0)
        if rng.random() < 0.6:
            return


async def _client(spec: dict[str, Any], params: dict[str, Any], rng: random.Random) -> None:
    """Refresh the server list every ``refresh`` s: query every server (``parallel`` at a time), from a
    fresh ephemeral port per server (``fresh_port``) or from one socket kept for the whole run."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, params["t0"] + spec["start"] - time.time()))
    port, proto = params["port"], params["proto"]
    shared = None
    if not spec["fresh_port"]:
        shared = await loop.create_datagram_endpoint(_Waiter, local_addr=(spec["ip"], 0))
    gate = asyncio.Semaphore(spec["parallel"])

    async def one(ip: str) -> None:
        async with gate:
            if time.time() > params["until"] - 1:
                return
            if shared is not None:
                await _exchange(shared[0], shared[1], (ip, port), proto, rng)
                return
            transport, waiter = await loop.create_datagram_endpoint(_Waiter, local_addr=(spec["ip"], 0))
            try:
                await _exchange(transport, waiter, (ip, port), proto, rng)
            finally:
                transport.close()
            await asyncio.sleep(rng.uniform(0.0, 0.05))

    while time.time() < params["until"] - 2:
        began = time.time()
        order = [s["ip"] for s in params["servers"]]
        rng.shuffle(order)
        await asyncio.gather(*(one(ip) for ip in order[: max(1, int(len(order) * rng.uniform(0.6, 1.0)))]))
        await asyncio.sleep(max(1.0, spec["refresh"] - (time.time() - began)))
    if shared is not None:
        shared[0].close()


async def gather_until(clients: list, until: float, closing: list) -> None:
    """Run the client coroutines until they end or ``until`` (epoch s) comes, then close ``closing``
    (the servers' transports and listeners)."""
    try:
        await asyncio.wait_for(asyncio.gather(*clients), timeout=max(1.0, until - time.time()))
    except asyncio.TimeoutError:
        pass
    finally:
        for t in closing:
            t.close()


async def _main(params: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(params["seed"])
    transports = []
    for s in params["servers"]:
        if s["answer"] is None:  # closed: no socket, the kernel answers ICMP port unreachable
            continue
        t, _ = await loop.create_datagram_endpoint(
            lambda s=s: _Server(params["proto"], s["answer"], random.Random(rng.getrandbits(32))),
            local_addr=(s["ip"], params["port"]), family=socket.AF_INET)
        transports.append(t)
    await gather_until([_client(c, params, random.Random(rng.getrandbits(32))) for c in params["clients"]],
                       params["until"], transports)


def run_server_browser(params: dict[str, Any]) -> None:
    """params: ``proto`` ('a2s' or 'probe'), ``port`` (every server's), ``servers`` (list of {ip, answer}:
    the probability a datagram is answered, None for a closed port), ``clients`` (list of {ip, start,
    fresh_port, refresh, parallel}), ``seed``, ``until``, ``t0``."""
    asyncio.run(_main(params))

"""Client-server applications on registered high ports: brokers, push channels, control and log links.

Why: most ordinary traffic a model sees in the generator goes to a well-known port (web, DNS, SSH),
so "a server on a high port" alone comes to look like P2P. Real networks carry many client-server
protocols on registered ports above 1024 — message brokers and caches (MQTT, AMQP, Redis), database
sessions, a phone's push channel, industrial and medical control links, log sinks, telemetry over
UDP — and those were the real captures' false positives (docs/evaluation.md). Their behaviour is
not P2P's: each client talks to one or two servers it returns to again and again, the servers
never call out, and a host has no swarm of peers.

Four styles, one asyncio process serving every server and running every client. Every TCP
message is framed (4-byte length, 2-byte size of the answer wanted, then the bytes), as the real
protocols frame theirs:

* ``session`` — a long-lived connection: a hello each way, then a request every ``period`` s
  (20-300 bytes) and its answer (20-1,500, sometimes 2-20 kB), reconnecting from a new port after
  5-40 s (a database or cache client, a broker's publisher).
* ``transaction`` — one short connection per request: connect, a 100-1,500-byte message, a short
  acknowledgement, close, every 0.1-6 s (a log sink, an HL7/MLLP-style sender, a control-register write).
* ``push`` — a long-lived connection whose server pushes 50-1,400-byte messages every 0.05-2 s while
  the client sends a keepalive every 5-30 s, for 10-80 s (a push channel, market data, a broker's subscriber).
* ``udp`` — request/response datagrams (20-200 bytes, answered with 20-600) every 0.5-6 s from one
  socket or a fresh port each time; a server may answer only some (telemetry, NAT qualification).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
from typing import Any

from p2pdetect.data.generator.serverbrowser import gather_until

_NOISE = os.urandom(1 << 16)
_HDR = struct.Struct("!IH")


def _bytes(rng: random.Random, n: int) -> bytes:
    off = rng.randrange(len(_NOISE) - n) if n < len(_NOISE) else 0
    return _NOISE[off: off + n]


def _frame(rng: random.Random, size: int, answer: int) -> bytes:
    return _HDR.pack(size, min(answer, 0xFFFF)) + _bytes(rng, size)


async def _read_frame(reader: asyncio.StreamReader) -> int:
    """The answer size a frame asks for (its bytes are read and dropped)."""
    size, answer = _HDR.unpack(await reader.readexactly(_HDR.size))
    await reader.readexactly(size)
    return answer


def _answer_size(rng: random.Random) -> int:
    return rng.randint(2000, 20000) if rng.random() < 0.05 else rng.randint(20, 1500)


class _Tcp:
    """A TCP server of one style: answer each frame (session, transaction) or push (push)."""

    def __init__(self, style: str, rng: random.Random, until: float) -> None:
        self.style, self.rng, self.until = style, rng, until

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await _read_frame(reader)
            writer.write(_frame(self.rng, answer, 0))
            await writer.drain()
            if self.style == "push":
                drain = asyncio.ensure_future(self._drain(reader))
                while not drain.done() and time.time() < self.until:
                    writer.write(_frame(self.rng, self.rng.randint(50, 1400), 0))
                    await writer.drain()
                    await asyncio.sleep(self.rng.uniform(0.05, 2.0))
                drain.cancel()
            else:
                while True:
                    answer = await _read_frame(reader)
                    writer.write(_frame(self.rng, answer, 0))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _drain(reader: asyncio.StreamReader) -> None:
        try:
            while True:
                await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass


class _Udp(asyncio.DatagramProtocol):
    """Answers a datagram with probability ``answer`` (20-600 bytes)."""

    def __init__(self, answer: float, rng: random.Random) -> None:
        self.answer, self.rng = answer, rng
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and self.rng.random() < self.answer:
            self.transport.sendto(data[:4] + _bytes(self.rng, self.rng.randint(16, 596)), addr)


async def _sleep(rng: random.Random, lo: float, hi: float, until: float, clip: bool = False) -> bool:
    """Sleep U(lo, hi) s; False when that would pass ``until`` (with ``clip``, after sleeping up to it)."""
    d = rng.uniform(lo, hi)
    if time.time() + d > until:
        if clip:
            await asyncio.sleep(max(0.0, until - time.time()))
        return False
    await asyncio.sleep(d)
    return True


async def _tcp_client(ip: str, server: dict[str, Any], rng: random.Random, until: float) -> None:
    style, dest = server["style"], (server["ip"], server["port"])
    period = rng.uniform(0.3, 5.0) if style != "transaction" else rng.uniform(0.2, 3.0)
    while time.time() < until - 1:
        try:
            reader, writer = await asyncio.open_connection(*dest, local_addr=(ip, 0))
        except OSError:
            if not await _sleep(rng, 2, 10, until):
                return
            continue
        try:
            if style == "transaction":
                writer.write(_frame(rng, rng.randint(100, 1500), rng.randint(2, 40)))
                await writer.drain()
                await _read_frame(reader)
            else:
                writer.write(_frame(rng, rng.randint(20, 200), rng.randint(20, 200)))
                await writer.drain()
                await _read_frame(reader)
                ends = min(until - 0.5, time.time() + rng.uniform(5, 40) * (2 if style == "push" else 1))
                if style == "push":
                    pushed = asyncio.ensure_future(_push_reader(reader))   # the pushed data, read and dropped
                    while await _sleep(rng, 5, 30, ends, clip=True):
                        writer.write(_frame(rng, rng.randint(10, 40), 0))
                        await writer.drain()
                    pushed.cancel()
                else:
                    while await _sleep(rng, 0.5 * period, 1.5 * period, ends, clip=True):
                        writer.write(_frame(rng, rng.randint(20, 300), _answer_size(rng)))
                        await writer.drain()
                        await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
        lo, hi = (0.5 * period, 2.0 * period) if style == "transaction" else (1.0, 10.0)
        if not await _sleep(rng, lo, hi, until):
            return


async def _push_reader(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass


async def _udp_client(ip: str, server: dict[str, Any], rng: random.Random, until: float) -> None:
    loop = asyncio.get_running_loop()
    dest = (server["ip"], server["port"])
    fresh = rng.random() < 0.5
    sock = None
    while await _sleep(rng, 0.5, 6, until):
        if sock is None or fresh:
            if sock is not None:
                sock[0].close()
            sock = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(ip, 0))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            sock[0].sendto(struct.pack("!I", rng.getrandbits(32)) + _bytes(rng, rng.randint(16, 196)), dest)
    if sock is not None:
        sock[0].close()


async def _client(spec: dict[str, Any], params: dict[str, Any], rng: random.Random) -> None:
    await asyncio.sleep(max(0.0, params["t0"] + spec["start"] - time.time()))
    jobs = []
    for i in spec["uses"]:
        server = params["servers"][i]
        sub = random.Random(rng.getrandbits(32))
        if server["style"] == "udp":
            jobs.append(_udp_client(spec["ip"], server, sub, params["until"]))
        else:
            jobs.append(_tcp_client(spec["ip"], server, sub, params["until"]))
    await asyncio.gather(*jobs)


async def _main(params: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(params["seed"])
    servers, transports = [], []
    for s in params["servers"]:
        sub = random.Random(rng.getrandbits(32))
        if s["style"] == "udp":
            t, _ = await loop.create_datagram_endpoint(lambda s=s, sub=sub: _Udp(s["answer"], sub),
                                                       local_addr=(s["ip"], s["port"]), family=socket.AF_INET)
            transports.append(t)
        else:
            servers.append(await asyncio.start_server(_Tcp(s["style"], sub, params["until"]).handle,
                                                      s["ip"], s["port"]))
    await gather_until([_client(c, params, random.Random(rng.getrandbits(32))) for c in params["clients"]],
                       params["until"], transports + servers)


def run_app_services(params: dict[str, Any]) -> None:
    """params: ``servers`` (list of {ip, port, style: session|transaction|push|udp, answer: the share
    of datagrams a udp server answers}), ``clients`` (list of {ip, start, uses: indices of the
    servers it talks to}), ``seed``, ``until``, ``t0``."""
    asyncio.run(_main(params))

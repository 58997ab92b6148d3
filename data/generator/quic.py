"""QUIC (aioquic): encrypted request/response traffic over UDP, like HTTP/3 browsing and downloads.

Why: uTP is BitTorrent over UDP with encrypted payloads; QUIC is the ordinary traffic most like
it on today's networks, so a detector must learn to tell the two apart. Requests are a tiny
line ("GET <bytes>") on a fresh bidirectional stream, answered with that many random bytes.
Needs the ``aioquic`` package (PyPI).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_BUF = os.urandom(1 << 20)


def _payload(n: int) -> bytes:
    reps = n // len(_BUF) + 1
    return (_BUF * reps)[:n]


async def _serve(ip: str, port: int, certfile: str, keyfile: str) -> Any:
    from aioquic.asyncio import serve
    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    cfg.load_cert_chain(certfile, keyfile)

    def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def answer() -> None:
            try:
                req = await reader.read()
                n = int(req.split()[1])
                writer.write(_payload(n))
                writer.write_eof()
            except (ValueError, IndexError, ConnectionError):
                pass

        asyncio.ensure_future(answer())

    return await serve(ip, port, configuration=cfg, stream_handler=handler)


async def _session(ip: str, server: tuple[str, int], rng: random.Random, until: float, mode: str, scale: float) -> None:
    """One connection: several pages (browse) or a few large objects (bulk), then close."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE,
                            server_name="www.example.test")
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: QuicConnectionProtocol(QuicConnection(configuration=cfg)), local_addr=(ip, 0))
    try:
        proto.connect(server)
        await asyncio.wait_for(proto.wait_connected(), 10)

        async def fetch(n: int) -> None:
            reader, writer = await proto.create_stream()
            writer.write(f"GET {n}\n".encode())
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 120)

        end = min(until - 1, time.time() + rng.uniform(5, 90))
        while time.time() < end:
            if mode == "browse":
                k = min(1.0, scale)
                sizes = [int(min(rng.lognormvariate(8.5, 1.5), 800_000) * k) + 200 for _ in range(rng.randint(5, 40))]
                await fetch(int(rng.randint(15_000, 120_000) * k))
                for i in range(0, len(sizes), 6):  # six requests in flight, like a browser
                    await asyncio.gather(*(fetch(s) for s in sizes[i : i + 6]))
                await asyncio.sleep(min(max(0.0, end - time.time()), rng.expovariate(1 / 5.0)))
            else:
                await fetch(int(min(rng.lognormvariate(14.5, 0.8) * scale, 100e6)))
                await asyncio.sleep(rng.uniform(0.5, 5))
        proto.close()
        await asyncio.wait_for(proto.wait_closed(), 3)
    finally:
        transport.close()


async def _main(params: dict[str, Any]) -> None:
    rng = random.Random(params["seed"])
    server = await _serve(params["server_ip"], params["port"], params["certfile"], params["keyfile"])
    until, scale = params["until"], params.get("scale", 1.0)
    await run_clients(params, rng, lambda spec, r: _session(spec["ip"], (params["server_ip"], params["port"]), r,
                                                            until, spec["mode"], scale))
    server.close()


async def run_clients(params: dict[str, Any], rng: random.Random,
                      session: Callable[[dict[str, Any], random.Random], Awaitable[None]]) -> None:
    """Every client of ``params`` runs ``session(spec, its rng)`` again and again, from its start time until
    the run ends, with short pauses between; a failed session is logged and followed by the next."""
    until = params["until"]

    async def client(spec: dict[str, Any], seed: int) -> None:
        r = random.Random(seed)
        await asyncio.sleep(max(0.0, params["t0"] + spec["start"] - time.time()))
        while time.time() < until - 1.5:
            try:
                await session(spec, r)
            except (asyncio.TimeoutError, ConnectionError, OSError) as err:
                log.info("client %s: %r", spec["ip"], err)
            await asyncio.sleep(min(max(0.0, until - time.time()), r.uniform(0.2, 4)))

    tasks = [asyncio.ensure_future(client(c, rng.getrandbits(32))) for c in params["clients"]]
    await asyncio.wait(tasks, timeout=max(0.0, until - time.time() + 2))
    for t in tasks:
        t.cancel()


def run_quic(params: dict[str, Any]) -> None:
    """params: ``server_ip``, ``port``, ``clients`` (list of {ip, mode ('browse'|'bulk'), start}), ``scale``,
    ``seed``, ``certfile``, ``keyfile``, ``until``, ``t0``."""
    asyncio.run(_main(params))

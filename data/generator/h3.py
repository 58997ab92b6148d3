"""HTTP/3 browsing (aioquic's H3 layer): real HTTP/3 frames and QPACK over QUIC, pages of many objects.

Why: the ``quic`` app already carries requests over QUIC streams; this one speaks HTTP/3 proper, with its
control and QPACK streams, HEADERS and DATA frames, as browsers talking to large sites do. Both are UDP
flows between a high client port and 443 with encrypted payloads in both directions, like uTP. As
browsers do, a visit often starts over HTTPS/TCP to the same address and port (where the Alt-Svc header
announces HTTP/3), so a host has TCP and UDP to one peer: another shape P2P clients have.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import random
import ssl
import time
from typing import Any

from p2pdetect.data.generator.quic import _payload, run_clients
from p2pdetect.data.generator.web import Server

log = logging.getLogger(__name__)


def _protocols() -> tuple[type, type]:
    """Server and client protocol classes (aioquic is imported only when an H3 app runs)."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.events import ProtocolNegotiated, QuicEvent

    class Server(QuicConnectionProtocol):
        """Answers ``GET /obj/<n>`` with ``n`` bytes."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.http: H3Connection | None = None

        def quic_event_received(self, event: QuicEvent) -> None:
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self.http = H3Connection(self._quic)
            if self.http is None:
                return
            for ev in self.http.handle_event(event):
                if isinstance(ev, HeadersReceived):
                    try:
                        n = int(dict(ev.headers).get(b":path", b"/obj/0").rsplit(b"/", 1)[-1])
                    except ValueError:
                        n = 0
                    self.http.send_headers(ev.stream_id, [(b":status", b"200"), (b"server", b"h3"),
                                                          (b"content-type", b"application/octet-stream"),
                                                          (b"content-length", str(n).encode())])
                    self.http.send_data(ev.stream_id, _payload(n), end_stream=True)
            self.transmit()

    class Client(QuicConnectionProtocol):
        """``await get(path)`` sends one request and waits for the end of its response."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.http = H3Connection(self._quic)
            self.waiting: dict[int, asyncio.Future[None]] = {}

        def quic_event_received(self, event: QuicEvent) -> None:
            for ev in self.http.handle_event(event):
                if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_ended:
                    fut = self.waiting.pop(ev.stream_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)

        async def get(self, path: str) -> None:
            sid = self._quic.get_next_available_stream_id()
            self.http.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                         (b":authority", b"www.example.test"), (b":path", path.encode()),
                                         (b"user-agent", b"Mozilla/5.0"), (b"accept", b"*/*")], end_stream=True)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting[sid] = fut
            self.transmit()
            await asyncio.wait_for(fut, 60)

    return Server, Client


def _alt_svc_probe(ip: str, server: tuple[str, int], size: int) -> None:
    """The first request over HTTPS/TCP, whose Alt-Svc answer sends the browser to HTTP/3 (same address)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(*server, context=ctx, timeout=20, source_address=(ip, 0))
    try:
        c.request("GET", f"/obj/{size}", headers={"User-Agent": "Mozilla/5.0", "Accept": "*/*"})
        c.getresponse().read()
    finally:
        c.close()


async def _visit(ip: str, server: tuple[str, int], rng: random.Random, until: float, scale: float, client: type,
                 tcp_first: bool) -> None:
    """One connection: pages (a document, then 5-40 objects, six in flight) until the user moves on;
    ``tcp_first``: the first request goes over HTTPS/TCP (no Alt-Svc cached for the site)."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE,
                            server_name="www.example.test")
    if tcp_first:
        await asyncio.to_thread(_alt_svc_probe, ip, server, int(rng.randint(15_000, 120_000) * min(1.0, scale)))
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: client(QuicConnection(configuration=cfg)),
                                                           local_addr=(ip, 0))
    try:
        proto.connect(server)
        await asyncio.wait_for(proto.wait_connected(), 10)
        end = min(until - 1, time.time() + rng.uniform(5, 60))
        k = min(1.0, scale)
        while time.time() < end:
            await proto.get(f"/obj/{int(rng.randint(15_000, 120_000) * k)}")
            sizes = [int(min(rng.lognormvariate(8.5, 1.5), 800_000) * k) + 200 for _ in range(rng.randint(5, 40))]
            for i in range(0, len(sizes), 6):
                await asyncio.gather(*(proto.get(f"/obj/{n}") for n in sizes[i : i + 6]))
            await asyncio.sleep(min(max(0.0, end - time.time()), rng.expovariate(1 / 5.0)))
        proto.close()
        await asyncio.wait_for(proto.wait_closed(), 3)
    finally:
        transport.close()


async def _main(params: dict[str, Any]) -> None:
    from aioquic.asyncio import serve
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    server_cls, client_cls = _protocols()
    cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    cfg.load_cert_chain(params["certfile"], params["keyfile"])
    server = await serve(params["server_ip"], params["port"], configuration=cfg, create_protocol=server_cls)
    tcp = Server(params["server_ip"], params["port"], True, params["certfile"], params["keyfile"])  # HTTPS, same port
    until, scale = params["until"], params.get("scale", 1.0)
    seen: set[str] = set()

    def visit(spec: dict[str, Any], r: random.Random) -> Any:
        first = spec["ip"] not in seen  # a browser's first visit learns of HTTP/3 over TCP; the cache expires
        seen.add(spec["ip"])
        return _visit(spec["ip"], (params["server_ip"], params["port"]), r, until, scale, client_cls,
                      first or r.random() < 0.3)

    try:
        await run_clients(params, random.Random(params["seed"]), visit)
    finally:
        server.close()
        tcp.close()


def run_h3(params: dict[str, Any]) -> None:
    """params: ``server_ip``, ``port``, ``clients`` (list of {ip, start}), ``certfile``, ``keyfile``, ``scale``,
    ``seed``, ``until``, ``t0``."""
    asyncio.run(_main(params))

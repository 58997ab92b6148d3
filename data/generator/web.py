"""Ordinary TCP traffic: an HTTP(S) server and clients that browse, download, upload, stream and chat.

Why these modes: they are the traffic P2P is most often confused with on a real network (bulk
HTTPS looks like a piece transfer, a chat socket like an idle peer connection), so the negatives
must contain them. Server and clients of one app instance run as threads in one worker process.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import random
import select
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

_BUF = os.urandom(1 << 20)  # incompressible body bytes, sliced per response
_CHUNK = 64 * 1024


def _send_bytes(wfile: Any, n: int, rate: float = 0.0) -> None:
    """Write ``n`` random bytes; at most ``rate`` bytes/s when ``rate`` > 0 (paced streaming)."""
    sent = 0
    start = time.time()
    step = 16 * 1024 if rate > 0 else _CHUNK
    while sent < n:
        k = min(step, n - sent)
        off = random.randrange(0, len(_BUF) - k)
        wfile.write(_BUF[off : off + k])
        sent += k
        if rate > 0:
            ahead = sent / rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)


class _Handler(BaseHTTPRequestHandler):
    """GET /obj/N, GET /stream/N/RATE, POST /up, GET /chat (a long-lived message channel)."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.24.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _head(self, code: int, length: int | None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = self.path.strip("/").split("/")
        try:
            if parts[0] == "obj":
                n = int(parts[1])
                self._head(200, n)
                _send_bytes(self.wfile, n)
            elif parts[0] == "stream":
                n, rate = int(parts[1]), float(parts[2])
                self._head(200, n)
                _send_bytes(self.wfile, n, rate)
            elif parts[0] == "chat":
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.flush()
                _chat_server(self.connection, random.Random(hash(self.client_address)))
                self.close_connection = True
            else:
                self._head(404, 0)
        except (OSError, ValueError, IndexError):
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            got = self.rfile.read(min(_CHUNK, left))
            if not got:
                break
            left -= len(got)
        self._head(200, 2)
        self.wfile.write(b"ok")


def _frame(n: int) -> bytes:
    return struct.pack("!I", n) + _BUF[:n]


def _read_frames(sock: Any) -> bool:
    """Drain what is readable; False when the peer closed."""
    try:
        data = sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    return bool(data)


def _chat_server(sock: Any, rng: random.Random) -> None:
    """Answer each client message with 1-2 messages and push notifications when idle."""
    sock.settimeout(None)
    while True:
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        ready = pending or select.select([sock], [], [], rng.uniform(2, 20))[0]
        try:
            if ready:
                if not _read_frames(sock):
                    return
                for _ in range(rng.randint(1, 2)):
                    sock.sendall(_frame(int(rng.lognormvariate(5, 1.2)) % 20000 + 20))
            else:
                sock.sendall(_frame(int(rng.lognormvariate(4.5, 1)) % 4000 + 20))
        except OSError:
            return


class Server:
    """A threaded HTTP(S) server on ``ip:port`` that runs until :meth:`close`."""

    def __init__(self, ip: str, port: int, tls: bool, certfile: str | None, keyfile: str | None) -> None:
        self.httpd = ThreadingHTTPServer((ip, port), _Handler)
        self.httpd.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)  # type: ignore[arg-type]
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Client:
    """One client host: opens connections from its own address to the server."""

    def __init__(self, ip: str, p: dict[str, Any], rng: random.Random) -> None:
        self.ip, self.p, self.rng = ip, p, rng
        self.until = p["until"]
        self.scale = p.get("scale", 1.0)

    def conn(self) -> http.client.HTTPConnection:
        p = self.p
        if p["tls"]:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(p["server_ip"], p["port"], context=ctx, timeout=30,
                                               source_address=(self.ip, 0))
        return http.client.HTTPConnection(p["server_ip"], p["port"], timeout=30, source_address=(self.ip, 0))

    def get(self, c: http.client.HTTPConnection, path: str) -> None:
        c.request("GET", path, headers={"User-Agent": "Mozilla/5.0", "Accept": "*/*"})
        r = c.getresponse()
        while r.read(_CHUNK):
            pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False once the run is over."""
        left = self.until - time.time()
        time.sleep(max(0.0, min(seconds, left)))
        return time.time() < self.until - 0.5

    # --- modes -------------------------------------------------------------------------------

    def browse(self) -> None:
        """Pages: one document, then 5-60 objects over 2-6 parallel keep-alive connections."""
        rng = self.rng
        while self.wait(rng.expovariate(1 / 4.0)):
            n_conn = rng.randint(2, 6)
            k = min(1.0, self.scale)  # small scales shrink pages too (sample captures); pages never grow
            objs = [int(min(rng.lognormvariate(8.5, 1.5), 800_000) * k) + 200 for _ in range(rng.randint(5, 60))]
            first = self.conn()
            self.get(first, f"/obj/{int(rng.randint(15_000, 120_000) * k)}")
            groups = [objs[i::n_conn] for i in range(n_conn)]

            def fetch(sizes: list[int], c: http.client.HTTPConnection | None) -> None:
                c = c or self.conn()
                try:
                    for s in sizes:
                        self.get(c, f"/obj/{s}")
                        time.sleep(rng.uniform(0, 0.05))
                finally:
                    c.close()

            ts = [threading.Thread(target=fetch, args=(g, first if i == 0 else None)) for i, g in enumerate(groups)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

    def bulk(self) -> None:
        """Large downloads and uploads, one connection each, with pauses between them."""
        rng = self.rng
        while self.wait(rng.uniform(0.5, 6)):
            size = int(min(rng.lognormvariate(math.log(3e6 * self.scale), 0.8), 200e6 * self.scale))
            c = self.conn()
            try:
                if rng.random() < 0.3:
                    c.request("POST", "/up", body=_BodyIter(size), headers={"Content-Length": str(size)})
                    c.getresponse().read()
                else:
                    self.get(c, f"/obj/{size}")
            finally:
                c.close()

    def stream(self) -> None:
        """Video sessions: segment fetches every few seconds (DASH) or one paced download."""
        rng = self.rng
        while self.wait(rng.uniform(0.2, 3)):
            bitrate = rng.choice([0.8e6, 1.5e6, 3e6, 5e6]) * min(self.scale, 4)
            session_end = time.time() + rng.uniform(20, 120) * self.scale
            c = self.conn()
            try:
                if rng.random() < 0.5:
                    seg = rng.choice([2.0, 4.0, 6.0])
                    for i in range(10_000):
                        if time.time() > min(session_end, self.until - 1):
                            break
                        self.get(c, f"/obj/{int(bitrate * seg / 8 * rng.uniform(0.8, 1.2))}")
                        if i >= 3 and not self.wait(seg * rng.uniform(0.85, 1.1)):
                            break
                else:
                    left = max(1.0, min(session_end, self.until - 1) - time.time())
                    self.get(c, f"/stream/{int(bitrate / 8 * left)}/{bitrate / 8}")
            finally:
                c.close()

    def chat(self) -> None:
        """A websocket-like channel held open for minutes: small messages both ways, heartbeats."""
        rng = self.rng
        while self.wait(rng.uniform(0.1, 5)):
            c = self.conn()
            c.request("GET", "/chat", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
            r = c.getresponse()
            if r.status != 101:
                c.close()
                continue
            sock = c.sock
            end = time.time() + rng.uniform(30, 600)
            try:
                while time.time() < min(end, self.until - 0.5):
                    ready = select.select([sock], [], [], rng.expovariate(1 / 5.0))[0]
                    if ready:
                        if not _read_frames(sock):
                            break
                    else:
                        sock.sendall(_frame(int(rng.lognormvariate(4.5, 1.0)) % 3000 + 10))
            except OSError:
                pass
            finally:
                c.close()


class _BodyIter:
    """An iterable upload body of ``n`` random bytes (http.client streams iterables)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        left = self.n
        while left > 0:
            k = min(_CHUNK, left)
            off = random.randrange(0, len(_BUF) - k)
            yield _BUF[off : off + k]
            left -= k


def run_web(params: dict[str, Any]) -> None:
    """Run a server and its clients until ``params['until']``.

    params: ``server_ip``, ``port``, ``tls``, ``certfile``/``keyfile`` (when tls), ``clients``
    (list of {ip, mode, start}), ``seed``, ``scale``, ``until``, ``t0``.
    """
    rng = random.Random(params["seed"])
    server = Server(params["server_ip"], params["port"], params["tls"], params.get("certfile"), params.get("keyfile"))

    def client_main(spec: dict[str, Any], seed: int) -> None:
        cl = _Client(spec["ip"], params, random.Random(seed))
        delay = params["t0"] + spec["start"] - time.time()
        if delay > 0:
            time.sleep(delay)
        while time.time() < params["until"] - 1:
            try:
                getattr(cl, spec["mode"])()
            except (OSError, http.client.HTTPException) as err:  # server busy/closing: retry later
                log.info("client %s %s: %s", spec["ip"], spec["mode"], err)
                cl.wait(1.0)

    threads = [
        threading.Thread(target=client_main, args=(c, rng.getrandbits(32)), daemon=True) for c in params["clients"]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, params["until"] - time.time() + 3))
    server.close()

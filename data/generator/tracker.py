"""A small HTTP BitTorrent tracker for one swarm, run as a thread inside the swarm's worker.

Why: BiglyBT and ctorrent find peers only through a tracker (neither can be handed peer addresses
directly, and their DHTs need the internet to bootstrap), and real swarms announce to trackers.
The tracker also hands out "ghost" peers, addresses where nothing listens, as real trackers hand
out peers that have left: clients dial them and fail (SYN answered by RST), as they do in the wild.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_to_bytes, urlparse

log = logging.getLogger(__name__)


def bencode(x: Any) -> bytes:
    """Bencode ints, str/bytes, lists and dicts (keys sorted), as the BitTorrent spec defines."""
    if isinstance(x, bool):
        x = int(x)
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(x).__name__}")


class Tracker:
    """Announce handling: who is in the swarm (by info-hash), plus the ghosts every answer may carry."""

    def __init__(self, ghosts: list[tuple[str, int]], interval: int, seed: int) -> None:
        self.ghosts = ghosts
        self.interval = interval
        self._rng = random.Random(seed)
        self._peers: dict[bytes, dict[tuple[str, int], float]] = {}
        self._lock = threading.Lock()
        self.announces = 0

    def announce(self, query: dict[str, list[bytes]], source_ip: str) -> bytes:
        """The bencoded answer to one announce ``query`` (parsed as bytes) from ``source_ip``."""
        self.announces += 1
        try:
            info_hash = query[b"info_hash"][0]
            port = int(query[b"port"][0])
        except (KeyError, ValueError):
            return bencode({"failure reason": "missing info_hash or port"})
        event = query.get(b"event", [b""])[0]
        numwant = int(query.get(b"numwant", [b"50"])[0] or 50)
        me = (source_ip, port)
        with self._lock:
            swarm = self._peers.setdefault(info_hash, {})
            if event == b"stopped":
                swarm.pop(me, None)
            else:
                swarm[me] = time.time()
            others = [p for p in swarm if p != me] + list(self.ghosts)
        self._rng.shuffle(others)
        others = others[: max(0, numwant)]
        log.info("announce %s:%d event=%s left=%s -> %d peers", source_ip, port, event.decode(errors="replace") or "-",
                 query.get(b"left", [b"?"])[0].decode(errors="replace"), len(others))
        body: dict[str, Any] = {"interval": self.interval, "min interval": self.interval // 2,
                                "complete": 0, "incomplete": len(others)}
        if query.get(b"compact", [b"1"])[0] != b"0":
            body["peers"] = b"".join(socket.inet_aton(ip) + struct.pack(">H", p) for ip, p in others)
        else:
            body["peers"] = [{"ip": ip, "port": p} for ip, p in others]
        return bencode(body)


def parse_query(query: str) -> dict[bytes, list[bytes]]:
    """Percent-decode a query string to bytes (an info-hash is 20 raw bytes, not text)."""
    out: dict[bytes, list[bytes]] = {}
    for part in query.split("&"):
        key, _, value = part.partition("=")
        out.setdefault(unquote_to_bytes(key.replace("+", " ")), []).append(unquote_to_bytes(value.replace("+", " ")))
    return out


def serve(ip: str, port: int, tracker: Tracker, context: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Serve ``tracker`` at ``http://ip:port/announce`` on a daemon thread; returns the server.

    With ``context`` (a server-side SSL context) the tracker speaks HTTPS instead."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlparse(self.path)
            if not url.path.startswith("/announce"):
                self.send_error(404)
                return
            query = parse_query(url.query)
            body = tracker.announce(query, self.client_address[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("tracker: " + fmt, *args)

    server = ThreadingHTTPServer((ip, port), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="tracker", daemon=True).start()
    log.info("tracker listening on %s://%s:%d/announce (%d ghost peers)", "https" if context else "http", ip, port,
             len(tracker.ghosts))
    return server

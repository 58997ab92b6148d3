"""Browsing the way pages really load: each page pulls objects from many origins (CDNs, APIs, fonts,
analytics, ads), so a browsing host talks to dozens of distinct servers within a minute.

Why: "many distinct peers" is the strongest host-level sign of P2P, and a browser has it too. Origins are
drawn by popularity (a Zipf law: a few CDNs serve most pages, a long tail is seen once), each an HTTPS
server of its own (data.generator.web's server) on 443 or, rarely, 8443. A few origins in the tail are
down (a retired tracker, a blocked ad server): connections to them are refused, so browsing hosts also
have the failed connections that P2P clients are known for.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from typing import Any

from p2pdetect.data.generator.web import Server

log = logging.getLogger(__name__)


def _fetch(client_ip: str, origin: dict[str, Any], sizes: list[int]) -> None:
    """One keep-alive TLS connection to ``origin`` fetching objects of ``sizes`` bytes."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(origin["ip"], origin["port"], context=ctx, timeout=30, source_address=(client_ip, 0))
    try:
        for n in sizes:
            c.request("GET", f"/obj/{n}", headers={"User-Agent": "Mozilla/5.0", "Accept": "*/*"})
            c.getresponse().read()
    except (OSError, http.client.HTTPException) as err:
        log.info("%s -> %s: %s", client_ip, origin["ip"], err)
    finally:
        c.close()


def _browse(ip: str, origins: list[dict[str, Any]], rng: random.Random, until: float, scale: float) -> None:
    """Pages: the document from one origin, then objects from 3-25 origins in parallel; think times."""
    weights = [1.0 / (rank + 1) for rank in range(len(origins))]
    k = min(1.0, scale)
    while time.time() < until - 2:
        page = {id(o): o for o in rng.choices(origins, weights=weights, k=rng.randint(3, 25))}
        _fetch(ip, rng.choices(origins, weights=weights)[0], [int(rng.randint(15_000, 120_000) * k)])
        threads = [threading.Thread(target=_fetch, daemon=True, args=(ip, o, [
            int(min(rng.lognormvariate(8.5, 1.5), 500_000) * k) + 200 for _ in range(rng.randint(1, 8))]))
            for o in page.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, until - time.time()))
        time.sleep(min(max(0.0, until - time.time()), rng.expovariate(1 / 5.0)))


def run_origins(params: dict[str, Any]) -> None:
    """params: ``origins`` (list of {ip, port, dead}; nothing listens on a dead one), ``clients`` (list of {ip, start}), ``certfile``/``keyfile``,
    ``scale``, ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    servers = [Server(o["ip"], o["port"], True, params["certfile"], params["keyfile"]) for o in params["origins"]
               if not o.get("dead")]
    until = params["until"]

    def client(spec: dict[str, Any], seed: int) -> None:
        time.sleep(max(0.0, params["t0"] + spec["start"] - time.time()))
        _browse(spec["ip"], params["origins"], random.Random(seed), until, params.get("scale", 1.0))

    threads = [threading.Thread(target=client, args=(c, rng.getrandbits(32)), daemon=True) for c in params["clients"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, until - time.time() + 3))
    for s in servers:
        s.close()
